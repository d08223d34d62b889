"""`rlvr train` and `rlvr eval` on a reasoning-gym generator (chain_sum), with the demo model.

The demo model adds two-digit numbers and writes ``<answer>`` tags under the ``r1_zero_short``
template, so chain_sum with two 2-digit positive terms is a task it partly solves: the run checks
that training goes through rlvr's scoring with reasoning-gym's `score_answer` as the reward.
"""

from __future__ import annotations

import importlib.util
import json

import pytest

from rlvr.metrics import read_jsonl_metrics
from tests.conftest import require

from .conftest import rlvr_cmd, run, small_config, write_config

pytestmark = pytest.mark.slow

TASK = {"name": "reasoning_gym",
        "options": {"dataset": "chain_sum", "size": 64, "size_test": 8, "seed": 0, "template": "r1_zero_short",
                    "config": {"min_terms": 2, "max_terms": 2, "min_digits": 2, "max_digits": 2}},
        "verifiers": None, "verifier_options": {}, "eval_limit": 8}


def test_train_and_eval_the_demo_model_on_chain_sum(tmp_path):
    require(importlib.util.find_spec("reasoning_gym") is not None, "reasoning-gym is not installed (pip install 'rlvr[gym]')")
    run_dir = tmp_path / "run"
    cfg = small_config(run_dir, "demo", steps=3, task=TASK, rollout={"max_new_tokens": 16},
                       optim={"lr": 1.0e-5}, logging={"eval_every": 3}, checkpoint={"every": 3})
    cfg["task"]["verifiers"] = None
    run(rlvr_cmd("train", str(write_config(tmp_path / "run.yaml", cfg))))
    rows = [r for r in read_jsonl_metrics(run_dir / "metrics.jsonl") if r["step"] > 0]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all("reward/reasoning_gym" in r for r in rows)
    rollouts = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == 3 * 4 * 4 and set(rollouts[0]["rewards"]) == {"reasoning_gym"}
    extracted = [r["info"]["reasoning_gym"]["extracted"] for r in rollouts]
    assert sum(e is not None for e in extracted) >= 1  # the demo model sometimes writes <answer> tags here
    for r, e in zip(rollouts, extracted):  # the reward is score_answer's: 1 exactly when the sum is right
        a, op, b = r["prompt"].split("problem: ")[1].split(" =")[0].split()
        gold = int(a) + int(b) if op == "+" else int(a) - int(b)
        assert r["reward"] == float(e is not None and e.strip() == str(gold)) == float(r["passed"]), r
    evals = [r for r in read_jsonl_metrics(run_dir / "metrics.jsonl") if "eval/accuracy" in r]
    assert [r["step"] for r in evals] == [0, 3]

    out = tmp_path / "eval.jsonl"
    proc = run(rlvr_cmd("eval", "--model", "demo", "--task", "reasoning_gym", "--task-option", "dataset=chain_sum",
                        "--task-option", "config={min_terms: 2, max_terms: 2, min_digits: 2, max_digits: 2}",
                        "--task-option", "template=r1_zero_short", "--task-option", "size_test=6",
                        "--n", "2", "--k", "1", "--max-new-tokens", "12", "--workers", "1", "--output", str(out)))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) >= 6 and "pass@1" in proc.stdout
