"""A 2-process CPU run through accelerate (gloo DDP) ends with identical weights on both ranks."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .conftest import REPO, run, small_config, write_config

# one xdist group: every accelerate launch here uses the default rendezvous port (29500)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ddp_port")]


def test_two_process_ddp_ends_with_identical_weights(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    cfg = write_config(tmp_path / "run.yaml", small_config(run_dir, tiny_model_dir, steps=3,
                                                           logging={"eval_every": 0}))
    accelerate = Path(sys.executable).with_name("accelerate")
    # The shipped DDP config falls back to gloo CPU processes on a machine without GPUs. (`--cpu`
    # alone would start ONE process: accelerate 1.x launches multi-CPU runs only through mpirun.)
    run([str(accelerate), "launch", "--config_file", str(REPO / "rlvr/configs/accelerate/ddp.yaml"),
         "--num_processes", "2", "-m", "rlvr", "train", str(cfg)], timeout=400)
    summary = json.loads((run_dir / "summary.json").read_text())
    prints = summary["weight_fingerprints"]
    assert len(prints) == 2 and prints[0] == prints[1]
    assert summary["last"]["grad_norm"] > 0  # the ranks did train (identical because gradients were averaged)
    rollouts = (run_dir / "rollouts.jsonl").read_text().splitlines()
    assert len(rollouts) == 3 * 4 * 4  # both ranks' rollouts, gathered


def test_two_process_ppo_shares_one_kl_controller(tmp_path, tiny_model_dir):
    """Each rank's adaptive KL controller sees the KL of all ranks' sequences and the global batch
    as its step count, so the coefficients stay equal (the logged value is the ranks' mean)."""
    from rlvr.losses import adaptive_kl_coef
    from rlvr.metrics import read_jsonl_metrics

    run_dir = tmp_path / "run"
    target, horizon = 0.5, 50
    cfg = write_config(tmp_path / "run.yaml", small_config(
        run_dir, tiny_model_dir, steps=4, preset="ppo", optim={"lr": 2.0e-2},
        algo={"kl_coef": 0.05, "kl_target": target, "kl_horizon": horizon},
        logging={"eval_every": 0}, checkpoint={"every": 0}))
    accelerate = Path(sys.executable).with_name("accelerate")
    run([str(accelerate), "launch", "--config_file", str(REPO / "rlvr/configs/accelerate/ddp.yaml"),
         "--num_processes", "2", "-m", "rlvr", "train", str(cfg)], timeout=400)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["weight_fingerprints"][0] == summary["weight_fingerprints"][1]
    rows = [r for r in read_jsonl_metrics(run_dir / "metrics.jsonl") if r["step"] > 0]
    n_global = 4 * 4  # prompts_per_step x group_size, over both ranks
    assert max(r["kl/sequence"] for r in rows) > 0
    for prev, cur in zip(rows, rows[1:]):
        assert cur["kl_coef"] == pytest.approx(
            adaptive_kl_coef(prev["kl_coef"], prev["kl/sequence"], target, n_global, horizon), rel=1e-5)
