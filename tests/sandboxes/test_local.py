"""LocalSandbox: one property per test, in every isolation mode that works on this machine.

Modes that do not work here (no bubblewrap, not root for unshare) are skipped with the reason.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings

import pytest

from rlvr.sandboxes.base import Job, Sandbox
from rlvr.sandboxes.local import MODES, LocalSandbox, available_modes

AVAILABLE = available_modes()


@pytest.fixture(scope="module", params=MODES)
def sb(request):
    why = AVAILABLE[request.param]
    if why is not None:
        pytest.skip(f"mode {request.param} unavailable here: {why}")
    with LocalSandbox(size=2, mode=request.param, warn=False) as box:
        yield box


def test_implements_the_protocol(sb):
    assert isinstance(sb, Sandbox)


def test_happy_path_stdin_stdout_files(sb):
    r = sb.run(
        "import sys\nprint(input()[::-1], open('d/in.txt').read())\nsys.stderr.write('e')",
        stdin="abc",
        files={"d/in.txt": "hello"},
        timeout_s=10,
    )
    assert (r.exit_code, r.stdout, r.stderr, r.timed_out) == (0, "cba hello\n", "e", False)


def test_exception_captured(sb):
    r = sb.run("1 / 0", timeout_s=10)
    assert r.exit_code == 1 and "ZeroDivisionError" in r.stderr and not r.ok


def test_infinite_loop_killed_and_slot_reusable(sb):
    r = sb.run("while True:\n    pass", timeout_s=1)
    assert r.timed_out and r.exit_code is None
    assert sb.run("print('next')", timeout_s=10).stdout == "next\n"


def test_output_capped_while_drained(sb):
    r = sb.run("import sys\nsys.stdout.write('x' * 3_000_000)", timeout_s=20)
    assert r.exit_code == 0 and r.truncated
    assert (len(r.stdout), r.stdout_bytes) == (64 * 1024, 3_000_000)


def test_memory_cap(sb):
    r = sb.run("x = bytearray(1 << 30)", timeout_s=10, memory_mb=256)
    assert r.memory_exceeded and r.exit_code != 0


def test_file_size_limit(sb):
    r = sb.run("open('big', 'wb').write(b'0' * (100 << 20))", timeout_s=20)
    assert r.exit_code != 0


def test_scratch_dirs_removed_after_each_job(sb):
    sb.run("open('left_behind', 'w').write('x')", timeout_s=10)
    assert os.listdir(sb._root) == []


def test_run_many_keeps_order(sb):
    out = sb.run_many([Job(code=f"print({i} * {i})", timeout_s=10) for i in range(6)])
    assert [r.stdout for r in out] == [f"{i * i}\n" for i in range(6)]


def test_no_network_with_namespaces(sb):
    if sb.mode == "rlimit":
        pytest.skip("rlimit mode does not isolate the network (documented)")
    r = sb.run(
        "import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('10.0.0.1', 9))", timeout_s=10
    )
    assert "Network is unreachable" in r.stderr


def test_host_tmp_not_visible_under_bwrap(sb):
    if sb.mode != "bwrap":
        pytest.skip("only bwrap hides the host filesystem (documented)")
    d = tempfile.mkdtemp(prefix="rlvr-test-visible-")
    try:
        with open(os.path.join(d, "secret"), "w") as f:
            f.write("s")
        os.chmod(d, 0o755)
        r = sb.run(f"import os\nprint(os.path.exists({d!r}), sorted(os.listdir('/')))", timeout_s=10)
        assert r.stdout.startswith("False")
    finally:
        os.remove(os.path.join(d, "secret"))
        os.rmdir(d)


def test_cannot_write_outside_scratch_under_bwrap(sb):
    if sb.mode != "bwrap":
        pytest.skip("only bwrap makes the host filesystem read-only (documented)")
    r = sb.run("open('/usr/rlvr_probe', 'w')", timeout_s=10)
    assert r.exit_code != 0 and ("Read-only" in r.stderr or "Permission" in r.stderr)


def test_private_uid_cannot_read_root_only_files(sb):
    if not sb.private_uids:
        pytest.skip("not root: jobs run as our own user (documented)")
    d = tempfile.mkdtemp(prefix="rlvr-test-private-")  # mode 0700, owned by root
    try:
        os.chmod(d, 0o755)
        path = os.path.join(d, "secret")
        with open(path, "w") as f:
            f.write("s")
        os.chmod(path, 0o600)
        r = sb.run(f"print(open({path!r}).read())", timeout_s=10)
        assert r.exit_code != 0 and "s\n" != r.stdout
    finally:
        os.remove(os.path.join(d, "secret"))
        os.rmdir(d)


def test_setsid_daemon_does_not_survive_the_job(sb):
    if sb.mode == "rlimit" and not sb.private_uids:
        pytest.skip("rlimit mode without a private uid cannot reach setsid escapees (documented)")
    code = (
        "import os, sys, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n    os.setsid()\n    open('pid', 'w').write(str(os.getpid()))\n"
        "    time.sleep(60)\n    os._exit(0)\n"
        "time.sleep(0.5)\nprint(open('pid').read())\n"
    )
    r = sb.run(code, timeout_s=10)
    daemon = int(r.stdout)
    if sb.mode == "rlimit":  # host pids: the daemon is gone (or a zombie, or inside its exit)
        assert _dead_soon(daemon)
    assert sb.run("print('ok')", timeout_s=10).stdout == "ok\n"


def _dead_soon(pid: int) -> bool:
    for _ in range(200):  # SIGKILL was sent; the exit itself may take a moment
        try:
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.01)
    return False


def test_fork_bomb_contained(sb):
    if not sb.private_uids:
        pytest.skip("the process limit is per uid: needs a private uid (root)")
    r = sb.run(
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", timeout_s=2
    )
    assert r.timed_out or r.exit_code is not None
    assert sb.run("print('alive')", timeout_s=10).stdout == "alive\n"


def test_warns_loudly_when_constructed():
    with pytest.warns(RuntimeWarning, match="does not isolate"):
        box = LocalSandbox(size=1, mode="rlimit")
    box.close()


def test_close_removes_only_its_root():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        box = LocalSandbox(size=1, mode="rlimit")
    sibling = tempfile.mkdtemp(prefix="rlvr-local-sibling-")  # looks like ours, is not
    try:
        box.run("print(1)", timeout_s=10)
        box.close()
        assert not os.path.exists(box._root)
        assert os.path.isdir(sibling)
    finally:
        os.rmdir(sibling)


def test_bad_file_name_rejected():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with LocalSandbox(size=1, mode="rlimit") as box, pytest.raises(ValueError, match="relative"):
            box.run("print(1)", files={"../escape": "x"}, timeout_s=5)


def test_unknown_mode_rejected():
    with pytest.raises(ValueError, match="mode"):
        LocalSandbox(mode="chroot")
