"""Fixtures for the trainer tests: one small random model per session and a config writer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init 2-layer Qwen2 (hidden 32) with a trained tokenizer, built once per session."""
    from rlvr.tiny import build_tiny_model

    out = tmp_path_factory.mktemp("tiny-model")
    return build_tiny_model(out, seed=0, hidden_size=32, num_hidden_layers=2, intermediate_size=64,
                            num_attention_heads=2, num_key_value_heads=1)


def small_config(run_dir: Path, model: Path | str, **sections: dict) -> dict:
    """A fast TrainConfig as a dict: 4 prompts x 4 samples, 8 new tokens, in-process scoring.

    The reward is `length` (characters / 32), which a random model's samples always vary on, so
    every step has a non-zero gradient; math is logged with weight 0.
    """
    cfg = {
        "seed": 0,
        "steps": 6,
        "model": {"path": str(model)},
        "task": {"name": "arithmetic", "options": {"level": 1, "n": 64, "n_test": 8},
                 "verifiers": {"length": 1.0, "math": 0.0},
                 "verifier_options": {"length": {"max_chars": 32}}, "eval_limit": 4},
        "rollout": {"prompts_per_step": 4, "group_size": 4, "max_new_tokens": 8, "chunks": 2},
        "optim": {"lr": 3.0e-3, "micro_batch_size": 8},
        "scoring": {"workers": 0},
        "logging": {"run_dir": str(run_dir), "eval_every": 3, "tensorboard": False, "progress": "none"},
        "checkpoint": {"every": 2, "keep_last": 0},
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    return cfg


def write_config(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def rlvr_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "rlvr", *args]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.setdefault("OMP_NUM_THREADS", "1")
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return proc
