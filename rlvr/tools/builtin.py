"""The tool registry and the built-in tools: ``python`` (the sandbox) and ``calculator`` (exact).

- ``@register_tool`` turns a plain typed function into a named tool (schema from its signature,
  description from its docstring; see `rlvr.tools.function`). It returns the function unchanged.
- `get_tool(spec, **options)` makes a fresh `Tool` from a built-in name, a registered name, or a
  reference to your code (``tools.py:lookup`` or ``my_pkg.tools:lookup``, loaded by
  `rlvr.plugins`): a function becomes a `FunctionTool`, a class is called with ``options``, and a
  ready `Tool` object is used as is. `check_tool_spec` says whether a spec resolves without
  starting anything (for config checks); `list_tools` lists the names.
- ``python`` (`PythonTool`): ``{"code": "..."}`` runs as a fresh program in the Docker warm pool
  (`rlvr.sandboxes.docker.DockerSandbox`), the same pool and isolation as code grading
  (`rlvr.verifiers.code.shared_sandbox`): no network, read-only root, memory, pid and CPU caps.
  Without Docker (``sandbox="auto"``) it falls back to `rlvr.sandboxes.local.LocalSandbox`, which
  warns loudly; ``sandbox="docker"`` refuses to fall back. The observation is stdout then stderr,
  then a status line when the program did not exit 0 (``[exit status 1]``, ``[timed out after 5
  s]``, ``[killed by signal 9]``). A container that dies during a call is replaced by the pool
  and the call is run again once in a fresh one (``ToolResult.replaced``).
- ``calculator`` (`rlvr.tools.calculator.Calculator`): exact rational arithmetic, never ``eval``.

What it does not do: run calls concurrently or cap output for the model (`rlvr.tools.runner`).

Try it::

    >>> @register_tool
    ... def word_count(text: str) -> int:
    ...     '''Count the words of a text.'''
    ...     return len(text.split())
    >>> "word_count" in list_tools(), get_tool("word_count").parameters["required"]
    (True, ['text'])
    >>> get_tool("calculator")({"expression": "1/3 + 1/6"}, timeout_s=1).output
    '0.5'
"""

from __future__ import annotations

import difflib
import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from rlvr.io import InputError
from rlvr.plugins import is_reference, load_object
from rlvr.tools.base import Tool, ToolResult
from rlvr.tools.calculator import Calculator
from rlvr.tools.function import FunctionTool

__all__ = ["PythonTool", "ToolSpecError", "check_tool_spec", "get_tool", "list_tools", "register_tool"]

log = logging.getLogger("rlvr.tools")

_REGISTRY: dict[str, tuple[Callable[..., Any], str | None]] = {}  # name -> (function, description)
_LOST = ("sandbox_lost", "sandbox_unresponsive")


class ToolSpecError(InputError):
    """A tool name or reference that does not resolve, or options the tool does not take."""


def register_tool(fn: Callable[..., Any] | None = None, *, name: str | None = None,
                  description: str | None = None) -> Any:
    """Register a typed function as a tool (a decorator, with or without arguments).

    >>> @register_tool(name="shout")
    ... def upper(text: str) -> str:
    ...     '''Upper-case a text.'''
    ...     return text.upper()
    >>> get_tool("shout").description
    'Upper-case a text.'
    """

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(f):
            raise TypeError(f"register_tool: {f!r} is not callable")
        tool_name = name or f.__name__
        if tool_name in _BUILTIN:
            raise ValueError(f"register_tool: {tool_name!r} is a built-in tool; pick another name")
        FunctionTool(f, name=tool_name, description=description)  # schema errors show up here
        _REGISTRY[tool_name] = (f, description)
        return f

    return deco(fn) if fn is not None else deco


