"""A small pool of killable helper processes that run sympy comparisons with a hard deadline.

A "zygote" process imports and primes sympy once (~1 s per parent process); workers are forked
from it in milliseconds (see `_math_worker`). A call takes an idle worker, sends one
(pred_tree, gold_tree) job over a Unix socket and waits with `select` until its deadline. On
overrun the worker is SIGKILLed, a replacement is forked in a background thread, and the call
returns "timeout". No `signal.alarm`, no fork of the (threaded) parent, no dependence on the
caller's `__main__`: safe from any thread. At least two workers (one idle or booting) are kept.

What it does not do: decide anything itself (`_math_compare` + `_math_sympy` do), or run inside
a scoring worker (there the verifier runs in its `under_deadline` form and calls sympy in-process).

Try it::

    >>> from rlvr.verifiers._math_pool import get_pool
    >>> from rlvr.verifiers._math_normalize import structure
    >>> get_pool().run(structure("\\\\sqrt{4}+x"), structure("x+2"), timeout_s=5.0)
    (True, 'ok')

The zygote and the workers exit on EOF when the parent dies; `shutdown()` (also registered with
atexit) stops them.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

from rlvr.verifiers._math_worker import recv_msg, send_msg

__all__ = ["SympyPool", "get_pool"]

_BOOT = (
    "import os, sys, json; sys.path[:0] = json.loads(os.environ['RLVR_MATH_SYSPATH']); "
    "from rlvr.verifiers._math_worker import zygote_main; zygote_main(int(sys.argv[1]))"
)


class _Zygote:
    """The sympy-preloaded process that forks workers (see `_math_worker`)."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ, RLVR_MATH_SYSPATH=json.dumps(sys.path))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOOT, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=env,
        )
        theirs.close()
        self.sock, self.lock = ours, threading.Lock()

    def wait_ready(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self.sock], [], [], timeout_s)
        try:
            return bool(ready) and self.sock.recv(1) == b"R"
        except OSError:
            return False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def fork(self) -> socket.socket:
        """A new worker; returns our end of its socket. Raises OSError if the zygote is gone."""
        ours, theirs = socket.socketpair()
        try:
            with self.lock:
                socket.send_fds(self.sock, [b"F"], [theirs.fileno()])
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        return ours

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(OSError):
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


class _Worker:
    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.pid = sock, 0

    def wait_ready(self, timeout_s: float) -> bool:
        ready, _, _ = select.select([self.sock], [], [], timeout_s)
        if not ready:
            return False
        try:
            status, self.pid = recv_msg(self.sock)
        except (EOFError, OSError, pickle.UnpicklingError, struct.error, ValueError):
            return False
        return status == "ready"

    def kill(self, force: bool) -> None:
        """Close our end (an idle worker then exits on EOF); `force` also SIGKILLs a busy one."""
        if force and self.pid:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.sock.close()


