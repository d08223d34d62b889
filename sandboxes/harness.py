"""The trusted grading harness: the program `rlvr.verifiers.code` runs inside a sandbox.

The host ships `harness_source()` (this file after three helper modules, see below) as the job's
code, with files in the job's scratch dir: ``rlvr_job.json`` (how many completions, options),
``rlvr_nonce`` (a random per-job token) and per completion j ``rlvr_sub_<j>.json`` (the inputs of
the tests that call the program directly, the task's definitions), ``rlvr_prog_<j>`` (its
program) and, when its tests compute something, ``rlvr_tests_<j>.json`` (the task's definitions,
the test statements and the expected-value expressions). Expected values that are literals never
enter the sandbox: the host compares.

What runs where (the parent is ours; no model-written code ever runs in it):

1. The parent makes itself non-dumpable (no ptrace, no /proc/<pid>/fd or /mem from the children),
   reads and unlinks every file before it forks anything. The nonce, the programs and the tests
   files go into private mappings that forks see as zeros (MADV_WIPEONFORK, else not at all),
   never onto the Python heap, so no child finds another completion's program or any test in its
   memory, live or freed. Completion j's program is written to the scratch dir just before its
   turn.
2. For each completion, in order: if it has a tests file, the *test process* is forked (it has
   run no model code and never will) and handed the nonce and its spec through its pipe; it runs
   the task's definitions in its own namespace, writes the expected values' digests straight to
   the job's stdout and then runs each test statement on request
   (`rlvr.sandboxes._harness_child`). Its calls to the program's functions come to the parent,
   which relays them to the program child and relays the reply back.
3. The *program child* runs in a new session (stdin empty, stdout and stderr pipes, every other fd
   closed except its two request/reply pipes at random fd numbers): the task's definitions, then
   the program, once; then it serves one request at a time. When it dies or hangs, the test it
   was on fails and the next request gets a fresh one. A ``stdio`` test gets a child of its own
   that runs the program as ``__main__`` on the test's stdin (a compiled language: the binary the
   parent compiled once for the completion); the parent hashes its stdout.
4. The parent enforces a per-test deadline, kills the children's sessions, re-validates what came
   back (json, tag by tag), canonicalises it (`canon`) and writes one verdict line
   ``<nonce> <json>`` per test (tagged with the completion's index) to the job's real stdout,
   which no child but the test process (a trusted one, before it runs any statement) can reach.
5. Between two completions of a batch (only when the host asks: in a container, where every
   process but PID 1 is the job's) it kills every other process (``kill(-1)``) and empties the
   scratch dirs, so one program cannot reach the next.

A test without a verdict line fails on the host. Three kinds of test, by where the verdict is
decided (the host reports it per test): ``call`` (a program function on literal arguments; the
host compares the value with the literal or with the test process's digest), ``test`` (a
statement the test process ran, with the program only behind proxies: its outcome is the
verdict) and ``exec`` (statements that could not be split: they run next to the program and are
flagged ``untrusted_asserts``).

What it does not do: resource isolation (the sandbox's job) or comparing against expected values
(the host's job). It must run on a bare python3 >= 3.8 with only the stdlib.

The shipped program is four files concatenated in this order (`harness_source`):
`rlvr.sandboxes._values` (encode/decode/canon/norm_ws/digest), `rlvr.sandboxes._harness_child`
(the children's bodies), `rlvr.sandboxes._harness_proc` (forks and pipes) and this file (the
parent). On the host, the ``if __name__ != "__main__"`` blocks import from the others what the
sandbox gets from the concatenation.

Try it: it is not meant to be run by hand; see `rlvr.verifiers.code`. `canon`, `norm_ws` and
`digest` are imported by the host so both sides share one implementation::

    >>> from rlvr.sandboxes.harness import canon
    >>> canon(2) == canon(2.0), canon(True) == canon(1), canon((1, 2), tuples_as_lists=True) == canon([1, 2])
    (True, False, True)
"""

import json
import math
import os
import resource
import time

