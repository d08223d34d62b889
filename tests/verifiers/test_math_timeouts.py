"""Adversarial answers: every call returns (with timeout / parse_error / mismatch), and the verifier
still works right after. The only clock here is a watchdog: a call that has not returned within
10 s fails the test (no tight timing assertions; speed is measured by bench/verifiers.py).
"""

from __future__ import annotations

import threading

import pytest

from rlvr.verifiers import Sample, get_verifier
from rlvr.verifiers._math_pool import get_pool
from rlvr.verifiers.base import under_deadline

WATCHDOG_S = 10.0
NOT_PASSED = {"timeout", "parse_error", "mismatch"}

ADVERSARIAL = [
    ("power_tower", "\\boxed{9^{9^{9^{9}}}}", "1"),
    ("power_tower_symbolic_base", "\\boxed{x^{9^{9^{9}}}}", "x"),
    ("tall_tower_of_twos", "\\boxed{2^{2^{2^{2^{2^{2}}}}}}", "5"),
    ("huge_factorial", "\\boxed{100000!}", "5"),
    ("factorial_of_power", "\\boxed{(10^{10})!}", "5"),
    ("huge_binomial", "\\boxed{\\binom{100000}{50000}}", "1"),
    ("ten_thousand_digits", "\\boxed{" + "7" * 10_000 + "}", "5"),
    ("huge_sci_exponent", "\\boxed{1e999999}", "1"),
    ("nested_parens_expr", "\\boxed{" + "(" * 400 + "x+" * 1 + "1" + ")" * 400 + "+1}", "x+3"),
    ("deep_fractions", "\\boxed{" + "\\frac{1}{" * 200 + "2" + "}" * 200 + "}", "3"),
    ("underbrace_spam", "\\boxed{" + "\\underbrace{" * 300 + "1" + "}_{a}" * 300 + "}", "2"),
    ("long_sum_of_radicals", "\\boxed{" + "+".join(f"\\sqrt{{{i}}}" for i in range(2, 150)) + "}", "5"),
    ("exp_tower", "\\boxed{e^{e^{e^{e^{e^{10}}}}}}", "1"),
    ("big_expand", "\\boxed{(x+1)^{10000}}", "x^{10000}+1"),  # sympy needs ~20 s: killed
    ("long_completion", "blah " * 100_000 + "\\boxed{6}", "5"),
    ("unclosed_boxes", "\\boxed{" * 20_000, "5"),
]


def _call_with_watchdog(verifier, completion: str, gold: str):
    result: list = []
    t = threading.Thread(target=lambda: result.append(verifier(completion, Sample(answer=gold))), daemon=True)
    t.start()
    t.join(WATCHDOG_S)
    assert not t.is_alive(), f"call did not return within the {WATCHDOG_S} s watchdog"
    return result[0]


@pytest.mark.parametrize("name,completion,gold", ADVERSARIAL, ids=[a[0] for a in ADVERSARIAL])
def test_adversarial_returns_and_fails_cleanly(name: str, completion: str, gold: str) -> None:
    v = get_verifier("math")
    score = _call_with_watchdog(v, completion, gold)
    assert score.passed is False and score.reward == 0.0
    assert score.info["reason"] in NOT_PASSED | {"no_final_answer"}, score.info
    if score.info["reason"] == "timeout":
        assert score.info["error"] == "timeout"
    # a normal call right after still works, on the fast path and on the sympy path (a roomy
    # budget: on a loaded machine even a normal sympy call can take a while; this is not a timing test)
    after = get_verifier("math", timeout_s=WATCHDOG_S / 2)
    assert _call_with_watchdog(after, "\\boxed{1,000}", "1000").passed is True
    assert _call_with_watchdog(after, "\\boxed{\\frac{\\sqrt2}{2}}", "\\frac{1}{\\sqrt{2}}").passed is True


