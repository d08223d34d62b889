"""The children of the grading harness `rlvr.sandboxes.harness`: the program, the test process, stdio.

- The *program child* (`_child_program`) runs the task's definitions and then the program once,
  and serves requests one at a time: call a program function with plain-data arguments, or run
  assert statements that could not be moved out of its reach (``exec``). Every reply is a tagged
  JSON value of builtin primitives (`rlvr.sandboxes._values.encode`), never a live object.
- The *test process* (`_child_tests`) has run no model code and never runs any: it reads the
  nonce and its spec (the task's definitions, the test statements, the expected-value
  expressions) from its pipe, writes the expected values' digests straight to the job's stdout,
  then runs each test statement when the parent asks. The program's functions are proxies there: a call sends
  its arguments to the parent, which relays them to the program child and relays back the value.
  So a test's own helpers, seeds, loops and expected values live in a process the program can
  neither read (non-dumpable) nor write to (no shared fd); the program can only kill it, which
  fails its tests.
- A *stdio child* (`_child_stdio`) runs the program as ``__main__`` on one test's stdin.

Shipped into the sandbox with `rlvr.sandboxes._values` and the harness as one program (see
`rlvr.sandboxes.harness.harness_source`), so it runs on a bare python3 >= 3.8 with only the
stdlib; on the host the `if __name__ != "__main__"` block imports what the other parts define.

What it does not do: enforce deadlines, kill children or write verdicts (the parent's job).

Try it: not by hand; run the code verifier (`rlvr.verifiers.code`), which ships it.
"""

import builtins
import json
import math
import os
import random
import sys

if __name__ != "__main__":  # on the host; in the sandbox `_values` is shipped ahead of this file
    from rlvr.sandboxes._values import canon, decode, digest, encode

_EXEC, _EVAL, _COMPILE = exec, eval, compile  # the program may replace the builtins; we keep these


def _std_streams():
    import io

    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8", errors="replace")
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="replace")
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="replace")
    random.seed()  # every fork would otherwise replay the parent's sequence


def _program(job):
    """The program's source: the file the parent wrote for this completion (or inline)."""
    if "program" in job:
        return job["program"]
    with open(job["program_file"], encoding="utf-8", errors="surrogateescape") as f:
        return f.read()


class _Lines:
    """Newline-delimited JSON over a pair of fds (the child's side of its two pipes)."""

    def __init__(self, rfd, wfd):
        self.rfd, self.wfd, self.buf = rfd, wfd, b""
        self.write, self.read, self.dumps, self.loads = os.write, os.read, json.dumps, json.loads

    def send(self, msg):
        data = (self.dumps(msg, separators=(",", ":")) + "\n").encode()
        while data:
            data = data[self.write(self.wfd, data) :]

    def recv_raw(self):
        while b"\n" not in self.buf:
            chunk = self.read(self.rfd, 1 << 16)
            if not chunk:
                return None
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line

    def recv(self):
        line = self.recv_raw()
        return None if line is None else self.loads(line)


def _child_program(job, rfd, wfd):
    """Body of the program child: task definitions + program once, then serve requests until EOF."""
    snap = dict(builtins.__dict__)
    chan = _Lines(rfd, wfd)
    _std_streams()
    g = {"__name__": "solution", "__builtins__": builtins}
    failed = None
    try:
        if job.get("task_defs"):  # the task's helpers, so a program that omits them still runs
            _EXEC(_COMPILE(job["task_defs"], "task.py", "exec"), g)
        _EXEC(_COMPILE(_program(job), "solution.py", "exec"), g)
        entry = job.get("entry")
        if entry and entry not in g:
            raise NameError(f"entry point {entry!r} is not defined by the program")
    except SystemExit as e:
        failed = {"error": f"SystemExit({e.code!r}) before the tests ran", "exit": True}
    except BaseException as e:  # noqa: BLE001 - the program's exception is every test's outcome
        failed = {"error": f"{type(e).__name__}: {str(e)[:200]}", "etype": type(e).__name__}
    while True:
        req = chan.recv()
        if req is None:
            return
        msg = dict(failed) if failed else _serve(job, g, req)
        try:
            msg["tampered"] = sorted(n for n, val in builtins.__dict__.items() if snap.get(n) is not val)[:20]
        except BaseException:  # noqa: BLE001
            msg["tampered"] = ["<builtins unreadable>"]
        msg["k"] = req.get("k")
        chan.send(msg)


def _serve(job, g, req):
    """One request: ``call`` a program function, or ``exec`` statements next to the program."""
    try:
        if req.get("kind") == "exec":
            env = dict(g)
            for name in req.get("guard", ()):  # asserts run here: values must be plain data
                if callable(env.get(name)):
                    env[name] = _guarded(env[name])
            _EXEC(_COMPILE(req["src"], "test.py", "exec", dont_inherit=True, optimize=0), env)
            return {"done": True}
        name = req.get("name") or job.get("entry")
        fn = g[job.get("entry")] if name == job.get("cand") and job.get("entry") else g[name]
        args, kwargs = decode(req["args"]), decode(req["kwargs"])
        return {"value": encode(fn(*list(args), **dict(kwargs)))}
    except SystemExit as e:
        return {"error": f"SystemExit({e.code!r}) before the test finished", "exit": True}
    except BaseException as e:  # noqa: BLE001 - the program's exception is the test's outcome
        return {"error": f"{type(e).__name__}: {str(e)[:200]}", "etype": type(e).__name__}


