"""What a task is (data + prompt template + weighted verifiers), the task registry, and data loading.

A `Task` turns a dataset into `Sample`s, renders each sample's question with a prompt template, and
names the verifiers (with weights) that score completions. Built-in families live one per module
(`gsm8k`, `math`, `countdown`, `arithmetic`, `code`); `dataset` wraps any local file or hub
dataset with a column mapping, for custom data from YAML::

    task:
      name: dataset
      source: data/train.jsonl          # or a hub name such as openai/gsm8k
      columns: {prompt: question, answer: final_answer}
      template: r1_zero
      verifiers: {math: 1.0, format: 0.1}

Loading goes through `datasets` (JSONL, JSON, Parquet, CSV, or a hub name). A malformed JSONL line
or a row missing a mapped field raises `TaskDataError` naming the file, the line (or row) and the
field. What this module does not do: generate completions or run verifiers.

Try it::

    >>> from rlvr.tasks import get_task
    >>> task = get_task("arithmetic", n=4, seed=0)
    >>> s = task.samples("train")[0]; task.render(s)[:40]   # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr.io import InputError
from rlvr.templates import render
from rlvr.verifiers.base import Combined, Sample, combine

__all__ = ["Task", "TaskDataError", "get_task", "list_tasks", "load_rows", "register_task", "rows_to_samples"]


class TaskDataError(InputError):
    """Bad task data: the message names the file, the line or row, and the field."""


_TASKS: dict[str, Callable[..., Task]] = {}
_BUILTIN = {
    "gsm8k": "rlvr.tasks.gsm8k",
    "math": "rlvr.tasks.math",
    "countdown": "rlvr.tasks.countdown",
    "arithmetic": "rlvr.tasks.arithmetic",
    "products": "rlvr.tasks.products",
    "code": "rlvr.tasks.code",
    "humaneval": "rlvr.tasks.code",
    "mbpp": "rlvr.tasks.code",
    "stdio": "rlvr.tasks.code",
    "dataset": "rlvr.tasks.dataset",
    "reasoning_gym": "rlvr.tasks.reasoning_gym",
}


def register_task(name: str):
    """Register a Task subclass (or a factory returning a Task) under `name`."""

    def deco(obj):
        _TASKS[name] = obj
        return obj

    return deco


def get_task(name: str, **options: Any) -> Task:
    """The task registered as `name`, built with `options` (e.g. ``source=``, ``template=``)."""
    if name not in _TASKS and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])
    if name not in _TASKS and ":" in name:  # path/to/file.py:MyTask or package.module:MyTask (rlvr.plugins)
        from rlvr.plugins import is_reference, load_object

        if is_reference(name):
            _TASKS[name] = load_object(name)
    if name not in _TASKS:
        close = difflib.get_close_matches(name, list_tasks(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TaskDataError(f"unknown task {name!r}{hint} (known: {', '.join(list_tasks())})")
    try:
        return _TASKS[name](**options)
    except TypeError as e:
        raise TaskDataError(f"task {name!r}: bad options {sorted(options)}: {e}") from e


def list_tasks() -> list[str]:
    return sorted(set(_TASKS) | set(_BUILTIN))


@dataclass
class Task:
    """Base class. Subclasses implement `samples(split, limit)`.

    template: a name from `rlvr.templates`. verifiers: component name -> weight (see `combine`).
    verifier_options: component name -> options for `get_verifier`.
    """

    template: str = "none"
    verifiers: dict[str, float] = field(default_factory=lambda: {"math": 1.0})
    verifier_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    name: str = "task"

    def samples(self, split: str = "train", limit: int | None = None) -> list[Sample]:
        raise NotImplementedError

    def render(self, sample: Sample, tokenizer: Any = None) -> str:
        """The prompt the policy sees for `sample`."""
        return render(self.template, sample.prompt, tokenizer)

    def environment(self) -> Any:
        """The task's own multi-turn environment (an `rlvr.rollout.trajectory.Environment`), or
        None for single-turn completions (the default). A config's ``env.environment`` replaces it."""
        return None

    def verifier(self) -> Combined:
        """The task's weighted verifier (picklable, so it can go to scoring workers)."""
        specs = {k: (k, dict(self.verifier_options.get(k, {}))) for k in self.verifiers}
        return combine(self.verifiers, specs)


# ---------------------------------------------------------------------------------------- loading

