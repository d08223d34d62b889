"""The code verifier: run the model's program against unit tests in a sandbox, with trusted grading.

``get_verifier("code", sandbox="auto", reward="fraction", timeout_s=10, test_timeout_s=4, ...)``
extracts the program (the last fenced block of the task's language, or a configured regex), turns
``sample.tests`` into test units (schemas in docs/code_verifier.md: HumanEval ``check(candidate)``,
MBPP assert lists, function-call cases, stdin/stdout cases), runs `rlvr.sandboxes.harness` in the
sandbox and compares on the host. Expected values that are literals never enter the sandbox; the
harness sends back plain-data values over a channel the program cannot reach, the comparison is
type-strict (`rlvr.sandboxes.harness.canon`), and a test without a verdict fails.

What it does not do: isolate anything itself (that is the sandbox's job), or make asserts it cannot
rewrite trustworthy: those run next to the program and are flagged ``untrusted_asserts``.
Concurrency: one call runs one sandbox job; `score_many` hands a batch to the pool's `run_many`,
which is the right way to use a Docker pool from one process. The verifier pickles without its
pool (workers recreate a shared one lazily).

Try it::

    >>> from rlvr.verifiers import Sample, get_verifier
    >>> v = get_verifier("code", sandbox="local")                      # doctest: +SKIP
    >>> s = Sample(tests={"entry_point": "add", "cases": [{"args": [1, 2], "expected": 3}]})
    >>> v("```python\\ndef add(a, b):\\n    return a + b\\n```", s).reward  # doctest: +SKIP
    1.0
"""

from __future__ import annotations

import ast
import atexit
import builtins
import json
import logging
import os
import re
import secrets
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rlvr.sandboxes.harness as _harness
from rlvr.sandboxes.base import DEFAULT_OUTPUT_CAP, Job, Sandbox
from rlvr.sandboxes.harness import canon, digest, encode, norm_ws
from rlvr.verifiers.base import Sample, Score, VerifierError, register_verifier

__all__ = ["CodeVerifier", "extract_code", "shared_sandbox"]

log = logging.getLogger("rlvr.verifiers.code")

HARNESS_SRC = Path(_harness.__file__).read_text(encoding="utf-8")  # shipped as each job's code
_LANG_TAGS = {"python": ("python", "py", "python3", "")}
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)

_SHARED: dict[tuple[str, int], Sandbox] = {}
_SHARED_LOCK = threading.Lock()


def extract_code(completion: str, language: str = "python", pattern: str | None = None) -> str | None:
    """The last fenced block tagged with `language` (or untagged); with `pattern`, its last match
    (group 1 if it has groups). None when there is no code.

    >>> extract_code("text\\n```python\\nx = 1\\n```\\nmore\\n```py\\nx = 2\\n```")
    'x = 2\\n'
    """
    if pattern is not None:
        ms = list(re.finditer(pattern, completion, re.DOTALL))
        if not ms:
            return None
        m = ms[-1]
        return m.group(1) if m.groups() else m.group(0)
    tags = _LANG_TAGS.get(language, (language, ""))
    blocks = [body for tag, body in _FENCE.findall(completion) if tag.lower() in tags]
    code = blocks[-1] if blocks else None
    return code if code and code.strip() else None


def shared_sandbox(kind: str = "auto") -> Sandbox:
    """This process's shared pool: Docker when `kind` is "docker" (or "auto" and Docker works), else
    a LocalSandbox (which warns loudly). Created on first use, closed at exit."""
    if kind not in ("auto", "docker", "local"):
        raise VerifierError(
            f"code verifier: sandbox must be 'auto', 'docker', 'local' or a Sandbox; got {kind!r}"
        )
    key = (kind, os.getpid())
    with _SHARED_LOCK:
        if key not in _SHARED:
            sb = None
            if kind in ("auto", "docker"):
                try:
                    from rlvr.sandboxes.docker import DockerSandbox

                    sb = DockerSandbox()
                except Exception as e:
                    if kind == "docker":
                        raise
                    log.warning(
                        "code verifier: Docker sandbox unavailable (%s: %s); using LocalSandbox",
                        type(e).__name__,
                        e,
                    )
            if sb is None:
                from rlvr.sandboxes.local import LocalSandbox

                sb = LocalSandbox()
            _SHARED[key] = sb
            atexit.register(sb.close)
        return _SHARED[key]


