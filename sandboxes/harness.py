"""The trusted grading harness: the program `rlvr.verifiers.code` runs inside a sandbox.

The host ships this file's source (after two helper modules, see below) as the job's code,
followed by ``main()``, with two files in the job's scratch dir: ``rlvr_job.json`` (the program
under test and the test *inputs*) and ``rlvr_nonce`` (a random per-job token); ``rlvr_ref.json``
too when some expected value is an expression rather than a literal. Expected values that are
literals never enter the sandbox: the host compares.

What runs where (the parent is ours; no model-written code ever runs in it):

1. The parent makes itself non-dumpable (no ptrace, no /proc/<pid>/fd or /mem from the children),
   reads and unlinks its files, keeping the nonce in an anonymous mapping that later forks see as
   zeros (MADV_WIPEONFORK) and never copying it onto the Python heap.
2. If ``rlvr_ref.json`` exists, a *reference* child (forked before any model code has run) runs
   the test's setup and evaluates the expected-value expressions, writing them straight to the
   job's stdout; the parent never holds them, so later children cannot find them in memory.
3. The parent forks test children in new sessions: stdin, stdout and stderr are pipes, every
   other fd is closed except one result pipe moved to a random fd number. A test child runs the
   program (and the test's setup) once, then its units in order, reporting each: ``call``
   (evaluate one expression and send back its value as tagged JSON of builtin primitives only:
   never pickle, and any other type is an error) or ``exec`` (run assert statements we could not
   rewrite; it can only report that they completed, so they are flagged ``untrusted_asserts``).
   When a child dies or hangs, the unit it was on fails and a fresh child takes the rest. A
   ``stdio`` unit gets a child of its own that runs the program as ``__main__`` on the unit's
   stdin; the parent hashes its stdout.
4. The parent enforces a per-unit deadline, kills the child's session, re-validates what came
   through the result pipe (json, tag by tag), canonicalises it (`canon`) and writes one verdict
   line ``<nonce> <json>`` per unit to the job's real stdout, which no child can reach.

A child that exits before reporting fails the unit it was on (``early_exit``); a unit with no
verdict line fails on the host. The nonce is defense in depth (no child can reach the job's real
stdout). A child does not inherit a copy of it from the sandbox either: the Docker worker zeroes
its buffer of the job's files and stdin before it forks the job (see `rlvr.sandboxes.worker`).

What it does not do: resource isolation (the sandbox's job) or comparing against expected values
(the host's job). It must run on a bare python3 >= 3.8 with only the stdlib.

The shipped program is three files concatenated in this order (`rlvr.verifiers.code.HARNESS_SRC`):
`rlvr.sandboxes._values` (encode/decode/canon/norm_ws/digest), `rlvr.sandboxes._harness_child`
(the children's bodies) and this file (the parent). On the host, the ``if __name__ != "__main__"``
blocks import from the other two what the sandbox gets from the concatenation.

Try it: it is not meant to be run by hand; see `rlvr.verifiers.code`. `canon`, `norm_ws` and
`digest` are imported by the host so both sides share one implementation::

    >>> from rlvr.sandboxes.harness import canon
    >>> canon(2) == canon(2.0), canon(True) == canon(1), canon((1, 2), tuples_as_lists=True) == canon([1, 2])
    (True, False, True)
"""

import json
import math
import os
import random
import select
import signal
import time

BIG = 200  # canonical strings longer than this travel as their sha256 (stdout is capped at 64 KiB)
MAX_RESULT = 8 << 20

if __name__ != "__main__":  # on the host; in the sandbox the other parts are shipped ahead of this file
    from rlvr.sandboxes._harness_child import _child_ref, _child_stdio, _child_tests
    from rlvr.sandboxes._values import canon, decode, digest, norm_ws
    from rlvr.sandboxes._values import encode as encode  # re-exported for the host, as canon etc.


# ---------------------------------------------------------------- the parent (trusted)
def _nondumpable():
    try:
        import ctypes

        return ctypes.CDLL(None).prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE = 4
    except Exception:  # noqa: BLE001 - no ctypes/libc: reported as "dumpable" in the final line
        return False


