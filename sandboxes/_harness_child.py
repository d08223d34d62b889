"""The untrusted side of the grading harness: the bodies of the children `rlvr.sandboxes.harness` forks.

A test child runs the program (and the test's setup) once, then its units, reporting each over its
result pipe (`_child_tests`); a stdio child runs the program as ``__main__`` (`_child_stdio`); the
reference child, forked before any model code ran, evaluates expected-value expressions
(`_child_ref`). Once the program has run, nothing in a child is trusted: the parent re-validates
every report.

Shipped into the sandbox with `rlvr.sandboxes._values` and the harness as one program (see
`rlvr.verifiers.code.HARNESS_SRC`), so it runs on a bare python3 >= 3.8 with only the stdlib; on
the host the `if __name__ != "__main__"` block imports what the other parts define there.

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


def _child_tests(job, units, token, fd):
    """Body of a test child: run the program (+ setup) once, then each unit, reporting each on `fd`."""
    snap = dict(builtins.__dict__)
    write, dumps = os.write, json.dumps
    _std_streams()

    def report(k, msg):
        try:
            msg["tampered"] = sorted(n for n, val in builtins.__dict__.items() if snap.get(n) is not val)[:20]
        except BaseException:  # noqa: BLE001
            msg["tampered"] = ["<builtins unreadable>"]
        msg["k"], msg["token"] = k, token
        data = (dumps(msg, separators=(",", ":")) + "\n").encode()
        while data:
            data = data[write(fd, data) :]

    g = {"__name__": "solution", "__builtins__": builtins}
    try:
        _EXEC(_COMPILE(job["program"], "solution.py", "exec"), g)
        if job.get("setup"):
            _EXEC(_COMPILE(job["setup"], "test_setup.py", "exec"), g)
        entry = job.get("entry")
        if entry:
            if entry not in g:
                raise NameError(f"entry point {entry!r} is not defined by the program")
            g[job.get("cand") or "candidate"] = g[entry]
    except SystemExit as e:
        for k in range(len(units)):
            report(k, {"error": f"SystemExit({e.code!r}) before the tests ran", "exit": True})
        return
    except BaseException as e:  # noqa: BLE001 - the program's exception is every test's outcome
        for k in range(len(units)):
            report(k, {"error": f"{type(e).__name__}: {str(e)[:200]}"})
        return
    for k, unit in enumerate(units):
        try:
            if unit["kind"] == "exec":
                env = dict(g)
                for name in unit.get("guard", ()):  # asserts run here: values must be plain data
                    if callable(env.get(name)):
                        env[name] = _guarded(env[name])
                _EXEC(_COMPILE(unit["src"], "test.py", "exec", dont_inherit=True, optimize=0), env)
                msg = {"done": True}
            elif "expr" in unit:
                code = _COMPILE(unit["expr"], "test.py", "eval", dont_inherit=True, optimize=0)
                msg = {"value": encode(_EVAL(code, g))}
            else:
                args, kwargs = decode(unit["args"]), decode(unit["kwargs"])
                msg = {"value": encode(g[job["entry"]](*list(args), **dict(kwargs)))}
        except SystemExit as e:
            msg = {"error": f"SystemExit({e.code!r}) before the test finished", "exit": True}
        except BaseException as e:  # noqa: BLE001 - the program's exception is the test's outcome
            msg = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
        report(k, msg)


def _guarded(fn):
    """`fn`, refusing to return anything but builtin plain data (no custom __eq__ in untrusted asserts)."""

    def guarded(*args, **kwargs):
        value = fn(*args, **kwargs)
        encode(value)
        return value

    return guarded


def _child_stdio(job, fd):
    _std_streams()
    os.close(fd)
    rc = 0
    try:
        _EXEC(
            _COMPILE(job["program"], "solution.py", "exec"),
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


def _child_ref(ref, out):
    g = {"__name__": "rlvr_ref", "__builtins__": builtins}
    try:
        _EXEC(_COMPILE(ref.get("setup") or "", "test_setup.py", "exec"), g)
    except BaseException as e:  # noqa: BLE001
        out.emit({"ref_error": f"{type(e).__name__}: {str(e)[:200]}"})
        return
    for rid, src in ref["exprs"]:
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
        out.emit(rec)
