"""The in-container fork-server worker: PID 1 of every sandbox container.

What it does: connects once to the host (a unix socket in a read-only bind mount, or its own
stdin/stdout when the pool uses a long-lived attach stream for a remote engine), preloads common
stdlib modules, makes itself non-dumpable, then loops: read one job frame, fork a fresh child,
return one result frame. Per job the child

- starts a new session, gets rlimits on CPU, address space, file size, processes, open files and
  core (0), raises its own OOM score so the kernel picks it before the worker, and runs the
  program in /scratch (a tmpfs) with stdin from a memfd and stdout/stderr into pipes;
- Python programs run by `exec` inside the forked child (no interpreter start-up: that is where the
  speed comes from); other languages run `/bin/sh -c "<compile> && exec <run>"`.

The worker keeps the first `cap` bytes of each stream, counts and drains the rest, enforces a
wall-clock deadline, then `kill(-1, SIGKILL)`s everything left in the container (setsid escapees
and double-forked daemons included: every process in the container has the job's uid, and
`kill(-1)` from PID 1 reaches all of them but never PID 1 itself), reaps every zombie, and wipes
/scratch, /tmp and /dev/shm. The job cannot kill PID 1 (the kernel drops every signal sent to a namespace's
init from inside unless init handles it, and the worker handles none: it even sets SIGINT, the one
handler Python installs, to SIG_IGN), cannot ptrace it or
read its memory (non-dumpable), and cannot reach the host channel (the fd is closed in the child
and the socket file is unlinked by the host right after the worker connects). Anything the
program prints is opaque payload inside a length-prefixed frame, so fake "result frames" on
stdout are just output.

What it does not do: isolation between the container and the host kernel is Docker's job (see
`sandboxes/docker.py`). It must stay importable by the image's bare python3 (3.11, stdlib only):
the host ships this file's source as `python3 -I -c <source>`, so the image never needs a rebuild
when the worker changes.

Try it (inside a container, normally started by DockerSandbox)::

    python3 -I worker.py --connect /io/sock --preload json,math,re
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import time

SCRATCH, CLEAN_DIRS = "/scratch", ("/scratch", "/tmp", "/dev/shm")
_PRELUDE: list = []  # [source bytes, code object] of the pool's prelude (see main)
MAX_FRAME = 256 * 1024 * 1024
HDR = struct.Struct("!I")


# ---------------------------------------------------------------- framing (shared with the host)
def encode(head: dict, blobs: list) -> bytes:
    """One frame: 4-byte length of a JSON header, the header (with blob sizes), then the blobs."""
    head = dict(head, sizes=[len(b) for b in blobs])
    raw = json.dumps(head, separators=(",", ":")).encode()
    return b"".join([HDR.pack(len(raw)), raw, *blobs])


class Channel:
    """Frames over a pair of fds (a socket, or stdin/stdout for the attach transport).

    Blobs are read straight into one bytearray (no intermediate chunks left in freed memory), so
    `wipe` can zero the job's files and stdin before the fork: the program never finds a copy of
    them in its own memory (a grading harness may pass a secret in a file).
    """

    def __init__(self, rfd: int, wfd: int) -> None:
        self.rfd, self.wfd = rfd, wfd

    def _exact(self, n: int) -> bytes | None:
        out = b""
        while len(out) < n:
            chunk = os.read(self.rfd, n - len(out))
            if not chunk:
                return None
            out += chunk
        return out

    def recv(self) -> tuple[dict, list] | None:
        raw = self._exact(HDR.size)
        if raw is None:
            return None
        (n,) = HDR.unpack(raw)
        if n > 1 << 20:
            raise ValueError("frame header too large")
        head = json.loads(self._exact(n) or b"null")
        sizes = [int(x) for x in head.get("sizes", [])]
        if sum(sizes) > MAX_FRAME or min(sizes, default=0) < 0:
            raise ValueError("frame too large")
        self.mem = bytearray(sum(sizes))
        view = memoryview(self.mem)
        while view:
            got = os.readv(self.rfd, [view])
            if not got:
                return None
            view = view[got:]
        blobs, off, view = [], 0, memoryview(self.mem)
        for size in sizes:
            blobs.append(view[off : off + size])
            off += size
        return head, blobs

    def wipe(self, start: int) -> None:
        """Zero the last frame's blob bytes from `start` on."""
        self.mem[start:] = bytes(len(self.mem) - start)

    def send(self, head: dict, blobs: list) -> None:
        view = memoryview(encode(head, blobs))
        while view:
            view = view[os.write(self.wfd, view) :]


