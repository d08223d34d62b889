"""The code verifier on LocalSandbox: extraction, each test schema, rewards and flags (one property each)."""

from __future__ import annotations

import pickle
import warnings

import pytest

from rlvr.sandboxes.local import LocalSandbox
from rlvr.verifiers import Sample, VerifierError, get_verifier
from rlvr.verifiers.code import CodeVerifier, extract_code, plan_tests


@pytest.fixture(scope="module")
def sb():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        box = LocalSandbox(size=2)
    yield box
    box.close()


@pytest.fixture(scope="module")
def v(sb):
    return get_verifier("code", sandbox=sb, test_timeout_s=2.0, timeout_s=8.0)


def py(src: str) -> str:
    return f"Here is my solution.\n```python\n{src}\n```\n"


HUMANEVAL = Sample(
    tests={
        "entry_point": "add",
        "test": (
            "METADATA = {'author': 'x'}\n\n"
            "def check(candidate):\n"
            "    assert True, 'HumanEval has lines like this: not a test'\n"
            "    assert candidate(1, 2) == 3\n"
            "    assert candidate(-1, 1) == 0\n"
            "    assert abs(candidate(0.5, 0.25) - 0.75) < 1e-9\n"
        ),
    }
)
MBPP = Sample(tests=["assert sq(2) == 4", "assert sq(3) == 9", "assert sq(0) == 0"])
CASES = Sample(
    tests={
        "entry_point": "pair",
        "cases": [
            {"args": [1, 2], "expected": [1, 2]},
            {"args": [3], "kwargs": {"b": 4}, "expected": [3, 4]},
        ],
    }
)
STDIO = Sample(tests=[{"stdin": "1 2\n", "stdout": "3\n"}, {"stdin": "5 5\n", "stdout": "10\n"}])


# -- extraction -------------------------------------------------------------------------------
def test_extracts_the_last_python_block():
    text = "```python\nx = 1\n```\nthen\n```js\ny()\n```\n```py\nx = 2\n```\nbye"
    assert extract_code(text) == "x = 2\n"


def test_extracts_a_bare_block():
    assert extract_code("```\nprint(1)\n```") == "print(1)\n"


def test_configured_pattern():
    assert extract_code("<code>print(2)</code>", pattern=r"<code>(.*?)</code>") == "print(2)"


def test_no_code_block_scores_zero_with_reason(v):
    s = v("I think the answer is 42.", MBPP)
    assert (s.reward, s.passed, s.info["reason"]) == (0.0, False, "no_code")


# -- happy path per schema --------------------------------------------------------------------
def test_humaneval_check_passes(v):
    s = v(py("def add(a, b):\n    return a + b"), HUMANEVAL)
    assert (s.reward, s.passed, s.info["n_tests"], s.info["untrusted_asserts"]) == (1.0, True, 3, 0)


def test_mbpp_assert_list_passes(v):
    s = v(py("def sq(x):\n    return x * x"), MBPP)
    assert (s.reward, s.passed, s.info["n_tests"]) == (1.0, True, 3)


def test_function_call_cases_pass(v):
    s = v(py("def pair(a, b=0):\n    return (a, b)"), CASES)  # a tuple equals a JSON list here
    assert (s.reward, s.passed) == (1.0, True)


def test_stdin_stdout_cases_pass(v):
    s = v(py("a, b = map(int, input().split())\nprint(a + b)"), STDIO)
    assert (s.reward, s.passed) == (1.0, True)


def test_expected_expression_is_evaluated_without_the_program(v):
    sample = Sample(
        tests={
            "entry_point": "srt",
            "test": ("def check(candidate):\n    assert candidate([3, 1, 2]) == sorted([3, 1, 2])\n"),
        }
    )
    assert plan_tests(sample.tests).ref_exprs == [[0, "sorted([3, 1, 2])"]]
    assert v(py("def srt(x):\n    return sorted(x)"), sample).passed
    assert not v(py("def srt(x):\n    return x"), sample).passed


def test_loops_run_in_the_test_process_and_only_object_uses_run_next_to_the_program(v):
    """A loop over the program's calls runs in the test process (the program behind proxies); a
    statement that needs a program object (here an attribute of the result) cannot, so it runs next
    to the program and is flagged per test."""
    sample = Sample(
        tests={
            "entry_point": "ident",
            "test": (
                "def check(candidate):\n"
                "    for i in range(3):\n"
                "        assert candidate(i) == i\n"
                "    assert candidate(2).bit_length() == 2\n"
            ),
        }
    )
    s = v(py("def ident(x):\n    return x"), sample)
    assert (s.passed, s.info["n_tests"], s.info["untrusted_asserts"]) == (True, 2, 1)
    assert [t["where"] for t in s.info["tests"]] == ["test_process", "next_to_program"]
    bad = v(py("def ident(x):\n    return 2 if x == 2 else 0"), sample)
    assert [t["ok"] for t in bad.info["tests"]] == [False, True]


# -- failures ---------------------------------------------------------------------------------
def test_exception_is_captured_per_test(v):
    s = v(py("def sq(x):\n    return x * x * x // x"), MBPP)  # ZeroDivisionError only for x == 0
    assert s.info["n_passed"] == 2 and s.info["tests"][2]["error"].startswith("error: ZeroDivisionError")


def test_infinite_loop_killed_and_slot_reusable(v):
    s = v(py("def sq(x):\n    while x == 3:\n        pass\n    return x * x"), MBPP)
    assert [t["ok"] for t in s.info["tests"]] == [True, False, True]
    assert s.info["timeout"] and s.info["tests"][1]["error"].startswith("timeout")
    assert v(py("def sq(x):\n    return x * x"), MBPP).passed


