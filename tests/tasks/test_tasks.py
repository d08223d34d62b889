"""Tasks: loading local files through `datasets`, column mapping, errors that name file/line/field,
the seeded generators, and the countdown verifier's safety."""

from __future__ import annotations

import json

import pytest

from rlvr.tasks import TaskDataError, get_task, list_tasks
from rlvr.tasks.arithmetic import generate as arith
from rlvr.tasks.arithmetic import is_heldout
from rlvr.tasks.countdown import check_equation
from rlvr.tasks.countdown import generate as countdown
from rlvr.tasks.gsm8k import gsm8k_gold
from rlvr.tasks.math import boxed_gold
from rlvr.verifiers import Sample, get_verifier


def write_jsonl(path, rows, raw_lines=()):
    with path.open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        for line in raw_lines:
            f.write(line + "\n")
    return path


def test_builtin_tasks_are_listed():
    assert {"gsm8k", "math", "countdown", "arithmetic", "code", "dataset"} <= set(list_tasks())


def test_unknown_task_suggests_the_closest():
    with pytest.raises(TaskDataError, match="did you mean 'gsm8k'"):
        get_task("gsm8", source="x.jsonl")


def test_gsm8k_local_jsonl_extracts_the_gold(tmp_path):
    path = write_jsonl(
        tmp_path / "gsm.jsonl",
        [
            {"question": "Janet has 3 apples and buys 4. How many?", "answer": "3 + 4 = <<3+4=7>>7\n#### 7"},
            {"question": "A farm sells 1,200 eggs twice. Total?", "answer": "1200*2=2400\n#### 2,400"},
        ],
    )
    samples = get_task("gsm8k", source=str(path)).samples("train")
    assert [s.answer for s in samples] == ["7", "2400"]
    assert samples[0].prompt.startswith("Janet")
    assert samples[1].metadata["row"] == 1


def test_gsm8k_row_without_final_answer_names_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "gsm.jsonl", [{"question": "q", "answer": "#### 1"}, {"question": "q2", "answer": "no marker"}])
    with pytest.raises(TaskDataError, match=r"gsm\.jsonl:2: field 'answer': no '####'"):
        get_task("gsm8k", source=str(path)).samples()


def test_malformed_jsonl_line_is_named(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "a", "a": "1"}], raw_lines=["", "{not json"])
    with pytest.raises(TaskDataError, match=r"d\.jsonl:3: invalid JSON"):
        get_task("dataset", source=str(path), columns={"prompt": "q", "answer": "a"}).samples()


def test_missing_mapped_column_names_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "a", "a": "1"}, {"q": "b"}])
    with pytest.raises(TaskDataError, match=r"d\.jsonl:2: missing field 'a' \(for Sample.answer"):
        get_task("dataset", source=str(path), columns={"prompt": "q", "answer": "a"}).samples()


def test_column_mapping_rejects_unknown_sample_fields(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"q": "a", "a": "1"}])
    with pytest.raises(TaskDataError, match="unknown Sample field"):
        get_task("dataset", source=str(path), columns={"question": "q"}).samples()


def test_csv_and_parquet_load_through_datasets(tmp_path):
    import datasets

    rows = [{"problem": "What is $1/2 + 1/2$?", "answer": "1"}, {"problem": "Simplify $2x+x$.", "answer": "3x"}]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "m.parquet"))
    (tmp_path / "m.csv").write_text("problem,answer\n\"What is 2+2?\",4\n\"Bad row\",\n")
    got = get_task("math", source=str(tmp_path / "m.parquet")).samples()
    assert [s.answer for s in got] == ["1", "3x"]
    with pytest.raises(TaskDataError, match=r"m\.csv row 3 .*missing field 'answer'"):
        get_task("math", source=str(tmp_path / "m.csv")).samples()


