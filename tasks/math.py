"""`math`: competition problems with LaTeX answers (MATH, MATH-500 style).

Loads `HuggingFaceH4/MATH-500` by default, or any source with a `problem` column and either an
`answer` column (MATH-500) or a `solution` whose last \\boxed{} is the gold (original MATH).

Try it::

    >>> from rlvr.tasks.math import boxed_gold
    >>> boxed_gold("so the sum is $\\\\boxed{\\\\frac{1}{2}}$.")
    '\\\\frac{1}{2}'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlvr.tasks.base import Task, load_rows, register_task, rows_to_samples
from rlvr.verifiers.base import Sample


def boxed_gold(solution: str) -> str:
    """The content of the last \\boxed{...} (or \\fbox{...}) in a reference solution."""
    text = str(solution)
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        raise ValueError("no \\boxed{} answer in the solution")
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j].strip()
    raise ValueError("unbalanced braces in \\boxed{...}")


@register_task("math")
@dataclass
class MathTask(Task):
    source: str = "HuggingFaceH4/MATH-500"
    config: str | None = None
    columns: dict[str, str] = field(default_factory=lambda: {"prompt": "problem", "answer": "answer"})
    template: str = "qwen_math_boxed"
    verifiers: dict[str, float] = field(default_factory=lambda: {"math": 1.0})
    name: str = "math"

    def samples(self, split: str = "test", limit: int | None = None) -> list[Sample]:
        rows, where = load_rows(self.source, split=split, config=self.config, limit=limit)
        answer_col = self.columns.get("answer", "answer")
        if rows and answer_col not in rows[0] and "solution" in rows[0]:
            columns = {**self.columns, "answer": "solution"}
            return rows_to_samples(rows, where, columns, transform={"answer": boxed_gold})
        return rows_to_samples(rows, where, self.columns)
