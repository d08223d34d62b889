"""Numbers in other bases, unspaced letter-digit runs and Roman numerals are never read as products.

Before this rule `0x10` tokenized as 0 * x * 10 = 0, so every hexadecimal answer equalled every
other (`0x3eb3` passed for `0x3eb2`), and `3eb2` (hex without a prefix) was 6*e*b = `6eb1`.
Labels here are decided from the mathematics; see docs/math_verifier.md ("Numbers in other bases").

Try it::

    .venv/bin/python -m pytest tests/verifiers/test_math_bases.py -q
"""

from __future__ import annotations

import pytest

from rlvr.verifiers._math_parse import tokenize
from rlvr.verifiers.math import compare, is_equivalent


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("0x10", "0x20"),
        ("0x3eb3", "0x3eb2"),
        ("0X10", "0X20"),
        ("0b101", "0b111"),
        ("0B1", "0B11"),
        ("0o17", "0o16"),
        ("0O7", "0o70"),
        ("3EB3_{16}", "3EB2_{16}"),
        ("1111_2", "1011_2"),
        ("1011_2", "101_{12}"),  # same characters once the subscript is dropped; 11 vs 145
        ("0x10", "0b10"),  # 16 vs 2
        ("0b102", "0b103"),  # not binary: compared as exact text
        ("0xZZ", "0xZY"),
        ("3eb2", "6eb1"),  # hex without a prefix; as a product both are 6eb
        ("0a", "0b"),  # as a product both are 0
        ("0.5x2", "x"),
        ("x2", "2x"),
        ("e2", "2e"),
        ("2x3", "6x"),
        ("2e5", "2e6"),
        ("1a", "2a"),
        ("(0x10, 0x21)", "(0x10, 0x20)"),
        ("IV", "VI"),  # Roman numerals: 4 vs 6, as products I*V = V*I
        ("XIV", "XVI"),
        ("\\text{XI}", "\\text{IX}"),
        ("CD", "DC"),  # 400 vs 600 (as segment names these are equal: a false negative we accept)
        ("1:23", "12:3"),  # unparsed text keeps its digit groups apart
        ("12:30", "1:230"),
        ("\\text{Room }1:23", "\\text{Room }12:3"),
    ],
)
def test_near_misses_are_mismatches(pred: str, gold: str) -> None:
    assert is_equivalent(pred, gold) is False
    assert is_equivalent(gold, pred) is False
    assert compare(pred, gold, in_process=True, use_cache=False)[0] is False


@pytest.mark.parametrize(
    ("pred", "gold"),
    [
        ("0x3EB2", "0x3eb2"),
        ("3EB2_{16}", "0x3eb2"),
        ("3eb2_16", "0X3EB2"),
        ("3EB2_{(16)}", "0x3eb2"),
        ("1011_2", "0b1011"),
        ("0b01011", "1011_{2}"),
        ("0o17", "17_8"),
        ("2101_3", "2101_{3}"),
        ("123_{10}", "123"),  # base 10 is an ordinary number
        ("2\\cdot 0x10", "0x10 + 0x10"),
        ("\\{0x1, 0x2\\}", "\\{0x2, 0x1\\}"),
        ("x2 + 1", "1 + x2"),
        # ordinary juxtaposition keeps its meaning
        ("2x", "x + x"),
        ("3ab", "3ba"),
        ("2e5", "200000"),
        ("1.5E-3", "0.0015"),
        ("\\pi2", "2\\pi"),
        ("6x", "2x \\cdot 3"),
        ("x_2", "x_{2}"),
        ("XIV", "\\text{XIV}"),
        ("AB", "BA"),  # not a Roman numeral: still a product of two variables
        ("VIV", "VVI"),  # not a valid Roman numeral either
        ("1:2", "1 : 2"),
    ],
)
def test_same_values_match(pred: str, gold: str) -> None:
    assert is_equivalent(pred, gold) is True
    assert is_equivalent(gold, pred) is True
    assert compare(pred, gold, in_process=True, use_cache=False)[0] is True


def test_other_base_never_equals_the_decimal_value() -> None:
    """A base-16 gold is a base-conversion answer: echoing the decimal input must not pass."""
    assert 0x3EB2 == 16050
    assert not is_equivalent("16050", "0x3eb2")
    assert not is_equivalent("0x10", "16")
    assert not is_equivalent("10000_2", "16")


def test_tokens() -> None:
    assert tokenize("0x3EB2") == [("word", "0x3eb2")]
    assert tokenize("3EB2_{16}") == [("word", "0x3eb2")]
    assert tokenize("1011_2 + 1") == [("word", "0b1011"), ("op", "+"), ("num", "1")]
    assert tokenize("2101_3") == [("word", "2101_3")]
    assert tokenize("19_2") == [("word", "19_2")]  # 9 is not a binary digit: exact text
    assert tokenize("3eb2") == [("word", "3eb2")]
    assert tokenize("2x") == [("num", "2"), ("sym", "x")]
    assert tokenize("x_1") == [("sym", "x"), ("op", "_"), ("num", "1")]
    assert tokenize("a_{12}") == [("sym", "a"), ("op", "_"), ("op", "{"), ("num", "12"), ("op", "}")]
    assert tokenize("XIV") == [("word", "XIV")]
    assert tokenize("2 x 3") == [("num", "2"), ("sym", "x"), ("num", "3")]  # spaced: a product
