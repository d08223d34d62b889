"""Code task loaders turn HumanEval/MBPP/APPS-shaped rows into Samples the code verifier grades."""

from __future__ import annotations

import json

import pytest

from rlvr.tasks import TaskDataError, get_task
from rlvr.verifiers import get_verifier

HUMANEVAL_ROW = {
    "task_id": "HumanEval/0",
    "prompt": "def add(a: int, b: int) -> int:\n    \"\"\"Add two numbers.\"\"\"\n",
    "canonical_solution": "    return a + b\n",
    "test": "METADATA = {}\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n",
    "entry_point": "add",
}
MBPP_ROW = {"task_id": 11, "text": "Write a function to square a number.", "code": "def sq(x):\n    return x * x",
            "test_list": ["assert sq(2) == 4", "assert sq(3) == 9"], "test_setup_code": ""}
APPS_ROW = {"problem_id": 1, "question": "Print the sum of two integers.", "difficulty": "introductory",
            "input_output": json.dumps({"inputs": ["1 2\n", "5 5\n"], "outputs": ["3\n", "10\n"]})}


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize(
    "style,row,solution",
    [
        ("humaneval", HUMANEVAL_ROW, "def add(a, b):\n    return a + b\n"),
        ("mbpp", MBPP_ROW, "def sq(x):\n    return x * x\n"),
        ("stdio", APPS_ROW, "a, b = map(int, input().split())\nprint(a + b)\n"),
    ],
)
def test_loaded_samples_grade_right_and_wrong_programs(tmp_path, style, row, solution):
    task = get_task(style, source=write(tmp_path / f"{style}.jsonl", [row]))
    (sample,) = task.samples("test")
    assert "```python" in sample.prompt
    verifier = get_verifier("code", sandbox="local")
    good = verifier(f"Here it is:\n```python\n{solution}```", sample)
    assert good.passed and good.reward == 1.0, good.info
    bad = verifier("```python\nprint('All tests passed')\n```", sample)
    assert not bad.passed and bad.reward < 1.0


def test_missing_column_names_the_line(tmp_path):
    row = dict(MBPP_ROW)
    del row["test_list"]
    with pytest.raises(TaskDataError, match=r"mbpp\.jsonl:1: missing field 'test_list'"):
        get_task("mbpp", source=write(tmp_path / "mbpp.jsonl", [row])).samples("test")


def test_unknown_style():
    with pytest.raises(TaskDataError, match="style must be one of"):
        get_task("code", style="cobol")
