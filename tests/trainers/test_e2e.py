"""End to end: `rlvr train` on a random tiny model raises the reward of an easy verifiable task.

The task: arithmetic prompts scored by the `length` verifier (reward = characters / 80, capped at
1), which a random model's samples always vary on. Learning it means moving probability towards
tokens with more characters. The run is seeded (sampling included), so it is deterministic here.
"""

from __future__ import annotations

import json
import statistics

import pytest

from rlvr.metrics import read_jsonl_metrics

from .conftest import rlvr_cmd, run, small_config, write_config

pytestmark = pytest.mark.slow


def test_reward_rises_and_the_run_is_complete(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    cfg = small_config(run_dir, tiny_model_dir, steps=12, preset="dr_grpo",
                       task={"verifier_options": {"length": {"max_chars": 80}}},
                       rollout={"prompts_per_step": 8}, optim={"lr": 2.0e-2},
                       logging={"eval_every": 6}, checkpoint={"every": 6})
    run(rlvr_cmd("train", str(write_config(tmp_path / "run.yaml", cfg))))

    rows = [r for r in read_jsonl_metrics(run_dir / "metrics.jsonl") if r["step"] > 0]
    rewards = [r["reward/mean"] for r in rows]
    assert len(rewards) == 12
    first, last = statistics.fmean(rewards[:3]), statistics.fmean(rewards[-3:])
    assert last > first + 0.03, rewards
    assert rows[-1]["entropy"] < rows[0]["entropy"]  # the policy sharpened
    # the pieces a user looks at are there
    for key in ("reward/length", "reward/math", "accuracy", "length/mean", "clip_frac", "groups/zero_var_frac", "lr"):
        assert key in rows[-1], key
    evals = [r for r in read_jsonl_metrics(run_dir / "metrics.jsonl") if "eval/accuracy" in r]
    assert [r["step"] for r in evals] == [0, 6, 12]
    rollout = json.loads((run_dir / "rollouts.jsonl").read_text().splitlines()[0])
    assert {"prompt", "completion", "reward", "rewards", "passed", "info", "index", "policy_version"} <= rollout.keys()
    # the run's objective, as `rlvr presets show dr_grpo` prints it (the preset is read, not ignored)
    objective = (run_dir / "objective.txt").read_text()
    assert objective.startswith("preset dr_grpo:") and "1/(N·8) Σ_i Σ_t" in objective  # max_new_tokens 8
    assert set(rollout["rewards"]) == {"length", "math"}
    assert (run_dir / "config.yaml").exists() and (run_dir / "checkpoints" / "step-000012" / "model").is_dir()
    # the report renders the run
    run(rlvr_cmd("report", str(run_dir)))
    assert (run_dir / "report" / "overview.png").stat().st_size > 0