@register_verifier("code")
class CodeVerifier:
    """Unit-test reward for code (see the module docstring and docs/code_verifier.md).

    sandbox: "auto" | "docker" | "local" | a Sandbox instance (not pickled: a copy made for another
    process uses that process's shared pool of the same kind). reward: "fraction" of tests passed
    or "all_or_nothing". timeout_s: budget for one completion (all its tests); test_timeout_s: per
    test. memory_mb: per test process. whitespace_tolerant: for stdin/stdout tests.
    program_prefix: prepended to the program (default ``from typing import *``, as HumanEval
    prompts carry it). stop_on_failure: stop at the first failing test (default: with
    all_or_nothing, where later tests cannot change the reward). pattern: a regex for extraction.
    """

    def __init__(
        self,
        sandbox: str | Sandbox = "auto",
        language: str = "python",
        reward: str = "fraction",
        timeout_s: float = 10.0,
        test_timeout_s: float = 4.0,
        memory_mb: int = 512,
        whitespace_tolerant: bool = True,
        program_prefix: str = "from typing import *\n",
        stop_on_failure: bool | None = None,
        pattern: str | None = None,
    ):
        if reward not in ("fraction", "all_or_nothing"):
            raise VerifierError(
                f"code verifier: reward must be 'fraction' or 'all_or_nothing'; got {reward!r}"
            )
        if language != "python":
            raise VerifierError(
                f"code verifier: only language='python' is supported so far; got {language!r}"
            )
        if not isinstance(sandbox, str) and not isinstance(sandbox, Sandbox):
            raise VerifierError(f"code verifier: sandbox {sandbox!r} does not implement the Sandbox protocol")
        if isinstance(sandbox, str) and sandbox not in ("auto", "docker", "local"):
            raise VerifierError(
                f"code verifier: sandbox must be 'auto', 'docker', 'local' or a Sandbox; got {sandbox!r}"
            )
        self.sandbox, self.language, self.reward = sandbox, language, reward
        self.timeout_s, self.test_timeout_s = float(timeout_s), float(test_timeout_s)
        self.memory_mb, self.whitespace_tolerant = int(memory_mb), whitespace_tolerant
        self.program_prefix, self.pattern = program_prefix, pattern
        self.stop_on_failure = reward == "all_or_nothing" if stop_on_failure is None else stop_on_failure

    # -- pickling: never a live pool ------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if not isinstance(self.sandbox, str):
            state["sandbox"] = "docker" if type(self.sandbox).__name__ == "DockerSandbox" else "local"
        return state

    def _sandbox(self) -> Sandbox:
        return shared_sandbox(self.sandbox) if isinstance(self.sandbox, str) else self.sandbox

    # -- scoring --------------------------------------------------------------------------------
    def __call__(self, completion: str, sample: Sample) -> Score:
        prepared = self._prepare(completion, sample)
        if isinstance(prepared, Score):
            return prepared
        job, ctx = prepared
        return self._grade(self._run(job), ctx)

    def _run(self, job: Job) -> Any:
        """One job; a sandbox failure (a lost container, not the program) is retried once."""
        sb = self._sandbox()
        res = sb.run(job.code, files=job.files, timeout_s=job.timeout_s, memory_mb=job.memory_mb)
        if res.error:
            log.warning("code verifier: sandbox failed (%s); retrying the job once", res.error)
            res = sb.run(job.code, files=job.files, timeout_s=job.timeout_s, memory_mb=job.memory_mb)
        return res

    def score_many(self, completions: Sequence[str], samples: Sequence[Sample]) -> list[Score]:
        """Score a batch through the pool's `run_many` (all slots busy); Scores in input order."""
        if len(completions) != len(samples):
            raise VerifierError(f"score_many: {len(completions)} completions but {len(samples)} samples")
        prepared = [self._prepare(c, s) for c, s in zip(completions, samples)]
        todo = [i for i, p in enumerate(prepared) if not isinstance(p, Score)]
        results = self._sandbox().run_many([prepared[i][0] for i in todo]) if todo else []
        out: list[Score] = [p if isinstance(p, Score) else None for p in prepared]  # type: ignore[misc]
        for i, res in zip(todo, results):
            out[i] = self._grade(self._run(prepared[i][0]) if res.error else res, prepared[i][1])
        return out

    def _prepare(self, completion: str, sample: Sample) -> tuple[Job, dict] | Score:
        program = extract_code(completion, self.language, self.pattern)
        if program is None:
            return Score(0.0, False, {"reason": "no_code"})
        plan = plan_tests(sample.tests, sample.metadata)
        if not plan.units:
            raise VerifierError(f"code verifier: sample {sample.metadata.get('id', '?')!r} has no tests")
        nonce = secrets.token_hex(16)
        budget = max(0.5, self.timeout_s - 0.5)
        harness_job = {
            "program": self.program_prefix + program,
            "setup": plan.setup,
            "entry": plan.entry,
            "cand": plan.cand,
            "units": plan.units,
            "unit_timeout_s": min(self.test_timeout_s, budget),
            "budget_s": budget,
            "memory_mb": self.memory_mb,
            "stop_on_failure": self.stop_on_failure,
            "preload": _stdlib_imports(self.program_prefix + program),
        }
        files = {"rlvr_job.json": json.dumps(harness_job), "rlvr_nonce": nonce}
        if plan.ref_exprs:
            files["rlvr_ref.json"] = json.dumps({"setup": plan.setup, "exprs": plan.ref_exprs})
        job = Job(
            code=HARNESS_SRC + "\nmain()\n",
            files=files,
            timeout_s=self.timeout_s,
            memory_mb=self.memory_mb + 128,
        )
        stdio_only = all(u["kind"] == "stdio" for u in plan.units)
        ctx = {
            "nonce": nonce,
            "checks": plan.checks,
            "untrusted": plan.untrusted,
            "static": static_suspicion(program, allow_exit=stdio_only),
        }
        return job, ctx

    def _grade(self, res: Any, ctx: dict) -> Score:
        checks = ctx["checks"]
        verdicts, refs, done = _parse(res.stdout, ctx["nonce"])
        tests: list[dict] = []
        flags = {
            "early_exit": False,
            "timeout": bool(res.timed_out),
            "memory": bool(res.memory_exceeded),
            "output_truncated": bool(refs.get("out_flood")),
        }
        runtime: list[str] = []
        for i, chk in enumerate(checks):
            v = verdicts.get(i)
            if v is None:
                why = "timeout" if res.timed_out else "not_run"
                tests.append({"ok": False, "error": why, "test": chk["label"]})
                continue
            for name in ("early_exit", "timeout", "memory"):
                flags[name] |= v.get("status") == name
            flags["output_truncated"] |= v.get("status") == "output_limit"
            flags["output_truncated"] |= v.get("out_bytes", 0) > DEFAULT_OUTPUT_CAP
            ok, err = _compare(v, chk, refs, self.whitespace_tolerant)
            if v.get("tampered"):
                runtime.append("builtins modified at runtime: " + ", ".join(v["tampered"][:5]))
                if chk["cmp"] == "done" and ok:  # asserts that ran next to a tampered runtime prove nothing
                    ok, err = False, "builtins modified"
            t = {"ok": ok, "error": err, "test": chk["label"]}
            if not ok and v.get("preview") is not None:
                t["got"] = v["preview"]
            tests.append(t)
        if not done and not res.timed_out and any(t["error"] == "not_run" for t in tests):
            flags["early_exit"] = True  # the harness itself was killed (by the program) before the end
        n_ok = sum(t["ok"] for t in tests)
        all_ok = n_ok == len(tests) > 0
        reward = n_ok / len(tests) if self.reward == "fraction" else float(all_ok)
        reasons = ctx["static"] + sorted(set(runtime))
        info: dict[str, Any] = {
            "reason": "ok" if all_ok else "failed_tests",
            "tests": tests,
            "n_tests": len(tests),
            "n_passed": n_ok,
            "first_failure": next(({"index": i, **t} for i, t in enumerate(tests) if not t["ok"]), None),
            **flags,
            "suspicious": bool(reasons),
            "suspicious_reasons": reasons,
            "untrusted_asserts": ctx["untrusted"],
            "wall_s": round(res.wall_s, 4),
        }
        if res.error:
            info["error"] = f"sandbox: {res.error}"
        elif res.truncated and len(verdicts) < len(checks) and not res.timed_out:
            info["error"] = "verdicts_truncated"  # more tests than fit in the 64 KiB of stdout
        elif refs.get("ref_error"):
            info["error"] = f"test setup failed: {refs['ref_error']}"
        elif res.timed_out and not done:
            info["error"] = "timeout"
        return Score(reward=reward, passed=all_ok, info=info)

    def __repr__(self) -> str:
        sb = self.sandbox if isinstance(self.sandbox, str) else type(self.sandbox).__name__
        return f"CodeVerifier(sandbox={sb!r}, reward={self.reward!r}, timeout_s={self.timeout_s})"