class SympyPool:
    """Up to `max_workers` helper processes; thread-safe; every `run` honours its deadline."""

    def __init__(self, max_workers: int = 4, spares: int = 2, boot_timeout_s: float = 60.0):
        self.max_workers, self.boot_timeout_s = max(1, max_workers), boot_timeout_s
        self.spares = max(1, min(spares, self.max_workers))
        self._cv = threading.Condition()
        self._idle: list[_Worker] = []
        self._busy = 0
        self._booting = 0
        self._closed = False
        self._all: set[_Worker] = set()
        self._zygote: _Zygote | None = None
        self._zlock = threading.Lock()
        self.kills = 0

    # -- worker lifecycle ---------------------------------------------------------------------
    def _zygote_ready(self) -> _Zygote | None:
        """The running zygote, (re)started if needed; blocks only while one boots (~1 s)."""
        with self._zlock:
            z = self._zygote
            if z is not None and z.alive():
                return z
            if z is not None:
                z.close()
            self._zygote = None
            if self._closed:
                return None
            z = _Zygote()
            if not z.wait_ready(self.boot_timeout_s):
                z.close()
                return None
            self._zygote = z
            return z

    def _boot_async(self) -> None:
        """Start one worker from a background thread (caller holds the lock)."""
        self._booting += 1
        threading.Thread(target=self._boot, daemon=True, name="rlvr-math-boot").start()

    def _boot(self) -> None:
        w: _Worker | None = None
        ok = False
        try:
            z = self._zygote_ready()
            if z is not None:
                w = _Worker(z.fork())
                ok = w.wait_ready(self.boot_timeout_s)
        except Exception:  # noqa: BLE001 -- a failed boot is retried by the next _top_up; never leak _booting
            ok = False
        with self._cv:
            self._booting -= 1
            if ok and w is not None and not self._closed:
                self._idle.append(w)
                self._all.add(w)
                w = None
            self._cv.notify_all()
        if w is not None:
            w.kill(force=True)

    def _top_up(self) -> None:
        """Keep >= 1 idle-or-booting worker and >= `spares` workers in all, below max (lock held)."""
        while not self._closed:
            total = len(self._idle) + self._busy + self._booting
            if total >= self.max_workers or (len(self._idle) + self._booting >= 1 and total >= self.spares):
                return
            self._boot_async()

    def warmup(self, wait_s: float = 60.0) -> bool:
        """Start the pool and wait (uncharged to any call) until one worker is ready."""
        end = time.monotonic() + wait_s
        with self._cv:
            while not (self._idle or self._busy) and not self._closed:
                self._top_up()
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
            return bool(self._idle or self._busy)

    def _acquire(self, deadline: float) -> _Worker | None:
        with self._cv:
            while not self._idle:
                self._top_up()
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return None
                self._cv.wait(left)
            w = self._idle.pop()
            self._busy += 1
            self._top_up()
            return w

    def _release(self, w: _Worker, healthy: bool) -> None:
        with self._cv:
            self._busy -= 1
            if healthy and not self._closed:
                self._idle.append(w)
            else:
                self._all.discard(w)
                self.kills += 1
            self._top_up()
            self._cv.notify_all()
        if not healthy:
            w.kill(force=True)

    # -- the call -----------------------------------------------------------------------------
    def run(self, pred: tuple, gold: tuple, timeout_s: float) -> tuple[bool | None, str]:
        """(result, status) with status "ok", "timeout" or "error: …"; never exceeds timeout_s."""
        deadline = time.monotonic() + timeout_s
        w = self._acquire(deadline)
        if w is None:
            return None, "timeout"
        healthy = False
        try:
            send_msg(w.sock, (pred, gold))
            ready, _, _ = select.select([w.sock], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return None, "timeout"
            status, value = recv_msg(w.sock)
            healthy = True
            return (value, "ok") if status == "ok" else (None, f"error: {value}")
        except (OSError, EOFError, pickle.PickleError, struct.error, ValueError) as e:
            return None, f"error: worker failed ({type(e).__name__})"
        finally:
            self._release(w, healthy)

    def shutdown(self) -> None:
        """Stop every worker and the zygote (idempotent; registered with atexit)."""
        with self._cv:
            self._closed = True
            self._idle = []
            workers, self._all = list(self._all), set()
            self._cv.notify_all()
        for w in workers:
            w.kill(force=True)
        with self._zlock:
            if self._zygote is not None:
                self._zygote.close()
                self._zygote = None


_POOL: SympyPool | None = None
_POOL_LOCK = threading.Lock()


def get_pool() -> SympyPool:
    """The process-wide pool (size from RLVR_MATH_WORKERS, default 4), warmed up on first use."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._closed:
            _POOL = SympyPool(max_workers=int(os.environ.get("RLVR_MATH_WORKERS", "4")))
            atexit.register(_POOL.shutdown)
        pool = _POOL
    return pool