# ---------------------------------------------------------------- the child (runs the program)
def _child(req: dict, source: bytes, fds: tuple[int, int, int], lang: dict) -> None:
    """Never returns. Runs in the forked child: lock down, then run the program."""
    rc = 1
    try:
        os.setsid()
        stdin_fd, out_w, err_w = fds
        os.dup2(stdin_fd, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.closerange(3, 65536)
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
        except OSError:
            pass
        mem = int(req["memory_mb"]) * 1024 * 1024
        cpu = int(req["timeout_s"]) + 1
        for res, val in (
            (resource.RLIMIT_CPU, (cpu, cpu + 1)),
            (resource.RLIMIT_AS, (mem, mem)),
            (resource.RLIMIT_FSIZE, (req["fsize"], req["fsize"])),
            (resource.RLIMIT_NPROC, (req["nproc"], req["nproc"])),
            (resource.RLIMIT_NOFILE, (256, 256)),
            (resource.RLIMIT_CORE, (0, 0)),
        ):
            resource.setrlimit(res, val)
        os.chdir(SCRATCH)
        os.umask(0o022)
        code = source.decode("utf-8", "replace")
        if lang.get("run"):  # a compiled/other language: source file + sh -c "compile && exec run"
            with open(lang["source"], "w") as f:
                f.write(code)
            cmd = " && ".join(c for c in (lang.get("compile"), "exec " + lang["run"]) if c)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; a native program should not
                signal.signal(sig, signal.SIG_DFL)
            os.execve(
                "/bin/sh",
                ["/bin/sh", "-c", cmd],
                {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": SCRATCH, "LANG": "C.UTF-8"},
            )
        rc = _run_python(code, _PRELUDE[1] if _PRELUDE and source == _PRELUDE[0] else None)
    except BaseException:  # noqa: BLE001 - report anything, then die
        try:
            import traceback

            traceback.print_exc()
        except BaseException:  # noqa: BLE001, S110 - nothing left to report with
            pass
    os._exit(rc)


def _run_python(code: str, compiled=None) -> int:
    """Run `code` as `python3 main.py` would, in this (forked) interpreter; return the exit code.

    The worker itself never parses untrusted code: compiling happens here, in the child, unless
    the job's code is byte for byte the pool's prelude (`compiled`, compiled at start-up).
    """
    import atexit
    import io
    import traceback

    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8", errors="replace")
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="replace")
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", line_buffering=True
    )
    sys.argv, sys.path[0:0] = ["main.py"], [SCRATCH]
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a fresh `python3 main.py`
    if "random" in sys.modules:
        sys.modules["random"].seed()  # every fork would otherwise replay the worker's sequence
    rc = 0
    try:
        prog = compiled if compiled is not None else compile(code, "main.py", "exec")
        exec(prog, {"__name__": "__main__", "__builtins__": __builtins__})  # noqa: S102
    except SystemExit as e:
        if e.code is None:
            rc = 0
        elif isinstance(e.code, int):
            rc = e.code & 0xFF
        else:
            print(e.code, file=sys.stderr)
            rc = 1
    except BaseException as e:  # noqa: BLE001 - the traceback starts at the program, not here
        traceback.print_exception(type(e), e, e.__traceback__.tb_next)
        rc = 1
    try:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001, S110 - a broken stdout must not change the exit code
        pass
    return rc


# ---------------------------------------------------------------- the worker side of one job
def _kill_all() -> None:
    """SIGKILL every process in the container except PID 1, then reap until none is left."""
    while True:
        try:
            os.kill(-1, 9)
        except ProcessLookupError:
            pass  # nothing left to signal
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return
        time.sleep(0.0005)


def _wipe(path: str) -> None:
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        p = os.path.join(path, name)
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, 0o700)
                _wipe(p)
                os.rmdir(p)
            else:
                os.unlink(p)
        except OSError:
            pass


_OOM_FILES = [
    p
    for p in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")
    if os.path.exists(p)
][:1]


_OOM_SEEN = [0]


def _oom_changed() -> bool:
    """True when the cgroup's OOM-kill counter moved since the last call (read after every job)."""
    now = _oom_kills()
    moved, _OOM_SEEN[0] = now > _OOM_SEEN[0], now
    return moved


def _oom_kills() -> int:
    """The cgroup's OOM-kill counter (cgroup v2 or v1), 0 when it cannot be read."""
    for path in _OOM_FILES:
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith("oom_kill "):
                        return int(line.split()[1])
        except OSError:
            continue
    return 0


def _place_files(names: list, blobs: list) -> None:
    for name, data in zip(names, blobs):
        if name.startswith("/") or ".." in name.split("/") or not name:
            raise ValueError(f"bad file name {name!r}")
        path = os.path.join(SCRATCH, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:  # os.write from the frame buffer: no buffered copy left behind in this process
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)


