"""The code verifier: run the model's program against unit tests in a sandbox, with trusted grading.

``get_verifier("code", sandbox="auto", reward="fraction", timeout_s=10, test_timeout_s=4, ...)``
extracts the program (the last fenced block of the task's language, or a configured regex), plans
``sample.tests`` into tests (schemas in docs/code_verifier.md: HumanEval ``check(candidate)``,
MBPP assert lists, function-call cases, stdin/stdout cases; `rlvr.verifiers._code_plan`), runs
`rlvr.sandboxes.harness` in the sandbox and compares on the host (`rlvr.verifiers._code_grade`).
Literal expected values never enter the sandbox; a test that computes its expected value runs in
a test process with the task's own helpers, where the program is only reachable through
plain-data calls; values come back as plain data over a channel the program cannot reach, the
comparison is type-strict (`rlvr.sandboxes.harness.canon`), and a test without a verdict fails.
Each test says where it ran (``info["tests"][i]["where"]``); the ``suspicious`` flag is decided in
`CodeVerifier._grade` and, with ``zero_suspicious`` (default), zeroes the reward.

What it does not do: isolate anything itself (that is the sandbox's job), or make trustworthy the
few test statements that need the program's objects themselves: those run next to the program
and are flagged (``where: next_to_program``, ``untrusted_asserts``). Concurrency: one call runs
one sandbox job; `score_many` packs up to 8 completions per job on a Docker pool and keeps every
slot busy (one thread per slot), the right way to use a Docker pool from one process. The verifier
pickles without its pool (workers recreate a shared one lazily).

Try it::

    >>> from rlvr.verifiers import Sample, get_verifier
    >>> v = get_verifier("code", sandbox="local")                      # doctest: +SKIP
    >>> s = Sample(tests={"entry_point": "add", "cases": [{"args": [1, 2], "expected": 3}]})
    >>> v("```python\\ndef add(a, b):\\n    return a + b\\n```", s).reward  # doctest: +SKIP
    1.0
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rlvr.sandboxes.base import DEFAULT_OUTPUT_CAP, Job, Sandbox
from rlvr.sandboxes.harness import harness_source
from rlvr.sandboxes.languages import LANGUAGES, get_language
from rlvr.verifiers._code_grade import cached_plan as _cached_plan
from rlvr.verifiers._code_grade import compare as _compare
from rlvr.verifiers._code_grade import parse_verdicts as _parse
from rlvr.verifiers._code_grade import scan
from rlvr.verifiers._code_plan import Plan as Plan  # re-exported: tests and docs import these from here
from rlvr.verifiers._code_plan import plan_tests as plan_tests  # re-exported, as Plan
from rlvr.verifiers.base import Sample, Score, VerifierError, register_verifier

__all__ = ["CodeVerifier", "extract_code", "shared_sandbox"]

log = logging.getLogger("rlvr.verifiers.code")

HARNESS_SRC = harness_source()  # each job's code: values, the children's bodies, the parent, main()
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
    tags = LANGUAGES[language].fences if language in LANGUAGES else (language, "")
    blocks = [body for tag, body in _FENCE.findall(completion) if tag.lower() in tags]
    code = blocks[-1] if blocks else None
    return code if code and code.strip() else None


def shared_sandbox(kind: str = "auto", language: str = "python") -> Sandbox:
    """This process's shared pool: Docker when `kind` is "docker" (or "auto" and Docker works), else
    a LocalSandbox (which warns loudly). Created on first use, closed at exit. For another
    `language` of `rlvr.sandboxes.languages`, the Docker pool uses that language's image (the
    grading harness compiles the program there); LocalSandbox needs its compiler on this machine."""
    if kind not in ("auto", "docker", "local"):
        raise VerifierError(
            f"code verifier: sandbox must be 'auto', 'docker', 'local' or a Sandbox; got {kind!r}"
        )
    key = (kind, language, os.getpid())
    with _SHARED_LOCK:
        if key not in _SHARED:
            sb = None
            if kind in ("auto", "docker"):
                try:
                    from rlvr.sandboxes.docker import DockerSandbox

                    sb = DockerSandbox(image=get_language(language).image)
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
    process uses that process's shared pool of the same kind). language: a key of
    `rlvr.sandboxes.languages.LANGUAGES` ("python", "cpp"); a compiled language is graded on
    stdin/stdout tests, compiled once per completion and run once per test. reward: "fraction" of tests passed
    or "all_or_nothing". timeout_s: budget for one completion (all its tests); test_timeout_s: per
    test. memory_mb: per test process. whitespace_tolerant: for stdin/stdout tests.
    program_prefix: prepended to the program (default ``from typing import *``, as HumanEval
    prompts carry it). stop_on_failure: stop at the first failing test (default: with
    all_or_nothing, where later tests cannot change the reward). pattern: a regex for extraction.
    zero_suspicious: a completion flagged ``suspicious`` (``info["suspicious_reasons"]``: what
    the program's source does, or builtins it modified at runtime) scores 0 (default, for RL);
    False keeps its test score and only flags it (e.g. to compare with other evaluators).
    batch: completions per sandbox job in `score_many` (default: up to 8 on a Docker pool, 1
    elsewhere).
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
        zero_suspicious: bool = True,
        batch: int | None = None,
    ):
        if reward not in ("fraction", "all_or_nothing"):
            raise VerifierError(
                f"code verifier: reward must be 'fraction' or 'all_or_nothing'; got {reward!r}"
            )
        if language not in LANGUAGES:
            raise VerifierError(
                f"code verifier: language must be one of {', '.join(sorted(LANGUAGES))}; got {language!r}"
            )
        if language != "python" and program_prefix == "from typing import *\n":
            program_prefix = ""
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
        self.zero_suspicious, self.batch = bool(zero_suspicious), batch
        self.stop_on_failure = reward == "all_or_nothing" if stop_on_failure is None else stop_on_failure

    # -- pickling: never a live pool ------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if not isinstance(self.sandbox, str):
            state["sandbox"] = "docker" if type(self.sandbox).__name__ == "DockerSandbox" else "local"
        return state

    def _sandbox(self) -> Sandbox:
        return shared_sandbox(self.sandbox, self.language) if isinstance(self.sandbox, str) else self.sandbox

    # -- scoring --------------------------------------------------------------------------------
    def __call__(self, completion: str, sample: Sample) -> Score:
        prepared = self._prepare(completion, sample)
        if isinstance(prepared, Score):
            return prepared
        job = self._pack([prepared], sweep=False)
        return self._grade(self._run(job), prepared[2], 0)

    def _run(self, job: Job) -> Any:
        """One job; a sandbox failure (a lost container, not the program) is retried once."""
        sb = self._sandbox()
        res = sb.run(job.code, files=job.files, timeout_s=job.timeout_s, memory_mb=job.memory_mb)
        if res.error:
            log.warning("code verifier: sandbox failed (%s); retrying the job once", res.error)
            res = sb.run(job.code, files=job.files, timeout_s=job.timeout_s, memory_mb=job.memory_mb)
        return res

    def _batch_size(self, n: int, sb: Sandbox) -> int:
        """Completions per sandbox job: several only in a container pool, where the harness can
        kill every leftover of one program before the next (``kill(-1)``; see the harness)."""
        if self.batch is not None:
            return max(1, int(self.batch))
        if type(sb).__name__ != "DockerSandbox":
            return 1
        return max(1, min(8, -(-n // max(1, int(getattr(sb, "size", 1))))))

    def score_many(self, completions: Sequence[str], samples: Sequence[Sample]) -> list[Score]:
        """Score a batch with every sandbox slot busy; Scores in input order. On a Docker pool each
        sandbox job grades up to 8 completions of different tasks one after another (one worker
        fork and harness start for all of them); a completion whose job did not finish it is graded
        again alone. One thread per slot prepares, runs and grades its jobs, so the host's work
        overlaps the sandbox's."""
        if len(completions) != len(samples):
            raise VerifierError(f"score_many: {len(completions)} completions but {len(samples)} samples")
        out: list[Score | None] = [None] * len(completions)
        todo = []
        for i, c in enumerate(completions):
            if extract_code(c, self.language, self.pattern) is None:
                out[i] = Score(0.0, False, {"reason": "no_code"})
            else:
                todo.append(i)
        if not todo:
            return out  # type: ignore[return-value]
        sb = self._sandbox()
        keys = [id(_cached_plan(samples[i]).checks) for i in todo]
        groups = _deal(todo, keys, self._batch_size(len(todo), sb))

        def work(g: list[int]) -> None:
            items = [self._prepare(completions[i], samples[i]) for i in g]
            job = self._pack(items, sweep=len(g) > 1)  # type: ignore[arg-type]
            if len(g) == 1:
                out[g[0]] = self._grade(self._run(job), items[0][2], 0)  # type: ignore[index]
                return
            res = sb.run(job.code, files=job.files, timeout_s=job.timeout_s, memory_mb=job.memory_mb)
            parts = {} if res.error else _parse(res.stdout, items[0][2]["nonce"])  # type: ignore[index]
            for j, (i, item) in enumerate(zip(g, items)):
                if parts.get(j, ({}, {}, None))[2] is None:  # its job ended before it did: alone
                    out[i] = self._grade(self._run(self._pack([item], sweep=False)), item[2], 0)  # type: ignore[index,list-item]
                else:
                    out[i] = self._grade(res, item[2], j, parts[j])  # type: ignore[index]

        with ThreadPoolExecutor(max_workers=max(1, int(getattr(sb, "size", 1))), thread_name_prefix="rlvr-code") as ex:
            list(ex.map(work, groups))
        return out  # type: ignore[return-value]

    def _pack(self, items: list[tuple[dict, str | None, dict]], sweep: bool) -> Job:
        """One sandbox job grading `items` (from `_prepare`) in order; sets each ctx's nonce.
        Each completion's program and tests travel in files of their own, which the harness hands
        to that completion's children only."""
        nonce = secrets.token_hex(16)
        preload = sorted({m for sub, _, _ in items for m in sub["preload"]})
        head = {"count": len(items), "sweep": sweep, "preload": preload}
        files = {"rlvr_job.json": json.dumps(head), "rlvr_nonce": nonce}
        for j, (sub, spec, ctx) in enumerate(items):
            ctx["nonce"] = nonce
            files[f"rlvr_sub_{j}.json"] = json.dumps({k: v for k, v in sub.items() if k != "program"})
            files[f"rlvr_prog_{j}"] = sub["program"]
            if spec is not None:
                files[f"rlvr_tests_{j}.json"] = spec
        timeout = sum(max(0.5, self.timeout_s) for _ in items) + 0.5 * (len(items) - 1)
        return Job(code=HARNESS_SRC, files=files, timeout_s=timeout, memory_mb=self.memory_mb + 128)

    def _prepare(self, completion: str, sample: Sample) -> tuple[dict, str | None, dict] | Score:
        program = extract_code(completion, self.language, self.pattern)
        if program is None:
            return Score(0.0, False, {"reason": "no_code"})
        plan = _cached_plan(sample)
        if not plan.units:
            raise VerifierError(f"code verifier: sample {sample.metadata.get('id', '?')!r} has no tests")
        budget = max(0.5, self.timeout_s - 0.5)
        native = get_language(self.language).worker_spec()
        if native and not plan.stdio_only:
            raise VerifierError(
                f"code verifier: sample {sample.metadata.get('id', '?')!r}: field 'tests': language "
                f"{self.language!r} is graded on stdin/stdout tests only"
            )
        static, imports = ([], []) if native else scan(program, self.program_prefix, stdio_only=plan.stdio_only)
        sub = {
            "program": self.program_prefix + program,
            "task_defs": plan.task_source(),
            "entry": plan.entry,
            "cand": plan.cand,
            "units": plan.units,
            "unit_timeout_s": min(self.test_timeout_s, budget),
            "budget_s": budget,
            "memory_mb": self.memory_mb,
            "stop_on_failure": self.stop_on_failure,
            "preload": imports,
            "native": native or None,
        }
        ctx = {"checks": plan.checks, "untrusted": plan.untrusted, "static": static}
        return sub, plan.spec, ctx

    def _grade(self, res: Any, ctx: dict, j: int, part: tuple | None = None) -> Score:
        """The Score of completion `j` of the job that produced `res`."""
        checks = ctx["checks"]
        verdicts, refs, done = part or _parse(res.stdout, ctx["nonce"]).get(j, ({}, {}, None))
        timed_out = bool(res.timed_out) and done is None
        tests: list[dict] = []
        flags = {
            "early_exit": False,
            "timeout": timed_out,
            "memory": bool(res.memory_exceeded) and done is None,
            "output_truncated": bool(refs.get("out_flood")),
        }
        runtime: list[str] = []
        for i, chk in enumerate(checks):
            v = verdicts.get(i)
            if v is None:
                why = "timeout" if timed_out else "not_run"
                tests.append({"ok": False, "error": why, "test": chk["label"], "where": chk.get("where", "host")})
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
            t = {"ok": ok, "error": err, "test": chk["label"], "where": chk.get("where", "host")}
            if not ok and v.get("preview") is not None:
                t["got"] = v["preview"]
            tests.append(t)
        if done is None and not timed_out and any(t["error"] == "not_run" for t in tests):
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
            "wall_s": round(float(done.get("wall", res.wall_s)) if done else res.wall_s, 4),
        }
        if reasons and self.zero_suspicious and reward > 0:  # the suspicious flag is decided just above
            reward, all_ok = 0.0, False
            info.update(reason="suspicious", zeroed_as_suspicious=True)
        if res.error:
            info["error"] = f"sandbox: {res.error}"
        elif res.truncated and len(verdicts) < len(checks) and not timed_out:
            info["error"] = "verdicts_truncated"  # more tests than fit in the 64 KiB of stdout
        elif refs.get("ref_error"):
            info["error"] = f"test setup failed: {refs['ref_error']}"
        elif timed_out:
            info["error"] = "timeout"
        return Score(reward=reward, passed=all_ok, info=info, suspicious=bool(reasons))

    def __repr__(self) -> str:
        sb = self.sandbox if isinstance(self.sandbox, str) else type(self.sandbox).__name__
        return f"CodeVerifier(sandbox={sb!r}, reward={self.reward!r}, timeout_s={self.timeout_s})"


def _deal(todo: list[int], keys: list[int], size: int) -> list[list[int]]:
    """Jobs of at most `size` completions where no two share a task (`keys`: the same tests). The
    completions of a GRPO group answer one prompt, so a program that found a sibling's in its job
    could copy it; different tasks' programs are of no use to it.

    >>> _deal([0, 1, 2, 3, 4, 5], [7, 7, 7, 8, 8, 9], 3)
    [[0, 3], [1, 4], [2, 5]]
    """
    if size <= 1:
        return [[i] for i in todo]
    by_key: dict[int, list[int]] = {}
    for i, k in zip(todo, keys):
        by_key.setdefault(k, []).append(i)
    n = max(-(-len(todo) // size), max(len(v) for v in by_key.values()))
    jobs: list[list[int]] = [[] for _ in range(n)]
    c = 0
    for members in by_key.values():  # consecutive jobs for one task's completions: never two in one
        for i in members:
            jobs[c % n].append(i)
            c += 1
    return [sorted(j) for j in jobs if j]