BIG = 200  # canonical strings longer than this travel as their sha256 (stdout is capped at 64 KiB)

if __name__ != "__main__":  # on the host; in the sandbox the other parts are shipped ahead of this file
    from rlvr.sandboxes._harness_child import _child_program, _child_stdio, _child_tests
    from rlvr.sandboxes._harness_proc import (
        MAX_RESULT,
        _compile,
        _death,
        _exec_sh,
        _fork,
        _Proc,
        _sweep,
        _write_all,
    )
    from rlvr.sandboxes._values import canon, decode, digest, norm_ws
    from rlvr.sandboxes._values import encode as encode  # re-exported for the host, as canon etc.


def harness_source():
    """The program a grading job runs: `_values`, `_harness_child` and this file, then ``main()``."""
    from pathlib import Path

    here = Path(__file__).parent
    parts = [here / "_values.py", here / "_harness_child.py", here / "_harness_proc.py", Path(__file__)]
    return "\n".join(p.read_text(encoding="utf-8") for p in parts) + "\nmain()\n"


# ---------------------------------------------------------------- the parent (trusted)
def _nondumpable():
    try:
        import ctypes

        return ctypes.CDLL(None).prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE = 4
    except Exception:  # noqa: BLE001 - no ctypes/libc: reported as "dumpable" in the final line
        return False


def _read_nonce():
    import mmap

    mm = mmap.mmap(-1, 4096, flags=mmap.MAP_PRIVATE)  # private: MADV_WIPEONFORK applies
    fd = os.open("rlvr_nonce", os.O_RDONLY)
    n = os.readv(fd, [mm])
    os.close(fd)
    os.unlink("rlvr_nonce")
    return mm, n


class _Out:
    """Verdict lines ``<nonce> <json>`` on the job's stdout; `j` (a batch's completion) tags each."""

    def __init__(self, mm, n, fd=1, j=None):
        self.mm, self.n, self.fd, self.j = mm, n, fd, j

    def tagged(self, j):
        return _Out(self.mm, self.n, self.fd, j)

    def emit(self, obj):
        if self.j is not None:
            obj["j"] = self.j
        line = (" " + json.dumps(obj, separators=(",", ":")) + "\n").encode()
        os.writev(self.fd, [memoryview(self.mm)[: self.n], line])

    def close(self):
        self.mm[: self.n] = bytes(self.n)
        os.close(self.fd)


def _wipe_on_fork(mm):
    """Forks see this mapping as zeros (MADV_WIPEONFORK, Linux >= 4.14) or not at all (DONTFORK)."""
    import mmap

    for adv in ("MADV_WIPEONFORK", "MADV_DONTFORK"):
        try:
            mm.madvise(getattr(mmap, adv))
            return
        except (AttributeError, OSError):
            continue


def _read_files(pattern, count):
    """Each completion's file `pattern` % j into one private mapping that forks see as zeros (never
    a Python object: no child of ours finds a copy); files unlinked. (mapping, {j: (offset, size)})."""
    import mmap

    paths = {j: pattern % j for j in range(count) if os.path.exists(pattern % j)}
    sizes = {j: os.path.getsize(p) for j, p in paths.items()}
    mm = mmap.mmap(-1, max(1, sum(sizes.values())), flags=mmap.MAP_PRIVATE)
    _wipe_on_fork(mm)
    where, off = {}, 0
    for j, p in paths.items():
        fd = os.open(p, os.O_RDONLY)
        got = os.readv(fd, [memoryview(mm)[off : off + sizes[j]]])
        os.close(fd)
        os.unlink(p)
        where[j], off = (off, got), off + sizes[j]
    return mm, where


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
    """The verdict for one reply of the program child (its `k` already checked)."""
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


