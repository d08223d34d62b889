"""`dataset`: any local file or hub dataset, with a column mapping, template and verifiers from YAML.

Try it::

    >>> from rlvr.tasks import get_task
    >>> t = get_task("dataset", source="data.jsonl", columns={"prompt": "q", "answer": "a"})  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlvr.tasks.base import Task, load_rows, register_task, rows_to_samples
from rlvr.verifiers.base import Sample


@register_task("dataset")
@dataclass
class DatasetTask(Task):
    """Rows from `source` (a .jsonl/.json/.parquet/.csv file or a hub name) mapped by `columns`.

    `splits` maps a split name to a different source (e.g. {"test": "data/test.jsonl"}); by default
    every split reads `source` (hub datasets pass the split through).
    """

    source: str = ""
    config: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    splits: dict[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ("prompt", "answer")
    name: str = "dataset"

    def samples(self, split: str = "train", limit: int | None = None) -> list[Sample]:
        if not self.source and split not in self.splits:
            raise ValueError("task 'dataset' needs source=PATH_OR_HUB_NAME")
        rows, where = load_rows(self.splits.get(split, self.source), split=split, config=self.config, limit=limit)
        return rows_to_samples(rows, where, self.columns, tuple(self.required))

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "columns": self.columns, "template": self.template, "verifiers": self.verifiers}