def _stdlib_imports(program: str) -> list[str]:
    """Top-level stdlib modules the program imports: the harness imports them once before forking."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    names = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    names |= {
        n.module.split(".")[0]
        for n in tree.body
        if isinstance(n, ast.ImportFrom) and n.module and not n.level
    }
    return sorted(names & sys.stdlib_module_names - {"antigravity", "this", "idlelib", "tkinter", "turtle"})


def _parse(stdout: str, nonce: str) -> tuple[dict[int, dict], dict[Any, dict], bool]:
    """Verdict lines carrying our nonce; the first line per unit wins."""
    verdicts: dict[int, dict] = {}
    refs: dict[Any, dict] = {}
    done = False
    prefix = nonce + " "
    for line in stdout.splitlines():
        if not line.startswith(prefix):
            continue
        try:
            obj = json.loads(line[len(prefix) :])
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        if obj.get("done") is True:
            done = True
        elif "ref" in obj:
            refs.setdefault(obj["ref"], obj)
        elif "out_flood" in obj:
            refs["out_flood"] = True
        elif "ref_error" in obj:
            refs.setdefault("ref_error", obj["ref_error"])
        elif isinstance(obj.get("i"), int):
            verdicts.setdefault(obj["i"], obj)
    return verdicts, refs, done


def _expected(chk: dict, refs: dict, field: str) -> Any:
    """A check's expected value as field "cd" (digest of its canon), "members" (their digests) or "num":
    from the host-side literal, or from the reference child's line."""
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


