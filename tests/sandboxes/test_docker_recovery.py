"""DockerSandbox recovers lost containers and removes exactly its own containers on exit.

Needs Docker and the image (skips locally, fails under CI=true).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.docker


def _exists(client, cid: str) -> bool:
    import docker

    try:
        client.api.inspect_container(cid)
        return True
    except docker.errors.NotFound:
        return False


def _wait(pred, limit_s: float = 60.0) -> bool:
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_lost_container_is_recovered(docker_ready):
    import docker

    from rlvr.sandboxes.docker import DockerSandbox

    client = docker.from_env()
    with DockerSandbox(size=2, recycle_after=0) as sb:
        victim = sb.container_ids()[0]
        client.api.kill(victim)
        results = [sb.run(f"print({i})", timeout_s=5) for i in range(20)]
        assert [r.stdout for r in results] == [f"{i}\n" for i in range(20)]
        assert _wait(lambda: len(sb.idle) == 2 and victim not in sb.container_ids())
        assert sb.stats["replaced"] >= 1 and victim not in {s.container_id for s in sb.idle}


def test_recycled_after_n_jobs(docker_ready):
    from rlvr.sandboxes.docker import DockerSandbox

    with DockerSandbox(size=1, recycle_after=3) as sb:
        seen = [sb.run("print(1)", timeout_s=5).info["container"] for _ in range(4)]
        assert seen[0] == seen[1] == seen[2] != seen[3]


def test_close_removes_only_own_containers(docker_ready):
    import docker

    from rlvr.sandboxes.docker import DockerSandbox

    client = docker.from_env()
    other = DockerSandbox(size=1)
    try:
        with DockerSandbox(size=2) as sb:
            ids = sb.container_ids()
            assert all(_exists(client, c) for c in ids)
        assert not any(_exists(client, c) for c in ids)
        assert other.run("print('still here')", timeout_s=5).stdout == "still here\n"
    finally:
        other.close()


def test_ctrl_c_removes_containers(docker_ready):
    import docker

    client = docker.from_env()
    script = (
        "import time\nfrom rlvr.sandboxes.docker import DockerSandbox\n"
        "with DockerSandbox(size=2) as sb:\n    print(*sb.container_ids(), flush=True)\n"
        "    print(sb.run('while True: pass', timeout_s=60), flush=True)\n"  # only if the job ended first
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        # A background job (CI started with `&`) inherits SIGINT ignored, and Python then installs no
        # KeyboardInterrupt handler: give the child the default disposition a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    ids = proc.stdout.readline().split()
    assert len(ids) == 2
    time.sleep(0.3)  # let it enter run()
    assert proc.poll() is None, f"the job ended before Ctrl-C: {proc.stdout.read()}"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) != 0, f"Ctrl-C did not stop the run: {proc.stdout.read()}"
    assert _wait(lambda: not any(_exists(client, c) for c in ids), 30)
