"""pass@k, maj@k and intervals against numbers computed by hand."""

from __future__ import annotations

import math

import pytest

from rlvr.evaluation import ProblemResult, maj_vote, mean_ci, pass_at_k, problem_result, summarize
from rlvr.verifiers import Score


def test_pass_at_k_matches_the_binomial_form():
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10 = 0.7
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7, abs=1e-12)
    # k=1 is the pass rate c/n
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8, abs=1e-12)
    # every k-subset must contain a pass when n - c < k
    assert pass_at_k(4, 2, 3) == 1.0
    assert pass_at_k(10, 0, 5) == 0.0
    # against math.comb on a grid
    for n in range(1, 12):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12)


def test_pass_at_k_rejects_k_above_n():
    with pytest.raises(ValueError, match="at least 9 samples"):
        pass_at_k(8, 1, 9)


def test_maj_vote_ties_go_to_the_first_seen_answer():
    assert maj_vote(["4", "5", "4", None], [True, False, True, False]) is True
    assert maj_vote(["5", "4"], [False, True]) is False  # tie: "5" seen first, and it failed
    assert maj_vote([None, None], [False, False]) is False


def test_mean_ci_by_hand():
    # values 0, 2 (outside [0, 1]): normal; sample std 1.4142, half = 1.96 * 1.4142 / sqrt(2) = 1.96
    m, lo, hi = mean_ci([0.0, 2.0])
    assert (m, lo, hi) == pytest.approx((1.0, 1.0 - 1.96, 1.0 + 1.96), abs=1e-9)
    # values 0, 1 (a rate): Wilson, q = 1.96^2/2 = 1.9208, center (0.5 + q/2)/(1 + q) = 0.5,
    # half = 1.96/(1 + q) * sqrt(0.25/2 + 1.96^2/(4*4)) = 0.671049 * 0.604235 = 0.405471
    m, lo, hi = mean_ci([0.0, 1.0])
    assert (m, lo, hi) == pytest.approx((0.5, 0.5 - 0.405471, 0.5 + 0.405471), abs=1e-6)


def test_intervals_stay_inside_0_1():
    """The walk-through's pass@8 [0.941, 1.019] and format_rate [-0.120, 0.370]: rates never leave [0, 1]."""
    m, lo, hi = mean_ci([1.0] * 15 + [0.875])  # pass@8 estimates near 1
    assert 0.0 <= lo < m < hi <= 1.0
    m, lo, hi = mean_ci([1.0] * 16)  # all passed: Wilson [0.8064, 1], by hand in rlvr.metrics
    assert (lo, hi) == pytest.approx((0.806387, 1.0), abs=1e-6)
    m, lo, hi = mean_ci([0.0] * 9 + [1.0])  # format_rate 0.1 over 10 problems
    assert lo >= 0.0 and hi <= 1.0 and lo == pytest.approx(0.017876, abs=1e-6)


def test_summarize_from_scores():
    def s(ok, ans, fmt=1.0):
        info = {"primary": "math", "math": {"extracted": ans, "reason": "match" if ok else "mismatch"},
                "rewards": {"math": float(ok), "format": fmt}}
        return Score(float(ok), ok, info)

    none = Score(0.0, False, {"primary": "math", "math": {"extracted": None, "reason": "no_final_answer"},
                              "rewards": {"math": 0.0, "format": 0.0}})
    p1 = problem_result([s(True, "4"), s(False, "5"), s(True, " 4 "), none], [3, 5, 7, 24], ["stop", "stop", "stop", "length"])
    p2 = problem_result([s(False, "9"), s(False, "9"), none, none], [2, 2, 24, 24], ["stop"] * 2 + ["length"] * 2)
    out = summarize([p1, p2], ks=[1, 2])
    assert out["pass@1"][0] == pytest.approx((0.5 + 0.0) / 2)
    # p1: n=4, c=2, k=2 -> 1 - C(2,2)/C(4,2) = 5/6
    assert out["pass@2"][0] == pytest.approx((5 / 6) / 2)
    assert out["maj@2"][0] == pytest.approx(0.5)  # p1: "4" vs "5" tie -> "4" first -> passed
    assert out["format_rate"][0] == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert out["reward/format"][0] == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert out["length"]["max"] == 24 and out["length"]["truncated_frac"] == pytest.approx(3 / 8)
    assert isinstance(p1, ProblemResult)
