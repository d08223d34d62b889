"""The sympy backend for scalar comparisons (imported only in helper processes or scoring workers).

`to_sympy` turns a `_math_parse` AST into a sympy expression with the same size guards as the
exact evaluator (huge exponents and factorials raise `TooLarge` before sympy touches them).
`SympyBackend.scalar(a, b)` decides equality EXACTLY:

1. identical, or ``a - b`` is automatically 0 (rationals, matching radicals, complex numbers);
2. constant expressions (rationals never get here: they are compared exactly before): a 30-digit
   numeric check first (a clear difference is a mismatch), then ``expand_complex``/``radsimp`` of
   the difference; if those cannot prove it, the two must agree to 45 significant digits at
   60-digit precision, plus as many digits as the largest or smallest magnitude inside the
   difference (so `\\sqrt{10^{100}+1}` != `10^{50}`); beyond 10^15000 nothing is "numerically"
   equal. (`simplify` is skipped on constants: it is slow and adds nothing here.)
3. equations: ``l1 - r1`` and ``l2 - r2`` equal up to sign, or their ratio a non-zero constant
   (the same equation scaled: ``2x = 4`` == ``x = 2``, ``x^2/4 + y^2/9 = 1`` == ``9x^2 + 4y^2 = 36``);
4. a `\\log` without a base is read as natural on both sides, and, when that fails, as base 10 on
   both sides (`\\log 100` == 2, `\\log 2` == `\\ln 2`; each reading is exact);
5. expressions with variables: ``expand``/``simplify`` of the difference, else 4 random rational
   points must all agree to 45 digits (a polynomial-identity style test);
6. sets of reals (`_math_sets`): endpoints ordered exactly (`_is_zero`, else the sign of a 30-digit
   difference); set-builder conditions that need solving are split at the real zeros and poles of
   ``left - right`` (``solveset``) with one sample point per gap.

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

from rlvr.verifiers._math_compare import _has
from rlvr.verifiers._math_exact import MAX_FACTORIAL, to_fraction
from rlvr.verifiers._math_parse import TooLarge
from rlvr.verifiers._math_sets import NEG_INF, POS_INF, NotASet, sets_equal

__all__ = ["SympyBackend", "to_sympy"]

MAX_EXPONENT = 10_000
_FUNCS = {
    name: getattr(sympy, name)
    for name in ["sin", "cos", "tan", "sec", "csc", "cot", "sinh", "cosh", "tanh", "exp"]
}
_FUNCS.update(
    arcsin=sympy.asin,
    arccos=sympy.acos,
    arctan=sympy.atan,
    arcsec=sympy.asec,
    arccsc=sympy.acsc,
    arccot=sympy.acot,
)
_CONSTS = {"pi": pi, "e": E, "i": I, "oo": oo}


def _rational_or_none(node: tuple) -> Fraction | None:
    try:
        return to_fraction(node)
    except TooLarge:
        raise
    except (ValueError, ZeroDivisionError, OverflowError):
        return None


def to_sympy(node: tuple, log10: bool = False) -> sympy.Expr:
    """A sympy expression for `node`; raises TooLarge before building anything huge.

    `log10`: how a `\\log` without a base (AST "logx") reads: base 10 (True) or natural (False).
    """
    op = node[0]
    if op == "n":
        v: Fraction = node[1]
        return Rational(v.numerator, v.denominator)
    if op == "s":
        return Symbol(node[1])
    if op == "c":
        return _CONSTS[node[1]]
    if op == "add":
        return sympy.Add(*[to_sympy(x, log10) for x in node[1]])
    if op == "mul":
        return sympy.Mul(*[to_sympy(x, log10) for x in node[1]])
    if op == "neg":
        return -to_sympy(node[1], log10)
    if op == "div":
        den = to_sympy(node[2], log10)
        if den == 0:
            raise ZeroDivisionError("division by zero")
        return to_sympy(node[1], log10) / den
    if op == "pow":
        exp_value = _rational_or_none(node[2])
        if exp_value is not None and abs(exp_value) > MAX_EXPONENT:
            base_value = _rational_or_none(node[1])
            if base_value not in (0, 1, -1):
                raise TooLarge(f"exponent above {MAX_EXPONENT}")
        _rational_or_none(node)  # raises TooLarge for huge rational powers
        return sympy.Pow(to_sympy(node[1], log10), to_sympy(node[2], log10))
    if op == "fact":
        v = _rational_or_none(node[1])
        if v is not None and v > MAX_FACTORIAL:
            raise TooLarge(f"factorial of a number above {MAX_FACTORIAL}")
        return factorial(to_sympy(node[1], log10))
    if op == "root":
        x, n = to_sympy(node[1], log10), _rational_or_none(node[2])
        if n == 2:
            return sympy.sqrt(x)
        if n is not None and n.denominator == 1 and n.numerator % 2 == 1 and x.is_negative:
            return sympy.real_root(x, Integer(n.numerator))
        return sympy.root(x, to_sympy(node[2], log10))
    if op == "abs":
        return Abs(to_sympy(node[1], log10))
    if op == "binom":
        n = _rational_or_none(node[1])
        if n is not None and n > 20 * MAX_FACTORIAL:
            raise TooLarge(f"binomial of a number above {20 * MAX_FACTORIAL}")
        return binomial(to_sympy(node[1], log10), to_sympy(node[2], log10))
    if op == "f":
        arg = to_sympy(node[2], log10)
        if node[1] == "logx":
            return sympy.log(arg, 10) if log10 else sympy.log(arg)
        if node[1] == "log":
            return sympy.log(arg, to_sympy(node[3], log10)) if node[3] is not None else sympy.log(arg)
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


MAX_EXTRA_DIGITS = 15_000  # magnitudes beyond 10^±15000 inside an expression: never "numerically equal"


def _extra_digits(expr: sympy.Expr) -> int | None:
    """Decimal orders of magnitude of the largest (or smallest) number inside `expr`, or None if
    beyond MAX_EXTRA_DIGITS. A difference hidden under a huge term (`\\sqrt{10^{100}+1}` vs
    `10^{50}`, `\\ln(e^{100}+1)` vs 100) is only visible at that many more digits."""
    bits = 0
    for sub in sympy.preorder_traversal(expr):
        if not sub.is_number or sub.is_Integer and abs(sub) < 2:
            continue
        v = sympy.N(sub, 15)
        for part in v.as_real_imag() if not v.is_Float else (v,):
            if isinstance(part, sympy.Float) and part._mpf_[1]:
                _, _, exp, bc = part._mpf_
                bits = max(bits, abs(exp + bc))
    digits = int(bits * 0.30103) + 1
    return None if digits > MAX_EXTRA_DIGITS else digits


def _numerically_zero(d: sympy.Expr, scale: sympy.Expr) -> bool:
    """|d| below 10^-45 relative, at a precision that also covers every magnitude inside d."""
    extra = _extra_digits(d)
    if extra is None:
        return False
    return bool(_close(d, scale, 60 + extra, sympy.Float(10, 60 + extra) ** -(45 + extra)))


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
        return _numerically_zero(d, scale)
    if sympy.expand(d) == 0:
        return True
    rng = random.Random(12345)
    for _ in range(4):
        point = {s: Rational(rng.randint(-97, 97), rng.randint(1, 13)) + Rational(1, 7) for s in syms}
        if not _numerically_zero(d.subs(point), scale.subs(point)):
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
        return any(self._scalar(a, b, log10) for log10 in _readings(a, b))

    def _scalar(self, a: tuple, b: tuple, log10: bool) -> bool:
        A, B = to_sympy(a, log10), to_sympy(b, log10)
        if A == B:
            return True
        if A.has(oo, -oo) or B.has(oo, -oo):
            return bool(sympy.simplify(A - B) == 0) if not (A.is_infinite or B.is_infinite) else A == B
        return _is_zero(A - B, A)

    def sets(self, a: tuple, b: tuple) -> bool:
        return sets_equal(a, b, _real_point, _real_cmp, _solve)

    def equation(self, a: tuple, b: tuple) -> bool:
        return any(self._equation(a, b, log10) for log10 in _readings(a, b))

    def _equation(self, a: tuple, b: tuple, log10: bool) -> bool:
        d1 = to_sympy(a[0], log10) - to_sympy(a[1], log10)
        d2 = to_sympy(b[0], log10) - to_sympy(b[1], log10)
        if _is_zero(d1 - d2, d1) or _is_zero(d1 + d2, d1):
            return True
        if d2 == 0 or not (d1.free_symbols or d2.free_symbols):
            return False
        ratio = sympy.cancel(d1 / d2)  # the same equation scaled: 2x = 4 vs x = 2
        return not ratio.free_symbols and ratio != 0 and bool(ratio.is_finite)


def _real_point(ast: tuple) -> sympy.Expr:
    v = to_sympy(ast)
    if v.free_symbols or v.is_real is False or v.has(sympy.zoo, sympy.nan):
        raise NotASet("an endpoint or element that is not a real number")
    return v


def _real_cmp(a: sympy.Expr, b: sympy.Expr) -> int:
    """-1, 0 or 1 for two real constants: 0 by `_is_zero`, else the sign of a 30-digit difference."""
    d = a - b
    if d == 0 or _is_zero(d, a):
        return 0
    v = _num(d, 30)
    if v is None or v.imag != 0:
        raise NotASet("endpoints that cannot be ordered")
    return 1 if v.real > 0 else -1


_RELATIONS = {"<": sympy.Lt, ">": sympy.Gt, "≤": sympy.Le, "≥": sympy.Ge}


def _solve(tree: tuple) -> list:
    """The pieces of {var : side0 op0 side1 [op1 side2]} over the reals (a "solve" tree)."""
    _, name, sides, ops = tree
    x = Symbol(name)
    exprs = [to_sympy(a) for a in sides]
    if any(e.free_symbols - {x} for e in exprs):
        raise NotASet("a condition in more than one variable")
    result: sympy.Set = sympy.S.Reals
    for left, op, right in zip(exprs, ops, exprs[1:]):
        if op in _RELATIONS:
            cond = _sign_set(left - right, op, x)
        else:
            roots = _real_roots(left - right, x)
            cond = roots if op == "=" else sympy.Complement(sympy.S.Reals, roots)
        result = sympy.Intersection(result, cond)
    return _pieces(result)


def _real_roots(f: sympy.Expr, x: Symbol) -> sympy.FiniteSet:
    roots = sympy.solveset(f, x, sympy.S.Reals) if f.has(x) else sympy.S.EmptySet
    if not isinstance(roots, sympy.FiniteSet) and roots is not sympy.S.EmptySet:
        raise NotASet("the solutions are not a finite set of points")
    return roots


def _sign_set(f: sympy.Expr, op: str, x: Symbol) -> sympy.Set:
    """{x real : f(x) op 0}: f keeps its sign between consecutive zeros and poles (f continuous
    there), so one sample point per gap decides it; zeros are kept for <= / >=."""
    num, den = sympy.fraction(sympy.together(f))
    zeros, poles = _real_roots(num, x), _real_roots(den, x)
    points = sorted(set(zeros.args) | set(poles.args), key=lambda v: float(v))
    edges: list = [None, *points, None]
    pieces: list[sympy.Set] = []
    strict_ok = {"<": lambda v: v < 0, ">": lambda v: v > 0, "≤": lambda v: v < 0, "≥": lambda v: v > 0}[op]
    for a, b in zip(edges, edges[1:]):
        t = (
            Integer(0)
            if a is None and b is None
            else b - 1
            if a is None
            else a + 1
            if b is None
            else (a + b) / 2
        )
        v = _num(f.subs(x, t), 30)
        if v is not None and v.imag == 0 and strict_ok(v.real):
            pieces.append(sympy.Interval.open(-oo if a is None else a, oo if b is None else b))
    if op in ("≤", "≥"):
        pieces.append(sympy.FiniteSet(*[z for z in zeros.args if z not in poles.args]))
    return sympy.Union(*pieces)


def _pieces(st: sympy.Set) -> list:
    if st is sympy.S.EmptySet:
        return []
    if isinstance(st, sympy.Union):
        return [p for arg in st.args for p in _pieces(arg)]
    if isinstance(st, sympy.Interval):
        lo = NEG_INF if st.start == -oo else st.start
        hi = POS_INF if st.end == oo else st.end
        return [(lo, not st.left_open, hi, not st.right_open)]
    if isinstance(st, sympy.FiniteSet) and all(v.is_real for v in st.args):
        return [(v, True, v, True) for v in st.args]
    raise NotASet(f"a solution set sympy leaves as {type(st).__name__}")


def _readings(a: tuple, b: tuple) -> tuple[bool, ...]:
    """Readings of a base-less `\\log` to try: natural only, or natural then base 10 (both sides alike)."""
    return (False, True) if _has((a, b), {"f"}, {"logx"}) else (False,)
