"""The math verifier against the hand-labelled regression table.

`data/math_regression.jsonl` holds (answer, completion, expected) rows written from realistic model
outputs (R1-style ``<think>``/``<answer>``, Qwen-Math ``\\boxed{}``, GSM8K ``####``, Minerva
"Final Answer:", base-model rambling, truncated outputs) across every answer category the math
verifier claims to cover, plus an ``adversarial`` category (power towers, huge factorials,
10,000-digit numbers, deep nesting, 100+ KB completions). Labels are the reading a careful
MATH/GSM8K grader would pick; debatable ones say why in ``note``. The labels were written
independently of the verifier and must never be bent to fit it.

What this does not test: speed (see ``bench/verifiers.py``), thread safety and deadlines (their own
tests). Try it::

    .venv/bin/python -m pytest tests/verifiers/test_math_regression.py -q
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest

TABLE = Path(__file__).parent / "data" / "math_regression.jsonl"
FIELDS = {"id": str, "category": str, "answer": str, "completion": str, "expected": bool}
MIN_ROWS = 300


def load_table(path: Path = TABLE) -> list[dict]:
    """Read the table; a bad line raises ValueError naming the file, the line and the field."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {e}") from e
            for name, typ in FIELDS.items():
                if not isinstance(row.get(name), typ):
                    raise ValueError(f"{path}:{lineno}: field {name!r} missing or not {typ.__name__}")  # noqa: TRY004
            rows.append(row)
    return rows


ROWS = load_table()


def _short(text: object, n: int = 40) -> str:
    s = repr(text) if not isinstance(text, str) else text
    s = s.replace("\n", "\\n")
    return s if len(s) <= n else s[: n - 3] + "..."


def format_failures(failures: list[tuple[dict, object, object]]) -> str:
    """A plain aligned table: id, category, gold, extracted, expected, got, reason."""
    header = ("id", "category", "gold", "extracted", "expected", "got", "reason")
    lines = [header] + [
        (
            r["id"],
            r["category"],
            _short(r["answer"], 28),
            _short(extracted, 28),
            str(r["expected"]),
            str(got),
            _short(reason, 24),
        )
        for r, extracted, (got, reason) in failures
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines)


def test_table_shape() -> None:
    """At least 300 rows, unique ids, and both labels in every category."""
    assert len(ROWS) >= MIN_ROWS, f"only {len(ROWS)} rows"
    ids = Counter(r["id"] for r in ROWS)
    dupes = [i for i, n in ids.items() if n > 1]
    assert not dupes, f"duplicate ids: {dupes}"
    labels: dict[str, set[bool]] = defaultdict(set)
    for r in ROWS:
        labels[r["category"]].add(r["expected"])
    one_sided = {c: sorted(v) for c, v in labels.items() if v != {True, False}}
    assert not one_sided, f"categories without both labels: {one_sided}"
    pairs = Counter((r["answer"], r["completion"]) for r in ROWS)
    assert max(pairs.values()) == 1, "duplicate (answer, completion) pairs"


def test_math_verifier_matches_table() -> None:
    """Every row's `passed` equals its label; all failures are printed in one table."""
    from rlvr.verifiers import Sample, get_verifier

    verifier = get_verifier("math")
    failures = []
    for r in ROWS:
        score = verifier(r["completion"], Sample(answer=r["answer"]))
        assert score.passed in (True, False), f"{r['id']}: passed={score.passed!r}"
        assert 0.0 <= score.reward <= 1.0, f"{r['id']}: reward={score.reward!r}"
        if score.passed != r["expected"]:
            failures.append((r, score.info.get("extracted"), (score.passed, score.info.get("reason"))))
    if failures:
        by_cat = Counter(r["category"] for r, _, _ in failures)
        msg = (
            f"{len(failures)}/{len(ROWS)} rows disagree with the table "
            f"(by category: {dict(by_cat)}):\n" + format_failures(failures)
        )
        print(msg)
        pytest.fail(msg, pytrace=False)
