"""The curriculum sampler inside `rlvr train` (with DAPO's dynamic sampling): the trainer draws
exactly the prompts `Curriculum` says given the logged results, logs the pool sizes, and a run
killed after a checkpoint and resumed matches an uninterrupted one (curriculum state included).

The demo model on level-1 arithmetic with the math verifier: it solves many sums and fails some,
so with k=1 prompts retire within a few steps.
"""

from __future__ import annotations

import json

import pytest

from rlvr.curriculum import Curriculum
from rlvr.tasks import get_task

from .conftest import rlvr_cmd, run, small_config, write_config
from .test_resume import _by_step, _kill_after_first_checkpoint

pytestmark = pytest.mark.slow

STEPS, PER_ROUND, G, N = 8, 4, 4, 12
TASK = {"name": "arithmetic", "options": {"level": 1, "n": N, "n_test": 4}, "verifiers": {"math": 1.0},
        "verifier_options": {}, "eval_limit": 4}


def _config(run_dir):
    return small_config(run_dir, "demo", steps=STEPS, preset="dapo", task=TASK,
                        rollout={"prompts_per_step": PER_ROUND, "group_size": G, "max_new_tokens": 12},
                        optim={"lr": 1.0e-5}, logging={"eval_every": 0}, checkpoint={"every": 2, "keep_last": 0},
                        curriculum={"enabled": True, "k": 1, "band_low": 0.0, "band_high": 1.0})


def test_curriculum_draws_what_it_says_and_resumes_exactly(tmp_path):
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    full_cfg, cut_cfg = write_config(tmp_path / "full.yaml", _config(full_dir)), write_config(tmp_path / "cut.yaml", _config(cut_dir))
    run(rlvr_cmd("train", str(full_cfg)))

    # replay: a fresh Curriculum fed the logged results predicts every prompt the trainer drew
    questions = [s.prompt for s in get_task("arithmetic", level=1, n=N, n_test=4).samples("train")]
    rows = [json.loads(line) for line in (full_dir / "rollouts.jsonl").read_text().splitlines()]
    cur = Curriculum(N, seed=0, k=1)
    for step in range(1, STEPS + 1):
        mine = [r for r in rows if r["step"] == step]
        groups = [mine[i:i + G] for i in range(0, len(mine), G)]
        assert len(groups) % PER_ROUND == 0
        drawn = [next(i for i, q in enumerate(questions) if f"User: {q}\n" in g[0]["prompt"]) for g in groups]
        assert drawn == [i for _ in range(len(groups) // PER_ROUND) for i in cur.next(PER_ROUND)], step
        for i, g in zip(drawn, groups):
            cur.update([(i, r["passed"]) for r in g])
    metrics = _by_step(full_dir / "metrics.jsonl")
    sizes = cur.pool_sizes()
    for key in ("curriculum/active", "curriculum/solved", "curriculum/failed", "curriculum/in_band", "curriculum/unseen"):
        assert metrics[STEPS][key] == sizes[key], key
    assert sizes["curriculum/solved"] + sizes["curriculum/failed"] >= 1  # the run retired prompts
    final = json.loads((full_dir / "checkpoints" / f"step-{STEPS:06d}" / "state.json").read_text())
    assert final["curriculum"] == cur.state_dict()

    # kill -9 after the first checkpoint, resume: the same metrics and the same curriculum state
    killed_at = _kill_after_first_checkpoint(rlvr_cmd("train", str(cut_cfg)), cut_dir, STEPS)
    run(rlvr_cmd("train", str(cut_cfg), "--resume"))
    cut = _by_step(cut_dir / "metrics.jsonl")
    for step in range(killed_at + 1, STEPS + 1):
        for key, value in metrics[step].items():
            assert cut[step][key] == pytest.approx(value, rel=1e-5, abs=1e-7), (step, key)
    resumed = json.loads((cut_dir / "checkpoints" / f"step-{STEPS:06d}" / "state.json").read_text())
    assert resumed["curriculum"] == final["curriculum"]


def test_two_processes_share_one_curriculum(tmp_path):
    """2 gloo processes: each applies both ranks' results, so they draw one split order; the saved
    state equals a replay of the gathered rollouts (rank 0's groups, then rank 1's, per step)."""
    import sys

    from .conftest import REPO

    run_dir = tmp_path / "run"
    cfg = _config(run_dir)
    cfg.update(steps=3, preset="grpo")
    cfg["checkpoint"] = {"every": 0, "keep_last": 1}
    accelerate = sys.executable.rsplit("/", 1)[0] + "/accelerate"
    run([accelerate, "launch", "--config_file", str(REPO / "rlvr/configs/accelerate/ddp.yaml"), "--num_processes", "2",
         "-m", "rlvr", "train", str(write_config(tmp_path / "run.yaml", cfg))], timeout=600)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert len(summary["weight_fingerprints"]) == 2 and summary["weight_fingerprints"][0] == summary["weight_fingerprints"][1]
    questions = [s.prompt for s in get_task("arithmetic", level=1, n=N, n_test=4).samples("train")]
    rows = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    cur = Curriculum(N, seed=0, k=1)
    for step in range(1, 4):
        mine = [r for r in rows if r["step"] == step]
        groups = [mine[i:i + G] for i in range(0, len(mine), G)]
        drawn = [next(i for i, q in enumerate(questions) if f"User: {q}\n" in g[0]["prompt"]) for g in groups]
        order = cur.next(PER_ROUND)
        assert drawn == order[0::2] + order[1::2], step  # rank 0's share, then rank 1's
        for i, g in zip(drawn, groups):
            cur.update([(i, r["passed"]) for r in g])
    state = json.loads((run_dir / "checkpoints" / "step-000003" / "state.json").read_text())
    assert state["curriculum"] == cur.state_dict()
