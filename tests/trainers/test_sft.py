"""rlvr sft: prompt masking (plain and chat), packing isolation, bad-data errors, and end-to-end runs
(eval loss falls; rejection sampling keeps only verified completions) on a tiny random model."""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path

import pytest
import torch

from rlvr.io import InputError
from rlvr.preference import Example, encode_sft_row, pack
from rlvr.tiny import build_tiny_model, default_texts
from rlvr.verifiers import Sample, Score, register_verifier

SHAPE = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, intermediate_size=64
)
FAST = ["logging.tensorboard=false", "logging.progress=none", "optim.micro_batch_size=8"]


def run_command(name: str, argv: list[str]) -> int:
    """Run ``rlvr NAME ARGV`` through the command module (as rlvr.cli does)."""
    mod = importlib.import_module(f"rlvr.commands.{name}")
    parser = argparse.ArgumentParser()
    mod.add_arguments(parser)
    return mod.run(parser.parse_args(argv))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_model(
        tmp_path_factory.mktemp("tiny"), texts=default_texts(400), vocab_size=400, **SHAPE
    )


@pytest.fixture(scope="module")
def tok(tiny):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny)


def _masked_text(tok, ex: Example) -> str:
    return tok.decode([i for i, m in zip(ex.ids, ex.mask) if m])


def test_prompt_completion_masks_the_prompt(tok):
    ex = encode_sft_row({"prompt": "Q: 2 + 3 =", "completion": " 5"}, "f:1", tok)
    n_prompt = len(tok("Q: 2 + 3 =", add_special_tokens=False)["input_ids"])
    assert ex.mask == [0] * n_prompt + [1] * (len(ex.ids) - n_prompt)
    assert ex.ids[-1] == tok.eos_token_id  # the model learns to stop
    assert _masked_text(tok, ex) == " 5<|endoftext|>"


def test_chat_trains_on_assistant_turns_only(tok):
    msgs = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "12"},
        {"role": "user", "content": "more"},
        {"role": "assistant", "content": "34"},
    ]
    ex = encode_sft_row({"messages": msgs}, "f:1", tok)
    # ChatML: each assistant turn is trained from its content through <|im_end|>\n; headers are masked.
    assert _masked_text(tok, ex) == "12<|im_end|>\n34<|im_end|>\n"
    assert tok.decode(ex.ids) == tok.apply_chat_template(msgs, tokenize=False)


def test_a_chat_that_opens_with_the_reply_does_not_train_on_the_header(tok):
    ex = encode_sft_row({"messages": [{"role": "assistant", "content": "12"}]}, "f:1", tok)
    assert _masked_text(tok, ex) == "12<|im_end|>\n"
    assert tok.decode(ex.ids) == "<|im_start|>assistant\n12<|im_end|>\n"


def test_packing_never_targets_an_example_first_token(tok):
    """Packed, an example's first token would be predicted from its neighbour's last token; unpacked,
    position 0 is never a target. So the first token of each example is masked out of the loss."""
    a, b = Example([5, 6, 7], [0, 1, 1]), Example([8, 9], [1, 1])  # b: a reply with no prompt
    packed = pack([a, b], seq_len=6, pad_id=0)
    assert packed["mask"][0].tolist() == [0.0, 1.0, 1.0, 0.0, 1.0, 0.0]


def test_bad_rows_name_file_line_and_field(tok, tmp_path):
    with pytest.raises(InputError, match=r"f\.jsonl:7: field 'completion' is missing"):
        encode_sft_row({"prompt": "x"}, "f.jsonl:7", tok)
    with pytest.raises(InputError, match=r"f\.jsonl:2: field 'messages'\[0\]"):
        encode_sft_row({"messages": [{"role": "user"}]}, "f.jsonl:2", tok)
    bad = tmp_path / "rows.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": 3}\n')
    with pytest.raises(InputError, match=r"rows\.jsonl:2: field 'completion' must be a string"):
        run_command(
            "sft",
            [f"data.train={bad}", "model.path=tiny", f"logging.run_dir={tmp_path / 'run'}", "steps=1", *FAST],
        )


