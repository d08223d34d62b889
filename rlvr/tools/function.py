"""Plain Python functions as tools: `FunctionTool`, its JSON schema, and the processes it runs in.

A typed function becomes a tool: its name, its docstring's first paragraph as the description,
and a JSON schema built from its signature (``int`` -> integer, ``float`` -> number, ``str``,
``bool``, ``list[...]`` -> array, ``dict`` -> object, ``Literal[...]`` -> enum; a parameter
without a default is required; ``Args:`` lines of the docstring describe parameters).

Each call runs in a child process of this one (`rlvr.tools._fn_worker`), kept warm between calls
(one per concurrent call, started on demand; a new process's first call also pays its start, about
0.1 s), so a function that hangs is killed at its deadline
with its whole process group, not abandoned in a thread; the next call gets a fresh process. The
model's arguments are checked against the schema before anything runs. What the function returns
is the model's observation (a string as is, a dict or list as JSON, anything else ``str()``);
when it returns None, what it printed. An exception comes back as an error result with the last
lines of its traceback.

What it does not do: isolate the function. It is your code and runs with your permissions; only
the model's arguments are untrusted. Model-written programs go to the ``python`` tool, which runs
them in the sandbox.

Try it::

    >>> def add(a: int, b: int = 0) -> int:
    ...     '''Add two integers.'''
    ...     return a + b
    >>> tool = FunctionTool(add)
    >>> tool.parameters["required"], tool({"a": 2, "b": 40}, timeout_s=30).output   # doctest: +SKIP
    (['a'], '42')
"""

from __future__ import annotations

import inspect
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlvr.tools.base import ToolResult

__all__ = ["FunctionTool", "json_schema"]

WORKER = Path(__file__).with_name("_fn_worker.py")
_JSON = {int: "integer", float: "number", str: "string", bool: "boolean", list: "array", dict: "object",
         tuple: "array"}


def _type_schema(hint: Any) -> dict[str, Any]:
    """The JSON schema of one annotation ({} for anything we cannot express: any value)."""
    if hint is inspect.Parameter.empty or hint is Any:
        return {}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        kinds = [a for a in args if a is not type(None)]
        return _type_schema(kinds[0]) if len(kinds) == 1 else {}
    if origin in (list, tuple, set):
        out: dict[str, Any] = {"type": "array"}
        if args and args[0] is not Ellipsis:
            out["items"] = _type_schema(args[0])
        return out
    if origin is dict:
        return {"type": "object"}
    return {"type": _JSON[hint]} if hint in _JSON else {}


def _arg_docs(doc: str) -> dict[str, str]:
    """``name: text`` lines under an ``Args:`` heading of a docstring."""
    out, inside = {}, False
    for line in doc.splitlines():
        s = line.strip()
        if s.lower() in ("args:", "arguments:", "parameters:"):
            inside = True
        elif inside and ":" in s and s.split(":", 1)[0].split(" (")[0].isidentifier():
            name, text = s.split(":", 1)
            out[name.split(" (")[0]] = text.strip()
        elif inside and not s:
            inside = False
    return out


def json_schema(fn: Callable[..., Any]) -> dict[str, Any]:
    """The JSON schema of `fn`'s keyword arguments.

    >>> def f(n: int, mode: typing.Literal["a", "b"] = "a", xs: list[float] | None = None): ...
    >>> json_schema(f)["properties"]
    {'n': {'type': 'integer'}, 'mode': {'enum': ['a', 'b']}, 'xs': {'type': 'array', 'items': {'type': 'number'}}}
    """
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: no types
        hints = {}
    docs = _arg_docs(inspect.getdoc(fn) or "")
    props, required = {}, []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.kind is p.POSITIONAL_ONLY:
            raise TypeError(f"tool {fn.__name__}: positional-only parameter {p.name!r} cannot take JSON arguments")
        props[p.name] = _type_schema(hints.get(p.name, p.annotation))
        if p.name in docs:
            props[p.name]["description"] = docs[p.name]
        if p.default is p.empty:
            required.append(p.name)
    return {"type": "object", "properties": props, "required": required}


def check_arguments(arguments: Any, schema: dict[str, Any]) -> str | None:
    """Why `arguments` do not fit `schema` (None when they do); a message for the model."""
    if not isinstance(arguments, dict):
        return f"arguments must be a JSON object, got {type(arguments).__name__}"
    props = schema.get("properties", {})
    missing = [k for k in schema.get("required", []) if k not in arguments]
    if missing:
        return f"missing argument {missing[0]!r}"
    for k, v in arguments.items():
        if k not in props:
            return f"unexpected argument {k!r} (takes {', '.join(props) or 'no arguments'})"
        why = _value_error(v, props[k])
        if why:
            return f"argument {k!r}: {why}"
    return None


