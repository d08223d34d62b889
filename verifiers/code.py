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
import json
import logging
import os
import re
import secrets
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import rlvr.sandboxes._harness_child as _harness_child
import rlvr.sandboxes._values as _values
import rlvr.sandboxes.harness as _harness
from rlvr.sandboxes._values import canon, digest, norm_ws
from rlvr.sandboxes.base import DEFAULT_OUTPUT_CAP, Job, Sandbox
from rlvr.verifiers._code_plan import Plan as Plan  # re-exported: tests and docs import these from here
from rlvr.verifiers._code_plan import plan_tests, static_suspicion
from rlvr.verifiers.base import Sample, Score, VerifierError, register_verifier

__all__ = ["CodeVerifier", "extract_code", "shared_sandbox"]

log = logging.getLogger("rlvr.verifiers.code")

# Shipped as each job's code (then "main()"): values, the children's bodies, the parent. See the harness.
_HARNESS_PARTS = (_values, _harness_child, _harness)
HARNESS_SRC = "\n".join(Path(m.__file__).read_text(encoding="utf-8") for m in _HARNESS_PARTS)
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
        return Score(reward=reward, passed=all_ok, info=info, suspicious=bool(reasons))

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
