"""LoRA through peft: `rlvr train model.lora.enabled=true` trains adapters only, checkpoints them,
and resumes from them."""

from __future__ import annotations

import json

from rlvr.metrics import read_jsonl_metrics

from .conftest import rlvr_cmd, run, small_config, write_config


def test_lora_trains_adapters_and_resumes(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    cfg = small_config(run_dir, tiny_model_dir, steps=2, checkpoint={"every": 2})
    cfg["model"]["lora"] = {"enabled": True, "r": 4, "alpha": 8}
    path = write_config(tmp_path / "run.yaml", cfg)
    run(rlvr_cmd("train", str(path)))
    ckpt = run_dir / "checkpoints" / "step-000002" / "model"
    saved = {p.name for p in ckpt.iterdir()}
    assert "adapter_config.json" in saved and "adapter_model.safetensors" in saved, saved
    assert json.loads((ckpt / "adapter_config.json").read_text())["r"] == 4
    run(rlvr_cmd("train", str(path), "steps=4", "--resume"))
    steps = [r["step"] for r in read_jsonl_metrics(run_dir / "metrics.jsonl") if "reward/mean" in r]
    assert steps == [1, 2, 3, 4]
