"""Function tools: @register_tool, schemas from signatures, get_tool specs, and calls that run in a
killable worker process (a hang is killed at its deadline, a flood is cut, a crash is data)."""

from __future__ import annotations

import textwrap
import time
from typing import Literal

import pytest

from rlvr.plugins import PluginError
from rlvr.tools.base import Tool
from rlvr.tools.builtin import PythonTool, ToolSpecError, check_tool_spec, get_tool, list_tools, register_tool
from rlvr.tools.function import FunctionTool, json_schema


@register_tool
def item_price(total: float, count: int, currency: Literal["EUR", "USD"] = "EUR") -> str:
    """Price of one item.

    Args:
        total: what all items cost
        count: how many items
    """
    return f"{total / count:.2f} {currency}"


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_register_tool_schema_and_description():
    tool = get_tool("item_price")
    assert isinstance(tool, Tool) and tool.name == "item_price" and "item_price" in list_tools()
    assert tool.description == "Price of one item."
    assert tool.parameters == {
        "type": "object",
        "properties": {"total": {"type": "number", "description": "what all items cost"},
                       "count": {"type": "integer", "description": "how many items"},
                       "currency": {"enum": ["EUR", "USD"]}},
        "required": ["total", "count"],
    }
    try:
        assert tool({"total": 10, "count": 4}, timeout_s=30).output == "2.50 EUR"
    finally:
        tool.close()


def test_schema_of_containers_and_optionals():
    def f(xs: list[int], opts: dict | None = None, flag: bool = False, anything=None): ...
    props = json_schema(f)["properties"]
    assert props == {"xs": {"type": "array", "items": {"type": "integer"}}, "opts": {"type": "object"},
                     "flag": {"type": "boolean"}, "anything": {}}


def test_registering_a_builtin_name_is_refused():
    with pytest.raises(ValueError, match="built-in"):
        register_tool(name="python")(lambda code: code)


def test_bad_arguments_are_results_not_exceptions():
    tool = get_tool("item_price")
    try:
        for args, why in [({"count": 2}, "missing argument 'total'"),
                          ({"total": 1, "count": "2"}, "expected integer"),
                          ({"total": 1, "count": True}, "expected integer"),
                          ({"total": 1, "count": 2, "tax": 1}, "unexpected argument 'tax'"),
                          ({"total": 1, "count": 2, "currency": "GBP"}, "must be one of")]:
            res = tool(args, timeout_s=30)
            assert res.status == "error" and why in res.output, (args, res)
        assert tool.stats["calls"] == 0  # nothing was run for them
    finally:
        tool.close()


def test_get_tool_from_a_file_reference(tmp_path, monkeypatch):
    (tmp_path / "my_tools.py").write_text(textwrap.dedent('''
        from rlvr.tools import register_tool

        @register_tool
        def unit_price(total: float, count: int) -> str:
            """Price of one item, given what `count` items cost in all."""
            return f"{total / count:.2f}"

        def reverse(text: str) -> str:
            """Reverse a text."""
            return text[::-1]

        class Echo:
            name, description = "echo", "Echo the arguments."
            parameters = {"type": "object"}
            def __init__(self, prefix=""):
                self.prefix = prefix
            def __call__(self, arguments, *, timeout_s):
                from rlvr.tools.base import ToolResult
                return ToolResult(self.prefix + str(arguments))
    '''))
    monkeypatch.chdir(tmp_path)
    price = get_tool("my_tools.py:unit_price")  # the docs/tools.md example: loading it registers it too
    try:
        assert price.name == "unit_price" and price({"total": 10, "count": 4}, timeout_s=30).output == "2.50"
        assert price.description == "Price of one item, given what `count` items cost in all."
    finally:
        price.close()
    rev = get_tool("my_tools.py:reverse")
    try:
        assert rev.name == "reverse" and rev({"text": "abc"}, timeout_s=30).output == "cba"
    finally:
        rev.close()
    echo = get_tool("my_tools.py:Echo", prefix=">")
    assert echo({"a": 1}, timeout_s=1).output == ">{'a': 1}"
    with pytest.raises(PluginError, match="did you mean 'reverse'"):
        check_tool_spec("my_tools.py:revers")
    with pytest.raises(PluginError, match="no such file"):
        check_tool_spec("nope.py:f")
    with pytest.raises(ToolSpecError, match="did you mean 'calculator'"):
        get_tool("calculater")
    with pytest.raises(ToolSpecError, match="bad options"):
        get_tool("calculator", sandbox="docker")
    with pytest.raises(ToolSpecError, match="auto, docker or local"):
        PythonTool(sandbox="podman")


def test_a_hanging_function_is_killed_at_its_deadline(tmp_path):
    pidfile = tmp_path / "pids"

    def hang(path: str, seconds: float) -> str:
        import os
        import subprocess
        import time

        if seconds == 0:
            return "warm"
        child = subprocess.Popen(["sleep", "300"])
        with open(path, "w") as f:
            f.write(f"{os.getpid()} {child.pid}")
        time.sleep(300)
        return "woke up"

    tool = FunctionTool(hang)
    try:
        assert tool({"path": str(pidfile), "seconds": 0}, timeout_s=60).output == "warm"  # process started
        res = tool({"path": str(pidfile), "seconds": 300}, timeout_s=1.5)
        assert res.status == "timeout" and "did not finish within 1.5 s" in res.output
        pids = [int(p) for p in pidfile.read_text().split()]
        # the worker and the child it started are gone (killed with their process group)
        end = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < end:
            time.sleep(0.05)
        assert not any(_alive(p) for p in pids)
        assert tool.pids() == [] and tool.stats["killed"] == 1
    finally:
        tool.close()


def test_flood_crash_exception_and_prints():
    def flood(mb: int) -> str:
        return "y" * (mb << 20)

    def chatty(n: int) -> None:
        for i in range(n):
            print(i)

    def crash() -> int:
        import os

        os._exit(3)

    def fails(x: int) -> float:
        return 1 / x

    tools = [FunctionTool(f, max_chars=1000) for f in (flood, chatty, crash, fails)]
    try:
        big = tools[0]({"mb": 100}, timeout_s=30)
        assert big.status == "ok" and big.truncated and len(big.output) == 1000 and big.info["chars"] == 100 << 20
        assert tools[1]({"n": 3}, timeout_s=30).output == "0\n1\n2\n"
        dead = tools[2]({}, timeout_s=30)
        assert dead.status == "error" and dead.replaced and "exited with 3" in dead.output
        pid_before = tools[2].pids()
        assert pid_before == []  # the dead process was dropped; the next call starts a fresh one
        err = tools[3]({"x": 0}, timeout_s=30)
        assert err.status == "error" and err.output.rstrip().endswith("ZeroDivisionError: division by zero")
        assert tools[3]({"x": 4}, timeout_s=30).output == "0.25"  # the same process serves again
        assert tools[3].stats["calls"] == 2 and len(tools[3].pids()) == 1
        warm = [p for t in tools for p in t.pids()]
    finally:
        for t in tools:
            t.close()
    assert warm and not any(_alive(p) for p in warm)  # close() killed the warm workers
