"""How `rlvr.verifiers.code` turns ``sample.tests`` into harness units and host checks (no execution).

`plan_tests(tests, metadata)` accepts every schema of docs/code_verifier.md (HumanEval
``check(candidate)``, MBPP assert lists, function-call cases, stdin/stdout cases, APPS JSON) and
returns a `Plan`: the units the sandboxed harness runs and the checks the host applies to their
verdicts. `_Rewriter` turns ``assert <program expr> <op> <expected>`` into a call unit plus a host
check, so literal expected values never enter the sandbox.

What it does not do: run anything, or compare values (`rlvr.verifiers.code` does, on the host).
Private: import the public names from `rlvr.verifiers.code`.

Try it::

    >>> from rlvr.verifiers.code import plan_tests
    >>> p = plan_tests({"entry_point": "f", "cases": [{"args": [1], "expected": 2}]})
    >>> [u["kind"] for u in p.units], [c["cmp"] for c in p.checks]
    (['call'], ['eq'])
"""

from __future__ import annotations

import ast
import builtins
import json
import sys
from dataclasses import dataclass, field
from typing import Any

from rlvr.sandboxes._values import encode
from rlvr.verifiers.base import VerifierError

_BUILTIN_NAMES = frozenset(dir(builtins))


@dataclass
class Plan:
    """What the harness runs (`units`, `setup`, `entry`) and what the host checks (`checks`)."""

    units: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    setup: str = ""
    entry: str | None = None
    cand: str = "candidate"
    helpers: str = ""
    ref_exprs: list[list] = field(default_factory=list)
    stmts: list[list] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    imports: set[str] = field(default_factory=set)
    untrusted: int = 0
    spec: str | None = None  # the test process's file (JSON), set by the verifier's plan cache
    stdio_only: bool = False

    def task_source(self) -> str:
        """The task's own definitions: the helpers it gives the program, then the test's setup."""
        return "\n".join(filter(None, [self.helpers, self.setup]))

    def needs_test_process(self) -> bool:
        return bool(self.ref_exprs) or any(u["kind"] == "test" for u in self.units)

    def add(self, unit: dict, check: dict) -> None:
        self.units.append(unit)
        self.checks.append(check)


def plan_tests(tests: Any, metadata: Any = None) -> Plan:
    """Turn ``sample.tests`` (any schema of docs/code_verifier.md) into harness units and host checks."""
    meta = dict(metadata or {})
    where = f"sample {meta.get('id', '?')!r}: field 'tests'"
    if isinstance(tests, str) and tests.lstrip()[:1] in ("[", "{"):  # JSON as stored by APPS and co.
        try:
            tests = json.loads(tests)
        except ValueError as e:
            raise VerifierError(f"{where}: looks like JSON but does not parse: {e}") from e
    if isinstance(tests, str):
        tests = {"test": tests}
    elif isinstance(tests, list) and tests and all(isinstance(t, str) for t in tests):
        tests = {"asserts": tests}
    elif isinstance(tests, list) and tests and all(isinstance(t, dict) for t in tests):
        tests = {"stdio": tests}
    if not isinstance(tests, dict):
        raise VerifierError(
            f"{where}: expected a dict, a list of assert strings or of stdin/stdout dicts, "
            f"or test source; got {type(tests).__name__}"
        )
    plan = Plan(
        setup=str(tests.get("setup") or tests.get("test_setup_code") or ""),
        entry=tests.get("entry_point") or tests.get("fn_name") or meta.get("entry_point"),
    )
    plan.helpers = task_helpers(str(tests.get("helpers") or meta.get("stub") or ""), plan.entry)
    if "cases" in tests:
        _plan_cases(plan, tests["cases"], tests.get("tuples_as_lists", True), where)
    elif "stdio" in tests or "inputs" in tests:
        rows = tests.get("stdio") or [
            {"stdin": i, "stdout": o} for i, o in zip(tests.get("inputs") or [], tests.get("outputs") or [])
        ]
        if "inputs" in tests and plan.entry:  # APPS call-based: inputs are argument lists
            _plan_cases(plan, [{"args": r["stdin"], "expected": r["stdout"]} for r in rows], True, where)
        else:
            _plan_stdio(plan, rows, where)
    elif "test" in tests or "check" in tests:
        _plan_source(plan, str(tests.get("test") or tests.get("check")), where)
    elif "asserts" in tests or "test_list" in tests:
        _plan_asserts(plan, tests.get("asserts") or tests.get("test_list"), where)
    else:
        raise VerifierError(
            f"{where}: needs one of 'cases', 'stdio', 'inputs'/'outputs', 'test', 'asserts'; "
            f"got keys {sorted(tests)}"
        )
    return plan


