"""`gsm8k`: grade-school word problems; the gold is the number after "####".

Loads `openai/gsm8k` (config "main") from the hub, or a local file with the same columns
(`question`, `answer`). The gold answer keeps GSM8K's own style (a plain number such as "1,200"
becomes "1200"); the math verifier compares exactly.

Try it::

    >>> from rlvr.tasks.gsm8k import gsm8k_gold
    >>> gsm8k_gold("She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\\n#### 18")
    '18'
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlvr.tasks.base import Task, load_rows, register_task, rows_to_samples
from rlvr.verifiers.base import Sample


def gsm8k_gold(solution: str) -> str:
    """The final answer of a GSM8K solution: the text after the last '####', without separators."""
    if "####" not in str(solution):
        raise ValueError("no '####' final answer in the solution")
    return str(solution).rsplit("####", 1)[1].strip().replace(",", "")


@register_task("gsm8k")
@dataclass
class GSM8KTask(Task):
    source: str = "openai/gsm8k"
    config: str | None = "main"
    columns: dict[str, str] = field(default_factory=lambda: {"prompt": "question", "answer": "answer"})
    template: str = "qwen_math_boxed"
    verifiers: dict[str, float] = field(default_factory=lambda: {"math": 1.0})
    name: str = "gsm8k"

    def samples(self, split: str = "train", limit: int | None = None) -> list[Sample]:
        rows, where = load_rows(self.source, split=split, config=self.config, limit=limit)
        return rows_to_samples(rows, where, self.columns, transform={"answer": gsm8k_gold})
