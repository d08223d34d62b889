"""The python tool on both sandboxes: output with the exit status, and the bad input of issue 13
item 7 (a hang hits its deadline, 100 MB of output is cut, a container killed mid-call is replaced),
each counted by the runner. Docker tests are marked (a failure under CI=true without an engine)."""

from __future__ import annotations

import threading
import time

import pytest

from rlvr.tools.base import ToolCall
from rlvr.tools.builtin import PythonTool
from rlvr.tools.runner import ToolRunner

KINDS = ["local", pytest.param("docker", marks=pytest.mark.docker)]


@pytest.fixture(params=KINDS)
def box(request):
    return request.getfixturevalue("local_box" if request.param == "local" else "docker_pool")


def py(code: str) -> ToolCall:
    return ToolCall("python", {"code": code})


def test_output_and_exit_status(box):
    with ToolRunner(["python"], sandbox=box, timeout_s=10) as r:
        ok, fail, err, bad = r.run([
            py("print(123456789 * 987654321)"),
            py("import sys\nprint('partial')\nsys.exit(3)"),
            py("def f():\n    return 1 / 0\nf()"),
            ToolCall("python", {"source": "print(1)"}),
        ])
    assert (ok.status, ok.output) == ("ok", "121932631112635269\n")
    assert fail.status == "error" and fail.output == "partial\n[exit status 3]\n"
    assert err.status == "error" and "ZeroDivisionError: division by zero\n[exit status 1]\n" in err.output
    assert bad.status == "error" and "unexpected argument 'source'" in bad.output
    assert (r.calls, r.errors) == (4, 3)


def test_hang_hits_the_deadline_and_the_flood_is_cut(box):
    flood = "import sys\nblock = 'x' * (1 << 20)\nfor _ in range(100):\n    sys.stdout.write(block)\nprint('END')"
    with ToolRunner(["python"], sandbox=box, timeout_s=30, max_output_chars=1000) as r:
        hang = r.submit(py("import time\nprint('started', flush=True)\nwhile True:\n    time.sleep(1)"), timeout_s=2)
        hang, big = hang.result(60), r.submit(py(flood)).result(60)
        after = r.submit(py("print('still serving')")).result(60)
    assert hang.status == "timeout" and hang.output == "started\n[timed out after 2 s]\n"
    assert big.status == "ok" and big.truncated and len(big.output) <= 1100
    assert big.output.startswith("xxxx") and "characters cut" in big.output
    assert after.output == "still serving\n"
    assert (r.timeouts, r.truncated, r.calls) == (1, 1, 3)


@pytest.mark.docker
def test_container_killed_during_a_call_is_replaced(docker_pool):
    """The container running a call dies (killed from outside; a program cannot kill its own worker,
    see tests/sandboxes/test_docker_attacks.py): the pool replaces it, the call runs once more in a
    fresh container, and the result and the runner say so."""
    import docker

    client = docker.from_env()
    before = set(docker_pool.container_ids())
    killed = []

    def kill_the_busy_one():
        end = time.monotonic() + 30
        while time.monotonic() < end:
            idle = {s.container_id for s in list(docker_pool.idle)}
            running = [c for c in before if c not in idle]  # the one that took our call
            if running:
                client.api.kill(running[0])
                killed.append(running[0])
                return
            time.sleep(0.02)

    with ToolRunner(["python"], sandbox=docker_pool, timeout_s=10) as r:
        fut = r.submit(py("import time\ntime.sleep(1.5)\nprint('done')"))
        killer = threading.Thread(target=kill_the_busy_one)
        killer.start()
        res = fut.result(60)
        killer.join()
        again = r.submit(py("print('next')")).result(60)
    assert killed, "the call was never seen running"
    assert res.status == "ok" and res.output == "done\n" and res.replaced and "lost" in res.info
    assert again.output == "next\n"
    assert r.replaced == 1 and r.errors == 0
    assert res.info["container"] != killed[0][:12]  # the answer came from the fresh container


def test_python_tool_refuses_a_non_sandbox():
    from rlvr.tools.builtin import ToolSpecError

    with pytest.raises(ToolSpecError, match="Sandbox protocol"):
        PythonTool(sandbox=object())


def test_local_sandbox_is_loud(caplog):
    import warnings

    tool = PythonTool(sandbox="local")
    with warnings.catch_warnings():  # the shared LocalSandbox warns once per process, when it starts
        warnings.simplefilter("ignore")
        with caplog.at_level("WARNING", logger="rlvr.tools"):
            res = tool({"code": "print('here')"}, timeout_s=30)
    assert res.output == "here\n"
    assert any("not the Docker pool" in r.getMessage() for r in caplog.records)
