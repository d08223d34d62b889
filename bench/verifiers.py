"""Benchmark: rlvr's math verifier against Hugging Face math-verify 0.9.0, side by side, same run.

On the hand-labelled regression table (tests/verifiers/data/math_regression.jsonl) it measures, for
each checker:

- accuracy overall, on the "realistic" subset (every category but ``adversarial``) and per category;
- rows/s in one process, and with N worker processes (rlvr through `rlvr.scoring.Scorer`, the batch
  scorer users get; math-verify through a guarded pool of N processes, since it has no batch API);
- max and p99 per-call latency, and every adversarial row's outcome and latency.

How math-verify is called: the way TRL's ``accuracy_reward`` calls it. The gold is
``parse("$" + answer + "$", extraction_mode="first_match")`` (LaTeX extraction with math-verify's
default configs; wrapping the bare MATH-style gold in ``$…$`` is math-verify's documented usage and
gives it its best chance: a bare ``\\frac{\\pi}{3}`` does not parse at all). The prediction is
``parse(completion, [LatexExtractionConfig(NormalizationConfig(nits=False, malformed_operators=False,
basic_latex=True, equations=True, boxed="all", units=True), boxed_match_priority=0,
try_extract_without_anchor=False)], extraction_mode="first_match")`` and the reward is
``verify(gold, pred)``. The third column, ``math-verify-default``, parses the completion with
``parse(completion)`` (default configs: LaTeX and plain expressions) instead. math-verify's own
timeouts (``signal.alarm``, 5 s per parse and per verify) stay on, so every call runs in the main
thread of a worker process.

Guard: every call of either checker runs in a worker process; the parent kills and replaces a worker
whose call overruns ``--deadline`` seconds (default 30) and records a timeout, so the bench itself
never hangs. One-process rows/s is rows / the summed time spent inside the calls (measured in the
worker, so the guard's per-row IPC is left out); rows/s with workers is rows / wall time.
Throughput is the best of ``--repeat`` cold rounds (default 3, fresh processes each) in which the
checkers take turns, so a burst of load from other jobs hits them alike.

What it does not do: assert anything (targets are read off the table), or run on a quiet machine for
you: timings on a shared 2-core box are noisy; compare within one run.

Try it::

    .venv/bin/python bench/verifiers.py                    # all three columns, markdown tables
    .venv/bin/python bench/verifiers.py --only math-verify --json /tmp/mv.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

TABLE = Path(__file__).resolve().parent.parent / "tests" / "verifiers" / "data" / "math_regression.jsonl"
ADVERSARIAL = "adversarial"
CHECKERS = ("rlvr", "math-verify", "math-verify-default")
# A warm-up row that is not in the table (imports, helper processes; no cache hit for table rows).
WARMUP = ("\\frac{2}{7}", "Adding the parts, $\\frac{1}{7} + \\frac{1}{7} = \\boxed{\\frac{2}{7}}$.")

# ----------------------------------------------------------------------------- the two checkers
_STATE: dict[str, Any] = {}


def rlvr_check(answer: str, completion: str) -> tuple[bool, Any]:
    """rlvr's math verifier as a user calls it: ``get_verifier("math")(completion, Sample(answer=...))``."""
    if "v" not in _STATE:
        from rlvr.verifiers import Sample, get_verifier

        _STATE["v"], _STATE["Sample"] = get_verifier("math"), Sample
    score = _STATE["v"](completion, _STATE["Sample"](answer=answer))
    return bool(score.passed), score.info.get("extracted")


def mv_check(answer: str, completion: str, config: str = "trl") -> tuple[bool, Any]:
    """math-verify 0.9.0 the way TRL's accuracy_reward runs it (see the module docstring)."""
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig, parse, verify

    gold = parse("$" + answer + "$", extraction_mode="first_match")
    if not gold:
        return False, "<gold did not parse>"
    if config == "trl":
        norm = NormalizationConfig(
            nits=False, malformed_operators=False, basic_latex=True, equations=True, boxed="all", units=True
        )
        cfg = [
            LatexExtractionConfig(
                normalization_config=norm, boxed_match_priority=0, try_extract_without_anchor=False
            )
        ]
        pred = parse(completion, extraction_config=cfg, extraction_mode="first_match")
    else:
        pred = parse(completion)
    ok = verify(gold, pred)
    return bool(ok), (str(pred[-1])[:60] if pred else None)


