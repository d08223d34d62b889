"""Tools for multi-turn episodes: the contract (`rlvr.tools.base`), parsing calls out of model
text (`rlvr.tools.parse`), the built-in ``python`` and ``calculator`` tools and user tools
(`rlvr.tools.builtin`, ``@register_tool``), and the concurrent runner (`rlvr.tools.runner`).

``from rlvr.tools import register_tool, get_tool, ToolRunner, parse_calls`` works; those modules
are imported on first use, so importing `rlvr.tools` stays light."""

from typing import Any

from rlvr.tools.base import Tool, ToolCall, ToolResult, ToolStatus

__all__ = ["Tool", "ToolCall", "ToolResult", "ToolRunner", "ToolStatus", "get_tool", "list_tools", "parse_calls",
           "register_tool"]

_LAZY = {"ToolRunner": "rlvr.tools.runner", "get_tool": "rlvr.tools.builtin", "list_tools": "rlvr.tools.builtin",
         "register_tool": "rlvr.tools.builtin", "parse_calls": "rlvr.tools.parse"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rlvr.tools' has no attribute {name!r}")
