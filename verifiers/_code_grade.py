"""The host side of code grading: reading the harness's verdict lines and comparing them.

`parse_verdicts` groups the lines that carry a job's nonce by completion (a job may grade a batch);
`compare` applies one host check (docs/code_verifier.md) to one verdict; `scan` reads a program's
source once for both its suspicious constructs (`static_suspicion`, an ast scan naming reasons to
log a program as a possible grading hack) and the stdlib modules the harness preloads;
`cached_plan` plans a sample's tests once per distinct tests (GRPO grades G completions of each).

What it does not do: run anything (the sandbox does) or build Scores (`rlvr.verifiers.code`).
Private: use `rlvr.verifiers.code`.

Try it::

    >>> from rlvr.verifiers._code_grade import parse_verdicts
    >>> parse_verdicts('n {"i": 0, "status": "ok", "j": 0}\\nn {"done": true, "j": 0}', "n")[0][2]
    {'done': True, 'j': 0}
"""

from __future__ import annotations

import ast
import functools
import json
import math
import sys
from typing import Any

from rlvr.sandboxes._values import canon, digest, norm_ws
from rlvr.verifiers._code_plan import Plan, plan_tests
from rlvr.verifiers.base import Sample

_NO_PRELOAD = {"antigravity", "this", "idlelib", "tkinter", "turtle"}


def parse_verdicts(stdout: str, nonce: str) -> dict[int, tuple[dict[int, dict], dict[Any, Any], dict | None]]:
    """{completion j: (verdicts by test index, expected-value records, its done line or None)}; the
    first line per test wins. Lines without the nonce (the program's own output) are ignored."""
    out: dict[int, tuple[dict[int, dict], dict[Any, Any], dict | None]] = {}
    prefix = nonce + " "
    for line in stdout.splitlines():
        if not line.startswith(prefix):
            continue
        try:
            obj = json.loads(line[len(prefix) :])
        except ValueError:
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("j", 0), int):
            continue
        j = obj.get("j", 0)
        verdicts, refs, done = out.get(j, ({}, {}, None))
        if obj.get("done") is True:
            done = done or obj
        elif "ref" in obj:
            refs.setdefault(obj["ref"], obj)
        elif "out_flood" in obj:
            refs["out_flood"] = True
        elif "ref_error" in obj:
            refs.setdefault("ref_error", obj["ref_error"])
        elif isinstance(obj.get("i"), int):
            verdicts.setdefault(obj["i"], obj)
        out[j] = (verdicts, refs, done)
    return out


def scan(program: str, prefix: str, stdio_only: bool) -> tuple[list[str], list[str]]:
    """(reasons to flag `program` as suspicious, stdlib modules `prefix + program` imports at top level)."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return [], _imports_of(prefix)
    names = _imports(tree) | set(_imports_of(prefix))
    return static_suspicion(tree, allow_exit=stdio_only), sorted(names & sys.stdlib_module_names - _NO_PRELOAD)


def _imports(tree: ast.Module) -> set[str]:
    names = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    return names | {
        n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module and not n.level
    }


@functools.lru_cache(maxsize=8)
def _imports_of(prefix: str) -> list[str]:
    try:
        return sorted(_imports(ast.parse(prefix)) & sys.stdlib_module_names - _NO_PRELOAD)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []


def cached_plan(sample: Sample) -> Plan:
    """`plan_tests` for the sample, computed once per distinct (tests, metadata) and then shared."""
    try:
        key = json.dumps([sample.tests, sample.metadata.get("stub"), sample.metadata.get("entry_point")], sort_keys=True)
    except (TypeError, ValueError):
        return _finish(plan_tests(sample.tests, sample.metadata))
    return _plan_for(key, sample.metadata.get("id"))


@functools.lru_cache(maxsize=4096)
def _plan_for(key: str, ident: Any) -> Plan:
    tests, stub, entry = json.loads(key)
    meta = {"id": ident, **({"stub": stub} if stub else {}), **({"entry_point": entry} if entry else {})}
    return _finish(plan_tests(tests, meta))


def _finish(plan: Plan) -> Plan:
    """The test process's spec (JSON) and the stdio-only flag, computed once with the plan."""
    plan.stdio_only = all(u["kind"] == "stdio" for u in plan.units)
    if plan.needs_test_process():
        imports = "".join(f"import {m}\n" for m in sorted(plan.imports))
        plan.spec = json.dumps(
            {
                "setup": imports + plan.task_source(),
                "exprs": plan.ref_exprs,
                "stmts": plan.stmts if any(u["kind"] == "test" for u in plan.units) else [],
                "names": sorted(plan.names),
            }
        )
    return plan


