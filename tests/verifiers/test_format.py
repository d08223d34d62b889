"""The format verifier on realistic model outputs: (completion, passed, reason) rows, then options."""

from __future__ import annotations

import pytest

from rlvr.verifiers import Sample, get_verifier

R1_PROMPT = (
    "A conversation between User and Assistant. The Assistant first thinks about the reasoning process "
    "and then provides the answer inside <answer> </answer> tags.\nUser: What is 23 + 48?\nAssistant:"
)

# (completion, passed, reason): outputs of the kind small GRPO policies produce.
TABLE = [
    ("<think>23 + 48: 3 + 8 = 11, carry 1; 2 + 4 + 1 = 7. So 71.</think>\n<answer>71</answer>", True, "ok"),
    (" <think>\n20+40=60, 3+8=11, 60+11=71\n</think>\n\n<answer>\n71\n</answer>\n", True, "ok"),
    ("<think></think><answer>71</answer>", True, "ok"),  # empty think passes by default
    ("<think>easy</think><answer>The sum is $71$.</answer>", True, "ok"),
    ("<think>23+48=71</think><answer>71</answer> <answer>71</answer>", False, "multiple_answer_blocks"),
    ("<think>23+48=71</think><answer>71</answer>71 71 71 the the", False, "trailing_text"),
    ("<think>23+48=71</think><answer>71</answer>\nUser: What is 5 + 9?", False, "trailing_text"),
    ("<think>23+48=71</think><answer>71</answer></answer>", False, "multiple_answer_blocks"),
    ("Let me think. <think>23+48=71</think><answer>71</answer>", False, "text_before_think"),
    ("<think>23+48=71</think>\nSo the answer is\n<answer>71</answer>", False, "text_between_blocks"),
    ("<think>23+48=71</think>\n<answer> </answer>", False, "empty_answer"),
    ("<think>23+48=71</think>\n<answer></answer>", False, "empty_answer"),
    ("<think>23+48=71</think>\nThe answer is 71.", False, "missing_answer_open"),
    ("<think>23+48=71</think>\n<answer>71", False, "missing_answer_close"),
    ("<think>23+48=71</think>\n71</answer>", False, "missing_answer_open"),
    ("23+48=71</think>\n<answer>71</answer>", False, "missing_think_open"),
    ("<think>23+48=71\n<answer>71</answer>", False, "missing_think_close"),
    ("<answer>71</answer>", False, "missing_think_open"),
    ("The answer is 71.", False, "missing_think_open"),
    ("", False, "missing_think_open"),
    ("<think>try <answer>70</answer> no, 71</think><answer>71</answer>", False, "multiple_answer_blocks"),
    ("<think>a</think><think>b</think><answer>71</answer>", False, "multiple_think_blocks"),
    ("<answer>71</answer><think>23+48=71</think>", False, "answer_before_think"),
    ("</think>23+48<think><answer>71</answer>", False, "think_close_before_open"),
    ("<think>23+48=71</think></answer>71<answer>", False, "answer_close_before_open"),
    ("<Think>23+48=71</Think><answer>71</answer>", False, "missing_think_open"),  # tags are case-sensitive
    ("<think>23+48=71</think>\n<answer>71</answer>" + "\n" * 40, True, "ok"),  # trailing newlines only
]


@pytest.mark.parametrize(("completion", "passed", "reason"), TABLE)
def test_r1_template_table(completion, passed, reason):
    s = get_verifier("format")(completion, Sample(prompt=R1_PROMPT, answer="71"))
    assert (s.passed, s.info["reason"]) == (passed, reason)
    assert s.reward == (1.0 if passed else 0.0)
    assert (s.info["failures"] == []) == passed and (reason in s.info["failures"]) == (not passed)


def test_info_carries_answer_think_length_and_trailing_text():
    s = get_verifier("format")("<think>23+48</think><answer> 71 </answer> thanks!", Sample())
    assert s.info == {
        "answer": "71",
        "think_chars": 5,
        "trailing": "thanks!",
        "reason": "trailing_text",
        "failures": ["trailing_text"],
    }