class PythonTool:
    """The ``python`` tool (see the module docstring).

    sandbox: "auto" | "docker" | "local" | a `rlvr.sandboxes.base.Sandbox` (yours to close).
    memory_mb: per program. The strings use this process's shared pool of that kind, started on
    first use and closed at exit.
    """

    name = "python"
    description = "Run a Python program in a sandbox and read its stdout and stderr."
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "a complete Python program; print results"}},
        "required": ["code"],
    }

    def __init__(self, sandbox: Any = "auto", *, memory_mb: int = 256):
        from rlvr.sandboxes.base import Sandbox

        if isinstance(sandbox, str):
            if sandbox not in ("auto", "docker", "local"):
                raise ToolSpecError(f"python tool: sandbox must be auto, docker or local, not {sandbox!r}")
        elif not isinstance(sandbox, Sandbox):
            raise ToolSpecError(f"python tool: {sandbox!r} does not implement the Sandbox protocol")
        self._spec, self.memory_mb = sandbox, int(memory_mb)
        self._sandbox = None if isinstance(sandbox, str) else sandbox
        self._lock = threading.Lock()

    @property
    def sandbox(self) -> Any:
        """The sandbox programs run in (a shared pool is started on first use)."""
        with self._lock:
            if self._sandbox is None:
                from rlvr.verifiers.code import shared_sandbox

                self._sandbox = shared_sandbox(self._spec)
                kind = type(self._sandbox).__name__
                if kind != "DockerSandbox":
                    log.warning("python tool: model-written programs run in %r, not the Docker pool", self._sandbox)
        return self._sandbox

    def __call__(self, arguments: dict[str, Any], *, timeout_s: float = 10.0) -> ToolResult:
        t0 = time.monotonic()
        code = arguments.get("code") if isinstance(arguments, dict) else None
        extra = sorted(set(arguments) - {"code"}) if isinstance(arguments, dict) else []
        if not isinstance(code, str) or not code.strip() or extra:
            why = f"unexpected argument {extra[0]!r}" if extra else "'code' must be a non-empty string"
            return ToolResult(f"error: python: {why}", "error", info={"reason": "bad_arguments"})
        res = self.sandbox.run(code, timeout_s=timeout_s, memory_mb=self.memory_mb)
        wall = time.monotonic() - t0
        info = {"exit_code": res.exit_code, "chars": res.stdout_bytes + res.stderr_bytes,
                **{k: v for k, v in res.info.items() if k in ("container", "mode", "lost")}}
        if res.error:
            replaced = res.error in _LOST
            info["reason"] = res.error
            note = "; its container was replaced" if replaced else ""
            status = "timeout" if res.timed_out else "error"
            return ToolResult(f"error: the sandbox failed ({res.error}){note}", status, replaced=replaced,
                              wall_s=wall, info=info)
        out = res.stdout + res.stderr
        if res.timed_out:
            tail, status = f"[timed out after {timeout_s:g} s]", "timeout"
        elif res.memory_exceeded:
            tail, status = f"[over the memory limit of {self.memory_mb} MB]", "error"
        elif res.signal is not None:
            tail, status = f"[killed by signal {res.signal}]", "error"
        elif res.exit_code != 0:
            tail, status = f"[exit status {res.exit_code}]", "error"
        else:
            tail, status = "", "ok"
        if tail:
            out = out + ("" if not out or out.endswith("\n") else "\n") + tail + "\n"
        return ToolResult(out, status, truncated=res.truncated, replaced="lost" in res.info, wall_s=wall,
                          info=info)

    def __repr__(self) -> str:
        return f"PythonTool(sandbox={self._spec if self._sandbox is None else self._sandbox!r})"


_BUILTIN: dict[str, type] = {"python": PythonTool, "calculator": Calculator}


def list_tools() -> list[str]:
    """Every name `get_tool` resolves without a file reference: built-in and registered tools."""
    return sorted(set(_BUILTIN) | set(_REGISTRY))


def _resolve(spec: str) -> Any:
    """What `spec` names: a built-in class, a registered (function, description), or a loaded object."""
    if not isinstance(spec, str) or not spec.strip():
        raise ToolSpecError(f"tool spec must be a name or file.py:name, got {spec!r}")
    if spec in _BUILTIN:
        return _BUILTIN[spec]
    if spec in _REGISTRY:
        return _REGISTRY[spec]
    if is_reference(spec):
        return load_object(spec)  # PluginError (an InputError) names the file and the missing name
    close = difflib.get_close_matches(spec, list_tools(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ToolSpecError(f"unknown tool {spec!r}{hint} (known: {', '.join(list_tools())}; or "
                        "path/to/file.py:function, package.module:function)")


def check_tool_spec(spec: str) -> None:
    """Raise `ToolSpecError` (or `rlvr.plugins.PluginError`) when `spec` does not resolve to a tool;
    starts nothing (no sandbox, no process)."""
    obj = _resolve(spec)
    if not (isinstance(obj, tuple) or inspect.isclass(obj) or callable(obj)):
        raise ToolSpecError(f"tool {spec!r}: {obj!r} is not a function, a class or a Tool")


def get_tool(spec: str, **options: Any) -> Tool:
    """A new tool for `spec` (see the module docstring); `options` go to the built-in's or class's
    constructor (e.g. ``get_tool("python", sandbox="docker")``).

    >>> get_tool("calculator").name
    'calculator'
    """
    obj = _resolve(spec)
    if isinstance(obj, tuple):  # a registered function
        fn, description = obj
        return FunctionTool(fn, name=spec, description=description, **options)
    if isinstance(obj, Tool) and not inspect.isclass(obj):
        if options:
            raise ToolSpecError(f"tool {spec!r} is a ready Tool object and takes no options ({sorted(options)})")
        return obj
    if inspect.isclass(obj):
        try:
            tool = obj(**options)
        except TypeError as e:
            raise ToolSpecError(f"tool {spec!r}: bad options {sorted(options)}: {e}") from e
        if not isinstance(tool, Tool):
            raise ToolSpecError(f"tool {spec!r}: {obj.__name__} does not implement the Tool protocol "
                                "(name, description, parameters, __call__(arguments, *, timeout_s))")
        return tool
    if callable(obj):
        registered = [n for n, (f, _) in _REGISTRY.items() if f is obj]
        name = registered[0] if registered else None
        return FunctionTool(obj, name=name, description=_REGISTRY[name][1] if name else None, **options)
    raise ToolSpecError(f"tool {spec!r}: {obj!r} is not a function, a class or a Tool")
