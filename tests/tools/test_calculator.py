"""The calculator is exact (Fractions from the literals' text) and refuses everything but arithmetic."""

from __future__ import annotations

import pytest

from rlvr.tools.calculator import Calculator, CalculatorError, calculate


@pytest.mark.parametrize("expr, want", [
    ("0.1 + 0.2", "0.3"),  # 0.30000000000000004 in floats
    ("123456789 * 987654321", "121932631112635269"),  # beyond float precision (2**53)
    ("2**100", "1267650600228229401496703205376"),
    ("1/3 + 1/3 + 1/3", "1"),
    ("1/3", "1/3"),
    ("-7 // 2", "-4"),
    ("-7 % 3", "2"),
    ("(1234 * 5678) / 2", "3503326"),
    ("7 / 4", "1.75"),
    ("1 / 80", "0.0125"),
    ("2.5e3 + 1_000", "3500"),
    ("1e-20 * 3", "0.00000000000000000003"),
    ("3^4", "81"),
    ("abs(-2.50) + max(1, 2/3) - min(5, 7)", "-1.5"),
    ("round(7/3, 2)", "2.33"),
    ("gcd(12, 18)", "6"),
    ("2**-2", "0.25"),
])
def test_exact_values(expr, want):
    assert calculate(expr) == want


@pytest.mark.parametrize("expr, why", [
    ("__import__('os').system('id')", "not allowed"),
    ("x + 1", "not allowed"),
    ("(1).real", "not allowed"),
    ("'a' * 3", "not a number"),
    ("1 < 2", "not allowed"),
    ("1/0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("0 ** -1", "division by zero"),
    ("2 ** 0.5", "not an integer"),
    ("9 ** 9 ** 9", "larger than"),
    ("10 ** 10000", "bits"),
    ("(2**5000) * (2**5000) * (2**5000) * (2**5000) * (2**5000)", "bits"),
    ("1 +", "not an arithmetic expression"),
    ("1" + "+1" * 300, "longer than"),
    ("+".join(["1"] * 150), "parts"),
    ("", "empty"),
])
def test_refused_with_a_reason(expr, why):
    with pytest.raises(CalculatorError, match=why):
        calculate(expr)


def test_tool_results_are_data():
    calc = Calculator()
    assert calc({"expression": "6 * 7"}, timeout_s=1).output == "42"
    bad = calc({"expression": "open('/etc/passwd')"}, timeout_s=1)
    assert bad.status == "error" and "not allowed" in bad.output
    assert calc({}, timeout_s=1).status == "error"
    assert "unexpected argument 'x'" in calc({"expression": "1", "x": 2}, timeout_s=1).output
    assert calc({"expression": 12}, timeout_s=1).status == "error"  # not a string
