"""`dataset`: any local file or hub dataset, with a column mapping, template and verifiers from YAML.

A single local file has one split. Held-out evaluation then needs its own rows: name a file per
split (``splits: {test: data/test.jsonl}``) or carve some off with ``holdout`` (a fraction below 1
or a row count; those rows are left out of ``train`` and form ``test``, chosen by a fixed seed, with
a notice). ``rlvr train`` refuses to evaluate "held-out" accuracy on the training rows.

Try it::

    >>> from rlvr.tasks import get_task
    >>> t = get_task("dataset", source="data.jsonl", columns={"prompt": "q", "answer": "a"})  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr.tasks.base import Task, TaskDataError, load_rows, register_task, rows_to_samples
from rlvr.verifiers.base import Sample

log = logging.getLogger("rlvr.tasks")


@register_task("dataset")
@dataclass
class DatasetTask(Task):
    """Rows from `source` (a .jsonl/.json/.parquet/.csv file or a hub name) mapped by `columns`.

    `splits` maps a split name to a different source (e.g. {"test": "data/test.jsonl"}); by default
    every split reads `source` (hub datasets pass the split through). `holdout` (> 0) carves the
    ``test`` split off a local `source`: a fraction (< 1) or a number of rows, never trained on.
    """

    source: str = ""
    config: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    splits: dict[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ("prompt", "answer")
    holdout: float = 0.0
    name: str = "dataset"

    def __post_init__(self) -> None:
        if self.holdout < 0:
            raise ValueError(f"holdout must be >= 0 (a fraction below 1 or a row count), got {self.holdout}")

    def _local(self, split: str) -> bool:
        src = self.splits.get(split, self.source)
        return Path(src).exists() or Path(src).suffix.lower() in (".jsonl", ".json", ".parquet", ".csv")

    def _carved(self, split: str) -> bool:
        return bool(self.holdout) and split not in self.splits and self._local(split)

    def same_rows(self, a: str, b: str) -> bool:
        """True when splits `a` and `b` read the very same rows (one local file, no holdout)."""
        return a != b and self._local(a) and self.splits.get(a, self.source) == self.splits.get(b, self.source) \
            and not self.holdout

    def samples(self, split: str = "train", limit: int | None = None) -> list[Sample]:
        if not self.source and split not in self.splits:
            raise ValueError("task 'dataset' needs source=PATH_OR_HUB_NAME")
        if not self._carved(split):
            rows, where = load_rows(self.splits.get(split, self.source), split=split, config=self.config, limit=limit)
            return rows_to_samples(rows, where, self.columns, tuple(self.required))
        rows, where = load_rows(self.source, split=split, config=self.config)
        order = list(range(len(rows)))
        random.Random(0).shuffle(order)
        k = int(self.holdout) if self.holdout >= 1 else round(self.holdout * len(rows))
        if not 0 < k < len(rows):
            raise TaskDataError(f"{self.source}: holdout={self.holdout} leaves {k} of {len(rows)} rows for "
                                "the test split; it needs at least one row on each side")
        held = sorted(order[:k])
        keep = sorted(order[k:]) if split == "train" else held
        if split != "train":
            log.warning("task 'dataset': %d of the %d rows of %s form the %r split (holdout=%s); "
                        "training never sees them", k, len(rows), self.source, split, self.holdout)
        samples = rows_to_samples([rows[i] for i in keep], lambda j: where(keep[j]), self.columns, tuple(self.required))
        return samples[:limit] if limit is not None else samples

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "columns": self.columns, "template": self.template, "verifiers": self.verifiers}
