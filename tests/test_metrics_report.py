"""Run logs (JSONL + TensorBoard), truncation on resume, and the PNG report."""

from __future__ import annotations

import json

from rlvr.metrics import RunLogger, read_jsonl_metrics
from rlvr.report import write_report


def test_logger_writes_jsonl_and_tensorboard(tmp_path):
    with RunLogger(tmp_path) as log:
        for step in range(1, 4):
            log.metrics(step, {"reward/mean": 0.1 * step, "accuracy": 0.05 * step, "kl": float("nan")})
        log.rollouts(3, [{"prompt": "p", "completion": "c", "reward": 1.0}])
    rows = read_jsonl_metrics(tmp_path / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1, 2, 3] and rows[2]["reward/mean"] == 0.30000000000000004
    assert rows[0]["kl"] is None  # NaN is logged as null, not as invalid JSON
    assert json.loads((tmp_path / "rollouts.jsonl").read_text())["completion"] == "c"
    assert any(p.name.startswith("events.out.tfevents") for p in (tmp_path / "tb").iterdir())


def test_truncate_after_drops_later_steps_and_torn_lines(tmp_path):
    with RunLogger(tmp_path, tensorboard=False) as log:
        for step in range(1, 6):
            log.metrics(step, {"accuracy": step})
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 6, "accur')  # torn by kill -9
    with RunLogger(tmp_path, tensorboard=False) as log:
        log.truncate_after(3)
        log.metrics(4, {"accuracy": 40})
    assert [(r["step"], r["accuracy"]) for r in read_jsonl_metrics(tmp_path / "metrics.jsonl")] == [(1, 1), (2, 2), (3, 3), (4, 40)]


def test_report_writes_pngs_and_derives_alarms(tmp_path):
    with RunLogger(tmp_path, tensorboard=False) as log:
        for step in range(1, 9):
            log.metrics(step, {"reward/mean": 0.0, "reward/format": 0.0, "accuracy": 0.0, "groups/zero_var_frac": 1.0,
                               "entropy": 1.0, "length/mean": 12.0, "kl": 0.0})
    report = write_report(tmp_path)
    names = {p.name for p in report.parent.iterdir()}
    assert {"overview.png", "reward.png", "accuracy.png", "report.md"} <= names
    assert "zero_var.png" not in names and "groups/zero_var_frac = 1" in report.read_text()  # flat: a number
    assert (report.parent / "overview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = report.read_text()
    assert "**no_signal**" in text and "every completion fails" in text


def test_report_plots_lr_and_grad_norm_and_drops_flat_panels(tmp_path):
    """Walk-through item 14: lr and grad-norm panels; a clip_frac or verifier-error panel that is flat
    at 0 is listed as constant instead of drawn."""
    with RunLogger(tmp_path, tensorboard=False) as log:
        for step in range(1, 6):
            log.metrics(step, {"reward/mean": 0.1 * step, "accuracy": 0.1 * step, "lr": 1e-4 * min(1.0, step / 3),
                               "grad_norm": 2.0 / step, "clip_frac": 0.0, "verifier/error_rate": 0.0,
                               "verifier/timeout_rate": 0.0})
    report = write_report(tmp_path)
    names = {p.name for p in report.parent.iterdir()}
    assert {"lr.png", "grad_norm.png", "reward.png", "accuracy.png"} <= names
    assert "clip_frac.png" not in names and "verifier.png" not in names
    text = report.read_text()
    assert "clip_frac = 0" in text and "verifier/error_rate = 0" in text and "![Learning rate](lr.png)" in text