def test_math_task_reads_gold_from_solution_boxed(tmp_path):
    path = write_jsonl(tmp_path / "m.jsonl", [{"problem": "p", "solution": "so $\\boxed{\\frac{1}{2}}$ done"}])
    assert get_task("math", source=str(path)).samples()[0].answer == "\\frac{1}{2}"
    assert boxed_gold("a \\boxed{1} then \\boxed{x^{2}}") == "x^{2}"
    with pytest.raises(ValueError):
        boxed_gold("no box")
    assert gsm8k_gold("x\n#### 1,000") == "1000"


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(TaskDataError, match="no such data file"):
        get_task("dataset", source=str(tmp_path / "missing.jsonl")).samples()
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(TaskDataError, match="unknown data format"):
        get_task("dataset", source=str(tmp_path / "d.txt")).samples()


def test_arithmetic_is_seeded_and_train_test_disjoint():
    a, b = arith(level=1, n=300, seed=3), arith(level=1, n=300, seed=3)
    assert [s.prompt for s in a] == [s.prompt for s in b]
    test = arith(level=1, n=300, seed=3, split="test")
    assert not {s.prompt for s in a} & {s.prompt for s in test}
    assert all(is_heldout(s.metadata["expression"]) for s in test)
    assert not any(is_heldout(s.metadata["expression"]) for s in a)
    s = a[0]
    left, right = s.metadata["expression"].split(" + ")
    assert int(s.answer) == int(left) + int(right)


@pytest.mark.parametrize("level", [2, 3, 4])
def test_arithmetic_levels_compute_exact_answers(level):
    for s in arith(level=level, n=50, seed=1):
        expr = s.metadata["expression"]
        # Independent check: Python's own integer arithmetic on the trusted, generated text.
        assert int(s.answer) == eval(expr, {"__builtins__": {}}), expr  # noqa: S307 - generated by us


def test_countdown_puzzles_are_solvable_by_construction():
    for s in countdown(50, seed=2):
        assert len(s.metadata["numbers"]) in (3, 4)
        assert 1 <= s.answer <= 999


@pytest.mark.parametrize(
    "equation,numbers,target,expected",
    [
        ("(25 - 5) * 4", [4, 5, 25], 80, (True, "match")),
        ("(25 - 5) * 4 = 80", [4, 5, 25], 80, (True, "match")),
        ("25 * 4 - 5", [4, 5, 25], 80, (False, "wrong_value")),
        ("(25 - 5) * 4 * 1", [4, 5, 25], 80, (False, "wrong_numbers")),
        ("20 * 4", [4, 5, 25], 80, (False, "wrong_numbers")),
        ("6 / (1 - 3 / 4)", [1, 3, 4, 6], 24, (True, "match")),
        ("4 / (5 - 5)", [4, 5, 5], 1, (False, "division_by_zero")),
        ("__import__('os').system('id')", [1], 1, (False, "parse_error")),
        ("2 ** 10", [2, 10], 1024, (False, "parse_error")),
        ("(" * 150 + "1" + ")" * 150, [1], 1, (False, "too_long")),
    ],
)
def test_countdown_equation_checks(equation, numbers, target, expected):
    assert check_equation(equation, numbers, target) == expected


def test_countdown_verifier_reads_the_last_answer_block():
    s = Sample(prompt="", answer=80, metadata={"numbers": [4, 5, 25]})
    v = get_verifier("countdown")
    good = v("<think>try <answer>25*4-5</answer></think> <answer>(25-5)*4</answer>", s)
    assert good.passed and good.reward == 1.0
    assert v("no tags (25-5)*4", s).info["reason"] == "no_final_answer"
    assert get_verifier("countdown", format_score=0.1)("<answer>25*4-5</answer>", s).reward == 0.1


def test_task_renders_prompt_and_builds_weighted_verifier():
    task = get_task("arithmetic", n=2, verifiers={"math": 1.0, "format": 0.0})
    s = task.samples()[0]
    assert task.render(s).endswith(f"User: {s.prompt}\nAssistant:")
    assert task.verifier().weights == {"math": 1.0, "format": 0.0}


def test_heldout_split_matches_the_demo_corpus_rule():
    """The demo's pretraining corpus excludes exactly the arithmetic task's held-out sums."""
    from rlvr.demo.corpus import is_held_out

    assert is_heldout("48 + 23") == is_heldout("23 + 48")
    for a in range(10, 100):
        for b in range(10, 100):
            assert is_heldout(f"{a} + {b}") == is_held_out(a, b), (a, b)