def _guarded(fn):
    """`fn`, refusing to return anything but builtin plain data (no custom __eq__ in untrusted asserts)."""

    def guarded(*args, **kwargs):
        value = fn(*args, **kwargs)
        encode(value)
        return value

    return guarded


class _ProgramFailed(BaseException):
    """The program child died or hung during a call: not an Exception, so tests cannot catch it."""


def _raise_for(reply):
    """The exception a proxied call raises in the test process for an error reply."""
    if reply.get("died"):
        raise _ProgramFailed(reply.get("error", "the program died"))
    cls = getattr(builtins, str(reply.get("etype", "")), None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        cls = Exception
    raise cls(str(reply.get("error", "")))


def _proxy(chan, name):
    """A stand-in for the program's function `name` in the test process (plain data both ways)."""

    def call(*args, **kwargs):
        try:
            msg = {"call": name, "args": encode(list(args)), "kwargs": encode(dict(kwargs))}
        except (TypeError, ValueError) as e:
            raise TypeError(f"only plain data crosses to the program: {e}") from None
        chan.send(msg)
        reply = chan.recv()
        if reply is None:
            raise _ProgramFailed("the harness closed the channel")
        if "value" in reply:
            return decode(reply["value"])
        _raise_for(reply)

    call.__name__ = name
    return call


def _child_tests(make_out, rfd, wfd):
    """Body of the test process: read the nonce and its spec from the parent, run the task's
    definitions, write the expected values to the job's stdout, say ready, then run test
    statements on request."""
    chan = _Lines(rfd, wfd)
    nonce, _, raw = (chan.recv_raw() or b"").partition(b" ")
    spec, out = json.loads(raw), make_out(nonce)
    _std_streams()
    g = {"__name__": "rlvr_test", "__builtins__": builtins}
    try:
        _EXEC(_COMPILE(spec.get("setup") or "", "test_setup.py", "exec"), g)
    except BaseException as e:  # noqa: BLE001
        out.emit({"ref_error": f"{type(e).__name__}: {str(e)[:200]}"})
        g = None
    if g is not None:
        for rid, src in spec.get("exprs", ()):
            out.emit(_ref_record(rid, src, g))
    out.close()  # the job's stdout: nothing else here writes to it
    chan.send({"ready": True})
    if g is not None:  # the check's own namespace: its locals never shadow what the helpers see
        g = dict(g)
        for name in spec.get("names", ()):
            g[name] = _proxy(chan, name)
    stmts, pos = spec.get("stmts", []), 0
    while True:
        req = chan.recv()
        if req is None:
            return
        k = req.get("run")
        while pos < len(stmts) and stmts[pos][0] != k:  # statements before this test's, in order
            if stmts[pos][0] is None and g is not None:
                try:
                    _EXEC(_COMPILE(stmts[pos][1], "check.py", "exec"), g)
                except Exception:  # noqa: BLE001, S110 - later tests that need it fail by themselves
                    pass
            pos += 1
        if g is None or pos >= len(stmts):
            chan.send({"end": k, "ok": False, "error": "test setup failed" if g is None else "no such test"})
            continue
        try:
            _EXEC(_COMPILE(stmts[pos][1], "check.py", "exec"), g)
            chan.send({"end": k, "ok": True})
        except _ProgramFailed as e:
            chan.send({"end": k, "ok": False, "error": str(e)[:300], "died": True})
        except BaseException as e:  # noqa: BLE001 - an AssertionError is the usual failure
            chan.send({"end": k, "ok": False, "error": f"{type(e).__name__}: {str(e)[:200]}"})
        pos += 1


def _ref_record(rid, src, g):
    try:
        value = _EVAL(_COMPILE(src, "expected.py", "eval"), g)
        rec = {"ref": rid, "cd": digest(canon(value, False)), "cd_tl": digest(canon(value, True))}
        if type(value) in (int, float):
            rec["num"] = float(value) if math.isfinite(value) else repr(float(value))
        if type(value) in (list, tuple, set, frozenset) and len(value) <= 50:
            rec["members"] = [digest(canon(x, False)) for x in value]
            rec["members_tl"] = [digest(canon(x, True)) for x in value]
    except BaseException as e:  # noqa: BLE001
        rec = {"ref": rid, "error": f"{type(e).__name__}: {str(e)[:200]}"}
    return rec


def _child_stdio(job, fd):
    _std_streams()
    os.close(fd)
    rc = 0
    try:
        _EXEC(
            _COMPILE(_program(job), "solution.py", "exec"),
            {"__name__": "__main__", "__builtins__": builtins},
        )
    except SystemExit as e:
        rc = 0 if e.code is None else e.code if type(e.code) is int else 1
    except BaseException as e:  # noqa: BLE001
        sys.stderr.write(f"{type(e).__name__}: {e}\n")
        rc = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        rc = rc or 1
    os._exit(rc & 0xFF)
