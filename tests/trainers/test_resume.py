"""`rlvr train --resume` after `kill -9`: the resumed run's metrics equal an uninterrupted run's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from rlvr.metrics import read_jsonl_metrics

from .conftest import env, rlvr_cmd, run, small_config, write_config

pytestmark = pytest.mark.slow


def _by_step(path) -> dict[int, dict]:
    """step -> every metric logged at that step (rows of one step merged; timings left out)."""
    out: dict[int, dict] = {}
    for r in read_jsonl_metrics(path):
        out.setdefault(int(r["step"]), {}).update({k: v for k, v in r.items() if not k.startswith("time/")})
    return out


def _kill_after_first_checkpoint(cmd: list[str], run_dir, steps: int) -> int:
    """Start `cmd`, SIGKILL it once its first checkpoint is complete; the step it was killed after."""
    proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    latest = run_dir / "checkpoints" / "latest"
    deadline = time.monotonic() + 240
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, f"the run ended before it could be killed:\n{proc.stderr.read()[-3000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "summary.json").exists()  # it really died before finishing
    killed_at = int(latest.read_text().strip().split("-")[1])
    assert killed_at < steps
    return killed_at


def test_kill_9_then_resume_matches_uninterrupted_run(tmp_path, tiny_model_dir):
    steps = 16
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    full_cfg = write_config(tmp_path / "full.yaml", small_config(full_dir, tiny_model_dir, steps=steps))
    cut_cfg = write_config(tmp_path / "cut.yaml", small_config(cut_dir, tiny_model_dir, steps=steps))

    # The interrupted run: SIGKILL as soon as its first checkpoint is complete (mid-way through a step).
    killed_at = _kill_after_first_checkpoint(rlvr_cmd("train", str(cut_cfg)), cut_dir, steps)

    run(rlvr_cmd("train", str(cut_cfg), "--resume"))
    run(rlvr_cmd("train", str(full_cfg)))

    full, cut = _by_step(full_dir / "metrics.jsonl"), _by_step(cut_dir / "metrics.jsonl")
    assert sorted(full) == sorted(cut) == list(range(0, steps + 1))  # step 0 is the first evaluation
    for step in range(killed_at + 1, steps + 1):
        assert cut[step].keys() == full[step].keys(), step
        for key, value in full[step].items():
            assert cut[step][key] == pytest.approx(value, rel=1e-5, abs=1e-7), (step, key)
    # the resumed run learnt something (the comparison is not between two frozen models)
    assert full[steps]["reward/mean"] != full[1]["reward/mean"]
    # rollouts were truncated at the checkpoint too: each step's rollouts appear exactly once
    rows = [json.loads(line) for line in (cut_dir / "rollouts.jsonl").read_text().splitlines()]
    assert len(rows) == steps * 4 * 4
    assert json.loads((cut_dir / "summary.json").read_text())["weight_fingerprints"] == \
        json.loads((full_dir / "summary.json").read_text())["weight_fingerprints"]


@pytest.mark.parametrize("command", ["sft", "rm", "dpo"])
def test_sft_rm_dpo_resume_after_kill_9_matches_uninterrupted_run(tmp_path, tiny_model_dir, command):
    from tests.trainers.test_reward import verifier_pairs, write_rows
    from tests.trainers.test_sft import _arith_rows

    data = _arith_rows(tmp_path / "sft.jsonl", 64) if command == "sft" else \
        write_rows(tmp_path / "pairs.jsonl", verifier_pairs("train", 24, 0))
    # 40 steps, a checkpoint every 5: the kill lands at step 5 with 35 steps (>= 1 s) to spare, the
    # cosine schedule is mid-way, and held-out evaluations at 15, 30 and 40 fall after the resume.
    steps = 40

    def args(run_dir):
        return rlvr_cmd(command, f"model.path={tiny_model_dir}", f"data.train={data}", f"steps={steps}", "batch_size=8",
                        "optim.lr=1e-3", "optim.micro_batch_size=4", "optim.schedule=cosine", "optim.warmup_steps=5",
                        "checkpoint.every=5", "checkpoint.keep_last=2", "logging.eval_every=15",
                        "logging.tensorboard=false", "logging.progress=none", f"logging.run_dir={run_dir}")

    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    killed_at = _kill_after_first_checkpoint(args(cut_dir), cut_dir, steps)
    run(args(cut_dir) + ["--resume"])
    run(args(full_dir))
    full, cut = _by_step(full_dir / "metrics.jsonl"), _by_step(cut_dir / "metrics.jsonl")
    assert sorted(full) == sorted(cut) and max(full) == steps
    for step in range(killed_at + 1, steps + 1):
        for key, value in full[step].items():
            assert cut[step][key] == pytest.approx(value, rel=1e-5, abs=1e-7), (step, key)
    assert full[steps]["loss"] != full[1]["loss"]  # it trained
    s_full, s_cut = (json.loads((d / "summary.json").read_text()) for d in (full_dir, cut_dir))
    one = lambda v: v[0] if isinstance(v, list) else v  # noqa: E731 - rm lists its ensemble members
    assert one(s_cut["after"]) == pytest.approx(one(s_full["after"]), rel=1e-5)
    assert one(s_cut["before"]) == one(s_full["before"])  # the resumed run still reports before -> after