def task_helpers(src: str, entry: str | None) -> str:
    """The definitions a prompt gives the program (HumanEval's stub: imports, helper functions,
    constants), without the function the program must write; "" when `src` does not parse."""
    if not src.strip():
        return ""
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return ""
    keep = [
        st
        for st in tree.body
        if not (isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and st.name in (entry, "check"))
        and not (isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant))
    ]
    return ast.unparse(ast.Module(keep, [])) if keep else ""


def _plan_cases(plan: Plan, cases: Any, tl: bool, where: str) -> None:
    if not plan.entry:
        raise VerifierError(f"{where}: function-call cases need 'entry_point'")
    if not isinstance(cases, list):
        raise VerifierError(f"{where}.cases: expected a list of {{args, kwargs, expected}}")
    for k, c in enumerate(cases):
        if (
            not isinstance(c, dict)
            or "expected" not in c
            or not isinstance(c.get("args", []), list)
            or not isinstance(c.get("kwargs", {}), dict)
        ):
            raise VerifierError(f"{where}.cases[{k}]: needs 'expected', a list 'args' and a dict 'kwargs'")
        args, kwargs = c.get("args", []), c.get("kwargs", {})
        plan.add(
            {"kind": "call", "name": plan.entry, "args": encode(args), "kwargs": encode(kwargs), "tl": tl},
            {"cmp": "eq", "expected": c["expected"], "tl": tl, "label": f"{plan.entry}(*{args!r})"[:160], "where": "host"},
        )


def _plan_stdio(plan: Plan, rows: Any, where: str) -> None:
    for k, r in enumerate(rows if isinstance(rows, list) else [None]):
        src = r if isinstance(r, dict) else {}
        stdin, stdout = src.get("stdin", src.get("input")), src.get("stdout", src.get("output"))
        if not isinstance(stdin, str) or not isinstance(stdout, str):
            raise VerifierError(f"{where}.stdio[{k}]: needs string 'stdin' and 'stdout'")
        plan.add(
            {"kind": "stdio", "stdin": stdin},
            {"cmp": "stdout", "expected": stdout, "label": f"stdin #{k}", "where": "host"},
        )


def _parse_src(src: str, where: str) -> ast.Module:
    try:
        return ast.parse(src)
    except SyntaxError as e:
        raise VerifierError(f"{where}: test code line {e.lineno}: {e.msg}") from e