def _expected(chk: dict, refs: dict, field: str) -> Any:
    """A check's expected value as field "cd" (digest of its canon), "members" (their digests) or "num":
    from the host-side literal, or from the test process's line."""
    tl = chk.get("tl", False)
    if "ref" not in chk:
        val = chk["expected"]
        if field == "cd":
            return digest(canon(val, tl))
        if field == "members":
            if not isinstance(val, (list, tuple, set, frozenset)):
                raise LookupError("expected value of 'in' is not a container")
            return [digest(canon(x, tl)) for x in val]
        return val
    rec = refs.get(chk["ref"])
    if rec is None or "error" in rec:
        raise LookupError("expected value unavailable: " + str((rec or {}).get("error", "reference not run")))
    key = field + "_tl" if tl and field in ("cd", "members") else field
    if key not in rec:
        raise LookupError(f"expected value has no {field}")
    return rec[key]


def _same(v: dict, exp_digest: str) -> bool:
    if "hash" in v:
        return v["hash"] == exp_digest
    return "canon" in v and digest(v["canon"]) == exp_digest


def compare(v: dict, chk: dict, refs: dict, ws: bool) -> tuple[bool, str | None]:
    if v.get("status") != "ok":
        return False, f"{v.get('status')}: {v.get('error', '')}".strip()
    cmp = chk["cmp"]
    try:
        if cmp == "done":
            return True, None
        if cmp == "test":  # the test process ran the statement; the program was behind proxies
            ok = v.get("bool") is True
            return ok, None if ok else str(v.get("error") or "assertion failed")
        if cmp == "stdout":
            want = digest(norm_ws(chk["expected"])) if ws else digest(chk["expected"])
            return (v.get("ws" if ws else "raw") == want), (
                None if v.get("ws" if ws else "raw") == want else "wrong output"
            )
        if cmp in ("eq", "ne"):
            same = _same(v, _expected(chk, refs, "cd"))
            ok = same if cmp == "eq" else not same
        elif cmp == "in":
            ok = any(_same(v, m) for m in _expected(chk, refs, "members"))
        elif cmp in ("true", "false"):
            ok = v.get("bool") is (cmp == "true")  # type-strict: `assert f(x)` wants True, not 1 or "x"
        elif cmp == "approx":
            got, want = v.get("num"), _expected(chk, refs, "num")
            if not isinstance(got, float) or isinstance(want, bool) or not isinstance(want, (int, float)):
                return False, "not a number"
            diff, tol = abs(got - want), chk["tol"]
            ok = diff < tol if chk["op"] == "lt" else diff <= tol
        elif cmp == "isclose":
            got, want = v.get("num"), _expected(chk, refs, "num")
            ok = isinstance(got, float) and math.isclose(
                got, want, rel_tol=chk["rel_tol"], abs_tol=chk["abs_tol"]
            )
        else:
            return False, f"unknown comparison {cmp!r}"
    except LookupError as e:
        return False, str(e)
    return ok, None if ok else "wrong answer"


# ---------------------------------------------------------------- static suspicion (host side)
_SUSPICIOUS_NAMES = {
    name: why
    for why, names in {
        "touches builtins": "__builtins__ builtins",
        "dynamic import": "__import__",
        "calls exit": "exit quit _exit abort",
        "raises SystemExit": "SystemExit",
        "signals processes": "kill killpg",
        "looks at its parent": "getppid",
        "sys.modules tampering": "modules",
        "frame inspection": "_getframe f_back f_globals f_locals tb_frame gi_frame settrace setprofile inspect",
        "heap inspection": "gc",
        "ctypes": "ctypes",
        "fd tampering": "dup2 fdopen",
        "defines __eq__": "__eq__",
        "defines __ne__": "__ne__",
        "defines __hash__": "__hash__",
        "defines __del__": "__del__",
    }.items()
    for name in names.split()
}
_SUSPICIOUS_STRINGS = ("/proc", "rlvr", "harness", "nonce")


def static_suspicion(program: str | ast.Module, allow_exit: bool = False) -> list[str]:
    """Reasons to log a program (source, or its parsed tree) as a possible grading hack (an ast
    scan; no execution)."""
    try:
        tree = ast.parse(program) if isinstance(program, str) else program
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    found: set[str] = set()
    for n in ast.walk(tree):
        names: list[str] = []
        if isinstance(n, ast.Name):
            names = [n.id]
        elif isinstance(n, ast.Attribute):
            owner = getattr(n.value, "id", "")
            names = [n.attr] if n.attr != "modules" or owner == "sys" else []
            if n.attr == "write" and owner == "os":
                found.add("raw fd writes")
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            names = [a.name.split(".")[0] for a in n.names] + (
                [n.module.split(".")[0]] if getattr(n, "module", None) else []
            )
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("__"):
            names = [n.name]
        elif isinstance(n, ast.Constant) and isinstance(n.value, str):
            found.update(f"mentions {s!r}" for s in _SUSPICIOUS_STRINGS if s in n.value)
        for name in names:
            why = _SUSPICIOUS_NAMES.get(name)
            if why and not (allow_exit and why in ("calls exit", "raises SystemExit")):
                found.add(why)
    return sorted(found)
