"""Set algebra in the math verifier (`_math_sets`) cross-checked against sympy's own set arithmetic.

Random expressions over intervals and finite sets with small integer endpoints (unions,
intersections, differences, complements, in LaTeX) are compared by the verifier with (a) sympy's
simplified form of the same set, rendered back to LaTeX: must match, and (b) another random
expression: must match exactly when sympy says the two sets are equal. Endpoints are rational, so
this exercises the exact fast path (no helper process).
"""

from __future__ import annotations

import random

import sympy
from sympy import FiniteSet, Interval, S, Union

from rlvr.verifiers.math import compare


def _atom(rng: random.Random) -> tuple[str, sympy.Set]:
    if rng.random() < 0.25:
        pts = sorted(rng.sample(range(-4, 5), rng.randint(1, 3)))
        return "\\{" + ", ".join(map(str, pts)) + "\\}", FiniteSet(*pts)
    a, b = sorted(rng.sample(range(-4, 5), 2))
    lo_open, hi_open = rng.random() < 0.5, rng.random() < 0.5
    lo_tex, lo = ("-\\infty", -sympy.oo) if rng.random() < 0.15 else (str(a), a)
    hi_tex, hi = ("\\infty", sympy.oo) if rng.random() < 0.15 else (str(b), b)
    lo_open, hi_open = lo_open or lo == -sympy.oo, hi_open or hi == sympy.oo
    tex = ("(" if lo_open else "[") + f"{lo_tex}, {hi_tex}" + (")" if hi_open else "]")
    return tex, Interval(lo, hi, lo_open, hi_open)


def _expr(rng: random.Random) -> tuple[str, sympy.Set]:
    tex, st = _atom(rng)
    for _ in range(rng.randint(0, 2)):
        op = rng.choice(["cup", "cap", "setminus"])
        t2, s2 = _atom(rng)
        if op == "cup" and "\\cap" not in tex and "\\setminus" not in tex:
            tex, st = f"{tex} \\cup {t2}", Union(st, s2)
        elif op == "cap" and "\\cup" not in tex and "\\setminus" not in tex:
            tex, st = f"{tex} \\cap {t2}", sympy.Intersection(st, s2)
        elif op == "setminus" and "\\cup" not in tex and "\\cap" not in tex:
            tex, st = f"{tex} \\setminus {t2}", sympy.Complement(st, s2)
    return tex, st


def _render(st: sympy.Set) -> str:
    """LaTeX for a simplified sympy set of reals (union of intervals and points)."""
    if st is S.EmptySet:
        return "\\emptyset"
    if st == S.Reals:
        return "\\mathbb{R}"
    if isinstance(st, FiniteSet):
        return "\\{" + ", ".join(str(v) for v in st.args) + "\\}"
    if isinstance(st, Interval):
        lo = "-\\infty" if st.start == -sympy.oo else str(st.start)
        hi = "\\infty" if st.end == sympy.oo else str(st.end)
        return ("(" if st.left_open else "[") + f"{lo}, {hi}" + (")" if st.right_open else "]")
    assert isinstance(st, Union), st
    return " \\cup ".join(_render(a) for a in st.args)


def test_set_expressions_equal_their_sympy_simplification() -> None:
    rng = random.Random(7)
    checked = 0
    for _ in range(300):
        tex, st = _expr(rng)
        canonical = _render(st)
        ok, reason, detail = compare(tex, canonical, timeout_s=10.0)
        assert ok, (tex, canonical, reason, detail)
        checked += "\\cup" in tex or "\\cap" in tex or "\\setminus" in tex
    assert checked > 150  # most rows really use set operations


def test_random_pairs_agree_with_sympy_equality() -> None:
    rng = random.Random(11)
    agree_true = 0
    for _ in range(400):
        (ta, sa), (tb, sb) = _expr(rng), _expr(rng)
        if rng.random() < 0.3:  # make equal pairs common: b is a rewritten a, perhaps nudged
            tb, sb = _render(sa), sa
            if rng.random() < 0.5:
                nudge = FiniteSet(rng.randint(-4, 4))
                tb, sb = f"{tb} \\cup {_render(nudge)}", Union(sa, nudge)
        expected = sa.symmetric_difference(sb) is S.EmptySet
        got = compare(ta, tb, timeout_s=10.0)[0]
        assert got is expected, (ta, tb, expected)
        agree_true += expected
    assert 60 < agree_true < 340  # both outcomes are exercised
