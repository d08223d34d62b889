"""rlvr rm: verifier-made pairs, bad-data errors, and end-to-end runs on a tiny random model
(held-out pairwise accuracy rises above chance on verifier-labelled arithmetic pairs; an ensemble
with normalisation is saved where the reward_model verifier finds it)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from rlvr.io import InputError
from rlvr.preference import pairs_from_scores
from rlvr.tiny import build_tiny_model, default_texts
from tests.trainers.test_sft import FAST, SHAPE, run_command


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(
        tmp_path_factory.mktemp("tiny"), texts=default_texts(400), vocab_size=400, **SHAPE
    )


def verifier_pairs(split: str, n: int, seed: int) -> list[dict]:
    """Arithmetic candidates in five styles, labelled by the task's math verifier, paired passed vs failed."""
    from rlvr.scoring import score_batch
    from rlvr.tasks import get_task

    task = get_task("arithmetic", level=1, n=max(n, 10), n_test=max(n, 10))
    rng = random.Random(seed)
    samples = task.samples(split, limit=n)
    texts = []
    for s in samples:
        a, d = int(s.answer), rng.choice([x for x in range(-9, 10) if x])
        texts.append(
            [
                f" <answer>{a}</answer>",
                f" The answer is {a}.",
                f" <answer>{a + d}</answer>",
                f" {s.metadata['expression']} = {a}",
                f" The answer is {a + d}.",
            ]
        )
    scores = score_batch(
        task.verifier(), [t for ts in texts for t in ts], [s for s in samples for _ in range(5)], workers=0
    )
    passed = [[scores[i * 5 + j].passed for j in range(5)] for i in range(len(samples))]
    return pairs_from_scores([task.render(s) for s in samples], texts, passed, per_prompt=3)


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_pairs_from_scores_pairs_passed_with_failed():
    rows = pairs_from_scores(
        ["p", "q", "r"],
        [["a", "b", "a", "c"], ["x", "y"], ["u", "v"]],
        [[True, False, True, False], [True, True], [False, None]],
        per_prompt=3,
    )
    # p: distinct passed {a}, failed {b, c}: a-b, then a reused against c; q all pass, r has no pass: no pair.
    assert rows == [
        {"prompt": "p", "chosen": "a", "rejected": "b"},
        {"prompt": "p", "chosen": "a", "rejected": "c"},
    ]


def test_verifier_labels_are_right():
    rows = verifier_pairs("train", 5, 0)
    assert len(rows) == 15
    for r in rows:
        gold = eval(r["prompt"].split("What is ")[1].split("?")[0])
        assert str(gold) in r["chosen"] and (f"<answer>{gold}</answer>" not in r["rejected"])


