"""Final-answer extraction (`rlvr.verifiers.math.extract_answer`): which answer counts as final.

Each case is a realistic completion shape and the exact string we expect to extract; None means
"no final answer" (we never fall back to an intermediate number).
"""

from __future__ import annotations

import pytest

from rlvr.verifiers.math import extract_answer

CASES = [
    # \boxed{}: the last one, balanced braces, nesting, \fbox, space form
    ("First \\boxed{3}, then corrected: \\boxed{4}.", "4"),
    ("So $\\boxed{\\frac{\\sqrt{3}}{2}}$.", "\\frac{\\sqrt{3}}{2}"),
    ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
    ("\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    ("The result is \\fbox{7}", "7"),
    ("Thus $\\boxed 5$", "5"),
    ("Solutions: $\\boxed{2}$ and $\\boxed{3}$", "2, 3"),  # boxes joined on one line
    ("\\boxed{2}\n\nLater we check and find \\boxed{3}", "3"),  # different lines: last only
    # <answer> tags beat <think> drafts
    ("<think>I guess \\boxed{3}</think>\n<answer>4</answer>", "4"),
    ("<think>draft: the answer is 10</think><answer>\\boxed{12}</answer>", "12"),
    ("<think>x</think><answer>The answer is 7.</answer>", "7"),
    ("<think>so 5</think> The final answer is \\boxed{6}", "6"),
    ("<answer>1</answer> wait no <answer>2</answer>", "2"),
    # a closed think with nothing outside: its box is used; an unclosed think is a truncation
    ("<think>work work \\boxed{9}</think>", "9"),
    ("<think>work work \\boxed{9}", None),
    # GSM8K ####, "Final Answer:", "The answer is"
    ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "72"),
    ("Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}"),
    ("Final Answer: 42", "42"),
    ("**Final Answer:** 42", "42"),
    ("**Final Answer**\n\n\\[\n\\boxed{10}\n\\]", "10"),
    ("So the answer is 18 dollars.", "18 dollars"),
    ("Thus the answer is $3.5$.", "3.5"),
    ("the answer is 3.5.", "3.5"),
    ("Answer: 12", "12"),
    ("The answer is 6 (since 2*3 = 6).", "6"),  # a trailing remark in parentheses is not the answer
    ("The answer is (B).", "(B)"),
    # no final answer: never an intermediate number
    ("We get 12 apples, then 5 more, so 17.", None),
    ("Before giving the final answer, let us check 12.", None),
    ("", None),
    ("Therefore, the final answer is $\\boxed{12", None),  # truncated inside the box
    ("The final answer is $\\frac{3}{", None),  # truncated inside math mode
    # "$" followed by digits and never closed is currency, not math mode
    ("The answer is $18.", "$18"),
    ("The answer is $18 per day.", "$18 per day"),
    # several math segments joined by "and" / commas are one answer; prose after them is not
    ("The answer is $3$ and $4$.", "3, 4"),
    ("The answer is $3$, since 3 is prime.", "3"),
    # a sentence inside <answer> with exactly one number: that number
    ("<answer> The total is 18 pens </answer>", "18"),
    ("<answer>3 boxes of 18</answer>", "3 boxes of 18"),
    ("<answer>It is not 5</answer>", "It is not 5"),  # a negated number is not the answer
]


@pytest.mark.parametrize("completion,expected", CASES)
def test_extract(completion: str, expected: str | None) -> None:
    assert extract_answer(completion) == expected


def test_priority_box_over_answer_is_phrase() -> None:
    # a box is the strongest marker outside <answer>: "the answer is" earlier does not win
    assert extract_answer("The answer is 3? No. \\boxed{4}") == "4"


def test_long_completion_is_linear() -> None:
    # 1 MB of text before the answer, and 20,000 unclosed boxes: both return (no quadratic scan)
    assert extract_answer("x" * 1_000_000 + " \\boxed{5}") == "5"
    assert extract_answer("\\boxed{" * 20_000) is None
    assert extract_answer("{" * 100_000 + "\\boxed{5}") == "5"


def test_non_string_is_no_answer() -> None:
    assert extract_answer(None) is None  # type: ignore[arg-type]


def test_boxed_only_mode_still_skips_think_drafts() -> None:
    text = "<think>\\boxed{3}</think> The answer is 4, so \\boxed{4}. Final Answer: 5"
    assert extract_answer(text, boxed_only=True) == "4"
    assert extract_answer("The answer is 4", boxed_only=True) is None


def test_answer_tag_mode_reads_only_the_tags():
    from rlvr.verifiers import Sample, get_verifier

    v = get_verifier("math", extract="answer_tag")
    s = Sample(answer="71")
    assert v("The answer is 71.", s).info["reason"] == "no_final_answer"
    assert v("\\boxed{71}", s).info["reason"] == "no_final_answer"
    assert v(" <answer>71</answer>", s).passed
    assert v("<think>try <answer>70</answer></think> <answer> 71 </answer>", s).passed
    assert not v("<answer>70</answer>", s).passed
    # the automatic mode still reads the phrase
    assert get_verifier("math")("The answer is 71.", s).passed
