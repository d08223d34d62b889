"""The Python trainer API, user code by file, the final model, SIGTERM and resume (issue 11, items 4-7).

Each run is a tiny random model for 2-3 steps: what is checked is wiring (the right function scored
each completion, the right files were written and load back to the same weights), not learning.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from .conftest import env, rlvr_cmd, run, small_config, write_config

pytestmark = pytest.mark.slow

REWARDS = '''
def has_digit(completion, sample):
    return float(any(ch.isdigit() for ch in completion))


def my_template(question, tokenizer=None):
    return "Q: " + question + "\\nA:"
'''


def has_seven(completion, sample):  # module level: pickled by reference to the scoring workers
    return "7" in completion


def _rollouts(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]


def test_api_trains_with_callables_and_names_then_saves(tmp_path, tiny_model_dir):
    import datasets
    from transformers import AutoModelForCausalLM

    import rlvr

    rows = [{"q": f"{i} + 2 =", "a": str(i + 2)} for i in range(8)]
    cfg = small_config(tmp_path / "run", "unused", steps=2)
    cfg["scoring"] = {"workers": 1}  # worker processes: the lambda travels by cloudpickle
    cfg.pop("task")
    trainer = rlvr.GRPOTrainer(
        model=str(tiny_model_dir),
        reward_funcs=[has_seven, lambda c, s: len(c) / 100, "length"],
        reward_weights=[1.0, 1.0, 0.0],
        train_dataset=datasets.Dataset.from_list(rows), eval_dataset=rows[:2], columns={"prompt": "q", "answer": "a"},
        template=lambda q, tok: f"Question: {q}\nAnswer:", config=cfg)
    summary = trainer.train(quiet=True)
    assert summary["steps"] == 2 and summary["eval_last"] is not None
    recs = _rollouts(tmp_path / "run")
    assert len(recs) == 2 * 4 * 4
    for r in recs:  # every completion was scored by the functions given, with these weights
        assert r["prompt"].startswith("Question: ") and r["prompt"].endswith("\nAnswer:")
        assert r["rewards"]["has_seven"] == float("7" in r["completion"])
        assert r["rewards"]["reward_1"] == pytest.approx(len(r["completion"]) / 100)
        assert r["reward"] == pytest.approx(r["rewards"]["has_seven"] + r["rewards"]["reward_1"])
        assert r["passed"] == ("7" in r["completion"])  # primary: the first of the largest weights
    out = trainer.save(tmp_path / "mine")
    final = tmp_path / "run" / "final"
    assert {"config.json", "model.safetensors", "generation_config.json", "config.yaml"} <= {p.name for p in out.iterdir()}
    assert json.loads((final / "generation_config.json").read_text())["max_new_tokens"] == 8
    trained = AutoModelForCausalLM.from_pretrained(out)
    start = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    last = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "checkpoints" / "step-000002" / "model")
    for (name, p), r in zip(trained.state_dict().items(), last.state_dict().values()):
        assert torch.equal(p, r), name  # final/ holds the weights of the last step
    assert any(not torch.equal(p, q) for p, q in zip(trained.state_dict().values(), start.state_dict().values()))


def test_reward_function_failures_and_timeouts_are_data():
    from rlvr.api import build_reward
    from rlvr.scoring import Scorer
    from rlvr.verifiers import Sample

    def flaky(completion, sample):
        if completion == "raise":
            raise KeyError("boom")
        if completion == "hang":
            time.sleep(30)
        return {"ok": 1.0}.get(completion)  # None for anything else: a bad return value

    verifier = build_reward([flaky, has_seven])
    with Scorer(verifier, workers=1, timeout_s=1.0, max_exception_fraction=None) as scorer:
        scores = scorer.submit(["ok", "raise", "hang", "7?"], [Sample()] * 4).result()
    assert scores[0].reward == 1.0 and scores[0].info["rewards"] == {"flaky": 1.0, "has_seven": 0.0}
    assert scores[1].info["error"] == "exception" and "boom" in scores[1].info["exception"]
    assert scores[2].info["error"] == "timeout" and scores[2].reward == 0.0
    assert scores[3].info["error"] == "exception" and "returned NoneType None" in scores[3].info["exception"]


def test_cli_train_with_file_verifier_template_and_import(tmp_path, tiny_model_dir):
    (tmp_path / "my_rewards.py").write_text(REWARDS)
    (tmp_path / "registered.py").write_text(
        "from rlvr.verifiers import Score, register_verifier\n\n"
        "@register_verifier('short_answer')\n"
        "def short_answer(completion, sample):\n    return Score(float(len(completion) < 20), len(completion) < 20)\n")
    cfg = small_config(tmp_path / "run", tiny_model_dir, steps=2)
    cfg["task"]["verifiers"] = {"my_rewards.py:has_digit": 1.0, "short_answer": 0.5}
    cfg["task"]["verifier_options"] = {}
    cfg["task"]["options"]["template"] = "my_rewards.py:my_template"
    cfg["scoring"] = {"workers": 1}  # the worker must import registered.py on its own (RLVR_IMPORTS)
    path = write_config(tmp_path / "run.yaml", cfg)
    proc = subprocess.run(rlvr_cmd("train", str(path), "--import", "registered"), cwd=tmp_path, env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    recs = _rollouts(tmp_path / "run")
    for r in recs:
        assert r["prompt"].startswith("Q: ") and r["prompt"].endswith("\nA:")
        assert r["rewards"]["my_rewards.py:has_digit"] == float(any(ch.isdigit() for ch in r["completion"]))
        assert r["rewards"]["short_answer"] == float(len(r["completion"]) < 20)
        assert "error" not in r["info"]


def test_cli_config_errors_name_file_line_key_and_closest_name(tmp_path):
    (tmp_path / "my_rewards.py").write_text(REWARDS)
    (tmp_path / "bad.yaml").write_text(
        "model: {path: tiny}\n"
        "task:\n"
        "  name: arithmetic\n"
        "  verifiers: {math: 1.0, my_rewards.py:has_digits: 0.5, fromat: 0.1}\n"
        "  verifier_options:\n"
        "    with_unit: {x: 1}\n"
        "  options: {template: my_rewards.py:my_templat}\n")
    proc = subprocess.run(rlvr_cmd("train", "bad.yaml", "logging.run_dir=out"), cwd=tmp_path, env=env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    err = proc.stderr
    assert "bad.yaml:4: task.verifiers.my_rewards.py:has_digits: " in err and "did you mean 'has_digit'?" in err
    assert "bad.yaml:4: task.verifiers.fromat: unknown verifier 'fromat'; did you mean 'format'?" in err
    assert "bad.yaml:6: task.verifier_options.with_unit: no component 'with_unit' in task.verifiers" in err
    assert "bad.yaml:7: task.options.template: " in err and "did you mean 'my_template'?" in err
    assert not (tmp_path / "out").exists()  # stopped before any model or run directory


def test_lora_final_is_merged_and_eval_generate_load_adapter_checkpoints(tmp_path, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run_dir = tmp_path / "run"
    cfg = small_config(run_dir, tiny_model_dir, steps=2, optim={"lr": 0.05})
    cfg["model"]["lora"] = {"enabled": True, "r": 4, "alpha": 8}
    run(rlvr_cmd("train", str(write_config(tmp_path / "lora.yaml", cfg))))
    final = run_dir / "final"
    assert (final / "adapter" / "adapter_model.safetensors").exists()
    merged = AutoModelForCausalLM.from_pretrained(final).eval()
    by_hand = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), final / "adapter").eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = torch.tensor([[5, 17, 42, 7, 99]])
    with torch.no_grad():
        want, got, before = by_hand(ids).logits, merged(ids).logits, base(ids).logits
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(got, before, atol=1e-4)
    ckpt = run_dir / "checkpoints" / "step-000002"
    proc = run(rlvr_cmd("eval", "--model", str(ckpt), "--task", "arithmetic", "--task-option", "n_test=4",
                        "--n", "2", "--limit", "4", "--max-new-tokens", "4", "--output", str(tmp_path / "ev.jsonl")))
    assert json.loads((tmp_path / "ev.summary.json").read_text())["problems"] == 4, proc.stderr[-2000:]

    def generate(model: Path) -> list[str]:
        out = run(rlvr_cmd("generate", "--model", str(model), "--prompt", "What is 3 + 4?", "--prompt", "1 + 1",
                           "--json", "--max-new-tokens", "6"))
        return [json.loads(line)["completions"][0] for line in out.stdout.splitlines()]

    from_adapter, from_final = generate(ckpt), generate(run_dir)  # a checkpoint's adapter; a run directory's final/
    assert from_adapter == from_final and len(from_final) == 2


def test_sigterm_saves_a_checkpoint_and_resume_says_where(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    cfg = small_config(run_dir, tiny_model_dir, steps=500, checkpoint={"every": 0})
    path = write_config(tmp_path / "run.yaml", cfg)
    proc = subprocess.Popen(rlvr_cmd("train", str(path)), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 240
    while (not metrics.exists() or metrics.read_text().count('"step": ') < 3) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-3000:]
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    last = max(steps)
    assert 0 < last < 500
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == f"step-{last:06d}"
    assert f"rlvr train: SIGTERM at step {last}; checkpoint saved to {run_dir}/checkpoints" in err
    assert not (run_dir / "final").exists()
    out = run(rlvr_cmd("train", str(path), "--resume", f"steps={last + 1}"))
    assert f"rlvr train: --resume: continuing after step {last} of {last + 1} from " \
           f"{run_dir / 'checkpoints' / f'step-{last:06d}'}" in out.stderr
    assert (run_dir / "final" / "config.json").exists()
