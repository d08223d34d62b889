"""Thread safety: 8 threads x 200 mixed rows give exactly the serial results.

The rows mix the fast path (numbers, fractions, units), the sympy helper pool (radicals and
algebra, distinct per row so the pool really runs concurrently), guard-refused adversarial answers
and missing answers. The result caches are cleared before the threaded run so that it recomputes.
The budget is generous (30 s) because 8 threads on 2 cores make any deadline load-dependent; what
is tested here is that concurrency never changes an answer (math-verify's signal.alarm crashes
outside the main thread).
"""

from __future__ import annotations

import random
import threading

from rlvr.verifiers import Sample, get_verifier
from rlvr.verifiers import math as math_verifier


def _rows() -> list[tuple[str, str, bool]]:
    rows: list[tuple[str, str, bool]] = []
    for k in range(1, 26):
        rows.append((f"so \\boxed{{{k}\\sqrt{{2}}}}", f"\\sqrt{{{2 * k * k}}}", True))  # sympy, equal
        rows.append(
            (f"so \\boxed{{{k}\\sqrt{{3}}}}", f"\\sqrt{{{3 * k * k + 1}}}", False)
        )  # sympy, near miss
        rows.append((f"#### {k},000", f"{k}000", True))  # fast
        rows.append((f"The answer is {k}.5 dollars.", f"\\frac{{{2 * k + 1}}}{{2}}", True))  # fast
        rows.append((f"<think>\\boxed{{{k}}}</think><answer>{k + 1}</answer>", f"{k}", False))
        rows.append((f"\\boxed{{x^2+{2 * k}x+{k * k}}}", f"(x+{k})^2", True))  # sympy algebra
        rows.append((f"I got {k} at some point", f"{k}", False))  # no final answer
        rows.append(("\\boxed{9^{9^{9^{" + str(k) + "}}}}", "1", False))  # guard: too large
    return rows[:200]


def test_threads_match_serial() -> None:
    verifier = get_verifier("math", timeout_s=30.0)
    rows = _rows()
    assert len(rows) == 200
    serial = [verifier(c, Sample(answer=g)).to_dict() for c, g, _ in rows]
    assert [s["passed"] for s in serial] == [e for _, _, e in rows]

    math_verifier._SYMPY_CACHE.clear()
    math_verifier._fast.cache_clear()
    results: dict[int, list[dict]] = {}
    errors: list[BaseException] = []

    def work(tid: int) -> None:
        order = list(range(len(rows)))
        random.Random(tid).shuffle(order)
        out: list[dict | None] = [None] * len(rows)
        try:
            for i in order:
                c, g, _ = rows[i]
                out[i] = verifier(c, Sample(answer=g)).to_dict()
        except Exception as e:  # noqa: BLE001 -- surfaced by the assertion below, never swallowed
            errors.append(e)
        results[tid] = out  # type: ignore[assignment]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread did not finish within 120 s"
    assert not errors, errors[0]
    for tid in range(8):
        assert results[tid] == serial, f"thread {tid} differs from the serial results"