def _value_error(v: Any, spec: dict[str, Any]) -> str | None:
    if "enum" in spec and v not in spec["enum"]:
        return f"must be one of {spec['enum']}, got {v!r}"
    kind = spec.get("type")
    ok = {"integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
          "number": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
          "string": lambda x: isinstance(x, str), "boolean": lambda x: isinstance(x, bool),
          "array": lambda x: isinstance(x, list), "object": lambda x: isinstance(x, dict)}
    if kind and not ok[kind](v):
        return f"expected {kind}, got {type(v).__name__} {str(v)[:40]!r}"
    if kind == "array" and "items" in spec:
        for x in v:
            why = _value_error(x, spec["items"])
            if why:
                return f"item {x!r}: {why}"
    return None


class _Proc:
    """One warm worker process and its pipes."""

    def __init__(self, payload: bytes):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.popen = subprocess.Popen([sys.executable, "-u", str(WORKER)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, start_new_session=True, env=env)
        self.send_raw(payload)

    def send_raw(self, data: bytes) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(struct.pack("!I", len(data)) + data)
        self.popen.stdin.flush()

    def recv(self, deadline: float) -> Any:
        """The next frame, or None if the process died; TimeoutError at `deadline`."""
        fd = self.popen.stdout.fileno()  # type: ignore[union-attr]
        buf = b""
        need = 4
        while len(buf) < need:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, need - len(buf))
            if not chunk:
                return None
            buf += chunk
            if need == 4 and len(buf) == 4:
                need = 4 + struct.unpack("!I", buf)[0]
        return pickle.loads(buf[4:])

    def kill(self) -> None:
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.popen.wait()
        for s in (self.popen.stdin, self.popen.stdout):
            try:
                s.close()  # type: ignore[union-attr]
            except OSError:
                pass


class FunctionTool:
    """A typed Python function as a `rlvr.tools.base.Tool` (see the module docstring).

    name / description: default to the function's name and the first paragraph of its docstring.
    max_chars: the most characters of output a call sends back (the runner caps again, lower).
    """

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None, description: str | None = None,
                 max_chars: int = 64 * 1024):
        if not callable(fn):
            raise TypeError(f"FunctionTool: {fn!r} is not callable")
        self.fn, self.max_chars = fn, int(max_chars)
        self.name = name or getattr(fn, "__name__", type(fn).__name__)
        doc = inspect.getdoc(fn) or ""
        self.description = description or doc.split("\n\n")[0].replace("\n", " ").strip()
        self.parameters = json_schema(fn)
        try:
            import cloudpickle

            self._payload = cloudpickle.dumps(fn)
        except Exception as e:  # noqa: BLE001
            raise TypeError(f"tool {self.name}: the function cannot be sent to a worker process: {e}") from e
        self._idle: list[_Proc] = []
        self._all: set[_Proc] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.stats = {"calls": 0, "killed": 0, "died": 0}

    def __call__(self, arguments: dict[str, Any], *, timeout_s: float = 10.0) -> ToolResult:
        t0 = time.monotonic()
        why = check_arguments(arguments, self.parameters)
        if why:
            return ToolResult(f"error: {self.name}: {why}", "error", wall_s=time.monotonic() - t0,
                              info={"reason": "bad_arguments"})
        proc = self._acquire()
        try:
            proc.send_raw(pickle.dumps((arguments, self.max_chars)))
            reply = proc.recv(t0 + timeout_s)
        except TimeoutError:
            self._discard(proc)
            self.stats["killed"] += 1
            return ToolResult(f"error: {self.name} did not finish within {timeout_s:g} s and was stopped",
                              "timeout", wall_s=time.monotonic() - t0, info={"reason": "timeout"})
        except (OSError, pickle.UnpicklingError, EOFError):
            reply = None
        if reply is None:  # the process died mid-call (os._exit, a crash, killed from outside)
            try:
                code = proc.popen.wait(5)  # its pipe closed: it is exiting
            except subprocess.TimeoutExpired:
                code = None
            self._discard(proc)
            self.stats["died"] += 1
            return ToolResult(f"error: {self.name} crashed (its process exited with {code})", "error",
                              replaced=True, wall_s=time.monotonic() - t0, info={"reason": "crashed"})
        self._release(proc)
        kind, text, total = reply
        return ToolResult(text, "ok" if kind == "ok" else "error", truncated=total > len(text),
                          wall_s=time.monotonic() - t0, info={"chars": total} if kind == "ok" else
                          {"reason": "exception", "chars": total})

    def _acquire(self) -> _Proc:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"tool {self.name} is closed")
            self.stats["calls"] += 1
            if self._idle:
                return self._idle.pop()
        proc = _Proc(self._payload)
        with self._lock:
            self._all.add(proc)
        return proc

    def _release(self, proc: _Proc) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(proc)
                return
        self._discard(proc)

    def _discard(self, proc: _Proc) -> None:
        proc.kill()
        with self._lock:
            self._all.discard(proc)

    def pids(self) -> list[int]:
        """Process ids of this tool's live worker processes."""
        with self._lock:
            return [p.popen.pid for p in self._all]

    def close(self) -> None:
        """Kill this tool's worker processes (idempotent)."""
        with self._lock:
            self._closed = True
            procs, self._idle = list(self._all), []
        for p in procs:
            self._discard(p)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - at interpreter exit
            pass

    def __repr__(self) -> str:
        return f"FunctionTool({self.name})"