class _Run:
    """The parent's state for one job: the test process, the current program child, the clock."""

    def __init__(self, job, out, hard_end):
        self.job, self.out, self.hard_end = job, out, hard_end
        self.t = float(job.get("unit_timeout_s", 5))
        self.tests = self.prog = None
        self.flood = self.forks = 0
        self.setup_s = 0.0

    def deadline(self):
        return min(time.monotonic() + self.t, self.hard_end)

    def program(self, req):
        """Send `req` to the program child (a fresh one when there is none); (reply, None), or
        (None, death) when it dies, hangs or answers out of turn (it is then killed)."""
        if self.prog is None:
            self.forks += 1
            self.prog = _Proc(lambda r, w: _child_program(self.job, r, w), self.job.get("memory_mb"))
        p = self.prog
        msg = p.recv(self.deadline()) if p.send(req) else None
        if msg is not None and msg.get("k") == req["k"]:
            return msg, None
        status, why = p.finish()
        if msg is not None:
            status, why = "error", "malformed reply"
        self.flood, self.prog = max(self.flood, p.out_total), None
        return None, {"status": status, "error": why, "stderr": p.stderr}

    def close(self):
        for p in (self.prog, self.tests):
            if p is not None:
                p.finish()
                self.flood = max(self.flood, p.out_total)
        self.prog = self.tests = None

    def direct(self, i, unit):
        """A ``call`` or ``exec`` test: the program child alone."""
        msg, dead = self.program(dict(unit, k=i))
        return dict(dead, i=i) if dead else _unit_verdict(i, unit, msg)

    def relayed(self, i):
        """A ``test`` statement: the test process runs it; its calls to the program go through here."""
        tp, died, tampered = self.tests, None, set()
        if tp is None or not tp.send({"run": i}):
            return {"i": i, "status": "error", "error": "the test process is not running"}
        while True:
            msg = tp.recv(self.deadline())
            if msg is None or ("call" not in msg and msg.get("end") != i):
                status, why = tp.finish()
                self.tests = None
                return {"i": i, "status": status if msg is None else "error", "error": "test process: " + why}
            if "call" not in msg:
                break
            req = {"k": i, "kind": "call", "name": str(msg["call"]), "args": msg.get("args"), "kwargs": msg.get("kwargs")}
            reply, dead = self.program(req)
            if reply is not None and (reply.get("exit") or str(reply.get("error", "")).startswith("MemoryError")):
                dead = {"status": "early_exit" if reply.get("exit") else "memory", "error": reply["error"]}
            if reply is not None and type(reply.get("tampered")) is list:
                tampered.update(str(x)[:40] for x in reply["tampered"][:10])
            if dead:
                died = died or dead
                tp.send({"died": True, "error": dead["error"]})
            elif "value" in reply:
                try:
                    decode(reply["value"])  # validated here too: only plain data reaches the tests
                    tp.send({"value": reply["value"]})
                except Exception as e:  # noqa: BLE001
                    tp.send({"error": f"bad result: {e}", "etype": "TypeError"})
            else:
                tp.send({"error": str(reply.get("error", ""))[:300], "etype": str(reply.get("etype", ""))})
        v = {"i": i, "status": "ok", "bool": msg.get("ok") is True}
        if msg.get("ok") is not True:
            v["error"] = str(msg.get("error", ""))[:300]
        if died:  # whatever the statement made of it, a test during which the program died fails
            v.update(status=died["status"], error=died["error"])
        if tampered:
            v["tampered"] = sorted(tampered)[:10]
        return v

    def start_tests(self, specs, off, size):
        """Fork the test process (it has run no model code, and never will), hand it the nonce and
        its spec through its pipe, then wait until it has written the expected values."""
        real = os.dup(1)
        self.forks += 1
        j = self.out.j
        tp = _Proc(
            lambda r, w, o: _child_tests(lambda nonce: _Out(bytearray(nonce), len(nonce), o, j), r, w),
            self.job.get("memory_mb"),
            [real],
        )
        os.close(real)
        try:
            _write_all(tp.w, memoryview(self.out.mm)[: self.out.n])
            _write_all(tp.w, b" ")
            _write_all(tp.w, memoryview(specs)[off : off + size])
            _write_all(tp.w, b"\n")
        except OSError:
            pass
        specs[off : off + size] = bytes(size)
        msg = tp.recv(self.deadline())
        if msg is None or msg.get("ready") is not True:
            tp.finish()
            self.out.emit({"ref_error": "the test process did not start"})
            return
        self.tests = tp