def run_job(req: dict, blobs: list, cap: int, lang: dict, wipe=None) -> tuple[dict, list]:
    """Fork one child for `req`, collect capped output, enforce the deadline, clean up.

    `wipe(n)` zeroes the frame buffer after the first n bytes (the code) once files and stdin are
    placed, so the child does not inherit a copy of them.
    """
    _place_files(req.get("files", []), blobs[2:])
    stdin_fd = os.memfd_create("stdin")
    view = memoryview(blobs[1])
    while view:
        view = view[os.write(stdin_fd, view) :]
    os.lseek(stdin_fd, 0, 0)
    code = bytes(blobs[0])
    if wipe is not None:
        wipe(len(code))
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    gc.freeze()  # the child's collections then skip the worker's objects: fewer copy-on-write faults
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(req, code, (stdin_fd, out_w, err_w), lang)
    for fd in (stdin_fd, out_w, err_w):
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    deadline = t0 + float(req["timeout_s"])
    keep = {out_r: bytearray(), err_r: bytearray()}
    count = {out_r: 0, err_r: 0}
    tail = bytearray()
    status, timed_out = None, False
    poller = select.poll()
    for fd in (out_r, err_r, pidfd):
        poller.register(fd, select.POLLIN)
    open_fds = {out_r, err_r}
    while status is None or open_fds:
        if status is None:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out, status = True, 9  # raw wait status of SIGKILL; _kill_all reaps the child
                poller.unregister(pidfd)
                _kill_all()
                continue
            events = poller.poll(left * 1000)
        else:
            events = poller.poll(2000)  # everything is dead: EOF is immediate
            if not events:
                break
        for fd, _ in events:
            if fd == pidfd:
                poller.unregister(pidfd)
                status = os.waitpid(pid, 0)[1]
                _kill_all()  # leftovers (daemons, setsid escapees) die the moment the program ends
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                poller.unregister(fd)
                open_fds.discard(fd)
                continue
            count[fd] += len(chunk)
            room = cap - len(keep[fd])
            if room > 0:
                keep[fd] += chunk[:room]
            if fd == err_r:
                tail = (tail + chunk)[-512:]
    wall = time.monotonic() - t0
    _kill_all()
    for fd in (out_r, err_r, pidfd):
        os.close(fd)
    for d in CLEAN_DIRS:
        _wipe(d)
    rc = sig = None
    if timed_out:
        sig = 9
    elif os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
    else:
        rc = os.WEXITSTATUS(status)
    # Any OOM kill in this container during the job was the job's (one job at a time), whichever
    # of its processes the kernel picked.
    mem = _oom_changed() or b"MemoryError" in tail
    head = {
        "id": req["id"],
        "exit_code": rc,
        "signal": sig,
        "timed_out": timed_out,
        "stdout_bytes": count[out_r],
        "stderr_bytes": count[err_r],
        "wall_s": wall,
        "memory_exceeded": bool(mem),
    }
    return head, [bytes(keep[out_r]), bytes(keep[err_r])]


def _nondumpable() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE = 4
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def main(argv: list | None = None) -> int:
    ap = argparse.ArgumentParser(description="rlvr sandbox worker (PID 1)")
    ap.add_argument("--connect", help="unix socket to connect to; omit to use stdin/stdout")
    ap.add_argument("--preload", default="", help="comma-separated modules to import up front")
    ap.add_argument("--cap", type=int, default=64 * 1024, help="bytes kept per output stream")
    ap.add_argument("--lang", default="{}", help="JSON: {source, compile, run} for non-Python")
    ap.add_argument("--prelude", default="", help="Python source that jobs often run: compiled once, here")
    args = ap.parse_args(argv)
    for mod in filter(None, args.preload.split(",")):
        try:
            __import__(mod)
        except ImportError:
            pass
    lang = json.loads(args.lang)
    if args.prelude:  # trusted code from the host's command line (the grading harness), compiled once
        try:
            _PRELUDE[:] = [args.prelude.encode("utf-8", "surrogateescape"), compile(args.prelude, "main.py", "exec")]
        except (SyntaxError, ValueError):  # then jobs running it compile it themselves (and see the error)
            _PRELUDE.clear()
    _OOM_SEEN[0] = _oom_kills()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Python's only handler; init ignores the rest
    _nondumpable()
    if args.connect:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(args.connect)
        chan = Channel(sock.fileno(), sock.fileno())
    else:
        rfd, wfd = os.dup(0), os.dup(1)
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        chan = Channel(rfd, wfd)
    chan.send({"hello": 1, "pid": os.getpid(), "uid": os.getuid(), "python": sys.version.split()[0]}, [])
    while True:
        msg = chan.recv()
        if msg is None:
            return 0
        req, blobs = msg
        try:
            head, out = run_job(req, blobs, args.cap, lang, chan.wipe)
        except Exception as e:  # noqa: BLE001 - a worker bug or a bad file name: reported, not fatal
            _kill_all()
            for d in CLEAN_DIRS:
                _wipe(d)
            head, out = {"id": req.get("id"), "error": f"worker: {type(e).__name__}: {e}"}, []
        chan.send(head, out)


if __name__ == "__main__":
    sys.exit(main())
