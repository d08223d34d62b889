"""Exact, size-guarded evaluation of a `_math_parse` AST to a `fractions.Fraction`.

`to_fraction(ast)` returns the exact rational value of an expression built from numbers, + - * /,
integer (or exactly-rooted rational) powers, factorials, binomials, |x| and perfect roots, or None
when the value is not (cheaply, provably) rational: symbols, pi, sqrt(2)... Before any big-integer
work it estimates the size of the result and raises `TooLarge` (power towers such as
9^{9^{9^{9}}}, 100000!, intermediate values beyond ~12,000 digits). It never imports sympy.

Try it::

    >>> from rlvr.verifiers._math_parse import parse_expr
    >>> from rlvr.verifiers._math_exact import to_fraction
    >>> to_fraction(parse_expr(r"\\frac{3}{4}+0.25")), to_fraction(parse_expr(r"\\sqrt{2}")) is None
    (Fraction(1, 1), True)
"""

from __future__ import annotations

import math
from fractions import Fraction

from rlvr.verifiers._math_parse import Node, TooLarge

__all__ = ["MAX_BITS", "MAX_FACTORIAL", "to_fraction"]

MAX_BITS = 40_000  # any intermediate exact value with a larger numerator/denominator is "too large"
MAX_FACTORIAL = 1000  # n! for n above this is "too large" (1000! has 2568 digits)


def _check(v: Fraction) -> Fraction:
    if v.numerator.bit_length() > MAX_BITS or v.denominator.bit_length() > MAX_BITS:
        raise TooLarge("intermediate value too large")
    return v


def _int_root(x: int, n: int) -> int | None:
    """The exact n-th root of a non-negative int x, or None."""
    if x < 2:
        return x
    r = round(x ** (1.0 / n)) if x.bit_length() < 1000 else int(math.isqrt(x) if n == 2 else 0)
    for c in (r - 1, r, r + 1):
        if c >= 0 and c**n == x:
            return c
    return None


def _rational_root(v: Fraction, n: int) -> Fraction | None:
    if n <= 0 or n > 64:
        return None
    if v < 0:
        if n % 2 == 0:
            return None
        r = _rational_root(-v, n)
        return -r if r is not None else None
    a, b = _int_root(v.numerator, n), _int_root(v.denominator, n)
    return Fraction(a, b) if a is not None and b is not None else None


def _pow(base: Fraction, exp: Fraction) -> Fraction | None:
    if exp.denominator != 1:
        root = _rational_root(base, exp.denominator)
        return None if root is None else _pow(root, Fraction(exp.numerator))
    e = exp.numerator
    if base == 0:
        return None if e < 0 else Fraction(int(e == 0))
    if base in (1, -1):
        return base ** (e % 2) if base == -1 else base
    size = max(base.numerator.bit_length(), base.denominator.bit_length())
    if size * abs(e) > MAX_BITS:
        bits = size * abs(e)
        raise TooLarge(f"power with about {bits // 3} digits" if bits < 10**30 else "power tower")
    return _check(base**e)


def to_fraction(node: Node) -> Fraction | None:
    """The exact rational value of `node`, or None if it is not (provably, cheaply) rational.

    Raises TooLarge when a sub-result would exceed the size guards (power towers, 5000!).
    """
    op = node[0]
    if op == "n":
        return node[1]
    if op in ("add", "mul"):
        total = Fraction(0 if op == "add" else 1)
        for item in node[1]:
            v = to_fraction(item)
            if v is None:
                return None
            total = _check(total + v if op == "add" else total * v)
        return total
    if op == "neg":
        v = to_fraction(node[1])
        return None if v is None else -v
    if op == "div":
        a, b = to_fraction(node[1]), to_fraction(node[2])
        return None if a is None or b is None or b == 0 else _check(a / b)
    if op == "pow":
        b, e = to_fraction(node[1]), to_fraction(node[2])
        return None if b is None or e is None else _pow(b, e)
    if op == "fact":
        v = to_fraction(node[1])
        if v is None or v.denominator != 1 or v < 0:
            return None
        if v > MAX_FACTORIAL:
            raise TooLarge(f"factorial of a number above {MAX_FACTORIAL}")
        return Fraction(math.factorial(int(v)))
    if op == "root":
        v, n = to_fraction(node[1]), to_fraction(node[2])
        if v is None or n is None or n.denominator != 1:
            return None
        return _rational_root(v, int(n.numerator))
    if op == "abs":
        v = to_fraction(node[1])
        return None if v is None else abs(v)
    if op == "binom":
        n, k = to_fraction(node[1]), to_fraction(node[2])
        if n is None or k is None or n.denominator != 1 or k.denominator != 1 or n < 0:
            return None
        if n > 20 * MAX_FACTORIAL:
            raise TooLarge(f"binomial of a number above {20 * MAX_FACTORIAL}")
        return _check(Fraction(math.comb(int(n), int(k)))) if k >= 0 else Fraction(0)
    return None
