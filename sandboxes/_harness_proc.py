"""Process plumbing of the grading harness (`rlvr.sandboxes.harness`): forking children, pipes, deaths.

`_enter_child` locks a fresh child down (new session, pipes on 0/1/2, chosen fds moved to random
numbers, every other fd closed, an address-space limit). `_Proc` is a long-lived child that
answers newline-delimited JSON requests (the program child, the test process); `_fork` runs a
one-shot child fed on stdin (a stdio test); `_death` says why a child ended without reporting;
`_compile` builds a compiled language's program once per completion; `_sweep` clears what one
program of a batch left before the next.

Shipped into the sandbox between `rlvr.sandboxes._harness_child` and the harness (see
`rlvr.sandboxes.harness.harness_source`), so it runs on a bare python3 >= 3.8 with only the stdlib.

What it does not do: decide verdicts or write them (the harness's job).

Try it: not by hand; the code verifier ships it.
"""

import gc
import json
import os
import random
import select
import signal
import time

MAX_RESULT = 8 << 20


def _enter_child(in_r, out_w, err_w, keep, mem_mb):
    """In a fresh child: new session, pipes on 0/1/2, each fd of `keep` moved to a random fd number
    (returned in order), every other fd closed, the address-space limit lowered to `mem_mb`."""
    import resource

    os.setsid()
    for src, dst in ((in_r, 0), (out_w, 1), (err_w, 2)):
        os.dup2(src, dst)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    hi = min(soft if soft > 0 else 256, 1024)
    rng = random.SystemRandom()
    tmp = [os.dup(fd) for fd in keep]  # a target number may be one of the sources
    pool = [x for x in range(16, hi) if x not in tmp]
    picked = rng.sample(pool, len(keep)) if len(pool) > len(keep) else list(range(3, 3 + len(keep)))
    for fd, dst in zip(tmp, picked):
        os.dup2(fd, dst)
    prev = 3
    for fd in sorted(picked):
        os.closerange(prev, fd)
        prev = fd + 1
    os.closerange(prev, 65536)
    if mem_mb:
        lim = int(mem_mb) << 20
        cur = resource.getrlimit(resource.RLIMIT_AS)
        if cur[0] < 0 or cur[0] > lim:
            resource.setrlimit(resource.RLIMIT_AS, (lim, cur[1] if 0 <= cur[1] < lim else lim))
    return picked


class _Proc:
    """A child in its own session that answers newline-delimited JSON requests over two pipes.

    `body(rfd, wfd, *extra)` runs in the child (`extra`: the fds of `keep`, moved). While the parent
    waits for a reply, the child's stdout is drained (counted) and its stderr's tail kept."""

    def __init__(self, body, mem_mb, keep=()):
        (rq_r, rq_w), (rs_r, rs_w), (out_r, out_w), (err_r, err_w) = [os.pipe() for _ in range(4)]
        null = os.open(os.devnull, os.O_RDONLY)
        gc.freeze()  # the child's collections then skip our objects: fewer copy-on-write faults
        pid = os.fork()
        if pid == 0:
            try:
                body(*_enter_child(null, out_w, err_w, [rq_r, rs_w, *keep], mem_mb))
            except BaseException:  # noqa: BLE001, S110 - the parent sees a child that stopped answering
                pass
            os._exit(0)
        for fd in (null, rq_r, rs_w, out_w, err_w):
            os.close(fd)
        self.pid, self.w, self.r = pid, rq_w, rs_r
        self.open = {rs_r, out_r, err_r}
        self.out, self.err = out_r, err_r
        self.buf, self.err_tail, self.out_total, self.timed_out = b"", b"", 0, False

    def send(self, msg):
        data = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        try:
            while data:
                data = data[os.write(self.w, data) :]
        except OSError:  # the child is gone
            return False
        return True

    def recv(self, deadline):
        """The next reply (a dict; {} when malformed), or None: the child closed its reply pipe,
        sent too much, or missed `deadline` (then `timed_out`)."""
        while b"\n" not in self.buf:
            if self.r not in self.open or len(self.buf) > MAX_RESULT:
                return None
            left = deadline - time.monotonic()
            ready = select.select(list(self.open), [], [], left)[0] if left > 0 else []
            if not ready:
                self.timed_out = True
                return None
            for fd in ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.open.discard(fd)
                elif fd == self.r:
                    self.buf += chunk
                elif fd == self.err:
                    self.err_tail = (self.err_tail + chunk)[-1024:]
                else:
                    self.out_total += len(chunk)
        line, _, self.buf = self.buf.partition(b"\n")
        try:
            msg = json.loads(line.decode("utf-8"))
        except ValueError:
            return {}
        return msg if type(msg) is dict else {}

    def finish(self):
        """Kill the child's session, reap it, close our fds; (status, message) of its death."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except OSError:
            pass
        _, status = os.waitpid(self.pid, 0)
        for fd in [self.w, self.r, self.out, self.err]:
            try:
                os.close(fd)
            except OSError:
                pass
        err = self.err_tail.decode("utf-8", "replace")
        self.stderr = err[-300:]
        return _death({"timed_out": self.timed_out, "status": status, "err": err})


def _fork(body, stdin_data, timeout, mem_mb, want_out, on_line=None, hard_end=None):
    """Fork a child that runs body(result_fd) in a new session. Each complete line it writes to the
    result pipe goes to on_line(bytes) (return False to stop) and restarts the `timeout` clock.
    Returns the child's wait status, whether it timed out, its stdout (if `want_out`) and stderr tail."""
    (in_r, in_w), (out_r, out_w), (err_r, err_w), (res_r, res_w) = [os.pipe() for _ in range(4)]
    gc.freeze()
    pid = os.fork()
    if pid == 0:
        try:
            body(_enter_child(in_r, out_w, err_w, [res_w], mem_mb)[0])
        except BaseException:  # noqa: BLE001, S110 - the parent sees a child that never reported
            pass
        os._exit(0)
    for fd in (in_r, out_w, err_w, res_w):
        os.close(fd)
    caps = {out_r: MAX_RESULT if want_out else 0, err_r: 2048, res_r: MAX_RESULT}
    bufs, total, timed_out, wfds = _pump(in_w, stdin_data, caps, err_r, res_r, timeout, on_line, hard_end)
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    _, status = os.waitpid(pid, 0)
    for fd in [out_r, err_r, res_r] + wfds:
        os.close(fd)
    return {
        "status": status,
        "timed_out": timed_out,
        "out": bytes(bufs[out_r]),
        "err": bytes(bufs[err_r]).decode("utf-8", "replace")[-600:],
        "out_total": total[out_r],
        "out_over": want_out and total[out_r] > MAX_RESULT,
        "res_over": len(bufs[res_r]) >= MAX_RESULT,
    }


