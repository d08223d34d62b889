"""Async off-policy training against a real ``rlvr serve`` process (engines on another host).

``rlvr serve`` runs the tiny model on 127.0.0.1 (a free port) in its own process, as a user would
start it on the generation host; ``rlvr train rollout.backend=vllm_server rollout.max_staleness=1``
trains against it:

- every batch's staleness is at most 1, every policy version that generated a batch was pushed to
  the server and checked with the probe (within the engine dtype's tolerance), held-out evaluation
  ran, and after the run the server holds exactly the trainer's final weights (probe check);
- killing the server process mid-run ends the run with an error naming the server's URL, long
  before ``rollout.async_wait_s``: never a silent stall.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from rlvr.samplers import VLLMServerSampler
from rlvr.samplers.sync import default_tolerance

from .conftest import env, rlvr_cmd, run, small_config, write_config
from .test_async import _metrics, vllm_model_dir  # noqa: F401 - the module-scoped tiny vLLM model

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@contextlib.contextmanager
def rlvr_serve(model: Path, log_dir: Path, startup_s: float = 300) -> Iterator[tuple[subprocess.Popen, str]]:
    """``python -m rlvr.commands.serve`` on 127.0.0.1 and a free port: (process, URL) once it serves.

    Its output goes to files (a pipe nobody drains would stall the server once full); on exit the
    server and its vLLM engine process are stopped, killed if they linger."""
    out, err = log_dir / "serve.out", log_dir / "serve.err"
    with out.open("w") as o, err.open("w") as e:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rlvr.commands.serve", "--model", str(model), "--host", "127.0.0.1",
             "--port", "0", "--dtype", "float32", "--kv-cache-gib", "0.25", "--max-model-len", "256"],
            env={**env(), "PYTHONUNBUFFERED": "1"}, stdout=o, stderr=e)
    children: list[psutil.Process] = []
    try:
        url, deadline = None, time.monotonic() + startup_s
        while url is None and time.monotonic() < deadline:
            assert proc.poll() is None, f"rlvr serve exited with {proc.returncode}:\n{err.read_text()[-3000:]}"
            for line in out.read_text().splitlines():  # printed once the engine is up
                if line.startswith("rlvr serve:"):
                    url = line.split(" on ")[1].split()[0]
            time.sleep(0.2)
        assert url is not None, f"rlvr serve printed no address within {startup_s} s:\n{err.read_text()[-3000:]}"
        assert url.startswith("http://127.0.0.1:")
        children = psutil.Process(proc.pid).children(recursive=True)  # vLLM's engine process
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for child in children:  # orphaned when the test killed the server with SIGKILL
            with contextlib.suppress(psutil.Error):
                child.kill()


def _config(tmp_path: Path, name: str, model: Path, url: str, steps: int, eval_every: int = 3,
            **rollout) -> tuple[Path, Path]:
    run_dir = tmp_path / name
    cfg = small_config(run_dir, model, steps=steps,
                       rollout={"backend": "vllm_server", "server_url": url, "max_staleness": 1, **rollout},
                       algo={"correction": "token_tis"}, logging={"eval_every": eval_every})
    return write_config(tmp_path / f"{name}.yaml", cfg), run_dir


def test_k1_against_an_rlvr_serve_process(tmp_path, vllm_model_dir):  # noqa: F811
    steps = 5
    with rlvr_serve(vllm_model_dir, tmp_path) as (server, url):
        cfg, run_dir = _config(tmp_path, "served", vllm_model_dir, url, steps)
        run(rlvr_cmd("train", str(cfg)), timeout=600)
        m = _metrics(run_dir)
        assert sorted(m) == list(range(steps + 1))
        tol = default_tolerance("float32")
        versions = set()
        for s in range(1, steps + 1):
            assert m[s]["async/staleness"] <= 1 and m[s]["async/policy_version"] >= s - 2, (s, m[s])
            assert m[s]["async/staleness"] == s - 1 - m[s]["async/policy_version"]
            versions.add(int(m[s]["async/policy_version"]))
            if m[s]["async/policy_version"] > 0:  # a pushed version: the push before it was probe-checked
                assert 0 <= m[s]["async/probe_max_diff"] < tol.atol, (s, m[s])  # float32: ~1e-5
        assert m[1]["async/policy_version"] == 0 and m[steps]["async/policy_version"] >= steps - 2
        last = m[steps]
        assert last["async/dropped_stale"] == 0.0
        assert sum(v for k, v in last.items() if k.startswith("async/staleness_hist/")) == steps
        assert last["async/pushes"] >= len(versions - {0}) >= steps - 2  # every version that generated was pushed
        for s in (0, 3, steps):  # held-out evaluation ran (eval_every 3, and the last step)
            assert 0.0 <= m[s]["eval/accuracy"] <= 1.0, (s, m[s])
        rows = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
        assert len(rows) == steps * 4 * 4 and all(r["policy_version"] >= r_step - 2
                                                 for r_step, r in ((i // 16 + 1, r) for i, r in enumerate(rows)))
        # The final evaluation pushed the last step's weights: the server now holds the trained model.
        from transformers import AutoModelForCausalLM

        final = AutoModelForCausalLM.from_pretrained(run_dir / "final", dtype="float32")
        client = VLLMServerSampler(url, sync_timeout_s=120)
        report = client.check_weights(final)
        assert report.ok, report
        assert server.poll() is None


def test_killing_the_server_mid_run_is_an_error_naming_it(tmp_path, vllm_model_dir):  # noqa: F811
    with rlvr_serve(vllm_model_dir, tmp_path) as (server, url):
        # No evaluation: the producer thread alone talks to the server, so its failure must surface.
        cfg, run_dir = _config(tmp_path, "dies", vllm_model_dir, url, 200, eval_every=0, async_wait_s=120)
        log = tmp_path / "stderr.txt"
        with log.open("w") as err:
            proc = subprocess.Popen(rlvr_cmd("train", str(cfg)), env=env(), stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.monotonic() + 300
            metrics = run_dir / "metrics.jsonl"
            while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2) and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()[-3000:]
                time.sleep(0.2)
            assert proc.poll() is None, log.read_text()[-3000:]
            os.kill(server.pid, signal.SIGKILL)
            server.wait()
            killed = time.monotonic()
            try:
                proc.wait(timeout=60)  # well inside async_wait_s = 120: the error, not the deadline
            except subprocess.TimeoutExpired:
                pytest.fail(f"the run was still going 60 s after its server died:\n{log.read_text()[-3000:]}")
            waited = time.monotonic() - killed
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        text = log.read_text()
        assert proc.returncode not in (0, None)
        error = text.strip().splitlines()[-1]  # the exception the run ended with names the server it lost
        assert error.startswith("rlvr.samplers.base.SamplerError") and url in error, text[-3000:]
        assert "within 120 s" not in text and waited < 60, text[-3000:]  # not the async_wait_s timeout