def _checker(name: str) -> Callable[[str, str], tuple[bool, Any]]:
    if name == "rlvr":
        return rlvr_check
    config = "default" if name == "math-verify-default" else "trl"
    return lambda a, c: mv_check(a, c, config)


# ----------------------------------------------------------------------------- guarded worker pool
def _worker_main(conn: Any, name: str) -> None:
    import logging

    logging.disable(logging.CRITICAL)  # math-verify logs every parse failure
    sys.set_int_max_str_digits(4300)  # Python's default, whatever the parent set
    fn = _checker(name)
    fn(*WARMUP)  # warm-up on a row not in the table: imports, helper processes
    conn.send("ready")
    while True:
        msg = conn.recv()
        if msg is None:
            return
        i, answer, completion = msg
        t0 = time.perf_counter()
        try:
            passed, extracted, err = *fn(answer, completion), None
        except Exception as e:  # noqa: BLE001 - a bug in the checker: counted, never a silent False
            passed, extracted, err = False, None, f"{type(e).__name__}: {str(e)[:120]}"
        conn.send(
            (i, passed, None if extracted is None else str(extracted)[:80], time.perf_counter() - t0, err)
        )


class GuardedPool:
    """N worker processes running one checker; each call gets a wall-clock deadline."""

    def __init__(self, name: str, workers: int, deadline: float):
        self.name, self.deadline = name, deadline
        self.ctx = mp.get_context("spawn")
        self.procs: list[Any] = []
        for _ in range(workers):
            self.procs.append(self._spawn())
        for _, conn in self.procs:
            self._ready(conn)

    def _spawn(self) -> tuple[Any, Any]:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker_main, args=(child, self.name), daemon=True)
        proc.start()
        child.close()
        return proc, parent

    def _ready(self, conn: Any) -> None:
        try:
            ok = conn.poll(300) and conn.recv() == "ready"
        except EOFError:
            ok = False
        if not ok:
            raise RuntimeError(f"{self.name}: worker did not start (see its traceback above)")

    def _replace(self, slot: int) -> None:
        proc, conn = self.procs[slot]
        proc.kill()
        proc.join()
        conn.close()
        self.procs[slot] = self._spawn()
        self._ready(self.procs[slot][1])

    def run(self, rows: list[dict]) -> tuple[list[dict], float]:
        """Score rows; returns per-row results in input order and the wall time."""
        results: list[dict | None] = [None] * len(rows)
        todo = list(range(len(rows)))[::-1]
        busy: dict[int, tuple[int, float]] = {}  # slot -> (row index, started)
        t0 = time.perf_counter()
        while todo or busy:
            for slot in range(len(self.procs)):
                if slot not in busy and todo:
                    i = todo.pop()
                    self.procs[slot][1].send((i, rows[i]["answer"], rows[i]["completion"]))
                    busy[slot] = (i, time.perf_counter())
            now = time.perf_counter()
            next_deadline = min(start + self.deadline for _, start in busy.values())
            ready = wait([self.procs[s][1] for s in busy], timeout=max(0.0, next_deadline - now))
            for slot in [s for s in busy if self.procs[s][1] in ready]:
                try:
                    i, passed, extracted, latency, err = self.procs[slot][1].recv()
                except EOFError:  # the worker died mid-call: a crash, recorded as data
                    i, passed, extracted, err = busy[slot][0], False, None, "bench-crash"
                    latency = time.perf_counter() - busy[slot][1]
                    self._replace(slot)
                results[i] = {"passed": passed, "extracted": extracted, "latency": latency, "error": err}
                del busy[slot]
            now = time.perf_counter()
            for slot, (i, start) in list(busy.items()):
                if now - start >= self.deadline:
                    self._replace(slot)
                    results[i] = {
                        "passed": False,
                        "extracted": None,
                        "latency": self.deadline,
                        "error": "bench-timeout",
                    }
                    del busy[slot]
        return results, time.perf_counter() - t0  # type: ignore[return-value]

    def close(self) -> None:
        for _proc, conn in self.procs:
            try:
                conn.send(None)
            except OSError:
                pass
        for proc, _ in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()


def thread_probe(name: str) -> str:
    """Call the checker once from a non-main thread; report what happens."""
    fn = _checker(name)
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["r"] = fn("\\frac{1}{2}", "So the answer is $\\boxed{0.5}$.")
        except Exception as e:  # noqa: BLE001 - reporting what happens is the point
            out["e"] = f"raises {type(e).__name__}"

    t = threading.Thread(target=target)
    t.start()
    t.join(60)
    if "e" in out:
        return out["e"]
    return "ok" if out.get("r", (False,))[0] else f"wrong result {out.get('r')}"