def test_identical_adversarial_strings_still_match() -> None:
    # the cheap string comparison runs before any guard: the same tower, or the same 10,000 digits
    v = get_verifier("math")
    assert _call_with_watchdog(v, "\\boxed{9^{9^{9^{9}}}}", "9^{9^{9^{9}}}").passed is True
    digits = "3" * 10_000
    assert _call_with_watchdog(v, f"\\boxed{{{digits}}}", digits).passed is True
    assert _call_with_watchdog(v, "\\boxed{" + "(" * 300 + "5" + ")" * 300 + "}", "5").passed is True


def test_hung_sympy_is_killed_with_reason_timeout() -> None:
    v = get_verifier("math", timeout_s=0.5)
    score = _call_with_watchdog(v, "\\boxed{(x+1)^{10000}}", "x^{10000}+1")
    assert (score.passed, score.info["reason"], score.info["error"]) == (False, "timeout", "timeout")
    after = get_verifier("math", timeout_s=WATCHDOG_S / 2)
    assert _call_with_watchdog(after, "\\boxed{x^2-1}", "(x-1)(x+1)").passed is True


def test_timeout_is_not_cached() -> None:
    # a timed-out pair is retried (with a bigger budget it may succeed); here: still a timeout
    v = get_verifier("math", timeout_s=0.3)
    for _ in range(2):
        assert _call_with_watchdog(v, "\\boxed{(x+2)^{10000}}", "x^{10000}+2").info["reason"] == "timeout"
    # two kills in a row: the pool still answers (the watchdog allows for a fresh helper booting)
    ok = get_verifier("math", timeout_s=WATCHDOG_S / 2)
    assert _call_with_watchdog(ok, "\\boxed{\\sqrt{8}}", "2\\sqrt{2}").passed is True
    pool = get_pool()
    assert pool.kills >= 2
    assert len(pool._idle) + pool._busy + pool._booting <= pool.max_workers


def test_in_process_mode_inside_scoring_worker() -> None:
    """In its under_deadline form (what a scoring worker runs), sympy runs in-process: same answers."""
    assert get_verifier("math").in_process is None
    v = under_deadline(get_verifier("math"), 1.5)
    assert v.in_process is True
    assert under_deadline(get_verifier("math", in_process=False), 1.5).in_process is False  # an explicit choice stays
    assert _call_with_watchdog(v, "\\boxed{3\\sqrt{5}}", "\\sqrt{45}").passed is True  # not cached before
    assert _call_with_watchdog(v, "\\boxed{9^{9^{9^{9}}}}", "1").info["reason"] == "parse_error"


def test_random_latex_fragments_never_raise() -> None:
    """A fixed-seed fuzz: random LaTeX soup as the answer always yields a Score with a valid reason."""
    import random

    frags = ["\\frac", "{", "}", "(", ")", "[", "]", "\\sqrt", "^", "_", "x", "2", "10", "0.5", ",", "=", "<",
             "\\le", "\\pi", "e", "i", "!", "\\cdot", "-", "+", "/", "\\{", "\\}", "\\infty", "\\cup", "\\text{",
             "cm", " ", "\\pm", "&", "\\\\", "\\begin{pmatrix}", "\\end{pmatrix}", "\\overline{3}", ".", "...",
             "%", "\\$", "^\\circ", "|", "\\sin", "\\log_", "\\binom", "9^{9^{9}}", "1,000", "(A)", "\\in",
             "\\left(", "\\right)", "\\boxed{", "1e5", "or", "yes", "\\,", "{,}", "7" * 60]  # fmt: skip
    golds = ["5", "\\frac{1}{2}", "x+1", "(1,2)", "\\{1,2\\}", "[0,1)", "2\\sqrt{3}", "\\text{(B)}", "x=2"]
    rng = random.Random(2026)
    v = get_verifier("math", timeout_s=2.0)
    for _ in range(300):
        answer = "".join(rng.choice(frags) for _ in range(rng.randint(1, 12)))
        score = v(f"\\boxed{{{answer}}}", Sample(answer=rng.choice(golds)))
        assert score.info["reason"] in NOT_PASSED | {"match", "no_final_answer"}, (answer, score.info)
