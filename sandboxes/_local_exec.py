"""The process-level helpers of `rlvr.sandboxes.local.LocalSandbox`: argv, files, pipes, kills.

Which interpreter jobs run (`_default_python`, `_prefix_of`), the bubblewrap command line
(`_bwrap_argv`), writing a job's files inside its scratch dir (`_write_files`), a private uid per
job and killing everything it left (`_fresh_uid`, `_kill_uid`), and feeding stdin / capping and
draining stdout and stderr up to a deadline (`_communicate`). What each mode isolates, and what it
does not, is documented once, in `rlvr.sandboxes.local`.

What it does not do: pick a mode, hold slots or own directories (`LocalSandbox` does). Private:
import the public names from `rlvr.sandboxes.local`.

Try it::

    >>> import subprocess, time
    >>> from rlvr.sandboxes._local_exec import _communicate
    >>> p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    ...                      stderr=subprocess.PIPE, start_new_session=True)
    >>> _communicate(p, b"hi", time.monotonic() + 5, cap=1).stdout
    'h'
"""

from __future__ import annotations

import logging
import os
import random
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping

from rlvr.sandboxes.base import ExecResult

log = logging.getLogger("rlvr.sandboxes.local")  # one logger for everything LocalSandbox does


def _default_python() -> str:
    """An interpreter every uid can execute: ours if world-accessible, else /usr/bin/python3."""
    for cand in (getattr(sys, "_base_executable", None), sys.executable, "/usr/bin/python3"):
        if cand and os.path.exists(cand) and (os.geteuid() != 0 or _world_accessible(cand)):
            return os.path.realpath(cand)
    raise RuntimeError("LocalSandbox: no Python interpreter found; pass python=...")


def _world_accessible(path: str) -> bool:
    path = os.path.realpath(path)
    if not os.stat(path).st_mode & 0o001:
        return False
    d = os.path.dirname(path)
    while d and d != "/":
        if not os.stat(d).st_mode & 0o001:
            return False
        d = os.path.dirname(d)
    return True


def _prefix_of(python: str) -> str:
    out = subprocess.run(
        [python, "-I", "-c", "import sys;print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return out.stdout.strip() or "/usr"


def _bwrap_argv(prefix: str, work: str, code_path: str) -> list[str]:
    argv = ["bwrap", "--ro-bind", "/usr", "/usr"]
    for link in ("lib", "lib64", "bin", "sbin"):
        if os.path.islink("/" + link):
            argv += ["--symlink", os.readlink("/" + link), "/" + link]
        elif os.path.isdir("/" + link):
            argv += ["--ro-bind", "/" + link, "/" + link]
    if not prefix.startswith("/usr/"):
        argv += ["--ro-bind", prefix, prefix]
    argv += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--bind",
        work,
        "/sandbox",
        "--ro-bind",
        code_path,
        "/rlvr_job.py",
        "--chdir",
        "/sandbox",
        "--unshare-all",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "HOME",
        "/sandbox",
        "--",
    ]
    return argv


def _fresh_uid() -> int:
    """A random uid no account uses (above 2**20), so its processes are ours alone."""
    return random.SystemRandom().randrange(1 << 20, 1 << 31)


def _write_files(work: str, files: Mapping[str, str | bytes]) -> None:
    for name, content in files.items():
        rel = os.path.normpath(name)
        if os.path.isabs(name) or rel == ".." or rel.startswith("../"):
            raise ValueError(
                f"LocalSandbox: file name {name!r} must be relative and stay inside the scratch dir"
            )
        path = os.path.join(work, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of `uid` (ours alone: a private uid), setsid escapees included."""
    # kill(-1) from a process running as `uid` reaches exactly that uid's processes (in any pid
    # namespace below ours); it fails with ESRCH once none is left. Namespace teardown is
    # asynchronous, so repeat until then: the next job's process limit counts the dying ones too.
    for _ in range(200):
        r = subprocess.run(
            ["kill", "-9", "-1"],
            user=uid,
            group=uid,
            extra_groups=[],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        if r.returncode != 0:
            return
        time.sleep(0.005)
    log.warning("LocalSandbox: processes of uid %d still alive after 1 s of SIGKILL", uid)


def _communicate(proc: subprocess.Popen, data: bytes | None, deadline: float, cap: int) -> ExecResult:
    """Feed stdin, keep the first `cap` bytes of each stream, drain the rest, kill at `deadline`."""
    sel = selectors.DefaultSelector()
    bufs = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    counts = {proc.stdout: 0, proc.stderr: 0}
    for f in bufs:
        os.set_blocking(f.fileno(), False)
        sel.register(f, selectors.EVENT_READ)
    pending = memoryview(data or b"")
    if proc.stdin is not None:
        os.set_blocking(proc.stdin.fileno(), False)
        sel.register(proc.stdin, selectors.EVENT_WRITE)
    timed_out, exited_at = False, None
    while sel.get_map():
        now = time.monotonic()
        if exited_at is None and proc.poll() is not None:
            exited_at = now  # a leftover child may hold the pipes open: drain a little, then stop
        if (exited_at is not None and now - exited_at > 0.2) or (timed_out and now > deadline):
            break
        if now >= deadline and not timed_out:
            timed_out = True
            _killpg(proc.pid)
            deadline = now + 0.5  # grace to collect what is still in the pipes
            continue
        for key, _ in sel.select(min(deadline - now, 0.1)):
            f = key.fileobj
            if f is proc.stdin:
                try:
                    n = os.write(f.fileno(), pending[:65536])
                except (BrokenPipeError, BlockingIOError, OSError):
                    n = len(pending)
                pending = pending[n:]
                if not len(pending):
                    sel.unregister(f)
                    f.close()
                continue
            try:
                chunk = os.read(f.fileno(), 65536)
            except BlockingIOError:
                continue
            if not chunk:
                sel.unregister(f)
                continue
            counts[f] += len(chunk)
            if len(bufs[f]) < cap:
                bufs[f] += chunk[: cap - len(bufs[f])]
    sel.close()
    return _reap(proc, bufs, counts, cap, timed_out)


def _reap(proc: subprocess.Popen, bufs: dict, counts: dict, cap: int, timed_out: bool) -> ExecResult:
    """Kill what is left of the job's process group, close our pipe ends, wait, and report."""
    _killpg(proc.pid)
    for f in (proc.stdin, proc.stdout, proc.stderr):
        if f is not None and not f.closed:
            f.close()
    rc = proc.wait()
    out, err = bytes(bufs[proc.stdout]), bytes(bufs[proc.stderr])
    no, ne = counts[proc.stdout], counts[proc.stderr]
    return ExecResult(
        exit_code=rc if rc >= 0 else None,
        signal=-rc if rc < 0 else None,
        timed_out=timed_out,
        stdout=out.decode("utf-8", "replace"),
        stderr=err.decode("utf-8", "replace"),
        stdout_bytes=no,
        stderr_bytes=ne,
        truncated=no > cap or ne > cap,
        memory_exceeded=b"MemoryError" in err,
    )


def _rmtree(path: str) -> None:
    """Remove a tree we created. Never chmod on the way: a path inside it could be the job's symlink
    to somewhere else. (As root nothing here can fail; as a user, a dir the job made mode 000 stays.)"""
    shutil.rmtree(path, ignore_errors=True)


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