def test_bad_pair_rows_name_file_line_and_field(tiny, tmp_path):
    bad = write_rows(
        tmp_path / "pairs.jsonl",
        [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a", "chosen": "b"}],
    )
    with pytest.raises(InputError, match=r"pairs\.jsonl:2: field 'rejected' is missing \(this row has: chosen, prompt\)"):
        run_command(
            "rm", [f"model.path={tiny}", f"data.train={bad}", f"logging.run_dir={tmp_path / 'r'}", *FAST]
        )
    from transformers import AutoTokenizer

    from rlvr.preference import encode_pair

    tok = AutoTokenizer.from_pretrained(tiny)
    reply = [{"role": "assistant", "content": "b"}]
    for row, msg in [
        ({"prompt": [{"role": "user"}], "chosen": reply, "rejected": reply}, r"f:3: field 'prompt'\[0\] must be"),
        ({"prompt": 5, "chosen": "b", "rejected": "c"}, r"f:3: field 'prompt' must be a string or a list of messages, got int"),
        ({"prompt": 5, "chosen": reply, "rejected": reply}, r"f:3: field 'prompt' must be a string or a list"),
        ({"chosen": [{"role": "user", "content": "a"}], "rejected": reply}, r"f:3: field 'chosen': the last message .* role 'assistant'"),
    ]:
        with pytest.raises(InputError, match=msg):
            encode_pair(row, "f:3", tok)
    bad = write_rows(tmp_path / "m.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "c", "m": "big"}])
    with pytest.raises(InputError, match=r"m\.jsonl:1: field 'm' must be a number"):
        run_command(
            "rm",
            [
                f"model.path={tiny}",
                f"data.train={bad}",
                "data.margin_field=m",
                f"logging.run_dir={tmp_path / 'r2'}",
                *FAST,
            ],
        )


def test_rm_end_to_end_pairwise_accuracy_rises(tiny, tmp_path):
    train = write_rows(tmp_path / "train.jsonl", verifier_pairs("train", 60, 0))
    held = write_rows(tmp_path / "held.jsonl", verifier_pairs("test", 16, 1))
    run = tmp_path / "run"
    assert (
        run_command(
            "rm",
            [
                f"model.path={tiny}",
                f"data.train={train}",
                f"data.eval={held}",
                "steps=20",
                "batch_size=16",
                "optim.lr=2e-3",
                "logging.eval_every=0",
                f"logging.run_dir={run}",
                *FAST,
            ],
        )
        == 0
    )
    s = json.loads((run / "summary.json").read_text())
    assert s["eval_pairs"] == 48 and s["train_pairs"] == 180
    before, after = s["before"][0], s["final"]
    # measured: 0.67 -> 0.94 (the random head already leans one way on some styles; chance is 0.5)
    assert after["eval/accuracy"] >= 0.85 and after["eval/accuracy"] > before["eval/accuracy"]
    assert after["eval/loss"] < before["eval/loss"] - 0.1 and abs(before["eval/margin"]) < 0.1


def test_rm_ensemble_normalised_and_served_by_the_verifier(tiny, tmp_path):
    from rlvr.verifiers import Sample, get_verifier

    rows = verifier_pairs("train", 8, 0)
    train = write_rows(tmp_path / "train.jsonl", rows)
    run = tmp_path / "run"
    assert (
        run_command(
            "rm",
            [
                f"model.path={tiny}",
                f"data.train={train}",
                "data.eval_fraction=0.25",
                "ensemble=2",
                "steps=2",
                "batch_size=8",
                "margin=0.5",
                f"logging.run_dir={run}",
                *FAST,
            ],
        )
        == 0
    )
    final = run / "final"
    assert json.loads((final / "ensemble.json").read_text())["members"] == ["member-0", "member-1"]
    s = json.loads((run / "summary.json").read_text())
    assert "eval/disagreement" in s["final"] and len(s["after"]) == 2
    # normalize: the verifier's rewards of the (train) chosen responses average 0 for each member.
    from rlvr.preference import split_heldout

    train_idx, _ = split_heldout(len(rows), 0.25, 0)
    chosen = [rows[i] for i in train_idx]
    v = get_verifier("reward_model", path=str(final))
    r = v.raw_rewards([x["chosen"] for x in chosen], [Sample(prompt=x["prompt"]) for x in chosen])  # (2, P)
    assert r.shape == (2, len(chosen))
    assert r.mean(1).abs().max().item() < 1e-4
    assert (r[0] - r[1]).abs().max().item() > 1e-4  # members differ (different seeds)


def test_rm_with_lora_and_gradient_checkpointing_saves_a_plain_model(tiny, tmp_path):
    """LoRA on the backbone (the new head trained in full), gradient checkpointing on; the saved
    model has the adapters merged, so the verifier loads it. The pairs' prompts were rendered with
    the task's template and `prompt_template` records it, so the verifier, given a task's raw
    question as `rlvr train` gives it, sees what the model was trained on: the normalised chosen
    rewards average 0."""
    from rlvr.preference import split_heldout
    from rlvr.tasks import get_task
    from rlvr.verifiers import Sample, get_verifier

    task = get_task("arithmetic", level=1, n=10, n_test=10)
    raw = {task.render(x): x.prompt for x in task.samples("train", limit=8)}

    rows = verifier_pairs("train", 8, 0)
    train = write_rows(tmp_path / "train.jsonl", rows)
    run = tmp_path / "run"
    args = [f"model.path={tiny}", f"data.train={train}", "data.eval_fraction=0.25", "steps=3", "batch_size=8",
            "optim.lr=1e-2", "model.lora.enabled=true", "model.lora.r=4", "model.gradient_checkpointing=true",
            "prompt_template=r1_zero_short", f"logging.run_dir={run}", *FAST]
    assert run_command("rm", args) == 0
    final = run / "final"
    assert (final / "model.safetensors").exists() and not (final / "adapter_config.json").exists()
    s = json.loads((run / "summary.json").read_text())
    assert s["final"]["eval/loss"] != s["before"][0]["eval/loss"]  # it trained
    train_idx, _ = split_heldout(len(rows), 0.25, 0)
    chosen = [rows[i] for i in train_idx]
    r = get_verifier("reward_model", path=str(final)).raw_rewards(
        [x["chosen"] for x in chosen], [Sample(prompt=raw[x["prompt"]]) for x in chosen])
    assert abs(r.mean().item()) < 1e-4  # normalised over the train chosen responses
    with pytest.raises(InputError, match="prompt_template: unknown template 'r1_zero_shrt'; did you mean 'r1_zero_short'"):
        run_command("rm", args[:-3] + ["prompt_template=r1_zero_shrt", f"logging.run_dir={tmp_path / 'r2'}", *FAST])


def test_conversation_pairs_use_the_shared_turns_as_prompt(tiny):
    from transformers import AutoTokenizer

    from rlvr.preference import encode_pair

    tok = AutoTokenizer.from_pretrained(tiny)
    user = {"role": "user", "content": "hi"}
    row = {
        "chosen": [user, {"role": "assistant", "content": "12"}],
        "rejected": [user, {"role": "assistant", "content": "34"}],
    }
    c, r = encode_pair(row, "f:1", tok)
    trained = lambda e: tok.decode([i for i, m in zip(e.ids, e.mask) if m])  # noqa: E731
    assert (trained(c), trained(r)) == ("12<|im_end|>\n", "34<|im_end|>\n")
    assert tok.decode(c.ids) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n12<|im_end|>\n"


def test_rm_from_verifier_holds_out_prompts_never_seen_in_train(tiny, tmp_path):
    """`rlvr rm --from-verifier`: held-out pairs come from the task's test split, so no held-out
    prompt occurs among the train prompts; chosen passed and rejected failed the task's verifier."""
    from tests.trainers.test_sft import has_digit

    run = tmp_path / "run"
    assert (
        run_command(
            "rm",
            [
                "--from-verifier",
                f"model.path={tiny}",
                "from_verifier.task=arithmetic",
                "from_verifier.task_options={level: 1, verifiers: {test_has_digit: 1.0}}",
                "from_verifier.prompts=16",
                "from_verifier.eval_prompts=8",
                "from_verifier.samples_per_prompt=6",
                "from_verifier.max_new_tokens=6",
                "from_verifier.per_prompt=4",
                "steps=2",
                "batch_size=4",
                f"logging.run_dir={run}",
                *FAST,
            ],
        )
        == 0
    )
    read = lambda name: [json.loads(x) for x in (run / name).read_text().splitlines()]  # noqa: E731
    train, held = read("pairs_train.jsonl"), read("pairs_eval.jsonl")
    assert train and held
    assert not {r["prompt"] for r in held} & {r["prompt"] for r in train}
    for r in train + held:
        assert has_digit(r["chosen"], None).passed and not has_digit(r["rejected"], None).passed
    s = json.loads((run / "summary.json").read_text())
    assert (s["train_pairs"], s["eval_pairs"]) == (len(train), len(held))


def test_shared_prompt_rewards_equal_the_full_sequences(tiny, tmp_path):
    """`pair_rewards` runs each pair's prompt once; rewards and gradients match the 2P full rows."""
    import torch
    from transformers import AutoTokenizer

    from rlvr.preference import Example, pad_examples
    from rlvr.trainers.reward import load_reward_model, pair_rewards

    tok = AutoTokenizer.from_pretrained(tiny)
    model = load_reward_model(tiny, tok)
    pad = int(tok.pad_token_id)
    pairs = []
    for prompt, good, bad in (([5, 6, 7], [8, 9], [10]), ([11], [12, 13, 14], [15, 16]), ([17, 18], [19], [20, 21, 22])):
        pairs.append((Example(prompt + good, [0] * len(prompt) + [1] * len(good)),
                      Example(prompt + bad, [0] * len(prompt) + [1] * len(bad))))
    rc, rr = pair_rewards(model, pairs, pad)
    (rc - 2 * rr).sum().backward()
    shared = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    batch = pad_examples([p[0] for p in pairs] + [p[1] for p in pairs], pad)
    full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits[:, 0]
    (full[:3] - 2 * full[3:]).sum().backward()
    assert torch.allclose(rc, full[:3], atol=1e-5) and torch.allclose(rr, full[3:], atol=1e-5)
    assert all(torch.allclose(a, p.grad, atol=1e-5) for a, p in zip(shared, [p for p in model.parameters() if p.grad is not None]))


def test_shared_prompt_rewards_match_when_pad_is_eos(tiny):
    """Tokenizers without a pad token get pad = EOS, so the head skips trailing EOS tokens; an empty
    reply (just EOS) then reads the prompt's last token, in training as in the verifier."""
    import torch
    from transformers import AutoTokenizer

    from rlvr.preference import Example, pad_examples
    from rlvr.trainers.reward import load_reward_model, pair_rewards

    tok = AutoTokenizer.from_pretrained(tiny)
    eos = int(tok.eos_token_id)
    model = load_reward_model(tiny, tok)
    model.config.pad_token_id = eos
    for good, bad in (([8, 9, eos], [10, eos]), ([8, 9, eos], [eos])):  # the second: an empty rejected reply
        pairs = [(Example([5, 6, 7] + good, [0] * 3 + [1] * len(good)), Example([5, 6, 7] + bad, [0] * 3 + [1] * len(bad)))]
        with torch.no_grad():
            rc, rr = pair_rewards(model, pairs, eos)
            batch = pad_examples([pairs[0][0], pairs[0][1]], eos)
            full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits[:, 0]
        assert torch.allclose(torch.cat([rc, rr]), full, atol=1e-5), (good, bad, rc, rr, full)


def test_reward_models_train_without_dropout(tiny, tmp_path):
    """A Qwen2 with attention dropout: in train mode the reward model gives the same reward twice
    (dropout is off, as TRL's disable_dropout), while the same model left as loaded does not."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    from rlvr.trainers.reward import load_reward_model

    config = AutoConfig.from_pretrained(tiny)
    config.attention_dropout = 0.5
    src = tmp_path / "dropout-lm"
    config.num_labels = 1
    AutoModelForSequenceClassification.from_pretrained(tiny, config=config).save_pretrained(src)
    tok = AutoTokenizer.from_pretrained(tiny)
    tok.save_pretrained(src)
    ids = torch.tensor([tok("Q: 12 + 30 = 42, the river city", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        plain = AutoModelForSequenceClassification.from_pretrained(src, num_labels=1).train()
        plain.config.pad_token_id = tok.pad_token_id
        assert not torch.equal(plain(input_ids=ids).logits, plain(input_ids=ids).logits)  # dropout acts
        rm = load_reward_model(src, tok).train()
        assert torch.equal(rm(input_ids=ids).logits, rm(input_ids=ids).logits)
