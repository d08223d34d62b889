"""The `reasoning_gym` task and verifier: reasoning-gym's generators and `score_answer` through rlvr.

reasoning-gym is an optional extra; these tests skip locally without it and fail under CI=true
(`make test` installs the dev extra, which includes it).
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

from rlvr.tasks import TaskDataError, get_task
from rlvr.tasks.reasoning_gym import allocate
from tests.conftest import require

PLUGIN = "tests.tasks.gym_plugins"


@pytest.fixture(autouse=True)
def _needs_gym():
    require(importlib.util.find_spec("reasoning_gym") is not None, "reasoning-gym is not installed (pip install 'rlvr[gym]')")


def _value(expression: str) -> int:
    total, sign = 0, 1
    for tok in expression.split():
        if tok in "+-":
            sign = 1 if tok == "+" else -1
        else:
            total += sign * int(tok)
    return total


def test_chain_sum_samples_carry_the_generators_gold_and_test_is_held_out():
    task = get_task("reasoning_gym", dataset="chain_sum", size=50, seed=0, size_test=20,
                    config={"min_terms": 2, "max_terms": 3, "min_digits": 2, "max_digits": 2})
    train, test = task.samples("train"), task.samples("test")
    assert len(train) == 50 and len(test) == 20 and len(task.samples("train", limit=7)) == 7
    for s in train + test:
        expr = s.metadata["rg_entry"]["metadata"]["expression"]
        assert s.answer == str(_value(expr)) and expr in s.prompt
        assert 2 <= len(expr.split()[::2]) <= 3 and all(len(t) == 2 for t in expr.split()[::2])
    assert not {s.prompt for s in test} & {s.prompt for s in train}
    again = get_task("reasoning_gym", dataset="chain_sum", size=50, seed=0, size_test=20,
                     config={"min_terms": 2, "max_terms": 3, "min_digits": 2, "max_digits": 2})
    assert [s.prompt for s in again.samples()] == [s.prompt for s in train]  # seeded
    other = get_task("reasoning_gym", dataset="chain_sum", size=50, seed=1)
    assert [s.prompt for s in other.samples()] != [s.prompt for s in train]


def test_allocate_uses_largest_remainders():
    assert allocate(10, [2.0, 1.0]) == [7, 3]  # 6.67, 3.33 -> the .67 gets the spare
    assert allocate(9, [2.0, 1.0]) == [6, 3]
    assert allocate(5, [1.0, 1.0, 1.0]) == [2, 2, 1]  # ties go to the earlier entry
    assert allocate(3, [1.0, 1.0, 1.0, 1.0]) == [1, 1, 1, 0]


def test_a_weighted_mix_follows_the_weights_and_keeps_each_generators_config():
    task = get_task("reasoning_gym", size=30, seed=3, size_test=6, datasets={
        "chain_sum": {"weight": 2, "config": {"min_terms": 2, "max_terms": 2}}, "products": 1})
    names = [s.metadata["rg_dataset"] for s in task.samples()]
    assert names.count("chain_sum") == 20 and names.count("products") == 10
    assert names != sorted(names)  # interleaved
    for s in task.samples():
        if s.metadata["rg_dataset"] == "chain_sum":
            assert len(s.metadata["rg_entry"]["metadata"]["expression"].split()) == 3  # "a op b"
    assert [s.metadata["rg_dataset"] for s in task.samples("test")].count("products") == 2


def test_the_verifier_is_score_answer_on_the_last_answer_tag():
    task = get_task("reasoning_gym", dataset="chain_sum", size=3, seed=0)
    v, s = task.verifier(), task.samples()[0]
    assert s.answer == "-14282"
    ok = v("<think>...</think> <answer>1</answer> no, <answer> -14282 </answer>", s)
    assert ok.reward == 1.0 and ok.passed and ok.info["reasoning_gym"]["extracted"] == "-14282"
    bad = v("<answer>-14283</answer>", s)
    assert bad.reward == 0.0 and bad.passed is False
    none = v("the answer is -14282", s)
    assert none.passed is False and none.info["reasoning_gym"]["reason"] == "no_final_answer"


def test_partial_credit_and_pass_threshold():
    task = get_task("reasoning_gym", dataset="rlvr_test_echo", size=2, modules=[PLUGIN])
    s = task.samples()[0]
    half = task.verifier()(f"<answer>-{s.answer}</answer>", s)
    assert half.reward == 0.5 and half.passed is False
    task.verifier_options = {"reasoning_gym": {"pass_threshold": 0.5}}
    assert task.verifier()(f"<answer>-{s.answer}</answer>", s).passed is True


def test_scoring_turns_a_hung_or_crashing_score_answer_into_failure_data():
    from rlvr.scoring import score_batch

    task = get_task("reasoning_gym", dataset="rlvr_test_echo", size=4, modules=[PLUGIN])
    samples = task.samples()
    texts = [f"<answer>{samples[0].answer}</answer>", "<answer>hang</answer>", "<answer>boom</answer>",
             f"<answer>{samples[3].answer}</answer>"]
    out = score_batch(task.verifier(), texts, samples, workers=1, timeout_s=3.0)
    assert [s.reward for s in out] == [1.0, 0.0, 0.0, 1.0] and [s.passed for s in out] == [True, False, False, True]
    assert out[1].info["error"] == "timeout" and out[2].info["error"] == "score_answer_raised"
    assert out[2].info["reasoning_gym"]["exception"] == "RuntimeError: score_answer exploded"
    assert out.report.timeouts == 1


def test_a_real_generator_raising_on_a_malformed_answer_is_data():
    task = get_task("reasoning_gym", dataset="prime_factorization", size=5, seed=0)
    s = next(s for s in task.samples() if " × " not in s.answer)  # a prime: its factorisation is itself
    out = task.verifier()(f"<answer>{s.answer}.0</answer>", s)  # reasoning-gym's score_answer raises ValueError here
    assert out.passed is False and out.info["error"] == "score_answer_raised"
    assert out.info["reasoning_gym"]["exception"].startswith("ValueError")


def test_bad_options_are_clear_errors():
    with pytest.raises(TaskDataError, match="unknown generator 'chain_sun'; did you mean 'chain_sum'"):
        get_task("reasoning_gym", dataset="chain_sun")
    with pytest.raises(TaskDataError, match="'chain_sum' config .*bogus"):
        get_task("reasoning_gym", dataset="chain_sum", config={"bogus": 1})
    with pytest.raises(TaskDataError, match="exactly one of dataset= .* or datasets="):
        get_task("reasoning_gym")
    with pytest.raises(TaskDataError, match=r"datasets.products.weight must be a positive number"):
        get_task("reasoning_gym", datasets={"chain_sum": 1, "products": 0})
    with pytest.raises(TaskDataError, match="cannot import 'no_such_module_xyz'"):
        get_task("reasoning_gym", dataset="chain_sum", modules=["no_such_module_xyz"])


def test_without_reasoning_gym_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # makes `import reasoning_gym` fail, as when absent
    with pytest.raises(TaskDataError, match=r"pip install 'rlvr\[gym\]'"):
        get_task("reasoning_gym", dataset="chain_sum")


def test_a_generator_whose_share_rounds_to_zero_is_left_out():
    task = get_task("reasoning_gym", size=3, size_test=2, datasets={"chain_sum": 10, "products": 10, "gcd": 1})
    assert sorted(s.metadata["rg_dataset"] for s in task.samples()) == ["chain_sum", "chain_sum", "products"]
    assert sorted(s.metadata["rg_dataset"] for s in task.samples("test")) == ["chain_sum", "products"]
