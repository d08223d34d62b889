"""Tools for multi-turn episodes: the contract (`rlvr.tools.base`), parsing calls out of model
text (`rlvr.tools.parse`), the built-in ``python`` and ``calculator`` tools and user tools
(`rlvr.tools.builtin`, ``@register_tool``), and the concurrent runner (`rlvr.tools.runner`)."""

from rlvr.tools.base import Tool, ToolCall, ToolResult, ToolStatus

__all__ = ["Tool", "ToolCall", "ToolResult", "ToolStatus"]