# ----------------------------------------------------------------------------- report
def pct(xs: list[bool]) -> str:
    return f"{100.0 * sum(xs) / len(xs):.1f}%" if xs else "-"


def quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def md_table(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header] + body) for i in range(len(header))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"

    return "\n".join(
        [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in body]
    )


def _rounds_rps(name: str, real: list[dict], workers: int, deadline: float) -> tuple[float, int]:
    """rows/s of one cold round (fresh processes, so no cache carries over from earlier rounds)."""
    if name == "rlvr" and workers > 1:
        from rlvr.scoring import Scorer
        from rlvr.verifiers import Sample

        samples, completions = [Sample(answer=r["answer"]) for r in real], [r["completion"] for r in real]
        with Scorer("math", workers=workers) as scorer:
            scorer.submit(
                [WARMUP[1]] * workers, [Sample(answer=WARMUP[0])] * workers
            ).result()  # start workers
            t0 = time.perf_counter()
            scored = scorer.submit(completions, samples).result()
            wall = time.perf_counter() - t0
        return len(real) / wall, sum(1 for s in scored if s.info.get("error"))
    pool = GuardedPool(name, workers, deadline)
    try:
        out, wall = pool.run(real)
    finally:
        pool.close()
    if workers == 1:  # one process: time spent inside the calls, without the guard's per-row IPC
        wall = sum(p["latency"] for p in out)
    return len(real) / wall, sum(p["error"] in ("bench-timeout", "bench-crash") for p in out)