def test_memory_blowup_flagged(v):
    s = v(py("def sq(x):\n    b = bytearray(4 << 30)\n    return x * x"), MBPP)
    assert s.reward == 0.0 and s.info["memory"]


def test_comparison_is_type_strict(v):
    sample = Sample(tests=["assert f(1) == 1", "assert f(2) == [2]", "assert f(3) == 3"])
    s = v(py("def f(x):\n    return {1: True, 2: (2,), 3: 3.0}[x]"), sample)
    assert [t["ok"] for t in s.info["tests"]] == [False, False, True]  # bool != int, tuple != list, 3.0 == 3


def test_stdout_whitespace_tolerance_is_an_option(sb):
    prog = py("a, b = map(int, input().split())\nprint(' ', a + b, '  ')\nprint()")
    tolerant = get_verifier("code", sandbox=sb, whitespace_tolerant=True)
    strict = get_verifier("code", sandbox=sb, whitespace_tolerant=False)
    assert tolerant(prog, STDIO).passed and strict(prog, STDIO).reward == 0.0


def test_fraction_versus_all_or_nothing(sb):
    prog = py("def sq(x):\n    return x * x if x else 1")  # 2 of 3 right
    assert get_verifier("code", sandbox=sb)(prog, MBPP).reward == pytest.approx(2 / 3)
    assert get_verifier("code", sandbox=sb, reward="all_or_nothing")(prog, MBPP).reward == 0.0


def test_first_failure_is_reported(v):
    s = v(py("def sq(x):\n    return x + x"), MBPP)  # right for 2 and 0, wrong for 3
    assert s.info["first_failure"]["index"] == 1 and s.info["first_failure"]["error"] == "wrong answer"


# -- API --------------------------------------------------------------------------------------
def test_score_many_keeps_order(v):
    progs = [py("def sq(x):\n    return x * x"), "no code", py("def sq(x):\n    return 0")]
    out = v.score_many(progs, [MBPP] * 3)
    assert [s.reward for s in out] == [1.0, 0.0, pytest.approx(1 / 3)]


def test_pickles_without_its_pool(v):
    clone = pickle.loads(pickle.dumps(v))
    assert isinstance(clone, CodeVerifier) and clone.sandbox == "local" and v.sandbox is not clone.sandbox


@pytest.mark.parametrize(
    "tests, field",
    [
        ({"cases": [{"args": [1], "expected": 1}]}, "entry_point"),
        ({"entry_point": "f", "cases": [{"args": 1, "expected": 1}]}, "cases[0]"),
        ([{"stdin": "1"}], "stdio[0]"),
        ({"foo": 1}, "needs one of"),
        ({"asserts": ["assert f(1) =="]}, "asserts[0]"),
    ],
)
def test_bad_test_schema_names_the_field(tests, field):
    with pytest.raises(VerifierError, match=field.replace("[", r"\[").replace("]", r"\]")):
        plan_tests(tests, {"id": "row-7"})


def test_bad_options_rejected():
    with pytest.raises(VerifierError, match="reward"):
        get_verifier("code", sandbox="local", reward="partial")
    with pytest.raises(VerifierError, match="sandbox"):
        get_verifier("code", sandbox="k8s")


def test_runs_in_scoring_worker_processes():
    """Picklable by name and options: each worker process makes its own shared LocalSandbox."""
    from rlvr.scoring import score_batch

    progs = [py("def sq(x):\n    return x * x"), py("def sq(x):\n    return x")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = score_batch(("code", {"sandbox": "local"}), progs, [MBPP, MBPP], workers=1)
    assert [s.reward for s in out] == [1.0, pytest.approx(1 / 3)]


def test_exit_fails_only_the_test_it_happened_in(v):
    s = v(py("import os\ndef sq(x):\n    if x == 3:\n        os._exit(0)\n    return x * x"), MBPP)
    assert [t["ok"] for t in s.info["tests"]] == [True, False, True] and s.info["early_exit"]


def test_thread_safe(v):
    from concurrent.futures import ThreadPoolExecutor

    progs = [py("def sq(x):\n    return x * x"), py("def sq(x):\n    return 0")] * 3
    with ThreadPoolExecutor(4) as ex:
        rewards = list(ex.map(lambda p: v(p, MBPP).reward, progs))
    assert rewards == [1.0, pytest.approx(1 / 3)] * 3


def test_truth_asserts_want_bools(v):
    sample = Sample(tests=["assert is_odd(3)", "assert not is_odd(4)"])
    assert v(py("def is_odd(x):\n    return x % 2 == 1"), sample).passed
    s = v(py("def is_odd(x):\n    return x % 2 or None"), sample)  # 1 and None: truthy/falsy, not bools
    assert [t["ok"] for t in s.info["tests"]] == [False, False]


def test_tests_may_be_a_json_string():
    import json

    plan = plan_tests(json.dumps({"inputs": ["1\n", "2\n"], "outputs": ["2\n", "3\n"]}))
    assert [u["kind"] for u in plan.units] == ["stdio", "stdio"]


def test_mbpp_function_named_like_a_builtin_is_still_the_programs(v):
    """`sum` could be the builtin or the program's: such an assert runs next to the program, flagged."""
    sample = Sample(tests=["assert sum([1, 2]) == 42", "assert sum([]) == 42"])
    s = v(py("def sum(xs):\n    return 42"), sample)
    assert s.passed and [t["where"] for t in s.info["tests"]] == ["next_to_program"] * 2
    assert not v(py("def sum(xs):\n    return 3"), sample).passed
