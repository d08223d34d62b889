"""rlvr dpo: reference logprobs computed once, every variant trains, held-out implicit-reward margin and
accuracy rise, verifier-made pairs, unpaired KTO rows and their errors (tiny random model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr.io import InputError
from rlvr.tiny import build_tiny_model, default_texts
from tests.trainers.test_reward import verifier_pairs, write_rows
from tests.trainers.test_sft import FAST, SHAPE, has_digit, run_command


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(
        tmp_path_factory.mktemp("tiny"), texts=default_texts(400), vocab_size=400, **SHAPE
    )


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pairs")
    return (
        write_rows(root / "train.jsonl", verifier_pairs("train", 16, 0)),
        write_rows(root / "held.jsonl", verifier_pairs("test", 8, 1)),
    )


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_dpo_end_to_end_margin_and_accuracy_rise(tiny, pairs, tmp_path):
    run = tmp_path / "run"
    assert (
        run_command(
            "dpo",
            [
                f"model.path={tiny}",
                f"data.train={pairs[0]}",
                f"data.eval={pairs[1]}",
                "steps=12",
                "batch_size=16",
                "optim.lr=2e-3",
                "logging.eval_every=0",
                f"logging.run_dir={run}",
                *FAST,
            ],
        )
        == 0
    )
    s = _summary(run)
    before, after = s["before"], s["after"]
    assert abs(before["eval/reward_margin"]) < 1e-4  # policy == reference before the first step
    assert after["eval/reward_margin"] > 0.05 and after["eval/reward_accuracy"] >= 0.7
    assert after["eval/loss"] < before["eval/loss"]


def test_reference_logprobs_are_computed_once(tiny, pairs, tmp_path, monkeypatch):
    """The reference scores each train and held-out sequence once, however many steps run."""
    from rlvr.trainers import setup

    calls = {"loads": 0, "rows": 0}
    real = setup.load_reference

    def counting(path):
        model = real(path)
        calls["loads"] += 1
        forward = model.forward

        def counted(*args, **kwargs):
            calls["rows"] += kwargs["input_ids"].shape[0]
            return forward(*args, **kwargs)

        model.forward = counted
        return model

    monkeypatch.setattr(setup, "load_reference", counting)
    n_train = len(pairs[0].read_text().splitlines())
    n_held = len(pairs[1].read_text().splitlines())
    for steps in (1, 4):
        calls.update(loads=0, rows=0)
        run_command(
            "dpo",
            [
                f"model.path={tiny}",
                f"data.train={pairs[0]}",
                f"data.eval={pairs[1]}",
                f"steps={steps}",
                "batch_size=8",
                "logging.eval_every=0",
                f"logging.run_dir={tmp_path / str(steps)}",
                *FAST,
            ],
        )
        assert calls == {"loads": 1, "rows": 2 * (n_train + n_held)}  # chosen + rejected, once each


@pytest.mark.parametrize("loss", ["ipo", "cdpo", "simpo", "orpo", "kto"])
def test_every_variant_trains(tiny, pairs, tmp_path, loss):
    run = tmp_path / "run"
    assert (
        run_command(
            "dpo",
            [
                f"loss={loss}",
                f"model.path={tiny}",
                f"data.train={pairs[0]}",
                f"data.eval={pairs[1]}",
                "steps=3",
                "batch_size=8",
                "optim.lr=2e-3",
                "logging.eval_every=0",
                f"logging.run_dir={run}",
                *FAST,
            ],
        )
        == 0
    )
    s = _summary(run)
    assert s["after"]["eval/loss"] < s["before"]["eval/loss"]
    key = "eval/reward_desirable" if loss == "kto" else "eval/reward_margin"
    assert key in s["after"]
    if loss == "kto":
        assert s["train_items"] == 2 * len(pairs[0].read_text().splitlines())  # pairs split in two


def test_kto_unpaired_rows_and_errors(tiny, tmp_path):
    rows = [
        {"prompt": "Q: 1 + 2 =", "completion": " 3", "label": True},
        {"prompt": "Q: 1 + 2 =", "completion": " 4", "label": False},
    ] * 4
    good = write_rows(tmp_path / "kto.jsonl", rows)
    run = tmp_path / "run"
    assert (
        run_command(
            "dpo",
            [
                "loss=kto",
                f"model.path={tiny}",
                f"data.train={good}",
                "data.eval_fraction=0.25",
                "steps=2",
                "batch_size=4",
                f"logging.run_dir={run}",
                *FAST,
            ],
        )
        == 0
    )
    assert _summary(run)["train_items"] == 6
    # a held-out file of its own is used as such (not a fraction of the train file)
    held = write_rows(tmp_path / "kto_held.jsonl", rows[:2] * 3)
    run2 = tmp_path / "run2"
    assert run_command("dpo", ["loss=kto", f"model.path={tiny}", f"data.train={good}", f"data.eval={held}",
                               "steps=1", "batch_size=4", f"logging.run_dir={run2}", *FAST]) == 0
    assert (_summary(run2)["train_items"], _summary(run2)["eval_items"]) == (8, 6)
    bad = write_rows(tmp_path / "bad.jsonl", rows[:2] + [{"prompt": "a", "completion": "b", "label": "yes"}])
    with pytest.raises(InputError, match=r"bad\.jsonl:3: field 'label' must be true or false"):
        run_command(
            "dpo", ["loss=kto", f"model.path={tiny}", f"data.train={bad}", f"logging.run_dir={run}", *FAST]
        )


def test_pairs_from_the_verifier(tiny, tmp_path):
    run = tmp_path / "run"
    assert (
        run_command(
            "dpo",
            [
                "--from-verifier",
                f"model.path={tiny}",
                "from_verifier.task=arithmetic",
                "from_verifier.task_options={level: 1, verifiers: {test_has_digit: 1.0}}",
                "from_verifier.prompts=12",
                "from_verifier.eval_prompts=4",
                "from_verifier.samples_per_prompt=6",
                "from_verifier.max_new_tokens=6",
                "steps=2",
                "batch_size=4",
                f"logging.run_dir={run}",
                *FAST,
            ],
        )
        == 0
    )
    made = [json.loads(x) for x in (run / "pairs_train.jsonl").read_text().splitlines()]
    assert made and all(
        has_digit(r["chosen"], None).passed and not has_digit(r["rejected"], None).passed for r in made
    )
    assert "eval/accuracy" in _summary(run)["after"]


def test_shared_prompt_pass_equals_the_full_sequences(tiny, pairs):
    """`pair_logps` (each pair's prompt run once) gives the sums and gradients of `sequence_logps`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.trainers.dpo import load_dpo_config, pair_logps, sequence_logps
    from rlvr.trainers.reward import load_pair_data

    model, tok = AutoModelForCausalLM.from_pretrained(tiny), AutoTokenizer.from_pretrained(tiny)
    cfg = load_dpo_config(None, [f"model.path={tiny}", f"data.train={pairs[0]}"])
    train, _, _ = load_pair_data(cfg, tok, model)
    items = [(c, r) for c, r, _ in train[:6]]
    pad = int(tok.pad_token_id)
    grads = []
    for shared in (False, True):
        model.zero_grad()
        if shared:
            chosen, rejected = pair_logps(model, items, pad)
        else:
            both = sequence_logps(model, [c for c, _ in items] + [r for _, r in items], pad)
            chosen, rejected = ({k: v[:6] for k, v in both.items()}, {k: v[6:] for k, v in both.items()})
        (chosen["sum"] - 0.5 * rejected["sum"]).sum().backward()
        grads.append(([p.grad.clone() for p in model.parameters() if p.grad is not None], chosen, rejected))
    (g_full, c_full, r_full), (g_shared, c_shared, r_shared) = grads
    for a, b in ((c_full, c_shared), (r_full, r_shared)):
        assert torch.allclose(a["sum"], b["sum"], atol=1e-4) and torch.equal(a["n"], b["n"])
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(g_full, g_shared))
    # a pair whose two prompts differ cannot share: the caller falls back to the full sequences
    from rlvr.preference import Example

    odd = (Example([1, 2, 3], [0, 0, 1]), Example([1, 9, 3], [0, 0, 1]))
    assert pair_logps(model, [odd], pad) is None


def test_kto_reference_point_is_zero_while_the_policy_is_the_reference(tiny, pairs, tmp_path):
    """z compares the policy and the reference on the same mismatched rows: 0 before any update, so
    the loss of the first step is exactly 1 - sigma(0) = 0.5 whatever the batch."""
    run = tmp_path / "run"
    assert run_command("dpo", ["loss=kto", f"model.path={tiny}", f"data.train={pairs[0]}", f"data.eval={pairs[1]}",
                               "steps=1", "batch_size=16", "optim.lr=1e-12", "logging.eval_every=0",
                               f"logging.run_dir={run}", *FAST]) == 0
    step1 = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    step1 = next(r for r in step1 if r.get("step") == 1 and "loss" in r)
    assert step1["kl_ref"] == pytest.approx(0.0, abs=1e-5)
    assert step1["loss"] == pytest.approx(0.5, abs=1e-6)
    assert _summary(run)["before"]["eval/kl_ref"] == pytest.approx(0.0, abs=1e-5)
