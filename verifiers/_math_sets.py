"""Set algebra on the real line: parse set expressions, and decide equality by canonical form.

What it does:

- `set_tree(s, depth, sub)` reads a cleaned answer that is a set expression into a structure tree:
  intersections (`A \\cap B` -> ("setop", "cap", A, B)), differences (`A \\setminus B`, and
  `A - B` when both sides are written as sets -> ("setop", "minus", A, B)), complements (`A^c`,
  `A^{\\complement}` -> ("compl", A), relative to the reals), and set-builder notation
  (`\\{x \\in \\mathbb{R} \\mid x \\ne 2\\}`, `\\{x : x < -1 \\text{ or } x > 1\\}`): the conditions are
  one-variable inequalities (-> intervals), `x \\ne a`, `x = a`, `x \\in S`, `x \\notin S`, joined by
  "and" (`,`, `\\land`) or "or" (`\\lor`). Unions stay `_math_normalize`'s ("union", parts).
- `sets_equal(p, g, value, cmp)` turns both trees into a canonical list of disjoint, sorted pieces
  (lo, lo_closed, hi, hi_closed) (a point is [a, a]) and compares them piece by piece. Endpoints
  come from the backend: `value(ast)` (an exact Fraction in the fast backend, a sympy number in the
  sympy one) and `cmp(a, b)` (-1, 0, 1; exact). So `[0,3] \\cup [2,5]` == `[0,5]`,
  `\\mathbb{R} \\setminus \\{2\\}` == `(-\\infty,2) \\cup (2,\\infty)`, `\\{1,2,3\\} \\cap \\{2,3,4\\}` ==
  `\\{2,3\\}`.

Conditions that need solving (`\\{x : x^2 < 4\\}`, `\\{x \\mid |x| \\ge \\sqrt5\\}`) are kept as
("solve", var, sides, ops); only the sympy backend solves them (`solve_univariate_inequality`,
`solveset` over the reals, killed at the deadline like any sympy work).

What it does not do: sets of pairs or of symbols (they raise `NotASet`: the comparison is False),
sets in the complex plane, or conditions in more than one variable.

Try it::

    >>> from rlvr.verifiers.math import is_equivalent
    >>> is_equivalent(r"\\{x \\mid x \\neq 2\\}", r"(-\\infty,2)\\cup(2,\\infty)")
    True
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cmp_to_key
from typing import Any

__all__ = ["NEG_INF", "POS_INF", "NotASet", "set_tree", "sets_equal"]

MAX_PARTS = 64  # operands of one set expression / conditions of one set-builder (bounds the work)
Tree = tuple
Piece = tuple[Any, bool, Any, bool]  # lo, lo_closed, hi, hi_closed


class NotASet(ValueError):
    """The tree is not a set of real numbers this module can put in canonical form."""


class _Inf:
    def __init__(self, sign: int) -> None:
        self.sign = sign

    def __repr__(self) -> str:
        return "+oo" if self.sign > 0 else "-oo"


NEG_INF, POS_INF = _Inf(-1), _Inf(1)
_OO = ("c", "oo")

# ----------------------------------------------------------------------------------- parsing
_COMPLEMENT = {"c", "C", "\\complement"}  # A^c, A^{c}, A^\\complement
_BUILDER_HEAD = re.compile(r"^\s*([A-Za-z](?:_\{?\w+\}?)?)\s*(?:\\in\s*(?P<dom>.+))?$", re.DOTALL)
_NE = re.compile(r"≠|\\notin(?![a-zA-Z])")


def _setlike(s: str, enclosed: Callable[[str], bool]) -> bool:
    s = s.strip()
    if s.startswith("\\{") and s.endswith("\\}"):
        return True
    return len(s) > 1 and s[0] in "([" and s[-1] in ")]" and enclosed(s)


def set_tree(
    s: str, depth: int, sub: Callable[[str, int], Tree], split: Callable, enclosed: Callable
) -> Tree | None:
    """A set-expression tree for the cleaned string `s`, or None when it is not one.

    `sub` is the structure parser for the parts, `split` splits at top level, `enclosed` tells
    whether a bracket at s[0] closes at the end (passed in to avoid an import cycle).
    """
    if len(split(s, ("=",))) > 1:  # `A \cap B = \{2\}` is an equation (a named set)
        return None
    for seps, op in (
        ((r"\smallsetminus", r"\setminus", r"\backslash", "∖"), "minus"),
        ((r"\cap", "∩"), "cap"),
    ):
        parts = split(s, seps)
        if len(parts) > MAX_PARTS:
            return ("bad", "too_many_items")
        if len(parts) > 1 and all(p.strip() for p in parts):
            tree = sub(parts[0], depth + 1)
            for part in parts[1:]:
                tree = ("setop", op, tree, sub(part, depth + 1))
            return tree
    parts = split(s, ("-",))
    if (
        len(parts) == 2
        and all(_setlike(p, enclosed) for p in parts)
        and any(p.strip().startswith("\\{") or "\\infty" in p for p in parts)  # not (1,2)-(3,4)
    ):
        return ("setop", "minus", sub(parts[0], depth + 1), sub(parts[1], depth + 1))
    hat = s.rfind("^")
    if hat > 0 and re.sub(r"[\s{}]", "", s[hat + 1 :]) in _COMPLEMENT and _setlike(s[:hat], enclosed):
        return ("compl", sub(s[:hat], depth + 1))
    if s.startswith("\\{") and s.endswith("\\}"):
        return _builder(s[2:-2], depth, sub, split)
    return None


def _builder(inner: str, depth: int, sub: Callable[[str, int], Tree], split: Callable) -> Tree | None:
    """`x \\in D | cond` (separator `|` or `:`) -> a set tree, or None if it is not set-builder."""
    cut = next((i for i, c in enumerate(inner) if c in "|:"), -1)
    if cut < 0:
        return None
    head = _BUILDER_HEAD.match(inner[:cut])
    cond = inner[cut + 1 :].strip()
    if not head or not cond:
        return None
    var = head.group(1)
    ors, alts = [], split(cond, (" or ", "\\lor", "\\vee"))
    if len(alts) > MAX_PARTS or sum(len(split(a, (",", ";", " and "))) for a in alts) > MAX_PARTS:
        return ("bad", "too_many_items")
    for alt in alts:
        ands = [
            _condition(a.strip(), var, depth, sub)
            for a in split(alt, (",", ";", " and ", "\\land", "\\wedge"))
        ]
        if not ands or any(a is None for a in ands):
            return None
        tree = ands[0]
        for a in ands[1:]:
            tree = ("setop", "cap", tree, a)
        ors.append(tree)
    tree = ors[0] if len(ors) == 1 else ("union", tuple(ors))
    if head.group("dom"):
        tree = ("setop", "cap", sub(head.group("dom"), depth + 1), tree)
    return tree


def _condition(text: str, var: str, depth: int, sub: Callable[[str, int], Tree]) -> Tree | None:
    """One condition on `var` as a set tree, or None."""
    if not text:
        return None
    ne = _NE.split(text)
    if len(ne) == 2 and ne[0].strip() == var:
        other = sub(ne[1], depth + 1)  # x ≠ 2, x ≠ \pm 3, x \notin [0, 1]
        return (
            "compl",
            ("set", (other,)) if other[0] == "expr" else ("set", other[1]) if other[0] == "list" else other,
        )
    tree = sub(text, depth + 1)
    if tree[0] == "eq" and tree[1] == ("expr", ("s", var)):
        return ("set", (tree[2],))
    if tree[0] in ("tuple", "union", "set", "setop", "compl"):
        return tree
    return _to_solve(text, var, depth, sub)


_REL_SPLIT = re.compile(r"(≤|≥|<|>|≠|=)")


def _to_solve(text: str, var: str, depth: int, sub: Callable[[str, int], Tree]) -> Tree | None:
    """A condition that needs solving (`x^2 < 4`, `|x| \\ge \\sqrt5`, `x^2 \\ne 9`), kept as
    ("solve", var, side_asts, ops) for the sympy backend; None if it is not a relation chain."""
    pieces = _REL_SPLIT.split(text)
    if not 3 <= len(pieces) <= 5:
        return None
    sides = [sub(p, depth + 1) for p in pieces[0::2]]
    if any(t[0] != "expr" for t in sides):
        return None
    return ("solve", re.sub(r"[{}]", "", var), tuple(t[1] for t in sides), tuple(pieces[1::2]))


# ------------------------------------------------------------------------------ canonical form
class _Canon:
    def __init__(
        self,
        value: Callable[[tuple], Any],
        cmp: Callable[[Any, Any], int],
        solve: Callable[[Tree], list[Piece]] | None,
    ) -> None:
        self.value, self.raw_cmp, self.solve = value, cmp, solve

    def cmp(self, a: Any, b: Any) -> int:
        if isinstance(a, _Inf) or isinstance(b, _Inf):
            sa = a.sign if isinstance(a, _Inf) else 0
            sb = b.sign if isinstance(b, _Inf) else 0
            return (sa > sb) - (sa < sb)
        return self.raw_cmp(a, b)

    def point(self, t: Tree) -> Any:
        if t[0] != "expr":
            raise NotASet(f"element {t[0]}")
        ast = t[1]
        if ast == _OO:
            return POS_INF
        if ast == ("neg", _OO):
            return NEG_INF
        return self.value(ast)

    def canon(self, t: Tree) -> list[Piece]:
        kind = t[0]
        if kind == "tuple" and len(t[1]) == 2:
            return self.norm([(self.point(t[1][0]), t[2] == "[", self.point(t[1][1]), t[3] == "]")])
        if kind == "set":
            return self.norm([(v, True, v, True) for v in (self.point(x) for x in t[1])])
        if kind == "union":
            return self.norm([piece for part in t[1] for piece in self.canon(part)])
        if kind == "list" and len(t[1]) == 1:
            return self.canon(t[1][0])
        if kind == "compl":
            return self.complement(self.canon(t[1]))
        if kind == "solve":
            if self.solve is None:
                raise NotASet("a condition that needs solving")
            return self.norm(self.solve(t))
        if kind == "setop":
            a, b = self.canon(t[2]), self.canon(t[3])
            return self.intersect(a, self.complement(b) if t[1] == "minus" else b)
        raise NotASet(f"not a set: {kind}")

    def norm(self, pieces: list[Piece]) -> list[Piece]:
        """Drop empty pieces, sort, merge overlapping or touching ones; infinite ends are open."""
        kept = []
        for lo, lc, hi, hc in pieces:
            lc, hc = lc and not isinstance(lo, _Inf), hc and not isinstance(hi, _Inf)
            c = self.cmp(lo, hi)
            if c < 0 or (c == 0 and lc and hc):
                kept.append((lo, lc, hi, hc))
        kept.sort(key=cmp_to_key(lambda x, y: self.cmp(x[0], y[0]) or (y[1] - x[1])))
        out: list[Piece] = []
        for lo, lc, hi, hc in kept:
            if out:
                plo, plc, phi, phc = out[-1]
                c = self.cmp(lo, phi)
                if c < 0 or (c == 0 and (phc or lc)):
                    d = self.cmp(hi, phi)
                    out[-1] = (plo, plc, *((hi, hc) if d > 0 else (phi, phc or hc) if d == 0 else (phi, phc)))
                    continue
            out.append((lo, lc, hi, hc))
        return out

    def complement(self, pieces: list[Piece]) -> list[Piece]:
        gaps, prev, prev_closed = [], NEG_INF, False
        for lo, lc, hi, hc in pieces:
            gaps.append((prev, not prev_closed, lo, not lc))
            prev, prev_closed = hi, hc
        gaps.append((prev, not prev_closed, POS_INF, False))
        return self.norm(gaps)

    def intersect(self, a: list[Piece], b: list[Piece]) -> list[Piece]:
        return self.complement(self.norm(self.complement(a) + self.complement(b)))


def sets_equal(
    p: Tree,
    g: Tree,
    value: Callable[[tuple], Any],
    cmp: Callable[[Any, Any], int],
    solve: Callable[[Tree], list[Piece]] | None = None,
) -> bool:
    """True when trees `p` and `g` are the same set of reals. Raises NotASet (and whatever
    `value` or `solve` raise: the fast backend's NeedSympy, TooLarge)."""
    c = _Canon(value, cmp, solve)
    a, b = c.canon(p), c.canon(g)
    return len(a) == len(b) and all(
        x[1] == y[1] and x[3] == y[3] and c.cmp(x[0], y[0]) == 0 and c.cmp(x[2], y[2]) == 0
        for x, y in zip(a, b)
    )
