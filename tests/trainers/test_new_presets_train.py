"""`rlvr train` on the tiny model with the issue-12 presets (CISPO, SAPO, GMPO, DPPO) and entropy controls.

Two steps each: the run completes, logs the objective's own metrics, and writes the objective it ran.
The adaptive entropy coefficient is kept in the checkpointed trainer state: a resumed run goes on
from the saved coefficient, not from the configured starting value.
"""

from __future__ import annotations

import pytest

from rlvr.metrics import read_jsonl_metrics

from .conftest import rlvr_cmd, run, small_config, write_config

pytestmark = pytest.mark.slow

NEW_METRIC = {"cispo": "is_clip_frac", "sapo": "gate_mean", "gmpo": "seq_ratio_mean", "dppo": "mask_frac"}


@pytest.mark.parametrize("preset", list(NEW_METRIC))
def test_two_steps_of_each_new_preset_run_and_log_their_metrics(tmp_path, tiny_model_dir, preset):
    run_dir = tmp_path / "run"
    cfg = small_config(run_dir, tiny_model_dir, steps=2, preset=preset, logging={"eval_every": 0},
                       checkpoint={"every": 0})
    run(rlvr_cmd("train", str(write_config(tmp_path / "run.yaml", cfg))))
    rows = [r for r in read_jsonl_metrics(run_dir / "metrics.jsonl") if r["step"] > 0 and "loss/policy" in r]
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert NEW_METRIC[preset] in r and "approx_kl" in r and r["loss/policy"] == r["loss/policy"]  # not NaN
    assert (run_dir / "objective.txt").read_text().startswith(f"preset {preset}:")


def test_adaptive_entropy_coefficient_rises_under_collapse_and_resumes_from_its_state(tmp_path, tiny_model_dir):
    # target 100 nats: every step's entropy is below it (a collapsed run, as far as the controller can
    # tell), so the coefficient rises 0 -> 0.001 -> 0.002 -> 0.003; kl_cov runs as the policy loss.
    run_dir = tmp_path / "run"
    algo = {"loss": "kl_cov", "cov_top_frac": 0.1, "entropy_target": 100.0, "entropy_coef_delta": 0.001,
            "entropy_coef_max": 0.01}
    cfg = small_config(run_dir, tiny_model_dir, steps=2, preset="dapo", algo=algo, logging={"eval_every": 0},
                       checkpoint={"every": 2, "keep_last": 0})
    path = write_config(tmp_path / "run.yaml", cfg)
    run(rlvr_cmd("train", str(path)))
    run(rlvr_cmd("train", str(path), "steps=3", "--resume"))
    rows = {int(r["step"]): r for r in read_jsonl_metrics(run_dir / "metrics.jsonl") if "entropy_coef" in r}
    assert [rows[s]["entropy_coef"] for s in (1, 2, 3)] == pytest.approx([0.0, 0.001, 0.002])
    assert all("cov_selected_frac" in rows[s] for s in (1, 2, 3))
    assert "α_k+1 = clip(α_k ± 0.001, 0, 0.01)" in (run_dir / "objective.txt").read_text()


def test_clip_cov_runs_in_the_trainer_and_logs_its_token_fractions(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    cfg = small_config(run_dir, tiny_model_dir, steps=2, preset="dapo", algo={"loss": "clip_cov", "cov_lb": 0.0},
                       logging={"eval_every": 0}, checkpoint={"every": 0})
    run(rlvr_cmd("train", str(write_config(tmp_path / "run.yaml", cfg))))
    rows = [r for r in read_jsonl_metrics(run_dir / "metrics.jsonl") if "cov_band_frac" in r]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(0 < r["cov_band_frac"] < 1 and r["cov_clipped_frac"] > 0 for r in rows)  # tokens were cut