def _compare(v: dict, chk: dict, refs: dict, ws: bool) -> tuple[bool, str | None]:
    if v.get("status") != "ok":
        return False, f"{v.get('status')}: {v.get('error', '')}".strip()
    cmp = chk["cmp"]
    try:
        if cmp == "done":
            return True, None
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
            import math

            got, want = v.get("num"), _expected(chk, refs, "num")
            ok = isinstance(got, float) and math.isclose(
                got, want, rel_tol=chk["rel_tol"], abs_tol=chk["abs_tol"]
            )
        else:
            return False, f"unknown comparison {cmp!r}"
    except LookupError as e:
        return False, str(e)
    return ok, None if ok else "wrong answer"


# ---------------------------------------------------------------- tests -> units (host side)
_BUILTIN_NAMES = frozenset(dir(builtins))
_FORGEABLE_NODES = "Compare BoolOp IfExp ListComp SetComp DictComp GeneratorExp Lambda NamedExpr Await"
_FORGEABLE = tuple(getattr(ast, n) for n in _FORGEABLE_NODES.split())  # a dunder method could decide these
_BOOL_BUILTINS = {"bool", "isinstance", "issubclass", "callable", "hasattr", "all", "any"}


@dataclass
class Plan:
    """What the harness runs (`units`, `setup`, `entry`) and what the host checks (`checks`)."""

    units: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    setup: str = ""
    entry: str | None = None
    cand: str = "candidate"
    ref_exprs: list[list] = field(default_factory=list)
    untrusted: int = 0

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
            {"kind": "call", "args": encode(args), "kwargs": encode(kwargs), "tl": tl},
            {"cmp": "eq", "expected": c["expected"], "tl": tl, "label": f"{plan.entry}(*{args!r})"[:160]},
        )


