"""Tool calls out of model text: fenced ``python`` blocks and Hermes/Qwen ``<tool_call>`` JSON.

`parse_calls(text, formats)` returns the calls of one model turn in the order they appear:

- ``"python_fence"``: each fenced block tagged ``python``/``py``/``python3`` becomes
  ``ToolCall("python", {"code": body})``. Untagged fences and other languages are plain text (an
  ``output`` block is what the tool answered). An opened ``python`` block that is never closed is
  a malformed call (the model hit its token limit or forgot the closing fence).
- ``"hermes"``: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, the tool-call format
  of the Hermes and Qwen chat templates. ``"arguments"`` may also be a JSON string holding an
  object, or be spelled ``"parameters"``. Bad JSON, a missing name or non-object arguments give a
  malformed call whose ``error`` says what is wrong; it is never run, the error is what the model
  reads next.

`STOPS` holds the strings that end a model turn for each format (the sampler keeps the stop string
in the text, so the closing fence or tag is there to parse). `format_observation` writes tool
results back in the matching format (an ``output`` fence, or ``<tool_response>`` tags).

What it does not do: run calls (`rlvr.tools.runner`) or decide when an episode ends
(`rlvr.rollout.trajectory.Environment`).

Try it::

    >>> [c.name for c in parse_calls('```python\\nprint(6*7)\\n```\\n<tool_call>{"name": "calculator", '
    ...                              '"arguments": {"expression": "6*7"}}</tool_call>')]
    ['python', 'calculator']
    >>> parse_calls("<tool_call>{name: calculator}</tool_call>")[0].error[:30]
    'malformed <tool_call>: invalid'
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from rlvr.tools.base import ToolCall, ToolResult

__all__ = ["FORMATS", "STOPS", "format_observation", "parse_calls", "stops_for"]

FORMATS = ("python_fence", "hermes")

# Strings that end a model turn. "\n```\n" closes a fence and never matches an opening one
# ("```python\n"); the sampler keeps it in the text.
STOPS: dict[str, tuple[str, ...]] = {
    "python_fence": ("\n```\n",),
    "hermes": ("</tool_call>",),
}

_PY_TAGS = ("python", "py", "python3")
# An opening fence, its tag, then everything up to a closing fence at the start of a line (not an
# opening one such as ```output), or the end of the text: an unclosed block.
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(^[ \t]*```(?![A-Za-z0-9_+-])|\Z)", re.DOTALL | re.M)
_HERMES = re.compile(r"<tool_call>(.*?)(</tool_call>|\Z)", re.DOTALL)


def stops_for(formats: Sequence[str]) -> tuple[str, ...]:
    """The stop strings of `formats`, in order, without repeats.

    >>> stops_for(["hermes", "python_fence"])
    ('</tool_call>', '\\n```\\n')
    """
    _check(formats)
    out: list[str] = []
    for f in formats:
        out += [s for s in STOPS[f] if s not in out]
    return tuple(out)


def _check(formats: Sequence[str]) -> None:
    if isinstance(formats, str):
        raise ValueError(f"tool call formats: expected a list of names, got the string {formats!r}")
    bad = [f for f in formats if f not in STOPS]
    if bad:
        raise ValueError(f"unknown tool call format {bad[0]!r}; known: {', '.join(FORMATS)}")


def parse_calls(text: str, formats: Sequence[str] = FORMATS) -> list[ToolCall]:
    """Every tool call in `text` (one model turn), in order of appearance; [] when there is none.

    >>> parse_calls("The answer is 42.")
    []
    >>> parse_calls("```python\\nprint(1)\\n```\\n")[0].arguments
    {'code': 'print(1)\\n'}
    """
    _check(formats)
    found: list[tuple[int, ToolCall]] = []
    taken: list[tuple[int, int]] = []
    if "hermes" in formats:
        for m in _HERMES.finditer(text):
            found.append((m.start(), _hermes_call(m.group(1), m.group(0), closed=bool(m.group(2)))))
            taken.append(m.span())
    if "python_fence" in formats:
        for m in _FENCE.finditer(text):
            tag, body, close = m.group(1).lower(), m.group(2), m.group(3)
            if tag not in _PY_TAGS or any(a <= m.start() < b for a, b in taken):
                continue
            if not close:
                found.append((m.start(), ToolCall("python", {"code": body}, m.group(0), error=(
                    "unclosed ```python block: end the code with ``` on a line of its own"))))
            elif not body.strip():
                found.append((m.start(), ToolCall("python", {"code": body}, m.group(0),
                                                  error="empty ```python block: nothing to run")))
            else:
                found.append((m.start(), ToolCall("python", {"code": body}, m.group(0))))
    return [call for _, call in sorted(found, key=lambda x: x[0])]


def _hermes_call(body: str, raw: str, closed: bool) -> ToolCall:
    """One ``<tool_call>`` body as a ToolCall (with ``error`` set when it cannot be run)."""
    if not closed:
        return ToolCall("", {}, raw, error="unclosed <tool_call>: end it with </tool_call>")
    try:
        obj = json.loads(body, strict=False)  # raw newlines inside strings (code) are common
    except json.JSONDecodeError as e:
        return ToolCall("", {}, raw, error=f"malformed <tool_call>: invalid JSON ({e.msg} at character {e.pos})")
    if not isinstance(obj, dict):
        return ToolCall("", {}, raw, error=f"malformed <tool_call>: expected a JSON object, got {type(obj).__name__}")
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        return ToolCall("", {}, raw, error='malformed <tool_call>: missing "name" (a string)')
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):  # some templates write the arguments as a JSON string
        try:
            args = json.loads(args, strict=False) if args.strip() else {}
        except json.JSONDecodeError as e:
            return ToolCall(name, {}, raw, error=f'malformed <tool_call>: "arguments" is not JSON ({e.msg})')
    if args is None:
        args = {}
    if not isinstance(args, dict):
        return ToolCall(name, {}, raw, error=f'malformed <tool_call>: "arguments" must be an object, '
                                             f"got {type(args).__name__}")
    return ToolCall(name.strip(), args, raw)


def format_observation(calls: Sequence[ToolCall], results: Sequence[ToolResult]) -> str:
    """The text the model reads after its calls: each result in the format of its call.

    A fenced python call gets an ``output`` fence; a ``<tool_call>`` (or a malformed call) gets
    ``<tool_response>`` tags.

    >>> format_observation([ToolCall("python", {"code": "print(1)"}, "```python\\nprint(1)\\n```")],
    ...                    [ToolResult("1\\n")])
    '```output\\n1\\n```\\n'
    """
    parts = []
    for call, res in zip(calls, results, strict=True):
        text = res.output if res.output.endswith("\n") or not res.output else res.output + "\n"
        if call.raw.lstrip().startswith("```"):
            parts.append(f"```output\n{text}```\n")
        else:
            parts.append(f"<tool_response>\n{text}</tool_response>\n")
    return "".join(parts)