_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def _check_jsonl(path: Path) -> list[int]:
    """Validate a JSONL file line by line; return the line number of each row."""
    lines: list[int] = []
    with path.open("r", encoding="utf-8") as f:
        for no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise TaskDataError(f"{path}:{no}: invalid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise TaskDataError(f"{path}:{no}: expected a JSON object, got {type(row).__name__}")
            lines.append(no)
    return lines


def load_rows(
    source: str | Path,
    *,
    split: str = "train",
    config: str | None = None,
    limit: int | None = None,
) -> tuple[list[dict[str, Any]], Callable[[int], str]]:
    """Rows of a local file (JSONL, JSON, Parquet, CSV) or a hub dataset, through `datasets`.

    Returns the rows and a function that names row i for error messages ("file.jsonl:17",
    "file.csv row 3", "openai/gsm8k[test] row 5").
    """
    import datasets

    path = Path(source)
    suffix = path.suffix.lower()
    if path.exists() or suffix in _FORMATS:
        if not path.is_file():
            raise TaskDataError(f"{path}: no such data file")
        if suffix not in _FORMATS:
            raise TaskDataError(f"{path}: unknown data format {suffix!r} (use .jsonl, .json, .parquet or .csv)")
        line_of = _check_jsonl(path) if suffix == ".jsonl" else None
        try:
            ds = datasets.load_dataset(_FORMATS[suffix], data_files=str(path), split="train")
        except Exception as e:  # datasets wraps parser errors in several types
            raise TaskDataError(f"{path}: could not be read as {suffix[1:]}: {e}") from e
        if line_of is not None:
            where = lambda i: f"{path}:{line_of[i]}"
        elif suffix == ".csv":
            where = lambda i: f"{path} row {i + 2} (line {i + 2}, after the header)"
        else:
            where = lambda i: f"{path} row {i + 1}"
    else:
        try:
            ds = datasets.load_dataset(str(source), config, split=split)
        except Exception as e:
            raise TaskDataError(f"dataset {source!r} (config={config!r}, split={split!r}) could not be loaded: {e}") from e
        where = lambda i: f"{source}[{split}] row {i + 1}"
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return ds.to_list(), where


def rows_to_samples(
    rows: list[Mapping[str, Any]],
    where: Callable[[int], str],
    columns: Mapping[str, str] | None = None,
    required: tuple[str, ...] = ("prompt", "answer"),
    transform: Mapping[str, Callable[[Any], Any]] | None = None,
) -> list[Sample]:
    """Map dataset rows to Samples. `columns` maps Sample fields to dataset columns.

    A row that lacks a required field (or whose value is null) raises TaskDataError naming the
    row and the field. `transform[field]` post-processes a value (e.g. GSM8K's "#### 72" gold);
    a ValueError there is reported with the row and field too. Unmapped columns go to metadata.
    """
    columns = dict(columns or {})
    fields = ("prompt", "answer", "tests", "metadata")
    unknown = set(columns) - set(fields)
    if unknown:
        raise TaskDataError(f"column mapping names unknown Sample field(s) {sorted(unknown)}; use {list(fields)}")
    transform = dict(transform or {})
    out: list[Sample] = []
    for i, row in enumerate(rows):
        values: dict[str, Any] = {}
        for f in fields:
            col = columns.get(f, f)
            present = col in row and row[col] is not None
            if not present and f in required:
                have = ", ".join(sorted(k for k, v in row.items() if v is not None)) or "none"  # a table pads with None
                raise TaskDataError(f"{where(i)}: missing field {col!r} (for Sample.{f}; columns: {have})")
            if present:
                try:
                    values[f] = transform[f](row[col]) if f in transform else row[col]
                except ValueError as e:
                    raise TaskDataError(f"{where(i)}: field {col!r}: {e}") from None
        used = {columns.get(f, f) for f in fields}
        meta = dict(values.pop("metadata", None) or {})
        meta.update({k: v for k, v in row.items() if k not in used})
        meta.setdefault("row", i)
        if "prompt" in values and not isinstance(values["prompt"], str):
            raise TaskDataError(f"{where(i)}: field {columns.get('prompt', 'prompt')!r} must be text")
        out.append(Sample(prompt=values.get("prompt", ""), answer=values.get("answer"), tests=values.get("tests"), metadata=meta))
    return out