def _read_nonce():
    import mmap

    mm = mmap.mmap(-1, 4096)
    fd = os.open("rlvr_nonce", os.O_RDONLY)
    n = os.readv(fd, [mm])
    os.close(fd)
    os.unlink("rlvr_nonce")
    return mm, n


class _Out:
    def __init__(self, mm, n):
        self.mm, self.n = mm, n

    def wipe_on_fork(self):
        adv = getattr(__import__("mmap"), "MADV_WIPEONFORK", None)
        if adv is not None:
            try:
                self.mm.madvise(adv)
            except OSError:
                pass

    def emit(self, obj):
        line = (" " + json.dumps(obj, separators=(",", ":")) + "\n").encode()
        os.writev(1, [memoryview(self.mm)[: self.n], line])


def _enter_child(in_r, out_w, err_w, res_w, mem_mb):
    """In a fresh child: new session, pipes on 0/1/2, the result pipe on a random fd (returned),
    every other fd closed, the address-space limit lowered to `mem_mb`."""
    import resource

    os.setsid()
    for src, dst in ((in_r, 0), (out_w, 1), (err_w, 2)):
        os.dup2(src, dst)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    hi = min(soft if soft > 0 else 256, 1024)
    fd = random.SystemRandom().randrange(16, hi) if hi > 17 else 3
    os.dup2(res_w, fd)
    os.closerange(3, fd)
    os.closerange(fd + 1, 65536)
    if mem_mb:
        lim = int(mem_mb) << 20
        cur = resource.getrlimit(resource.RLIMIT_AS)
        if cur[0] < 0 or cur[0] > lim:
            resource.setrlimit(resource.RLIMIT_AS, (lim, cur[1] if 0 <= cur[1] < lim else lim))
    return fd


def _fork(body, stdin_data, timeout, mem_mb, want_out, on_line=None, hard_end=None):
    """Fork a child that runs body(result_fd) in a new session. Each complete line it writes to the
    result pipe goes to on_line(bytes) (return False to stop) and restarts the `timeout` clock.
    Returns the child's wait status, whether it timed out, its stdout (if `want_out`) and stderr tail."""
    (in_r, in_w), (out_r, out_w), (err_r, err_w), (res_r, res_w) = [os.pipe() for _ in range(4)]
    pid = os.fork()
    if pid == 0:
        try:
            body(_enter_child(in_r, out_w, err_w, res_w, mem_mb))
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


