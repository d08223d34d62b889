"""The sympy backend for scalar comparisons (imported only in helper processes or scoring workers).

`to_sympy` turns a `_math_parse` AST into a sympy expression with the same size guards as the
exact evaluator (huge exponents and factorials raise `TooLarge` before sympy touches them).
`SympyBackend.scalar(a, b)` decides equality EXACTLY:

1. identical, or ``a - b`` is automatically 0 (rationals, matching radicals, complex numbers);
2. constant expressions (rationals never get here: they are compared exactly before): a 30-digit
   numeric check first (a clear difference is a mismatch), then ``expand_complex``/``radsimp`` of
   the difference; if those cannot prove it, the two must agree to 45 significant digits at
   60-digit precision. (`simplify` is skipped on constants: it is slow and adds nothing here.)
3. equations: ``l1 - r1`` and ``l2 - r2`` equal up to sign, or their ratio a non-zero constant
   (the same equation scaled: ``2x = 4`` == ``x = 2``, ``x^2/4 + y^2/9 = 1`` == ``9x^2 + 4y^2 = 36``);
4. expressions with variables: ``expand``/``simplify`` of the difference, else 4 random rational
   points must all agree to 45 digits (a polynomial-identity style test).

Callers bound the time: this code may be slow on hostile input and is run where it can be killed
(`_math_pool`) or where the scoring worker's parent kills it (`MathVerifier.under_deadline`).

Try it::

    >>> from rlvr.verifiers._math_parse import parse_expr
    >>> from rlvr.verifiers._math_sympy import SympyBackend
    >>> SympyBackend().scalar(parse_expr(r"\\frac{\\sqrt{2}}{2}"), parse_expr(r"\\frac{1}{\\sqrt{2}}"))
    True
"""

from __future__ import annotations

import random
from fractions import Fraction

import sympy
from sympy import Abs, E, I, Integer, Rational, Symbol, binomial, factorial, oo, pi

from rlvr.verifiers._math_exact import MAX_FACTORIAL, to_fraction
from rlvr.verifiers._math_parse import TooLarge

__all__ = ["SympyBackend", "to_sympy"]

MAX_EXPONENT = 10_000
_FUNCS = {
    name: getattr(sympy, name)
    for name in ["sin", "cos", "tan", "sec", "csc", "cot", "sinh", "cosh", "tanh", "exp"]
}
_FUNCS.update(arcsin=sympy.asin, arccos=sympy.acos, arctan=sympy.atan)
_CONSTS = {"pi": pi, "e": E, "i": I, "oo": oo}


def _rational_or_none(node: tuple) -> Fraction | None:
    try:
        return to_fraction(node)
    except TooLarge:
        raise
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


def to_sympy(node: tuple) -> sympy.Expr:
    """A sympy expression for `node`; raises TooLarge before building anything huge."""
    op = node[0]
    if op == "n":
        v: Fraction = node[1]
        return Rational(v.numerator, v.denominator)
    if op == "s":
        return Symbol(node[1])
    if op == "c":
        return _CONSTS[node[1]]
    if op == "add":
        return sympy.Add(*[to_sympy(x) for x in node[1]])
    if op == "mul":
        return sympy.Mul(*[to_sympy(x) for x in node[1]])
    if op == "neg":
        return -to_sympy(node[1])
    if op == "div":
        den = to_sympy(node[2])
        if den == 0:
            raise ZeroDivisionError("division by zero")
        return to_sympy(node[1]) / den
    if op == "pow":
        exp_value = _rational_or_none(node[2])
        if exp_value is not None and abs(exp_value) > MAX_EXPONENT:
            base_value = _rational_or_none(node[1])
            if base_value not in (0, 1, -1):
                raise TooLarge(f"exponent above {MAX_EXPONENT}")
        _rational_or_none(node)  # raises TooLarge for huge rational powers
        return sympy.Pow(to_sympy(node[1]), to_sympy(node[2]))
    if op == "fact":
        v = _rational_or_none(node[1])
        if v is not None and v > MAX_FACTORIAL:
            raise TooLarge(f"factorial of a number above {MAX_FACTORIAL}")
        return factorial(to_sympy(node[1]))
    if op == "root":
        x, n = to_sympy(node[1]), _rational_or_none(node[2])
        if n == 2:
            return sympy.sqrt(x)
        if n is not None and n.denominator == 1 and n.numerator % 2 == 1 and x.is_negative:
            return sympy.real_root(x, Integer(n.numerator))
        return sympy.root(x, to_sympy(node[2]))
    if op == "abs":
        return Abs(to_sympy(node[1]))
    if op == "binom":
        n = _rational_or_none(node[1])
        if n is not None and n > 20 * MAX_FACTORIAL:
            raise TooLarge(f"binomial of a number above {20 * MAX_FACTORIAL}")
        return binomial(to_sympy(node[1]), to_sympy(node[2]))
    if op == "f":
        arg = to_sympy(node[2])
        if node[1] == "log":
            return sympy.log(arg, to_sympy(node[3])) if node[3] is not None else sympy.log(arg)
        return _FUNCS[node[1]](arg)
    raise ValueError(f"unknown AST node {op!r}")


