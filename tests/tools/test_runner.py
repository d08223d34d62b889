"""ToolRunner: concurrent calls, model mistakes as results (never exceptions), caps and counters."""

from __future__ import annotations

import doctest
import threading

import pytest

from rlvr.tools import builtin, calculator, parse, runner
from rlvr.tools.base import ToolCall, ToolResult
from rlvr.tools.function import FunctionTool
from rlvr.tools.parse import parse_calls
from rlvr.tools.runner import ToolRunner, cap_output


class Gate:
    """A Tool of the user's own kind (runs in the runner's thread): waits at a barrier of `n` calls,
    so the calls finish only if they run at the same time."""

    name, description, parameters = "gate", "Wait for the others.", {"type": "object"}

    def __init__(self, n: int):
        self.barrier = threading.Barrier(n, timeout=30)

    def __call__(self, arguments, *, timeout_s):
        self.barrier.wait()
        return ToolResult("through")


class Stuck:
    """A foreign tool that ignores its deadline until released."""

    name, description, parameters = "stuck", "Never returns on its own.", {"type": "object"}

    def __init__(self):
        self.release = threading.Event()

    def __call__(self, arguments, *, timeout_s):
        self.release.wait(60)
        return ToolResult("late")


class Broken:
    name, description, parameters = "broken", "Raises.", {"type": "object"}

    def __call__(self, arguments, *, timeout_s):
        raise KeyError("bug in the tool")


def test_doctests_of_the_tools_modules():
    for mod in (parse, calculator, runner, builtin):
        result = doctest.testmod(mod)
        assert result.failed == 0 and result.attempted > 0, mod.__name__


def test_calls_from_many_episodes_run_concurrently():
    with ToolRunner({"gate": Gate(6)}, workers=6) as r:
        futures = [r.submit(ToolCall("gate", {})) for _ in range(6)]
        assert [f.result(60).output for f in futures] == ["through"] * 6  # a serial runner breaks the barrier
    assert r.calls == 6 and r.errors == 0


def test_unknown_and_malformed_calls_are_observations_and_counted():
    with ToolRunner(["calculator"]) as r:
        text = ('<tool_call>{"name": "web_search", "arguments": {"q": "x"}}</tool_call>'
                '<tool_call>{"name": calculator}</tool_call>'
                '<tool_call>{"name": "calculator", "arguments": {"expression": "2**70"}}</tool_call>')
        unknown, malformed, good = r.run(parse_calls(text))
    assert unknown.status == "error" and "unknown tool 'web_search'" in unknown.output
    assert "calculator" in unknown.output  # it says which tools exist
    assert malformed.status == "error" and "invalid JSON" in malformed.output
    assert good.output == "1180591620717411303424"
    c = r.counts()
    assert (c["calls"], c["errors"], c["unknown"], c["malformed"], c["timeouts"]) == (3, 2, 1, 1, 0)


def test_a_tool_that_raises_is_an_error_result():
    with ToolRunner([Broken(), "calculator"]) as r:
        res = r.submit(ToolCall("broken", {})).result(30)
        after = r.submit(ToolCall("calculator", {"expression": "1+1"})).result(30)
    assert res.status == "error" and "KeyError" in res.output and res.info["reason"] == "tool_exception"
    assert after.output == "2" and r.errors == 1


def test_a_foreign_tool_past_its_deadline_is_abandoned_as_a_timeout():
    stuck = Stuck()
    r = ToolRunner([stuck], timeout_s=0.2, grace_s=0.2)
    try:
        res = r.submit(ToolCall("stuck", {})).result(30)
        assert res.status == "timeout" and res.info["reason"] == "abandoned" and r.timeouts == 1
    finally:
        stuck.release.set()
        r.close()
    assert r.calls == 1  # the late answer is not counted twice


def test_function_tool_hang_and_flood_through_the_runner():
    def hang() -> str:
        import time

        time.sleep(300)
        return "never"

    def flood() -> str:
        return "z" * (100 << 20) + "TAIL"

    with ToolRunner([FunctionTool(hang), FunctionTool(flood)], timeout_s=60, max_output_chars=500) as r:
        slow = r.submit(ToolCall("hang", {}), timeout_s=1.0)
        big = r.submit(ToolCall("flood", {}))
        slow, big = slow.result(60), big.result(60)
    assert slow.status == "timeout"
    assert big.status == "ok" and big.truncated and len(big.output) <= 600
    cut = int(big.output.split("[... ")[1].split(" characters cut")[0].replace(",", ""))
    assert cut > (100 << 20) - 1000  # counted from everything the function returned, not the worker's share
    assert (r.timeouts, r.truncated, r.calls) == (1, 1, 2)


def test_cap_output_keeps_head_and_tail():
    text = "".join(f"line {i}\n" for i in range(1000)) + "ValueError: the end\n"
    out, cut = cap_output(text, 300)
    assert cut and len(out) <= 300 and out.startswith("line 0\n") and out.endswith("ValueError: the end\n")
    assert cap_output("short", 300) == ("short", False)
    out, cut = cap_output("abc", 300, total=10_000)  # already cut upstream: said so
    assert cut and "10,000 characters in all" in out


def test_closed_runner_refuses_and_options_are_checked():
    r = ToolRunner(["calculator"])
    r.close()
    with pytest.raises(RuntimeError, match="closed"):
        r.submit(ToolCall("calculator", {"expression": "1"}))
    with pytest.raises(ValueError, match="two tools named"):
        ToolRunner(["calculator", "calculator"])
    with pytest.raises(ValueError, match="timeout_s > 0"):
        ToolRunner(["calculator"], timeout_s=0)
