"""parse_calls: fenced python blocks and Hermes/Qwen <tool_call> JSON, malformed calls as data."""

from __future__ import annotations

import pytest

from rlvr.samplers.base import cut_at_stop
from rlvr.tools.base import ToolCall, ToolResult
from rlvr.tools.parse import STOPS, format_observation, parse_calls, stops_for


def test_python_fence_is_a_call_and_other_fences_are_text():
    text = "Let me check.\n```\nnot code\n```\n```output\n5\n```\n```python\nprint(12 * 34)\n```\n"
    calls = parse_calls(text)
    assert [(c.name, c.arguments, c.error) for c in calls] == [("python", {"code": "print(12 * 34)\n"}, None)]
    assert calls[0].raw == "```python\nprint(12 * 34)\n```"
    assert [c.arguments["code"] for c in parse_calls("```py\na = 1\n```\n```python3\nb = 2\n```")] == ["a = 1\n", "b = 2\n"]


def test_fence_closed_by_text_on_its_line_and_not_by_an_opening_fence():
    assert parse_calls("```python\nx = 1\n```<answer>1</answer>")[0].arguments == {"code": "x = 1\n"}
    # "```output" opens a block, it does not close the python one: the python block is unclosed
    (call,) = parse_calls("```python\nx = 1\n```output\n")
    assert call.error is not None and "unclosed" in call.error


def test_unclosed_and_empty_python_blocks_are_malformed():
    (unclosed,) = parse_calls("```python\nprint(1)\n")
    assert unclosed.name == "python" and "unclosed" in unclosed.error
    (empty,) = parse_calls("```python\n\n```\n")
    assert "empty" in empty.error


def test_hermes_call_with_object_or_string_arguments():
    a, b, c = parse_calls('<tool_call>\n{"name": "calculator", "arguments": {"expression": "2+2"}}\n</tool_call>'
                          '<tool_call>{"name": "lookup", "arguments": "{\\"key\\": \\"x\\"}"}</tool_call>'
                          '<tool_call>{"name": "now", "parameters": null}</tool_call>')
    assert (a.name, a.arguments, a.error) == ("calculator", {"expression": "2+2"}, None)
    assert (b.name, b.arguments, b.error) == ("lookup", {"key": "x"}, None)
    assert (c.name, c.arguments, c.error) == ("now", {}, None)
    # models often write code with raw newlines inside the JSON string
    (d,) = parse_calls('<tool_call>{"name": "python", "arguments": {"code": "x = 1\nprint(x)"}}</tool_call>')
    assert d.arguments == {"code": "x = 1\nprint(x)"} and d.error is None


@pytest.mark.parametrize("body, why", [
    ('{name: "x"}', "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"arguments": {}}', 'missing "name"'),
    ('{"name": 7}', 'missing "name"'),
    ('{"name": "x", "arguments": [1]}', '"arguments" must be an object'),
    ('{"name": "x", "arguments": "{oops"}', '"arguments" is not JSON'),
])
def test_malformed_hermes_calls_carry_an_error(body, why):
    (call,) = parse_calls(f"<tool_call>{body}</tool_call>")
    assert call.error is not None and why in call.error, call
    assert call.raw == f"<tool_call>{body}</tool_call>"


def test_unclosed_tool_call_is_malformed():
    (call,) = parse_calls('<tool_call>{"name": "x", "arguments": {}}')
    assert "unclosed" in call.error


def test_calls_in_order_of_appearance_and_formats_selectable():
    text = ('<tool_call>{"name": "a", "arguments": {}}</tool_call>\n```python\nprint(1)\n```\n'
            '<tool_call>{"name": "b", "arguments": {}}</tool_call>')
    assert [c.name for c in parse_calls(text)] == ["a", "python", "b"]
    assert [c.name for c in parse_calls(text, formats=["hermes"])] == ["a", "b"]
    assert [c.name for c in parse_calls(text, formats=("python_fence",))] == ["python"]
    # a fence inside a <tool_call> argument is not a second call
    inner = '<tool_call>{"name": "python", "arguments": {"code": "x"}, "note": "```python\nx\n```"}</tool_call>'
    assert [c.name for c in parse_calls(inner)] == ["python"]


def test_no_calls_and_bad_formats():
    assert parse_calls("The answer is <answer>42</answer>.") == []
    with pytest.raises(ValueError, match="unknown tool call format 'json'"):
        parse_calls("x", formats=["json"])
    with pytest.raises(ValueError, match="a list of names"):
        parse_calls("x", formats="hermes")


def test_stops_end_the_turn_right_after_the_call():
    """The sampler keeps text up to the end of the first stop string: the call must survive the cut."""
    assert stops_for(["python_fence", "hermes"]) == STOPS["python_fence"] + STOPS["hermes"]
    turn = "I will compute.\n```python\nprint(2**10)\n```\n```output\n1024\n```\nThe answer is 1024."
    cut = cut_at_stop(turn, stops_for(["python_fence"]))
    assert cut == "I will compute.\n```python\nprint(2**10)\n```\n"
    assert parse_calls(cut)[0].arguments == {"code": "print(2**10)\n"}
    hermes = '<tool_call>{"name": "c", "arguments": {}}</tool_call> and more'
    assert parse_calls(cut_at_stop(hermes, stops_for(["hermes"])))[0].error is None


def test_format_observation_matches_the_call_format():
    fence = ToolCall("python", {"code": "print(1)"}, "```python\nprint(1)\n```")
    tag = ToolCall("calculator", {"expression": "1"}, '<tool_call>{"name": "calculator"}</tool_call>')
    text = format_observation([fence, tag], [ToolResult("1\n"), ToolResult("1", "ok")])
    assert text == "```output\n1\n```\n<tool_response>\n1\n</tool_response>\n"
