"""The tool contract: `ToolCall` (what the model asked for), `ToolResult` (what came of it), `Tool`.

A tool is anything with a ``name`` and ``__call__(arguments: dict, *, timeout_s: float) -> ToolResult``.
Tools never raise for the model's mistakes: an unknown name, bad arguments, a crash, a hang or a
flood of output all come back as a `ToolResult` whose ``status`` says so, and the episode goes on
(the model reads the error as its observation).

What this module does not do: parse calls out of model text (`rlvr.tools.parse`), run them
concurrently (`rlvr.tools.runner`), or hold the built-in tools (`rlvr.tools.builtin`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

__all__ = ["Tool", "ToolCall", "ToolResult", "ToolStatus"]

ToolStatus = Literal["ok", "error", "timeout"]


@dataclass
class ToolCall:
    """One call parsed from a model turn.

    name: the tool's name ("python" for a fenced code block). arguments: its JSON arguments
    (``{"code": ...}`` for python). raw: the exact text of the call in the turn. error: set when
    the call could not be parsed (malformed JSON, no name); such a call is never run, its error
    becomes the observation.
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    raw: str = ""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ToolResult:
    """What one call returned.

    output: the text the model will read (already capped). status: "ok", "error" (the tool or the
    program failed, the call was malformed or named an unknown tool) or "timeout" (the deadline
    passed). truncated: the output was cut at the cap. replaced: the sandbox container died during
    the call and was replaced. wall_s: seconds from the call's start to its result.
    """

    output: str
    status: ToolStatus = "ok"
    truncated: bool = False
    replaced: bool = False
    wall_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Tool(Protocol):
    """A named tool. ``description`` and ``parameters`` (a JSON schema) go into the system prompt
    of chat-template models that take a tool list."""

    name: str
    description: str
    parameters: dict[str, Any]

    def __call__(self, arguments: dict[str, Any], *, timeout_s: float) -> ToolResult: ...