def _plan_stdio(plan: Plan, rows: Any, where: str) -> None:
    for k, r in enumerate(rows if isinstance(rows, list) else [None]):
        src = r if isinstance(r, dict) else {}
        stdin, stdout = src.get("stdin", src.get("input")), src.get("stdout", src.get("output"))
        if not isinstance(stdin, str) or not isinstance(stdout, str):
            raise VerifierError(f"{where}.stdio[{k}]: needs string 'stdin' and 'stdout'")
        plan.add(
            {"kind": "stdio", "stdin": stdin}, {"cmp": "stdout", "expected": stdout, "label": f"stdin #{k}"}
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
    """HumanEval: module-level code is setup; each assert of ``check(candidate)`` is one test."""
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
    rw = _Rewriter(plan, _defined(_parse_src(plan.setup, where).body), _defined(check.body) - {plan.cand})
    kept = [st for st in check.body if not (isinstance(st, ast.Assert) and rw.rewrite(st))]
    if any(
        isinstance(n, ast.Name) and n.id in (plan.cand, plan.entry)  # not `assert True, "..."` lines
        for st in kept
        for n in ast.walk(st)
    ):
        fn = ast.FunctionDef(name="__rlvr_check", args=check.args, body=kept, decorator_list=[], lineno=1)
        src_fn = ast.unparse(ast.fix_missing_locations(ast.Module([fn], [])))
        plan.add(
            {"kind": "exec", "src": f"{src_fn}\n__rlvr_check({plan.entry})\n", "guard": [plan.entry]},
            {"cmp": "done", "label": "check(): statements that could not be rewritten"},
        )
        plan.untrusted += 1


def _plan_asserts(plan: Plan, asserts: Any, where: str) -> None:
    """MBPP: a list of assert statements, each one test."""
    if not isinstance(asserts, list) or not all(isinstance(a, str) for a in asserts):
        raise VerifierError(f"{where}.asserts: expected a list of assert strings")
    rw = _Rewriter(plan, _defined(_parse_src(plan.setup, where).body), set())
    for k, a in enumerate(asserts):
        body = _parse_src(a, f"{where}.asserts[{k}]").body
        if not (len(body) == 1 and isinstance(body[0], ast.Assert) and rw.rewrite(body[0])):
            calls = {
                n.func.id
                for st in body
                for n in ast.walk(st)
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id not in rw.known
            }
            plan.add({"kind": "exec", "src": a, "guard": sorted(calls)}, {"cmp": "done", "label": a[:160]})
            plan.untrusted += 1


class _Rewriter:
    """Turns ``assert <expr with the program> <op> <expected>`` into a call unit plus a host check."""

    def __init__(self, plan: Plan, setup_names: set[str], local_names: set[str]):
        self.plan, self.known, self.local = plan, setup_names | _BUILTIN_NAMES, local_names

    def _names(self, node: ast.AST) -> set[str]:
        return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}

    def user(self, node: ast.AST) -> bool:
        """Evaluated next to the program, so it must end in plain data that no dunder method of the
        program could have decided (no comparisons, truth tests or bool-valued builtins inside)."""
        names = self._names(node)
        if names & self.local or not (self.plan.cand in names or names - self.known):
            return False
        return not any(
            isinstance(n, _FORGEABLE)
            or (isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not))
            or (isinstance(n, ast.Call) and getattr(n.func, "id", None) in _BOOL_BUILTINS)
            for n in ast.walk(node)
        )

    def host(self, node: ast.AST) -> bool:
        names = self._names(node)
        return names <= self.known and self.plan.cand not in names and not names & self.local

    def _exp(self, node: ast.AST, check: dict) -> dict:
        try:
            check["expected"] = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            check["ref"] = len(self.plan.ref_exprs)
            self.plan.ref_exprs.append([check["ref"], ast.unparse(node)])
        return check

    def _emit(self, actual: ast.AST, check: dict, node: ast.Assert) -> bool:
        check["label"] = ast.unparse(node)[:160]
        self.plan.add({"kind": "call", "expr": ast.unparse(actual), "tl": False}, check)
        return True

    def rewrite(self, node: ast.Assert) -> bool:
        t = node.test
        if isinstance(t, ast.Compare) and len(t.ops) == 1:
            op, left, right = t.ops[0], t.left, t.comparators[0]
            if isinstance(op, ast.In) and self.user(left) and self.host(right):
                return self._emit(left, self._exp(right, {"cmp": "in"}), node)
            singleton = (ast.Is, ast.IsNot)
            for a, e in ((left, right), (right, left)):
                if not (self.user(a) and self.host(e)):
                    continue
                if isinstance(op, (ast.Eq, ast.NotEq)) or (
                    isinstance(op, singleton)
                    and isinstance(e, ast.Constant)
                    and e.value in (None, True, False)
                ):
                    cmp = "eq" if isinstance(op, (ast.Eq, ast.Is)) else "ne"
                    return self._emit(a, self._exp(e, {"cmp": cmp}), node)
            if (
                isinstance(op, (ast.Lt, ast.LtE))
                and isinstance(left, ast.Call)
                and getattr(left.func, "id", "") == "abs"
                and len(left.args) == 1
                and isinstance(left.args[0], ast.BinOp)
                and isinstance(left.args[0].op, ast.Sub)
                and isinstance(right, ast.Constant)
                and type(right.value) in (int, float)
            ):
                x, y = left.args[0].left, left.args[0].right
                for a, e in ((x, y), (y, x)):
                    if self.user(a) and self.host(e):
                        chk = {
                            "cmp": "approx",
                            "tol": right.value,
                            "op": "lt" if isinstance(op, ast.Lt) else "le",
                        }
                        return self._emit(a, self._exp(e, chk), node)
            return False
        if (
            isinstance(t, ast.Call)
            and (getattr(t.func, "id", "") == "isclose" or getattr(t.func, "attr", "") == "isclose")
            and len(t.args) == 2
        ):
            kw = {k.arg: k.value for k in t.keywords}
            if set(kw) <= {"rel_tol", "abs_tol"} and all(isinstance(v, ast.Constant) for v in kw.values()):
                tol = {"rel_tol": 1e-9, "abs_tol": 0.0, **{k: v.value for k, v in kw.items()}}
                for a, e in ((t.args[0], t.args[1]), (t.args[1], t.args[0])):
                    if self.user(a) and self.host(e):
                        return self._emit(a, self._exp(e, {"cmp": "isclose", **tol}), node)
            return False
        if isinstance(t, ast.UnaryOp) and isinstance(t.op, ast.Not) and self.user(t.operand):
            return self._emit(t.operand, {"cmp": "false"}, node)
        if self.user(t):
            return self._emit(t, {"cmp": "true"}, node)
        return False


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


def static_suspicion(program: str, allow_exit: bool = False) -> list[str]:
    """Reasons to log a program as a possible grading hack (an ast scan; no execution)."""
    try:
        tree = ast.parse(program)
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