def _defined(stmts: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for st in stmts:
        for n in ast.walk(st):
            if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
                names.add(n.id)
            elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(n.name)
            elif isinstance(n, (ast.Import, ast.ImportFrom)):
                names.update((a.asname or a.name).split(".")[0] for a in n.names)
            elif isinstance(n, ast.arg):
                names.add(n.arg)
    return names


def _plan_source(plan: Plan, src: str, where: str) -> None:
    """HumanEval: module-level code is setup; each top-level statement of ``check(candidate)`` that
    uses the program is one test (see `_Splitter`)."""
    tree = _parse_src(src, where)
    check = next((s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == "check"), None)
    if check is None:  # a flat list of top-level asserts
        setup = [s for s in tree.body if not isinstance(s, ast.Assert)]
        plan.setup = "\n".join(filter(None, [plan.setup, ast.unparse(ast.Module(setup, []))]))
        _plan_asserts(plan, [ast.unparse(s) for s in tree.body if isinstance(s, ast.Assert)], where)
        return
    if not plan.entry:
        raise VerifierError(f"{where}: a check(candidate) test needs 'entry_point'")
    rest = [
        s
        for s in tree.body
        if s is not check
        and not (
            isinstance(s, ast.Expr)
            and isinstance(s.value, ast.Call)
            and getattr(s.value.func, "id", None) == "check"
        )
    ]
    plan.setup = "\n".join(filter(None, [plan.setup, ast.unparse(ast.Module(rest, []))]))
    plan.cand = check.args.args[0].arg if check.args.args else "candidate"
    sp = _Splitter(plan, _defined(_parse_src(plan.task_source(), where).body), _defined(check.body) - {plan.cand})
    for st in check.body:
        sp.add(st, ast.unparse(st))


def _plan_asserts(plan: Plan, asserts: Any, where: str) -> None:
    """MBPP: a list of assert statements, each one test."""
    if not isinstance(asserts, list) or not all(isinstance(a, str) for a in asserts):
        raise VerifierError(f"{where}.asserts: expected a list of assert strings")
    sp = _Splitter(plan, _defined(_parse_src(plan.task_source(), where).body), set())
    for k, a in enumerate(asserts):
        body = _parse_src(a, f"{where}.asserts[{k}]").body
        if len(body) == 1:
            sp.add(body[0], a, always_test=True)
        else:
            sp.add(ast.If(test=ast.Constant(True), body=body, orelse=[]), a, label=a)


class _Splitter:
    """Decides, per top-level test statement, where it runs (module docstring of `rlvr.verifiers.code`):

    - ``call``: ``assert prog(<literals>) <op> <expected>``: the program child computes the value,
      the host compares it with the literal or with the test process's digest of the expression;
    - ``test``: any other statement that uses the program only by calling its functions: the test
      process runs it, with the program behind proxies (plain data both ways);
    - ``exec``: a statement that needs the program's objects themselves (an attribute of a program
      name, a program call's result passed to another program call): it runs next to the program,
      flagged per test and counted in ``untrusted_asserts``;
    - a statement that does not use the program is replayed in the test process before the next test.
    """

    def __init__(self, plan: Plan, task_names: set[str], local_names: set[str]):
        self.plan, self.known, self.local = plan, task_names | _BUILTIN_NAMES, local_names
        self.before: list[str] = []  # statements without the program since the start

    def program_names(self, node: ast.AST) -> set[str]:
        """Names the program defines: not the task's, the check's own locals, builtins or stdlib
        modules (those the test process imports itself)."""
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        mine = (self.plan.cand, self.plan.entry)
        out = {n for n in names if n in mine or n not in self.known and n not in self.local}
        mods = {n for n in out if n in sys.stdlib_module_names and n not in mine}
        self.plan.imports.update(mods)
        return out - mods

    def add(self, st: ast.stmt, src: str, label: str | None = None, always_test: bool = False) -> None:
        label = (label or src)[:160]
        self.local |= _defined([st]) - {self.plan.cand}  # its loop variables, comprehension targets...
        prog = self.program_names(st)
        if not prog and not (always_test and isinstance(st, ast.Assert)):
            self.before.append(src)
            self.plan.stmts.append([None, src])
            return
        if not prog:  # an MBPP assert on names we cannot tell apart (a program function called `sum`)
            self._next_to_program(src, label, {n.func.id for n in ast.walk(st) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)})
            return
        if isinstance(st, ast.Assert) and self.rewrite(st, label):
            return
        if self.isolatable(st, prog):
            self.plan.names.update(prog)
            self.plan.stmts.append([len(self.plan.units), src])
            self.plan.add({"kind": "test"}, {"cmp": "test", "label": label, "where": "test_process"})
            return
        self._next_to_program(src, label, prog)

    def _next_to_program(self, src: str, label: str, guard: set[str]) -> None:
        body = "\n".join(self.before + [src])
        fn = f"def __rlvr_check({self.plan.cand}):\n" + "\n".join("    " + ln for ln in body.splitlines())
        self.plan.add(
            {"kind": "exec", "src": f"{fn}\n__rlvr_check({self.plan.entry or None})\n", "guard": sorted(guard)},
            {"cmp": "done", "label": label, "where": "next_to_program"},
        )
        self.plan.untrusted += 1

    def isolatable(self, st: ast.stmt, prog: set[str]) -> bool:
        """Every use of a program name is a call whose result is plain data to the test: not an
        attribute base, not an argument of another program call, never assigned."""
        parents = {c: p for p in ast.walk(st) for c in ast.iter_child_nodes(p)}
        for n in ast.walk(st):
            if not (isinstance(n, ast.Name) and n.id in prog):
                continue
            call = parents.get(n)
            if not isinstance(n.ctx, ast.Load) or not (isinstance(call, ast.Call) and call.func is n):
                return False
            up = parents.get(call)
            if isinstance(up, ast.Attribute):
                return False
            while up is not None:
                if isinstance(up, ast.Call) and up is not call and self.program_names(up.func) & prog:
                    return False
                up = parents.get(up)
        return True

    def literal_call(self, node: ast.AST) -> tuple[str, Any, Any] | None:
        """(name, args, kwargs) when `node` is ``prog(<literals>)``."""
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
            return None
        if not self.program_names(node.func) or any(isinstance(a, ast.Starred) for a in node.args):
            return None
        if any(k.arg is None for k in node.keywords):
            return None
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None
        return node.func.id, args, kwargs

    def host(self, node: ast.AST) -> bool:
        names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        return names <= self.known and self.plan.cand not in names and not names & self.local

    def _exp(self, node: ast.AST, check: dict) -> dict:
        try:
            check["expected"] = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            check["ref"] = len(self.plan.ref_exprs)
            self.plan.ref_exprs.append([check["ref"], ast.unparse(node)])
        return check

    def _emit(self, actual: ast.AST, check: dict, label: str) -> bool:
        name, args, kwargs = self.literal_call(actual)  # type: ignore[misc]
        try:
            unit = {"kind": "call", "name": name, "args": encode(args), "kwargs": encode(kwargs), "tl": False}
        except (TypeError, ValueError):
            return False
        check.update(label=label, where="host")
        self.plan.add(unit, check)
        return True

    def rewrite(self, node: ast.Assert, label: str) -> bool:
        t, call = node.test, self.literal_call
        if isinstance(t, ast.Compare) and len(t.ops) == 1:
            op, left, right = t.ops[0], t.left, t.comparators[0]
            if isinstance(op, ast.In) and call(left) and self.host(right):
                return self._emit(left, self._exp(right, {"cmp": "in"}), label)
            singleton = (ast.Is, ast.IsNot)
            for a, e in ((left, right), (right, left)):
                if not (call(a) and self.host(e)):
                    continue
                if isinstance(op, (ast.Eq, ast.NotEq)) or (
                    isinstance(op, singleton) and isinstance(e, ast.Constant) and e.value in (None, True, False)
                ):
                    cmp = "eq" if isinstance(op, (ast.Eq, ast.Is)) else "ne"
                    return self._emit(a, self._exp(e, {"cmp": cmp}), label)
            return self._approx(op, left, right, label)
        if (
            isinstance(t, ast.Call)
            and (getattr(t.func, "id", "") == "isclose" or getattr(t.func, "attr", "") == "isclose")
            and len(t.args) == 2
        ):
            kw = {k.arg: k.value for k in t.keywords}
            if set(kw) <= {"rel_tol", "abs_tol"} and all(isinstance(v, ast.Constant) for v in kw.values()):
                tol = {"rel_tol": 1e-9, "abs_tol": 0.0, **{k: v.value for k, v in kw.items()}}
                for a, e in ((t.args[0], t.args[1]), (t.args[1], t.args[0])):
                    if call(a) and self.host(e):
                        return self._emit(a, self._exp(e, {"cmp": "isclose", **tol}), label)
            return False
        if isinstance(t, ast.UnaryOp) and isinstance(t.op, ast.Not) and call(t.operand):
            return self._emit(t.operand, {"cmp": "false"}, label)
        if call(t):
            return self._emit(t, {"cmp": "true"}, label)
        return False

    def _approx(self, op: ast.cmpop, left: ast.AST, right: ast.AST, label: str) -> bool:
        """``abs(prog(...) - expected) < tol`` (either order inside abs)."""
        if not (
            isinstance(op, (ast.Lt, ast.LtE))
            and isinstance(left, ast.Call)
            and getattr(left.func, "id", "") == "abs"
            and len(left.args) == 1
            and isinstance(left.args[0], ast.BinOp)
            and isinstance(left.args[0].op, ast.Sub)
            and isinstance(right, ast.Constant)
            and type(right.value) in (int, float)
        ):
            return False
        x, y = left.args[0].left, left.args[0].right
        for a, e in ((x, y), (y, x)):
            if self.literal_call(a) and self.host(e):
                chk = {"cmp": "approx", "tol": right.value, "op": "lt" if isinstance(op, ast.Lt) else "le"}
                return self._emit(a, self._exp(e, chk), label)
        return False