def _wait(pid, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return
        time.sleep(0.002)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


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


def _stdio_verdict(i, st):
    text = st["out"].decode("utf-8", "replace")
    v = {"i": i, "out_bytes": st["out_total"], "preview": text[:60]}
    if st["out_over"]:
        v.update(status="output_limit", error=f"stdout over {MAX_RESULT} bytes")
    elif st["timed_out"] or not os.WIFEXITED(st["status"]) or os.WEXITSTATUS(st["status"]):
        status, why = _death(st)
        if status == "early_exit":  # for a script, a non-zero exit code is just a failure
            status, why = "error", "exit code {}".format(os.WEXITSTATUS(st["status"]))
        v.update(status=status, error=why, stderr=st["err"][-300:])
    else:
        v.update(status="ok", raw=digest(text), ws=digest(norm_ws(text)))
    return v


def _unit_verdict(i, unit, msg):
    """The verdict for one message a test child sent (already checked for our token)."""
    v = {"i": i}
    tampered = msg.get("tampered")
    if tampered:
        v["tampered"] = [str(x)[:40] for x in tampered][:10] if type(tampered) is list else ["?"]
    if msg.get("error"):
        err = str(msg["error"])[:300]
        status = "memory" if err.startswith("MemoryError") else "early_exit" if msg.get("exit") else "error"
        v.update(status=status, error=err)
        return v
    if unit["kind"] == "exec":
        v["status"] = "ok" if msg.get("done") is True else "error"
        return v
    try:
        value = decode(msg["value"])
        c = canon(value, unit.get("tl", False))
    except Exception as e:  # noqa: BLE001 - malformed data from the child is its failure
        v.update(status="error", error=f"bad result: {e}")
        return v
    v.update(status="ok", preview=repr(value)[:60])
    if type(value) is bool:
        v["bool"] = value
    if type(value) in (int, float):
        v["num"] = float(value) if math.isfinite(float(value)) else repr(float(value))
    v.update(hash=digest(c)) if len(c) > BIG else v.update(canon=c)
    return v


def _run_tests(job, todo, out, hard_end):
    """Run the non-stdio units `todo` (indices) in as few children as possible: one child runs them
    in order and reports each; when it dies or hangs, the unit it was on fails and a fresh child
    takes the rest. Returns False when stop_on_failure stopped the job."""
    units, pos = job["units"], 0
    while pos < len(todo):
        token = os.urandom(16).hex()
        batch = todo[pos:]
        state = {"k": 0, "failed": False}

        def on_line(line, batch=batch, token=token, state=state):
            try:
                msg = json.loads(line.decode("utf-8"))
                ok = type(msg) is dict and msg.get("token") == token and msg.get("k") == state["k"]
            except ValueError:
                ok = False
            i = batch[state["k"]]
            v = (
                _unit_verdict(i, units[i], msg)
                if ok
                else {"i": i, "status": "error", "error": "malformed report"}
            )
            out.emit(v)
            state["k"] += 1
            state["failed"] = v["status"] != "ok"
            return state["k"] < len(batch) and not (state["failed"] and job.get("stop_on_failure"))

        st = _fork(
            lambda fd, b=batch, t=token: _child_tests(job, [units[i] for i in b], t, fd),
            b"",
            float(job.get("unit_timeout_s", 5)),
            job.get("memory_mb"),
            False,
            on_line,
            hard_end,
        )
        pos += state["k"]
        if st["out_total"] > 65536:  # printed floods are drained; the host flags them
            out.emit({"out_flood": st["out_total"]})
        if state["failed"] and job.get("stop_on_failure"):
            return False
        if pos < len(todo) and state["k"] < len(batch):  # the child ended on unit todo[pos]
            status, why = _death(st)
            out.emit({"i": todo[pos], "status": status, "error": why, "stderr": st["err"][-300:]})
            pos += 1
            if job.get("stop_on_failure") or time.monotonic() >= hard_end:
                return False
    return True


def main():
    """Run every unit of ./rlvr_job.json and print one verdict line per unit (see the docstring)."""
    t0 = time.monotonic()
    dumpable = not _nondumpable()
    with open("rlvr_job.json", encoding="utf-8") as f:
        job = json.load(f)
    os.unlink("rlvr_job.json")
    out = _Out(*_read_nonce())
    for name in job.get("preload", ()):  # stdlib modules the program imports: once here, not per child
        try:
            __import__(name)
        except Exception:  # noqa: BLE001, S110 - the child will raise the same ImportError itself
            pass
    if os.path.exists("rlvr_ref.json"):  # only the reference child reads it: we never hold expected values
        pid = os.fork()
        if pid == 0:
            try:
                with open("rlvr_ref.json", encoding="utf-8") as f:
                    _child_ref(json.load(f), out)
            finally:
                os._exit(0)
        _wait(pid, float(job.get("unit_timeout_s", 5)))
        os.unlink("rlvr_ref.json")
    out.wipe_on_fork()
    hard_end = t0 + float(job.get("budget_s", 60))
    units, todo, go = job["units"], [], True
    for i, unit in enumerate(units + [None]):
        if unit is not None and unit["kind"] != "stdio":
            todo.append(i)
            continue
        if todo and go:
            go = _run_tests(job, todo, out, hard_end)
        todo = []
        if unit is None or not go or time.monotonic() >= hard_end:
            break
        st = _fork(
            lambda fd: _child_stdio(job, fd),
            unit.get("stdin", "").encode(),
            min(float(job.get("unit_timeout_s", 5)), hard_end - time.monotonic()),
            job.get("memory_mb"),
            True,
        )
        v = _stdio_verdict(i, st)
        out.emit(v)
        go = not (job.get("stop_on_failure") and v["status"] != "ok")
    out.emit({"done": True, "dumpable": dumpable, "units": len(units)})
    os._exit(0)  # everything is written (os.writev); skip interpreter teardown
