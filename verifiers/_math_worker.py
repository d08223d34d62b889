"""The helper-process side of `_math_pool`: a sympy "zygote" that forks ready-to-use workers.

The zygote is started once per parent process (`python -c …`, ~1 s: interpreter + sympy import +
priming). It is single-threaded, so forking it is safe, and a forked worker starts in
milliseconds with sympy already imported and warm. Protocol, over Unix sockets:

- parent -> zygote: one byte plus a socket fd (`socket.send_fds`); the zygote forks a worker that
  serves that socket and closes its own copy. SIGCHLD is ignored in the zygote, so the kernel
  reaps killed workers (no zombies).
- parent <-> worker: length-prefixed pickles. The worker first sends ("ready", pid); then, for each
  job (pred_tree, gold_tree), it answers ("ok", bool) or ("error", text). The parent SIGKILLs the
  worker by pid when a job overruns its deadline.

Both exit on EOF, i.e. when the parent closes its end or dies. Nothing here decides equality:
`_math_compare.equal` with `_math_sympy.SympyBackend` does.

Try it: it is exercised through `rlvr.verifiers._math_pool.get_pool()`.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import struct
import sys
from typing import Any

__all__ = ["recv_msg", "send_msg", "zygote_main"]

_HEADER = struct.Struct("!I")
_PRIME = [  # one comparison of each common kind, so sympy's lazy imports and caches are warm
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"),
    ("x^2+2x+1", "(x+1)^2"),
    ("\\pi", "3.14"),
    ("3+4i", "4i+3"),
    ("y = 2x+1", "2x+1-y = 0"),
    ("\\log 100", "\\sin 30^\\circ"),
    ("\\{x \\mid |x| \\ge \\sqrt{5}\\}", "[\\sqrt{2}, \\pi)"),
]


def send_msg(sock: socket.socket, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        b = sock.recv(n - got)
        if not b:
            raise EOFError("peer closed the socket")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def recv_msg(sock: socket.socket) -> Any:
    (n,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    return pickle.loads(_recv_exact(sock, n))


def prime(backend: Any) -> None:
    """Run one comparison of each common kind (best effort: real calls report their own errors)."""
    from rlvr.verifiers._math_clean import clean
    from rlvr.verifiers._math_compare import equal
    from rlvr.verifiers._math_normalize import structure

    for a, b in _PRIME:
        with contextlib.suppress(Exception):
            equal(structure(clean(a)), structure(clean(b)), backend)


def _serve(sock: socket.socket, backend: Any) -> None:
    from rlvr.verifiers._math_compare import equal

    send_msg(sock, ("ready", os.getpid()))
    while True:
        job = recv_msg(sock)
        try:
            reply = ("ok", bool(equal(job[0], job[1], backend)))
        except Exception as e:  # noqa: BLE001 -- reported to the caller as data ("parse_error")
            reply = ("error", f"{type(e).__name__}: {e}"[:300])
        send_msg(sock, reply)


def zygote_main(fd: int) -> None:
    """Zygote loop: import and prime sympy, say "ready", then fork one worker per request."""
    os.dup2(2, 1)  # library output goes to stderr
    from rlvr.verifiers._math_sympy import SympyBackend

    backend = SympyBackend()
    prime(backend)
    control = socket.socket(fileno=fd)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps finished/killed workers
    try:
        control.sendall(b"R")
        while True:
            msg, fds, _, _ = socket.recv_fds(control, 1, 1)
            if not msg:
                return
            if not fds:
                continue
            pid = os.fork()
            if pid == 0:  # the worker
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                control.close()
                code = 0
                try:
                    _serve(socket.socket(fileno=fds[0]), backend)
                except (EOFError, OSError):
                    pass
                except BaseException:  # noqa: BLE001 -- a worker must never return into the zygote loop
                    code = 1
                finally:
                    os._exit(code)
            os.close(fds[0])
    except (EOFError, OSError):
        return


if __name__ == "__main__":  # pragma: no cover - started by _math_pool with the fd as argument
    zygote_main(int(sys.argv[1]))
