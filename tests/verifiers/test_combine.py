"""combine(): weighted sums with hand-computed numbers, weight 0 logs only, errors are loud."""

from __future__ import annotations

import pickle

import pytest

from rlvr.verifiers import Sample, Score, VerifierError, combine, get_verifier

GOOD = "<think>7*6 = 42</think>\n<answer>42</answer>"  # 43 characters
JUNK = "<think>7*6 = 42</think>\n<answer>42</answer> and more"


def exact(completion: str, sample: Sample) -> Score:
    """1.0 when the answer block holds the gold answer."""
    got = get_verifier("format")(completion, sample).info.get("answer")
    ok = got == str(sample.answer)
    return Score(reward=float(ok), passed=ok, info={"got": got})


def broken(completion: str, sample: Sample) -> Score:
    raise ZeroDivisionError("bug in verifier code")


def test_weighted_sum_by_hand():
    v = combine({"exact": 1.0, "format": 0.1, "length": 0.0}, verifiers={"exact": exact})
    s = v(GOOD, Sample(answer="42"))
    # 1.0 * 1 (exact) + 0.1 * 1 (format) + 0.0 * 43 (length, chars) = 1.1
    assert s.reward == pytest.approx(1.1, abs=1e-12)
    assert s.info["rewards"] == {"exact": 1.0, "format": 1.0, "length": 43.0}
    assert s.info["weights"] == {"exact": 1.0, "format": 0.1, "length": 0.0}
    assert s.passed is True and s.info["primary"] == "exact"
    assert s.info["passed"] == {"exact": True, "format": True, "length": None}
    assert s.info["format"]["reason"] == "ok" and s.info["exact"] == {"got": "42"}


def test_weight_zero_logs_without_rewarding():
    v = combine({"format": 1.0, "length": 0.0})
    short, long = v(GOOD, Sample()), v(GOOD + "   " * 100, Sample())  # trailing spaces pass format
    assert short.reward == long.reward == 1.0
    assert (short.info["rewards"]["length"], long.info["rewards"]["length"]) == (43.0, 343.0)


def test_negative_weight_is_a_penalty():
    v = combine({"format": 1.0, "length": -0.5}, verifiers={"length": ("length", {"max_chars": 86})})
    # 1.0 * 1 - 0.5 * min(1, 43 / 86) = 1 - 0.25 = 0.75
    assert v(GOOD, Sample()).reward == pytest.approx(0.75, abs=1e-12)


def test_passed_follows_the_primary_component():
    v = combine({"exact": 1.0, "format": 0.1}, verifiers={"exact": exact})
    s = v(JUNK, Sample(answer="42"))  # right answer, junk after </answer>
    assert (s.passed, s.info["passed"]["format"]) == (True, False)
    assert s.reward == pytest.approx(1.0)
    f = combine({"exact": 1.0, "format": 0.1}, verifiers={"exact": exact}, primary="format")
    assert f(JUNK, Sample(answer="42")).passed is False


def test_component_error_is_surfaced_in_info():
    v = combine({"format": 1.0})
    assert "error" not in v(GOOD, Sample()).info
    s = combine({"a": 1.0}, verifiers={"a": lambda c, smp: Score(0.0, False, {"error": "timeout"})})(
        GOOD, Sample()
    )
    assert s.info["error"] == "timeout"


def test_a_raising_component_propagates():
    v = combine({"format": 0.1, "bug": 1.0}, verifiers={"bug": broken})
    with pytest.raises(ZeroDivisionError, match="bug in verifier code"):
        v(GOOD, Sample())


def test_bad_specs_fail_at_combine_time():
    with pytest.raises(VerifierError, match="did you mean 'format'"):
        combine({"fromat": 1.0})
    with pytest.raises(VerifierError, match="weight of 'format' must be a number"):
        combine({"format": "1"})
    with pytest.raises(VerifierError, match="reserved"):
        combine({"rewards": 1.0}, verifiers={"rewards": exact})
    with pytest.raises(VerifierError, match="no weight"):
        combine({"format": 1.0}, verifiers={"exact": exact})
    with pytest.raises(VerifierError, match="primary 'nope'"):
        combine({"format": 1.0}, primary="nope")


def test_combined_pickles_without_built_components():
    v = combine({"exact": 1.0, "format": 0.1}, verifiers={"exact": exact})
    v(GOOD, Sample(answer="42"))  # builds its components
    again = pickle.loads(pickle.dumps(v))
    assert again._built is None
    assert again(GOOD, Sample(answer="42")).reward == pytest.approx(1.1)


def test_timeout_is_the_sum_of_declared_budgets():
    class Slow:
        timeout_s = 1.5

        def __call__(self, completion, sample):
            return Score(0.0)

    assert combine({"format": 1.0}).timeout_s is None
    assert combine({"format": 1.0, "s": 0.0, "t": 0.0}, verifiers={"s": Slow(), "t": Slow()}).timeout_s == 3.0