def test_all_failures_are_listed_in_order():
    s = get_verifier("format")("Sure. <think>x</think> so <answer></answer> done", Sample())
    assert s.info["failures"] == ["text_before_think", "text_between_blocks", "empty_answer", "trailing_text"]


def test_partial_credit_quarter_per_tag_capped_below_full():
    fmt = get_verifier("format", partial_credit=True)
    assert fmt("The answer is 71.", Sample()).reward == 0.0
    assert fmt("<answer>71</answer>", Sample()).reward == 0.5  # 2 of 4 tags
    assert fmt("<think>x</think><answer>71", Sample()).reward == 0.75  # 3 of 4 tags
    # all four tags but junk after </answer>: 4 * 0.25 = 1.0, capped at 0.75 so junk never pays
    assert fmt("<think>x</think><answer>71</answer> junk", Sample()).reward == 0.75
    assert fmt("<think>x</think><answer>71</answer>", Sample()).reward == 1.0


def test_prompt_that_opens_the_think_block_is_detected():
    prompt = "<|User|>What is 23 + 48?<|Assistant|><think>\n"
    fmt = get_verifier("format")
    assert fmt("23+48=71\n</think>\n<answer>71</answer>", Sample(prompt=prompt)).passed is True
    assert fmt("23+48=71\n</think>\n<answer>71</answer>", Sample(prompt="no tag")).info["reason"] == (
        "missing_think_open"
    )
    forced = get_verifier("format", think_in_prompt=True)
    assert forced("23+48=71</think><answer>71</answer>", Sample()).passed is True


def test_custom_tags_and_optional_think():
    fmt = get_verifier("format", think_tag="reasoning", answer_tag="solution")
    assert fmt("<reasoning>r</reasoning><solution>71</solution>", Sample()).passed is True
    assert fmt("<think>r</think><answer>71</answer>", Sample()).info["reason"] == "missing_think_open"
    answer_only = get_verifier("format", require_think=False)
    assert answer_only("<answer>71</answer>", Sample()).passed is True
    assert answer_only("<think>r</think><answer>71</answer>", Sample()).passed is True
    assert answer_only("So: <answer>71</answer>", Sample()).info["reason"] == "text_before_think"


def test_allow_prefix_trailing_and_nonempty_think():
    assert get_verifier("format", allow_prefix=True)(
        "Ok. <think>x</think><answer>1</answer>", Sample()
    ).passed
    assert get_verifier("format", allow_trailing=True)(
        "<think>x</think><answer>1</answer> bye", Sample()
    ).passed
    strict = get_verifier("format", require_think_text=True)
    assert strict("<think> </think><answer>1</answer>", Sample()).info["reason"] == "empty_think"


def test_custom_regex_pattern_replaces_the_tag_checks():
    fmt = get_verifier("format", pattern=r"<answer>-?\d+</answer>")
    assert fmt("  <answer>-12</answer>\n", Sample()).passed is True
    s = fmt("<answer>twelve</answer>", Sample())
    assert (s.passed, s.info["reason"]) == (False, "pattern_mismatch")


def test_bad_options_name_the_field():
    with pytest.raises(ValueError, match="think_tag='<think>'"):
        get_verifier("format", think_tag="<think>")
    with pytest.raises(ValueError, match="pattern='\\(' is not a valid regex"):
        get_verifier("format", pattern="(")
    with pytest.raises(ValueError, match="both 'x'"):
        get_verifier("format", think_tag="x", answer_tag="x")


def test_length_verifier_logs_chars_and_words():
    s = get_verifier("length")("two words", Sample())
    assert s.to_dict() == {"reward": 9.0, "passed": None, "info": {"chars": 9, "words": 2}}
    assert get_verifier("length", max_chars=6)("two words", Sample()).reward == 1.0
