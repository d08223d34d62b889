"""`LocalSandbox`: run untrusted Python on this machine, for when Docker is not available.

It isolates LESS than `rlvr.sandboxes.docker.DockerSandbox`. Every run is a fresh interpreter
(``python -I``) in a fresh scratch directory, started through ``prlimit`` with rlimits on address
space (``memory_mb``), CPU seconds, file size, open files, core dumps (0) and, when we own a private
uid, processes. A host-side deadline SIGKILLs the process group; output is capped at 64 KiB per
stream while the rest is drained. Three modes, strongest first (``mode="auto"`` picks the first one
that works here and says which in ``.mode``):

``bwrap`` (bubblewrap; ``apt-get install bubblewrap``)
    New user, pid, net, ipc, uts and mount namespaces. The filesystem is ``/usr`` (read-only), the
    interpreter's prefix (read-only), a private /proc, a minimal /dev, an empty tmpfs /tmp and the
    job's scratch dir as ``/sandbox`` (cwd). No network. Everything dies with the namespace.
    NOT isolated: the kernel (one syscall bug away from the host; no seccomp filter), every
    world-readable file under /usr, CPU time of the other slots (no cgroup quota, only RLIMIT_CPU),
    RAM as a whole (RLIMIT_AS per process, not a cgroup: N processes may use N * memory_mb).
``unshare`` (util-linux; needs root)
    New pid, net, ipc and mount namespaces (private /proc). No network; everything dies with the
    namespace's pid 1.
    NOT isolated: the WHOLE host filesystem stays visible, readable and writable with the job
    uid's permissions (world-writable places such as /tmp and /dev/shm too); the kernel; CPU and
    RAM as above.
``rlimit`` (a plain subprocess)
    Only rlimits, a new session, and the deadline.
    NOT isolated: the network (it can connect anywhere the host can), host filesystem reads and
    writes with the job uid's permissions, other processes of the same uid (it can signal or
    ptrace them when not running under a private uid), ``setsid`` daemons when not running under a
    private uid (they can outlive the job), the kernel, CPU and RAM as above.

When the host process is root, every mode runs the job under a private, random, otherwise unused
uid per job (``user="auto"``), so it cannot read root-only files or signal our processes, the
process rlimit (a fork bomb) is per job, and leftovers of that uid are killed after each job. As a non-root user
the job runs as that user (``user=None``) and can read whatever that user can.

Use it for development, CI without Docker and trusted-ish code; use Docker for RL on model output
at scale. Constructing one calls `warn_unisolated` (a `RuntimeWarning` and a log line).

Cleanup removes only the directory tree it created with ``tempfile.mkdtemp`` (by exact path).

Try it::

    >>> from rlvr.sandboxes.local import LocalSandbox
    >>> with LocalSandbox(size=1) as sb:                          # doctest: +SKIP
    ...     sb.run("print(input()[::-1])", stdin="abc", timeout_s=5).stdout
    'cba\\n'
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.util import Finalize
from typing import Self

from rlvr.sandboxes._local_exec import (
    _bwrap_argv,
    _communicate,
    _default_python,
    _fresh_uid,
    _kill_uid,
    _prefix_of,
    _rmtree,
    _write_files,
)
from rlvr.sandboxes.base import DEFAULT_OUTPUT_CAP, ExecResult, Job, run_jobs

__all__ = ["MODES", "LocalSandbox", "available_modes", "warn_unisolated"]

log = logging.getLogger("rlvr.sandboxes.local")

MODES = ("bwrap", "unshare", "rlimit")

_PROBES: dict[tuple[str, str], str | None] = {}  # (mode, python) -> None if it works, else why not
_PROBE_LOCK = threading.Lock()


def warn_unisolated(mode: str = "rlimit") -> None:
    """Warn loudly that code runs with weaker isolation than the Docker pool (warning + log)."""
    msg = (
        f"rlvr: running untrusted code in LocalSandbox(mode={mode!r}), which does not isolate it like "
        "the Docker pool (see the rlvr.sandboxes.local docstring for exactly what is exposed). "
        "Use DockerSandbox for RL on model-written code."
    )
    warnings.warn(msg, RuntimeWarning, stacklevel=3)
    log.warning(msg)


class LocalSandbox:
    """A pool of `size` local slots implementing the `Sandbox` protocol (see the module docstring).

    size: concurrent jobs in `run_many` (default: CPU count). mode: "auto", "bwrap", "unshare" or
    "rlimit". user: "auto" (a private random uid per job when we are root) or None (run as
    ourselves). python: the interpreter jobs run (default: one every uid can
    execute). file_mb / nofile / nproc: rlimits. warn: call `warn_unisolated` on construction.
    """

    def __init__(
        self,
        size: int | None = None,
        mode: str = "auto",
        *,
        python: str | None = None,
        user: str | None = "auto",
        output_cap: int = DEFAULT_OUTPUT_CAP,
        file_mb: int = 64,
        nofile: int = 256,
        nproc: int = 128,
        warn: bool = True,
    ):
        if mode not in ("auto",) + MODES:
            raise ValueError(f"LocalSandbox: mode must be one of auto, {', '.join(MODES)}; got {mode!r}")
        self.size = max(1, int(size or os.cpu_count() or 1))
        self.python = python or _default_python()
        self.output_cap, self.file_mb, self.nofile, self.nproc = output_cap, file_mb, nofile, nproc
        if user not in ("auto", None):
            raise ValueError(f"LocalSandbox: user must be 'auto' or None; got {user!r}")
        self.private_uids = user == "auto" and os.geteuid() == 0
        self._prefix = _prefix_of(self.python)
        self.mode = self._pick(mode)
        self._root = tempfile.mkdtemp(prefix="rlvr-local-")
        os.chmod(self._root, 0o711)  # private uids must traverse it to reach their scratch dir
        # Removes the root at close(), at garbage collection, and at exit, including the exit of a
        # multiprocessing worker (which skips atexit but runs these finalizers).
        self._cleanup = Finalize(self, _rmtree, args=(self._root,), exitpriority=10)
        self._free = list(range(self.size))
        self._slots = threading.Condition()
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        if warn:
            warn_unisolated(self.mode)

    # -- mode selection -------------------------------------------------------------------------
    def _pick(self, mode: str) -> str:
        wanted = MODES if mode == "auto" else (mode,)
        reasons = []
        for m in wanted:
            why = self._probe(m)
            if why is None:
                return m
            reasons.append(f"{m}: {why}")
        raise RuntimeError(f"LocalSandbox(mode={mode!r}) does not work here: {'; '.join(reasons)}")

    def _probe(self, mode: str) -> str | None:
        key = (mode, self.python)
        with _PROBE_LOCK:
            if key not in _PROBES:
                _PROBES[key] = self._try(mode)
            return _PROBES[key]

    def _try(self, mode: str) -> str | None:
        if mode == "unshare" and os.geteuid() != 0:
            return "needs root"
        tool = {"bwrap": "bwrap", "unshare": "unshare", "rlimit": "prlimit"}[mode]
        if shutil.which(tool) is None or shutil.which("prlimit") is None:
            return f"{tool} is not installed"
        d = tempfile.mkdtemp(prefix="rlvr-probe-")
        try:
            os.chmod(d, 0o777)
            code = os.path.join(d, "probe.py")
            with open(code, "w") as f:
                f.write("print('ok')\n")
            os.chmod(code, 0o644)
            uid = _fresh_uid() if self.private_uids else None
            argv = self._argv(mode, d, code, uid, 256, 10)
            r = subprocess.run(
                argv, capture_output=True, timeout=30, cwd=d, check=False, **self._creds(uid, mode)
            )
            if r.stdout.strip() != b"ok":
                return (r.stderr.decode(errors="replace").strip() or f"exit {r.returncode}")[:200]
            return None
        except (OSError, subprocess.SubprocessError) as e:
            return str(e)[:200]
        finally:
            _rmtree(d)

    # -- one job --------------------------------------------------------------------------------
    def _argv(
        self, mode: str, work: str, code_path: str, uid: int | None, memory_mb: int, timeout_s: float
    ) -> list[str]:
        limits = [
            f"--as={int(memory_mb) << 20}",
            f"--cpu={int(timeout_s) + 1}",
            f"--fsize={self.file_mb << 20}",
            f"--nofile={self.nofile}",
            "--core=0",
        ]
        if uid is not None:
            limits.append(f"--nproc={self.nproc}")
        pl = ["prlimit", *limits, "--"]
        if mode == "bwrap":
            return pl + _bwrap_argv(self._prefix, work, code_path) + [self.python, "-I", "-B", "/rlvr_job.py"]
        py = [self.python, "-I", "-B", code_path]
        if mode == "unshare":
            ids = [] if uid is None else ["-S", str(uid), "-G", str(uid)]
            return [
                "unshare",
                "--net",
                "--pid",
                "--fork",
                "--mount",
                "--ipc",
                "--mount-proc",
                *ids,
                "--",
                *pl,
                *py,
            ]
        return pl + py

    @staticmethod
    def _creds(uid: int | None, mode: str) -> dict:
        # unshare drops to the uid itself (-S/-G) after making the namespaces, which needs root.
        if uid is None or mode == "unshare":
            return {}
        return {"user": uid, "group": uid, "extra_groups": []}

    def run(
        self,
        code: str,
        *,
        stdin: str | bytes | None = None,
        files: Mapping[str, str | bytes] | None = None,
        timeout_s: float = 10.0,
        memory_mb: int = 512,
    ) -> ExecResult:
        """Run `code` once with `stdin` and `files` (relative names) in a fresh scratch dir."""
        if self._closed:
            raise RuntimeError("LocalSandbox is closed")
        with self._slots:
            while not self._free:
                self._slots.wait()
            slot = self._free.pop()
        try:
            return self._run(code, stdin, files, timeout_s, memory_mb)
        finally:
            with self._slots:
                self._free.append(slot)
                self._slots.notify()

    def _run(self, code: str, stdin, files, timeout_s: float, memory_mb: int) -> ExecResult:
        # A fresh uid per job: the dying leftovers of one job never count against the next's nproc.
        uid = _fresh_uid() if self.private_uids else None
        job = tempfile.mkdtemp(prefix="job-", dir=self._root)
        t0 = time.monotonic()
        try:
            os.chmod(job, 0o711)
            work = os.path.join(job, "work")
            os.mkdir(work, 0o700)
            code_path = os.path.join(job, "job.py")
            with open(code_path, "w", encoding="utf-8") as f:
                f.write(code)
            os.chmod(code_path, 0o644)
            _write_files(work, files or {})
            if uid is not None:
                for dirpath, dirnames, filenames in os.walk(work):
                    for n in [dirpath] + [os.path.join(dirpath, x) for x in dirnames + filenames]:
                        os.lchown(n, uid, uid)
            argv = self._argv(self.mode, work, code_path, uid, memory_mb, timeout_s)
            data = stdin.encode() if isinstance(stdin, str) else stdin
            proc = subprocess.Popen(
                argv,
                cwd=work,
                stdin=subprocess.PIPE if data else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env={"PATH": "/usr/bin:/bin", "HOME": work, "LANG": "C.UTF-8"},
                **self._creds(uid, self.mode),
            )
            res = _communicate(proc, data, t0 + timeout_s, self.output_cap)
            res.wall_s = time.monotonic() - t0
            res.info["mode"] = self.mode
            return res
        except OSError as e:  # (a bad file name is the caller's bug: ValueError propagates)
            return ExecResult(exit_code=None, error=f"sandbox_error: {e}", wall_s=time.monotonic() - t0)
        finally:
            if uid is not None:  # setsid escapees in rlimit mode; dying namespaces in the others
                _kill_uid(uid)
            _rmtree(job)

    def run_many(self, jobs: Iterable[Job]) -> Sequence[ExecResult]:
        """Run jobs on all slots at once; results in input order."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.size, thread_name_prefix="rlvr-local")
        return run_jobs(self._pool, self.run, jobs)

    def close(self) -> None:
        """Stop the thread pool and remove the root directory this sandbox created (exact path)."""
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._cleanup()  # runs _rmtree(self._root) once

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalSandbox(size={self.size}, mode={self.mode!r}, python={self.python!r})"


def available_modes() -> dict[str, str | None]:
    """{mode: None if it works here, else why not}, probing each mode once."""
    sb = LocalSandbox.__new__(LocalSandbox)
    sb.size, sb.python, sb.file_mb, sb.nofile, sb.nproc = 1, _default_python(), 64, 256, 128
    sb.private_uids = os.geteuid() == 0
    sb._prefix, sb.mode, sb._closed, sb._root = _prefix_of(sb.python), "rlimit", True, ""
    out = {}
    for m in MODES:
        sb.mode = m
        out[m] = sb._probe(m)
    return out
