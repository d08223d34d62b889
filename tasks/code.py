"""Code tasks: `humaneval`, `mbpp` and `stdio` styles, graded by the `code` verifier in a sandbox.

| task        | default source                     | tests (see docs/code_verifier.md)            |
|-------------|------------------------------------|----------------------------------------------|
| `humaneval` | `openai/openai_humaneval`          | `check(candidate)` source + `entry_point`    |
| `mbpp`      | `google-research-datasets/mbpp`    | assert strings + optional setup code         |
| `stdio`     | `codeparrot/apps`                  | stdin/stdout cases (`input_output` JSON)     |

`code` is the generic form: pick the style with ``style=`` and map columns yourself. Local files
with the same columns work too (``source=data/humaneval.jsonl``). The prompt asks for the program
in a fenced Python block, which is what the verifier extracts.

Try it::

    >>> from rlvr.tasks import get_task
    >>> t = get_task("mbpp", source="mbpp.jsonl")            # doctest: +SKIP
    >>> t.samples("test")[0].tests["asserts"][0]             # doctest: +SKIP
    'assert remove_Occ("hello","l") == "heo"'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlvr.tasks.base import Task, TaskDataError, load_rows, register_task
from rlvr.verifiers.base import Sample

FENCE_INSTRUCTION = "Write your solution as a complete Python program in a single ```python code block."

STYLES = ("humaneval", "mbpp", "stdio")


def _need(row: dict[str, Any], col: str, where: str) -> Any:
    if row.get(col) is None:
        raise TaskDataError(f"{where}: missing field {col!r} (columns: {', '.join(sorted(row)) or 'none'})")
    return row[col]


def humaneval_sample(row: dict[str, Any], where: str) -> Sample:
    stub = _need(row, "prompt", where)
    entry = _need(row, "entry_point", where)
    prompt = f"Complete this Python function.\n\n```python\n{stub.rstrip()}\n```\n\n{FENCE_INSTRUCTION}"
    meta = {"task_id": row.get("task_id"), "stub": stub}
    return Sample(prompt=prompt, answer=row.get("canonical_solution"), tests={"entry_point": entry, "test": _need(row, "test", where)}, metadata=meta)


def mbpp_sample(row: dict[str, Any], where: str) -> Sample:
    text = _need(row, "text", where) if "text" in row else _need(row, "prompt", where)
    asserts = list(_need(row, "test_list", where))
    if not asserts:
        raise TaskDataError(f"{where}: field 'test_list' is empty")
    prompt = f"{text.strip()}\nYour code should pass this test:\n{asserts[0]}\n\n{FENCE_INSTRUCTION}"
    tests = {"asserts": asserts, "setup": row.get("test_setup_code") or ""}
    return Sample(prompt=prompt, answer=row.get("code"), tests=tests, metadata={"task_id": row.get("task_id")})


def stdio_sample(row: dict[str, Any], where: str) -> Sample:
    question = _need(row, "question", where)
    tests = _need(row, "input_output", where)
    if isinstance(tests, str) and not tests.strip():
        raise TaskDataError(f"{where}: field 'input_output' is empty")
    prompt = f"{question.strip()}\n\nRead from standard input and write to standard output.\n{FENCE_INSTRUCTION}"
    return Sample(prompt=prompt, answer=None, tests=tests, metadata={"problem_id": row.get("problem_id"), "difficulty": row.get("difficulty")})


_BUILDERS = {"humaneval": humaneval_sample, "mbpp": mbpp_sample, "stdio": stdio_sample}
_DEFAULTS = {
    "humaneval": ("openai/openai_humaneval", None, "test"),
    "mbpp": ("google-research-datasets/mbpp", "full", "test"),
    "stdio": ("codeparrot/apps", "all", "test"),
}


@register_task("code")
@dataclass
class CodeTask(Task):
    """Code problems of one `style`; `source`/`config` default to the style's usual hub dataset."""

    style: str = "humaneval"
    source: str | None = None
    config: str | None = None
    template: str = "chat"
    verifiers: dict[str, float] = field(default_factory=lambda: {"code": 1.0})
    name: str = "code"

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise TaskDataError(f"code task: style must be one of {STYLES}, got {self.style!r}")

    def samples(self, split: str = "test", limit: int | None = None) -> list[Sample]:
        source, config, _ = _DEFAULTS[self.style]
        rows, where = load_rows(self.source or source, split=split, config=self.config or (None if self.source else config), limit=limit)
        build = _BUILDERS[self.style]
        return [build(row, where(i)) for i, row in enumerate(rows)]


def _styled(style: str):
    def factory(**options: Any) -> CodeTask:
        return CodeTask(style=style, name=style, **options)

    factory.__name__ = f"{style}_task"
    return factory


for _style in STYLES:
    register_task(_style)(_styled(_style))
