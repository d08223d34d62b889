"""`ToolRunner`: run tool calls from every episode in flight concurrently, with deadlines and counts.

``submit(call)`` returns a `concurrent.futures.Future` of a `ToolResult` at once; the call runs on
one of ``workers`` threads (so ``python`` calls from many episodes fill every slot of the sandbox
pool while the model generates for the others). Nothing the model can write makes it raise:

- a malformed call (``ToolCall.error`` set by `rlvr.tools.parse`) and an unknown tool name resolve
  at once to an error result whose text says what is wrong and which tools exist;
- a call that runs past ``timeout_s`` is stopped by its tool (the sandbox kills the program, a
  function tool's process is killed) and comes back with status "timeout". A `Tool` object that is
  not one of ours gets a watchdog instead: at ``timeout_s + grace_s`` its result becomes a timeout
  and its thread is left to finish on its own (a thread cannot be killed; this is logged);
- output longer than ``max_output_chars`` is cut in the middle, keeping its head and its tail (the
  end of a traceback, the exit status line), with a note of how much was cut (``truncated``);
- a tool that raises (a bug in a tool, not a mistake of the model) becomes an error result; its
  first traceback is logged.

Each outcome is counted (`counts`): calls, errors, timeouts, truncated outputs, replaced sandboxes
or processes, unknown names, malformed calls, and the tools' summed wall time.

What it does not do: parse model text (`rlvr.tools.parse`), format observations, or decide when an
episode ends (`rlvr.rollout.episodes`).

Try it::

    >>> from rlvr.tools.base import ToolCall
    >>> with ToolRunner(["calculator"]) as runner:
    ...     good = runner.submit(ToolCall("calculator", {"expression": "2**64"})).result()
    ...     bad = runner.submit(ToolCall("search", {"q": "x"})).result()
    >>> good.output, bad.status, runner.counts()["unknown"]
    ('18446744073709551616', 'error', 1)
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor, wait
from typing import Any, Self

from rlvr.tools.base import Tool, ToolCall, ToolResult
from rlvr.tools.builtin import PythonTool, get_tool
from rlvr.tools.calculator import Calculator
from rlvr.tools.function import FunctionTool

__all__ = ["ToolRunner", "cap_output"]

log = logging.getLogger("rlvr.tools")

# Tools that stop their own calls at the deadline (a killed process or sandbox program).
_SELF_TIMED = (PythonTool, FunctionTool, Calculator)
COUNTERS = ("calls", "errors", "timeouts", "truncated", "replaced", "unknown", "malformed")


def cap_output(text: str, limit: int, total: int | None = None) -> tuple[str, bool]:
    """`text` cut to at most `limit` characters, keeping the head and the tail; (text, cut?).
    `total`: how long the output really was, when `text` is already a prefix of it.

    >>> cap_output("x" * 1000 + "END", 60)
    ('xxxxxxxxxxxxxxxxxxxxx\\n[... 975 characters cut ...]\\nxxxxEND', True)
    """
    total = len(text) if total is None else max(total, len(text))
    if len(text) <= limit:
        if total > len(text):  # cut earlier (by the sandbox or the tool): say so
            note = f"\n[output truncated: {total:,} characters in all]\n"
            return text + note, True
        return text, False
    note_len = len(f"\n[... {total:,} characters cut ...]\n")
    room = max(0, limit - note_len)
    head, tail = room - room // 4, room // 4
    cut = total - head - tail
    return f"{text[:head]}\n[... {cut:,} characters cut ...]\n{text[len(text) - tail:] if tail else ''}", True


class ToolRunner:
    """Runs `ToolCall`s concurrently (see the module docstring).

    tools: {name: Tool} or a list of specs for `rlvr.tools.builtin.get_tool` (``"python"``,
    ``"calculator"``, a registered name, ``file.py:func``) or `Tool` objects. Tools made here from
    specs are closed by `close`. timeout_s: each call's deadline. max_output_chars: the cap on what
    the model reads. workers: calls running at once. sandbox: where ``"python"`` runs ("auto",
    "docker", "local" or a Sandbox). grace_s: extra wait for a foreign Tool before it is abandoned.
    """

    def __init__(self, tools: Mapping[str, Tool] | Sequence[str | Tool], *, timeout_s: float = 10.0,
                 max_output_chars: int = 2000, workers: int = 8, sandbox: Any = "auto", grace_s: float = 5.0):
        if timeout_s <= 0 or max_output_chars < 1 or workers < 1:
            raise ValueError("ToolRunner: timeout_s > 0, max_output_chars >= 1 and workers >= 1 required")
        self.timeout_s, self.max_output_chars, self.grace_s = float(timeout_s), int(max_output_chars), grace_s
        self.tools: dict[str, Tool] = {}
        self._owned: list[Tool] = []
        items = tools.items() if isinstance(tools, Mapping) else [(None, t) for t in tools]
        for name, t in items:
            if isinstance(t, str):
                tool = get_tool(t, sandbox=sandbox) if t == "python" else get_tool(t)
                self._owned.append(tool)
            else:
                tool = t
            if not isinstance(tool, Tool):
                raise TypeError(f"ToolRunner: {tool!r} does not implement the Tool protocol")
            key = name or tool.name
            if key in self.tools:
                raise ValueError(f"ToolRunner: two tools named {key!r}")
            self.tools[key] = tool
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rlvr-tool")
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._wall = 0.0
        self._logged: set[str] = set()
        self._pending: set[Future[ToolResult]] = set()
        self._closed = False
        self._watch: list[tuple[float, int, Future, str]] = []  # (deadline, seq, future, tool name)
        self._seq = itertools.count()
        self._wake = threading.Condition(self._lock)
        self._watcher: threading.Thread | None = None

    # ------------------------------------------------------------------ calls
    def submit(self, call: ToolCall, *, timeout_s: float | None = None) -> Future[ToolResult]:
        """A future of `call`'s result; malformed calls and unknown names are resolved at once."""
        if self._closed:
            raise RuntimeError("ToolRunner is closed")
        fut: Future[ToolResult] = Future()
        if call.error is not None:
            self._finish(fut, ToolResult(f"error: {call.error}", "error", info={"reason": "malformed"}), call.name)
            return fut
        tool = self.tools.get(call.name)
        if tool is None:
            known = ", ".join(sorted(self.tools)) or "none"
            res = ToolResult(f"error: unknown tool {call.name!r}; the tools are: {known}", "error",
                             info={"reason": "unknown_tool"})
            self._finish(fut, res, call.name)
            return fut
        limit = self.timeout_s if timeout_s is None else float(timeout_s)
        fut.set_running_or_notify_cancel()
        with self._lock:
            self._pending.add(fut)
        self._pool.submit(self._run, tool, call, limit, fut)
        return fut

    def run(self, calls: Iterable[ToolCall]) -> list[ToolResult]:
        """Submit every call, wait for all; results in order."""
        return [f.result() for f in [self.submit(c) for c in calls]]

    def _run(self, tool: Tool, call: ToolCall, limit: float, fut: Future[ToolResult]) -> None:
        t0 = time.monotonic()
        if not isinstance(tool, _SELF_TIMED):
            self._arm(t0 + limit + self.grace_s, fut, call.name)
        try:
            res = tool(call.arguments, timeout_s=limit)
            if not isinstance(res, ToolResult):
                raise TypeError(f"tool {call.name!r} returned {type(res).__name__}, not a ToolResult")
        except Exception as e:  # noqa: BLE001 - a broken tool must not end the episode
            with self._lock:
                first = call.name not in self._logged
                self._logged.add(call.name)
            if first:
                log.exception("tool %r raised (later failures of this tool are counted, not logged)", call.name)
            res = ToolResult(f"error: tool {call.name!r} failed: {type(e).__name__}: {str(e)[:300]}", "error",
                             info={"reason": "tool_exception"})
        res.wall_s = time.monotonic() - t0
        self._finish(fut, res, call.name)

    def _finish(self, fut: Future[ToolResult], res: ToolResult, name: str | None) -> None:
        """Cap, count and deliver `res`, unless the watchdog delivered a timeout first."""
        text, cut = cap_output(res.output, self.max_output_chars, res.info.get("chars"))
        res.output, res.truncated = text, res.truncated or cut
        if name is not None:
            res.info.setdefault("tool", name)
        with self._lock:
            self._pending.discard(fut)
            if fut.done():
                return
            try:
                fut.set_result(res)
            except InvalidStateError:
                return
            c = self._counts
            c["calls"] += 1
            c["errors"] += res.status == "error"
            c["timeouts"] += res.status == "timeout"
            c["truncated"] += res.truncated
            c["replaced"] += res.replaced
            c["unknown"] += res.info.get("reason") == "unknown_tool"
            c["malformed"] += res.info.get("reason") == "malformed"
            self._wall += res.wall_s

    # ------------------------------------------------------------------ the watchdog
    def _arm(self, deadline: float, fut: Future[ToolResult], name: str) -> None:
        with self._wake:
            heapq.heappush(self._watch, (deadline, next(self._seq), fut, name))
            if self._watcher is None:
                self._watcher = threading.Thread(target=self._watchdog, name="rlvr-tool-watchdog", daemon=True)
                self._watcher.start()
            self._wake.notify()

    def _watchdog(self) -> None:
        while True:
            with self._wake:
                while not self._closed and (not self._watch or self._watch[0][0] > time.monotonic()):
                    self._wake.wait(None if not self._watch else self._watch[0][0] - time.monotonic())
                if self._closed:
                    return
                deadline, _, fut, name = heapq.heappop(self._watch)
            if not fut.done():
                log.warning("tool %r ran past its deadline and cannot be stopped; its thread is left to finish",
                            name)
                limit = deadline - self.grace_s
                self._finish(fut, ToolResult(f"error: {name} did not finish in time and was abandoned", "timeout",
                                             info={"reason": "abandoned", "deadline": limit}), name)

    # ------------------------------------------------------------------ counts and cleanup
    def counts(self) -> dict[str, float]:
        """A snapshot of the counters, plus ``wall_s`` (the tools' summed wall time)."""
        with self._lock:
            return {**self._counts, "wall_s": self._wall}

    calls = property(lambda self: self._count("calls"), doc="Calls submitted and finished.")
    errors = property(lambda self: self._count("errors"), doc="Results with status error.")
    timeouts = property(lambda self: self._count("timeouts"), doc="Results with status timeout.")
    truncated = property(lambda self: self._count("truncated"), doc="Outputs cut at the cap.")
    replaced = property(lambda self: self._count("replaced"), doc="Sandboxes or processes replaced.")

    def _count(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def close(self) -> None:
        """Stop taking calls; wait for running ones (each ends by its deadline; a foreign tool's is
        abandoned), answer calls that never started with an error, close the tools made from specs."""
        with self._wake:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
            pending = list(self._pending)
        self._pool.shutdown(wait=False, cancel_futures=True)
        wait(pending, timeout=self.timeout_s + self.grace_s)
        for fut in pending:
            self._finish(fut, ToolResult("error: the tool runner was closed", "error", info={"reason": "closed"}), None)
        for tool in self._owned:
            close = getattr(tool, "close", None)
            if callable(close):
                close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ToolRunner(tools={sorted(self.tools)}, timeout_s={self.timeout_s:g}, counts={self.counts()})"