def test_packing_keeps_examples_apart(tiny, tok):
    """A packed row gives each example the same logits as running it alone (block-diagonal attention)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny).eval()
    ids_a = tok("Q: 12 + 30 = 42", add_special_tokens=False)["input_ids"]
    ids_b = tok(" the river city", add_special_tokens=False)["input_ids"]
    a, b = Example(ids_a, [1] * len(ids_a)), Example(ids_b, [1] * len(ids_b))
    packed = pack([a, b], seq_len=len(a.ids) + len(b.ids) + 2, pad_id=tok.pad_token_id)
    assert packed["input_ids"].shape[0] == 1
    assert packed["position_ids"][0].tolist()[: len(a.ids) + len(b.ids)] == list(range(len(a.ids))) + list(
        range(len(b.ids))
    )
    with torch.no_grad():
        # use_cache=False as the trainers pass it: transformers only detects packing without a KV cache
        both = model(
            input_ids=packed["input_ids"], position_ids=packed["position_ids"], use_cache=False
        ).logits[0]
        alone_b = model(input_ids=torch.tensor([b.ids]), use_cache=False).logits[0]
    torch.testing.assert_close(both[len(a.ids) : len(a.ids) + len(b.ids)], alone_b, atol=1e-5, rtol=1e-5)


def _arith_rows(path: Path, n: int) -> Path:
    from rlvr.tasks.arithmetic import generate

    with path.open("w") as f:
        for s in generate(1, n, 0, "train"):
            f.write(json.dumps({"prompt": f"Q: {s.prompt} A:", "completion": f" {s.answer}"}) + "\n")
    return path


@pytest.mark.parametrize("packing", [False, True])
def test_sft_end_to_end_eval_loss_falls(tiny, tmp_path, packing):
    rows = _arith_rows(tmp_path / "sft.jsonl", 120)
    run = tmp_path / "run"
    code = run_command(
        "sft",
        [
            f"model.path={tiny}",
            f"data.train={rows}",
            "data.eval_fraction=0.2",
            "steps=12",
            "batch_size=16",
            "optim.lr=3e-3",
            f"data.packing={str(packing).lower()}",
            "data.max_length=64",
            "logging.eval_every=6",
            f"logging.run_dir={run}",
            *FAST,
        ],
    )
    assert code == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["eval_examples"] == 24 and summary["train_examples"] == 96
    assert summary["after"]["eval/loss"] < summary["before"]["eval/loss"] - 1.0
    if packing:
        assert summary["train_rows"] < summary["train_examples"]  # several examples share a row
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[0] == 0 and steps[-1] == 12
    assert (run / "config.yaml").is_file() and (run / "final" / "model.safetensors").is_file()
    assert (run / "checkpoints" / "latest").is_file()


@register_verifier("test_has_digit")
def has_digit(completion: str, sample: Sample) -> Score:
    """Passes when the completion contains a digit (a random tiny model sometimes writes one)."""
    ok = any(ch.isdigit() for ch in completion)
    return Score(reward=float(ok), passed=ok)


@pytest.mark.parametrize("command", ["sft", "rm", "dpo"])
def test_model_dtype_bfloat16_runs_the_forward_in_bf16_on_cpu(tiny, tmp_path, command):
    """model.dtype=bfloat16 autocasts the training forward (CPU autocast too): the first step's loss
    is the fp32 one up to bf16 rounding, not the same number."""
    from tests.trainers.test_reward import verifier_pairs, write_rows

    data = _arith_rows(tmp_path / "sft.jsonl", 32) if command == "sft" else \
        write_rows(tmp_path / "pairs.jsonl", verifier_pairs("train", 12, 0))
    first = {}
    for dtype in ("float32", "bfloat16"):
        run = tmp_path / dtype
        assert run_command(command, [f"model.path={tiny}", f"data.train={data}", "steps=1", "batch_size=8",
                                     f"model.dtype={dtype}", "logging.eval_every=0", f"logging.run_dir={run}", *FAST]) == 0
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        first[dtype] = next(r["loss"] for r in rows if r["step"] == 1)
    assert first["bfloat16"] != first["float32"]
    assert first["bfloat16"] == pytest.approx(first["float32"], rel=0.05)


def test_rejection_sampling_keeps_only_verified_completions(tiny, tmp_path):
    run = tmp_path / "run"
    code = run_command(
        "sft",
        [
            "--rejection-sampling",
            f"model.path={tiny}",
            "rejection_sampling.task=arithmetic",
            "rejection_sampling.task_options={level: 1, verifiers: {test_has_digit: 1.0}}",
            "rejection_sampling.prompts=12",
            "rejection_sampling.eval_prompts=4",
            "rejection_sampling.samples_per_prompt=4",
            "rejection_sampling.max_new_tokens=6",
            "rejection_sampling.per_prompt=1",
            "steps=3",
            "batch_size=4",
            f"logging.run_dir={run}",
            *FAST,
        ],
    )
    assert code == 0
    kept = [json.loads(x) for x in (run / "rejection_train.jsonl").read_text().splitlines()]
    assert kept and all(has_digit(r["completion"], Sample()).passed for r in kept)
    assert len({r["prompt"] for r in kept}) == len(kept)  # per_prompt=1
    summary = json.loads((run / "summary.json").read_text())
    assert summary["train_examples"] == len(kept)
    assert 0 < summary["sampled/train_pass_rate"] <= 1 and "eval/accuracy" in summary["after"]