def _stdio(run, i, unit):
    native = run.job.get("native")
    st = _fork(
        (lambda fd: _exec_sh("exec " + native["run"], fd)) if native else (lambda fd: _child_stdio(run.job, fd)),
        unit.get("stdin", "").encode(),
        min(run.t, run.hard_end - time.monotonic()),
        run.job.get("memory_mb"),
        True,
    )
    return _stdio_verdict(i, st)


def _grade_one(sub, out, specs, where, dumpable):
    """All tests of one completion (one entry of the job's batch); ends with its ``done`` line."""
    t0 = time.monotonic()
    r0 = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    run = _Run(sub, out, t0 + float(sub.get("budget_s", 60)))
    if out.j in where:
        run.start_tests(specs, *where[out.j])
    broken = _compile(sub, run.hard_end) if sub.get("native") else None
    run.compiles = 1 if sub.get("native") else 0
    run.setup_s = time.monotonic() - t0
    units = sub["units"]
    for i, unit in enumerate(units):
        if broken:
            out.emit({"i": i, "status": "error", "error": broken})
            continue
        if time.monotonic() >= run.hard_end:
            break
        kind = unit["kind"]
        v = _stdio(run, i, unit) if kind == "stdio" else run.relayed(i) if kind == "test" else run.direct(i, unit)
        out.emit(v)
        failed = v["status"] != "ok" or (kind == "test" and v.get("bool") is not True)
        if failed and sub.get("stop_on_failure"):
            break
    run.close()
    if run.flood > 65536:  # printed floods are drained; the host flags them
        out.emit({"out_flood": run.flood})
    r1 = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    me, kids = [a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(r1, r0)]
    cpu = {"parent": round(me, 5), "children": round(kids, 5), "setup_wall": round(run.setup_s, 5), "forks": run.forks}
    cpu["compiles"] = run.compiles
    out.emit({"done": True, "dumpable": dumpable, "units": len(units), "wall": round(time.monotonic() - t0, 5), "cpu": cpu})


def _place_program(j, progs, source):
    """Write completion j's program from our private mapping to `source` in the scratch dir (never a
    Python object here: no later child finds a sibling's program in memory)."""
    mm, at = progs
    off, size = at.get(j, (0, 0))
    fd = os.open(source, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        _write_all(fd, memoryview(mm)[off : off + size])
    finally:
        os.close(fd)
    mm[off : off + size] = bytes(size)


def main():
    """Grade every completion of the job, one verdict line per test (see the docstring)."""
    dumpable = not _nondumpable()
    with open("rlvr_job.json", encoding="utf-8") as f:
        job = json.load(f)  # the batch's size and options only: no program, no test
    os.unlink("rlvr_job.json")
    mm, n = _read_nonce()
    _wipe_on_fork(mm)
    out = _Out(mm, n)
    count = job["count"]
    subs, progs, specs = (_read_files(p, count) for p in ("rlvr_sub_%d.json", "rlvr_prog_%d", "rlvr_tests_%d.json"))
    for name in job.get("preload", ()):  # stdlib modules the programs import: once here, not per child
        try:
            __import__(name)
        except Exception:  # noqa: BLE001, S110 - the child will raise the same ImportError itself
            pass
    for j in range(count):
        if j and job.get("sweep"):
            _sweep()
        off, size = subs[1][j]
        sub = json.loads(bytes(subs[0][off : off + size]))  # inputs and task definitions: no secret
        sub["program_file"] = (sub.get("native") or {}).get("source") or "solution.py"
        _place_program(j, progs, sub["program_file"])
        _grade_one(sub, out.tagged(j), specs[0], specs[1], dumpable)
    os._exit(0)  # everything is written (os.writev); skip interpreter teardown