def _num(x: sympy.Expr, digits: int) -> complex | None:
    try:
        v = complex(sympy.N(x, digits))
    except (TypeError, ValueError, OverflowError):
        return None
    return v


def _close(d: sympy.Expr, scale: sympy.Expr, digits: int, tol: float) -> bool | None:
    """|d| <= tol * (1 + |scale|) numerically, or None if not numeric."""
    dv = sympy.N(d, digits)
    sv = sympy.N(scale, digits)
    if not (dv.is_number and sv.is_number):
        return None
    try:
        return bool(Abs(dv) <= tol * (1 + Abs(sv)))
    except TypeError:
        return None


def _is_zero(d: sympy.Expr, scale: sympy.Expr) -> bool:
    """Is `d` (= a - b) exactly zero? See the module docstring for the procedure."""
    if d == 0:
        return True
    if d.has(oo, -oo, sympy.zoo, sympy.nan):
        return False
    syms = sorted(d.free_symbols, key=str)
    if not syms:
        rough = _close(d, scale, 30, 1e-20)
        if rough is False:
            return False
        try:
            if sympy.expand_complex(d) == 0 or sympy.radsimp(d) == 0:
                return True
        except (TypeError, ValueError, NotImplementedError):
            pass
        return bool(_close(d, scale, 60, 1e-45))
    if sympy.expand(d) == 0:
        return True
    rng = random.Random(12345)
    for _ in range(4):
        point = {s: Rational(rng.randint(-97, 97), rng.randint(1, 13)) + Rational(1, 7) for s in syms}
        ok = _close(d.subs(point), scale.subs(point), 60, 1e-45)
        if not ok:
            return False
    return True


class SympyBackend:
    """Scalar and equation equality with sympy (see the module docstring)."""

    def scalar(self, a: tuple, b: tuple) -> bool:
        if a == b:
            return True
        fa, fb = _rational_or_none(a), _rational_or_none(b)
        if fa is not None and fb is not None:
            return fa == fb
        A, B = to_sympy(a), to_sympy(b)
        if A == B:
            return True
        if A.has(oo, -oo) or B.has(oo, -oo):
            return bool(sympy.simplify(A - B) == 0) if not (A.is_infinite or B.is_infinite) else A == B
        return _is_zero(A - B, A)

    def equation(self, a: tuple, b: tuple) -> bool:
        d1 = to_sympy(a[0]) - to_sympy(a[1])
        d2 = to_sympy(b[0]) - to_sympy(b[1])
        if _is_zero(d1 - d2, d1) or _is_zero(d1 + d2, d1):
            return True
        if d2 == 0 or not (d1.free_symbols or d2.free_symbols):
            return False
        ratio = sympy.cancel(d1 / d2)  # the same equation scaled: 2x = 4 vs x = 2
        return not ratio.free_symbols and ratio != 0 and bool(ratio.is_finite)
