"""Compare two structure trees (from `_math_normalize.structure`) for mathematical equality.

The structural rules live here; the scalar rule is a backend:

- `FastBackend` (no sympy, no IPC): exact rationals via `fractions.Fraction`, identical ASTs, and
  text. Anything it cannot decide raises `NeedSympy`, and the caller re-runs the whole comparison
  with the sympy backend (in a killable helper process, see `_math_pool`).
- `rlvr.verifiers._math_sympy.SympyBackend`: the same interface on top of sympy.

Rules (pred vs gold):
- bare lists ("2, 3") and sets (`\\{2, 3\\}`) are multisets: order-free, same length;
- tuples/intervals are ordered, same length, and the bracket kinds must agree (`(1, 2]` != `(1, 2)`);
  a 1xn / nx1 matrix equals an n-tuple written with parentheses;
- a union of intervals equals another union (order-free) or a bare list of the same intervals;
- set algebra (unions, `\\cap`, `\\setminus`, complements, set-builder domains; `_math_sets`) is
  compared by canonical form: the same set of reals, e.g. `[0,3] \\cup [2,5]` == `[0,5]`;
- an equation `v = rhs` whose left side is a lone variable equals `rhs` (so `x = 2` == `2`,
  `y = 2x+1` == `2x+1`); a predicted equation whose right side is a constant equals that constant
  (`a+b = 10` == `10`, the "find a+b" habit); a gold equation only reduces when its left side is a
  lone variable; two equations are equal when `lhs - rhs` agree up to sign;
- a one-element list equals its element; text equals text (case- and punctuation-free), and a
  text answer equals a lone symbol with the same letters (`\\text{(B)}` == `B`).

Try it::

    >>> from rlvr.verifiers._math_clean import clean
    >>> from rlvr.verifiers._math_normalize import structure
    >>> from rlvr.verifiers._math_compare import equal, FastBackend
    >>> equal(structure(clean("3, 2")), structure(clean("2,3")), FastBackend())
    True
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Protocol

from rlvr.verifiers._math_exact import to_fraction
from rlvr.verifiers._math_normalize import _is_var
from rlvr.verifiers._math_sets import NotASet, sets_equal

__all__ = ["Backend", "FastBackend", "NeedSympy", "equal"]


class NeedSympy(Exception):
    """The fast backend cannot decide this comparison."""


class Backend(Protocol):
    def scalar(self, a: tuple, b: tuple) -> bool: ...

    def equation(self, a: tuple, b: tuple) -> bool: ...

    def sets(self, a: tuple, b: tuple) -> bool: ...


_SET_KINDS = {"union", "setop", "compl", "solve"}


def _fast_point(ast: tuple) -> Fraction:
    v = to_fraction(ast)
    if v is None:
        raise NeedSympy
    return v


def _need_sympy(tree: tuple) -> list:
    raise NeedSympy


def _fast_cmp(a: Fraction, b: Fraction) -> int:
    return (a > b) - (a < b)


def _has(ast: Any, kinds: set[str], names: set[str] | None = None) -> bool:
    stack = [ast]
    while stack:
        cur = stack.pop()
        if not isinstance(cur, tuple) or not cur:
            continue
        if isinstance(cur[0], str):
            if cur[0] in kinds and (names is None or (len(cur) > 1 and cur[1] in names)):
                return True
            stack.extend(cur[1:])
        else:
            stack.extend(cur)
    return False


class FastBackend:
    """Exact rational comparison and identical-AST shortcuts; raises NeedSympy otherwise."""

    def scalar(self, a: tuple, b: tuple) -> bool:
        if a == b:
            return True
        fa, fb = to_fraction(a), to_fraction(b)
        if fa is not None and fb is not None:
            return fa == fb
        if a[0] == "s" and (b[0] == "s" or fb is not None) or b[0] == "s" and fa is not None:
            return False  # a lone name never equals another name or a number
        # a finite rational vs something containing infinity is never equal
        if (fa is not None and _has(b, {"c"}, {"oo"})) or (fb is not None and _has(a, {"c"}, {"oo"})):
            return False
        raise NeedSympy

    def equation(self, a: tuple, b: tuple) -> bool:
        if a == b:
            return True
        raise NeedSympy

    def sets(self, a: tuple, b: tuple) -> bool:
        return sets_equal(a, b, _fast_point, _fast_cmp, _need_sympy)


def _multiset(ps: tuple, gs: tuple, be: Backend) -> bool:
    if len(ps) != len(gs):
        return False
    unused = list(range(len(gs)))
    for p in ps:
        for k in unused:
            if equal(p, gs[k], be):
                unused.remove(k)
                break
        else:
            return False
    return True


def _ordered(ps: tuple, gs: tuple, be: Backend) -> bool:
    return len(ps) == len(gs) and all(equal(p, g, be) for p, g in zip(ps, gs))


def _is_const(t: tuple) -> bool:
    """A scalar expression without variables (numbers, pi, e, i, radicals...)."""
    return t[0] == "expr" and not _has(t[1], {"s"})


def _set_name(t: tuple) -> bool:
    """A name for a set: a letter (`D`, `S`), or unions/intersections/differences of such names."""
    if t[0] == "text":
        return len(t[1]) == 1
    if t[0] == "union":
        return all(_set_name(x) for x in t[1])
    if t[0] == "setop":
        return _set_name(t[2]) and _set_name(t[3])
    return _is_var(t)


def _text_of(t: tuple) -> str | None:
    if t[0] in ("text", "raw"):
        return t[1]
    if t[0] == "expr" and t[1][0] == "s":
        return t[1][1].lower().replace("_", "")
    if t[0] == "expr" and t[1][0] == "c" and t[1][1] in ("e", "i"):
        return t[1][1]
    return None


def equal(p: tuple, g: tuple, be: Backend) -> bool:
    """True when pred tree `p` equals gold tree `g` under the rules in the module docstring."""
    kp, kg = p[0], g[0]
    if kp == "bad" or kg == "bad":
        return False
    # equations: a lone-variable left side reduces to its right side
    if kp == "eq" and kg == "eq":
        if p == g:
            return True
        if _is_var(p[1]) and _is_var(g[1]) and equal(p[1], g[1], be):
            return equal(p[2], g[2], be)
        if p[1][0] == g[1][0] == p[2][0] == g[2][0] == "expr":
            return be.equation((p[1][1], p[2][1]), (g[1][1], g[2][1]))
        return False
    if kp == "eq":  # x = 2 vs 2; also a + b = 10 vs 10 (a constant right side is the value)
        named_set = p[2][0] in _SET_KINDS | {"set", "tuple"} and _set_name(p[1])  # D = \{x | x ≠ 2\}
        return (_is_var(p[1]) or _is_const(p[2]) or named_set) and equal(p[2], g, be)
    if kg == "eq":
        return _is_var(g[1]) and equal(p, g[2], be)
    if (
        kp in ("union", "list")
        and kg in ("union", "list")
        and "union" in (kp, kg)
        and _multiset(p[1], g[1], be)
    ):
        return True
    if kp in _SET_KINDS or kg in _SET_KINDS:  # set algebra: compare canonical forms
        try:
            return be.sets(p, g)
        except NotASet:
            return False
    # one-element containers
    if kp in ("list", "set") and len(p[1]) == 1 and kg not in ("list", "set"):
        return equal(p[1][0], g, be)
    if kg in ("list", "set") and len(g[1]) == 1 and kp not in ("list", "set"):
        return equal(p, g[1][0], be)
    if kp in ("list", "set") and kg in ("list", "set"):
        return _multiset(p[1], g[1], be)
    if kp == "tuple" and kg == "tuple":
        return p[2] == g[2] and p[3] == g[3] and _ordered(p[1], g[1], be)
    if kp == "matrix" and kg == "matrix":
        return len(p[1]) == len(g[1]) and all(_ordered(a, b, be) for a, b in zip(p[1], g[1]))
    if {kp, kg} == {"matrix", "tuple"}:
        m, t = (p, g) if kp == "matrix" else (g, p)
        flat = tuple(c for row in m[1] for c in row)
        vector = len(m[1]) == 1 or all(len(row) == 1 for row in m[1])
        return (
            vector
            and t[2] == "("
            and t[3] == ")"
            and (_ordered(flat, t[1], be) if m is p else _ordered(t[1], flat, be))
        )
    if kp == "rel" or kg == "rel":
        return p == g
    if kp == "choice" or kg == "choice":
        c, other = (p, g) if kp == "choice" else (g, p)
        if other[0] == "choice":
            return p[1] == g[1]
        letter = _text_of(other)
        if letter is not None and len(letter) == 1:
            return letter == c[1]
        return equal(c[2], other, be) if c is p else equal(other, c[2], be)
    tp, tg = _text_of(p), _text_of(g)
    if kp in ("text", "raw") or kg in ("text", "raw"):
        return tp is not None and tp == tg
    if kp == "expr" and kg == "expr":
        return be.scalar(p[1], g[1])  # TooLarge propagates: the caller reports parse_error
    return False