def _pump(in_w, stdin_data, caps, err_r, res_r, timeout, on_line, hard_end):
    """Write `stdin_data` to `in_w` and read the child's pipes (the keys of `caps`, each buffer kept
    to its cap; stderr to its last 1 KiB) until they close, on_line says stop or the deadline passes.
    Returns (buffers, bytes read per fd, whether it timed out, the write fds still open)."""
    bufs = {fd: bytearray() for fd in caps}
    total = {fd: 0 for fd in caps}
    data = memoryview(stdin_data or b"")
    wfds = [in_w] if len(data) else []
    if not wfds:
        os.close(in_w)
    hard_end = hard_end or float("inf")
    deadline = min(time.monotonic() + timeout, hard_end)
    timed_out, stopped, rfds = False, False, list(caps)
    while rfds and not stopped:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        r, w, _ = select.select(rfds, wfds, [], left)
        if w:
            try:
                data = data[os.write(in_w, data[:65536]) :]
            except OSError:
                data = data[:0]
            if not len(data):
                os.close(in_w)
                wfds = []
        for fd in r:
            chunk = os.read(fd, 65536)
            if not chunk:
                rfds.remove(fd)
                continue
            total[fd] += len(chunk)
            room = caps[fd] - len(bufs[fd])
            if room > 0:
                bufs[fd] += chunk[:room]
            if fd == err_r:
                del bufs[fd][:-1024]
            elif fd == res_r and on_line is not None:
                while b"\n" in bufs[res_r] and not stopped:
                    line, _, rest = bytes(bufs[res_r]).partition(b"\n")
                    bufs[res_r] = bytearray(rest)
                    stopped = on_line(line) is False
                    deadline = min(time.monotonic() + timeout, hard_end)
    return bufs, total, timed_out, wfds


def _death(st):
    """Why a child ended without reporting: (status, message)."""
    if st["timed_out"]:
        return "timeout", "timed out"
    s = st["status"]
    if os.WIFSIGNALED(s):
        sig = os.WTERMSIG(s)
        memory = sig == signal.SIGKILL or "MemoryError" in st["err"]
        return ("memory" if memory else "crash"), f"killed by signal {sig}"
    return "early_exit", f"exited with code {os.WEXITSTATUS(s)} before reporting"


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _sweep():
    """Between two completions of a batch (only in a container, where every process but PID 1 is
    the job's): kill what the last program left (setsid escapees) and empty the scratch dirs."""
    for _ in range(3):
        try:
            os.kill(-1, signal.SIGKILL)  # never this process itself, never PID 1
        except OSError:
            break
    for d in ("/scratch", "/tmp", "/dev/shm"):
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            p = os.path.join(d, name)
            try:
                if os.path.isdir(p) and not os.path.islink(p):
                    import shutil

                    shutil.rmtree(p, ignore_errors=True)
                else:
                    os.unlink(p)
            except OSError:
                pass


def _compile(sub, hard_end):
    """A compiled language (`rlvr.sandboxes.languages`): write the source, run its compile command
    once for all the completion's tests. None when it compiled, else the error every test gets."""
    lang = sub["native"]  # the parent wrote the program to lang["source"]
    if not lang.get("compile"):
        return None
    st = _fork(
        lambda fd: _exec_sh(lang["compile"], fd),
        b"",
        max(0.1, hard_end - time.monotonic()),
        max(int(sub.get("memory_mb") or 0), 512),
        True,
    )
    if st["timed_out"]:
        return "compile timeout"
    if not os.WIFEXITED(st["status"]) or os.WEXITSTATUS(st["status"]):
        text = st["out"].decode("utf-8", "replace") + st["err"]
        first = next((ln for ln in text.splitlines() if "error" in ln), text.strip()[:300])
        return "compile error: " + first.strip()[:300]
    return None


def _exec_sh(cmd, fd):
    """In a `_fork` child: run `cmd` with /bin/sh (a native program: default SIGPIPE/SIGXFSZ)."""
    os.close(fd)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.getcwd(), "LANG": "C.UTF-8"}
    os.execve("/bin/sh", ["/bin/sh", "-c", cmd], env)