def throughput(real: list[dict], names: list[str], res: dict[str, dict[str, Any]], args: Any) -> None:
    """Phase 2: rows/s on the realistic rows, 1 process and N workers, best of --repeat rounds.

    Every round starts fresh processes (started and warmed up on a row that is not in the table
    before the clock starts), so each round is cold: in RL training completions do not repeat, and
    a warm cache would flatter whichever checker caches more. The checkers take turns within each
    round, so a burst of load from other jobs on a shared machine hits all of them alike; the best
    round is the least disturbed one.
    """
    print(f"throughput: {args.repeat} rounds over {len(real)} realistic rows", file=sys.stderr, flush=True)
    for n in names:
        res[n].update(rps_real=0.0, workers_rps=0.0, workers_errors=0)
    for _ in range(args.repeat):
        for n in names:
            rps, _ = _rounds_rps(n, real, 1, args.deadline)
            res[n]["rps_real"] = max(res[n]["rps_real"], rps)
            rps, errors = _rounds_rps(n, real, args.workers, args.deadline)
            res[n]["workers_rps"] = max(res[n]["workers_rps"], rps)
            res[n]["workers_errors"] += errors
    for n in names:
        how = "rlvr.scoring.Scorer" if n == "rlvr" else "guarded process pool"
        errs = res[n]["workers_errors"]
        res[n]["workers_how"] = f"{how}, {args.workers} workers" + (
            f", {errs} timeouts/errors" if errs else ""
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--table", default=str(TABLE))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--deadline", type=float, default=30.0, help="per-call wall limit (s) enforced by the bench"
    )
    ap.add_argument("--repeat", type=int, default=3, help="throughput rounds; the best is reported")
    ap.add_argument("--only", choices=CHECKERS, action="append", help="run only this checker (repeatable)")
    ap.add_argument("--json", help="also write all numbers and per-row results here")
    args = ap.parse_args(argv)
    with open(args.table, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    real = [r for r in rows if r["category"] != ADVERSARIAL]
    is_real = [r["category"] != ADVERSARIAL for r in rows]
    names = args.only or list(CHECKERS)
    res: dict[str, dict[str, Any]] = {}
    for name in names:  # phase 1: accuracy and per-call latency, one process, every row
        print(f"[{name}] one process over {len(rows)} rows ...", file=sys.stderr, flush=True)
        pool = GuardedPool(name, 1, args.deadline)
        per_row, _ = pool.run(rows)
        pool.close()
        for r, pr in zip(rows, per_row):
            pr["ok"] = pr["passed"] == r["expected"]
        lat_real = [p["latency"] for p, k in zip(per_row, is_real) if k]
        lat_adv = [p["latency"] for p, k in zip(per_row, is_real) if not k]
        res[name] = {
            "per_row": per_row,
            "thread": thread_probe(name),
            "rps_all": len(rows) / sum(p["latency"] for p in per_row),
            "max_real": max(lat_real),
            "p99_real": quantile(lat_real, 0.99),
            "max_adv": max(lat_adv, default=float("nan")),
            "timeouts": sum(p["error"] == "bench-timeout" for p in per_row),
            "crashes": sum(p["error"] == "bench-crash" for p in per_row),
            "exceptions": sum(
                bool(p["error"]) and p["error"] not in ("bench-timeout", "bench-crash") for p in per_row
            ),
            "over_1s": sum(p["latency"] > 1.0 for p in per_row),
        }
    throughput(real, names, res, args)
    print_report(rows, names, res, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": res}, indent=1, default=str))
    return 0


def print_report(rows: list[dict], names: list[str], res: dict[str, dict[str, Any]], args: Any) -> None:
    is_real = [r["category"] != ADVERSARIAL for r in rows]
    label = {
        "rlvr": "rlvr math",
        "math-verify": "math-verify (TRL config)",
        "math-verify-default": "math-verify (default parse)",
    }
    head = ["", *[label[n] for n in names]]

    def ok(n: str, keep: Callable[[int], bool]) -> list[bool]:
        return [p["ok"] for i, p in enumerate(res[n]["per_row"]) if keep(i)]

    body = [
        [f"accuracy, all {len(rows)} rows", *[pct(ok(n, lambda i: True)) for n in names]],
        [f"accuracy, realistic {sum(is_real)} rows", *[pct(ok(n, lambda i: is_real[i])) for n in names]],
        [
            f"accuracy, adversarial {len(rows) - sum(is_real)} rows",
            *[pct(ok(n, lambda i: not is_real[i])) for n in names],
        ],
        [
            f"rows/s, 1 process, realistic (best of {args.repeat})",
            *[f"{res[n]['rps_real']:.0f}" for n in names],
        ],
        ["rows/s, 1 process, all rows (1 round)", *[f"{res[n]['rps_all']:.1f}" for n in names]],
        [
            f"rows/s, {args.workers} workers, realistic (best of {args.repeat})",
            *[f"{res[n]['workers_rps']:.0f}" for n in names],
        ],
        ["  (how)", *[res[n]["workers_how"] for n in names]],
        [
            "p99 / max latency, realistic (ms)",
            *[f"{1e3 * res[n]['p99_real']:.1f} / {1e3 * res[n]['max_real']:.0f}" for n in names],
        ],
        ["max latency, adversarial (s)", *[f"{res[n]['max_adv']:.2f}" for n in names]],
        ["calls over 1 s", *[str(res[n]["over_1s"]) for n in names]],
        [f"bench kills (> {args.deadline:.0f} s)", *[str(res[n]["timeouts"]) for n in names]],
        ["worker crashes", *[str(res[n]["crashes"]) for n in names]],
        ["exceptions raised", *[str(res[n]["exceptions"]) for n in names]],
        ["called from a thread", *[res[n]["thread"] for n in names]],
    ]
    print(md_table(head, body))
    cats = list(dict.fromkeys(r["category"] for r in rows))
    body = []
    for c in cats:
        idx = [i for i, r in enumerate(rows) if r["category"] == c]
        body.append([c, str(len(idx)), *[pct([res[n]["per_row"][i]["ok"] for i in idx]) for n in names]])
    print("\nAccuracy per category\n")
    print(md_table(["category", "rows", *[label[n] for n in names]], body))
    print("\nAdversarial rows (outcome, latency)\n")
    body = []
    for i, r in enumerate(rows):
        if r["category"] != ADVERSARIAL:
            continue
        cells = []
        for n in names:
            p = res[n]["per_row"][i]
            verdict = "timeout" if p["error"] == "bench-timeout" else ("right" if p["ok"] else "WRONG")
            cells.append(f"{verdict}, {p['latency']:.2f} s")
        body.append([r["id"], str(r["expected"]), (r.get("note") or "")[:48], *cells])
    print(md_table(["id", "expected", "what", *[label[n] for n in names]], body))
    for n in names:
        wrong = [(r, p) for r, p in zip(rows, res[n]["per_row"]) if not p["ok"]]
        print(f"\n{label[n]}: {len(wrong)} wrong rows: " + ", ".join(r["id"] for r, _ in wrong))


if __name__ == "__main__":
    sys.exit(main())
