"""A cleaned answer string (see `_math_clean`) -> a small picklable structure tree (`structure`).

Trees: bare comma lists ("2, 3"; unordered), sets (`\\{…\\}`; unordered), tuples/intervals
(`(a, b]`; ordered, bracket kinds kept), unions (`\\cup`), matrices (`pmatrix`, `bmatrix`),
equations (`x = 2`), inequalities in one variable (turned into intervals: `x > 2` -> (2, oo)),
`a \\pm b` (the two values), set expressions and set-builder notation (`_math_sets`: `\\cap`,
`\\setminus`, complements, `\\{x \\mid x \\ne 2\\}`; `x \\ne 2` alone is the reals without 2), a scalar
times a matrix (multiplied into every entry), answer choices (`(B) 17`), text answers, and scalar
expressions (parsed by `_math_parse`). Units after a number (`5 cm`, `18 dollars`, `\\text{ cm}^2`) are
dropped per item; redundant outer parentheses are stripped in one linear pass. Nothing here
imports sympy.

Try it::

    >>> from rlvr.verifiers._math_clean import clean
    >>> from rlvr.verifiers._math_normalize import structure
    >>> structure(clean(r"x \\ge 2"))[0], structure(clean("3, 2"))[0], structure(clean("5 cm"))
    ('tuple', 'list', ('expr', ('n', Fraction(5, 1))))
"""

from __future__ import annotations

import re
from fractions import Fraction

from rlvr.verifiers._math_clean import MAX_CLEAN_CHARS, _match, canon_text, small_cache
from rlvr.verifiers._math_parse import FUNCS, ParseError, TooLarge, parse_expr
from rlvr.verifiers._math_sets import set_tree

__all__ = ["MAX_PARSE_CHARS", "split_top", "structure"]

MAX_PARSE_CHARS = 1_000  # longer cleaned answers are not parsed
MAX_ITEMS = 64

Tree = tuple  # ("expr", ast) | ("text", s) | ("raw", s) | ("bad", why) | ("list"|"set"|"union", items)
# | ("tuple", items, left, right) | ("matrix", rows) | ("eq", lhs, rhs) | ("rel", s)


def split_top(s: str, seps: tuple[str, ...]) -> list[str]:
    """Split on any of `seps` outside (), [], {} (bracket kinds may mismatch: intervals)."""
    parts, depth, start, i, n = [], 0, 0, 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n and s[i + 1] in "{}":
            depth += 1 if s[i + 1] == "{" else -1
            i += 2
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0:
            for sep in seps:
                if s.startswith(sep, i) and (
                    not sep[-1].isalpha() or not s[i + len(sep) : i + len(sep) + 1].isalpha()
                ):
                    parts.append(s[start:i])
                    start = i + len(sep)
                    i = start - 1
                    break
        i += 1
    parts.append(s[start:])
    return parts


def _enclosed(s: str) -> bool:
    """True when s[0] is an opening bracket whose partner (any kind) is the last character."""
    depth = 0
    for j, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return j == len(s) - 1
    return False


_UNIT_TAIL = re.compile(r"(?P<sp>\s*)(?<![\\A-Za-z])(?P<tail>[A-Za-z][A-Za-z\s^{}\d/.\-]*)$")
# fmt: off
_UNITS = {
    "cm", "mm", "km", "m", "in", "inch", "inches", "ft", "feet", "foot", "yd", "yard", "yards", "mi",
    "mile", "miles", "meter", "meters", "metres", "kg", "g", "mg", "lb", "lbs", "oz", "s", "sec", "min",
    "mins", "h", "hr", "hrs", "mph", "kmh", "l", "ml", "cents", "dollars", "units", "sq", "degrees", "deg",
    "percent", "pounds", "hours", "minutes", "seconds", "days", "years",
}
# fmt: on
_SINGLE_UNITS = {"m", "g", "s", "h", "l", "L"}
_NOT_UNITS = FUNCS | {"pi", "or", "and", "infty", "sqrt", "frac", "i", "e", "x", "y", "z", "n", "k"}
_PM = re.compile(r"\\pm(?![a-zA-Z])|\\mp(?![a-zA-Z])|±")
_CHOICE = re.compile(r"^\(?\s*([A-Ha-h])\s*\)?$")
_CHOICE_PREFIX = re.compile(r"^\(?\s*([A-Ha-h])\s*\)\s*(?:[:.=]\s*)?(\S.*)$")
_TEXT_WORDS = {"yes", "no", "odd", "even", "none", "all", "true", "false", "both", "neither", "never"}
_PLAIN_RUN = re.compile(r"(?<![\\A-Za-z])[A-Za-z]+")


def _strip_units(s: str) -> str:
    s = re.sub(r"^(?:USD|Rs\.?|\\?\$)\s*", "", s)
    m = _UNIT_TAIL.search(s)
    if not m or m.start() == 0:
        return s
    head = s[: m.start()].rstrip()
    words = re.findall(r"[A-Za-z]+", m.group("tail"))
    if not re.search(r"\d", head) or not head or head[-1] in "+-*/^_=(,\\" or not words:
        return s
    if any(w in _NOT_UNITS for w in words if len(words) > 1 or w not in _SINGLE_UNITS):
        return s
    spaced = bool(m.group("sp"))
    known = words[0].lower() in _UNITS
    if known or (spaced and (any(len(w) >= 2 for w in words) or words[0] in _SINGLE_UNITS)):
        return head
    return s


def _is_text(s: str) -> bool:
    runs = _PLAIN_RUN.findall(re.sub(r"\\[A-Za-z]+", " ", s))
    return any(len(r) >= 4 or r.lower() in _TEXT_WORDS for r in runs)


def _strip_parens(s: str) -> str:
    """Remove redundant outer parentheses, e.g. ((((5)))) -> 5, in one linear pass."""
    k = 0
    while k < len(s) // 2 and s[k] == "(" and s[-1 - k] == ")":
        k += 1
    if not k:
        return s
    pairs: dict[int, int] = {}
    stack: list[int] = []
    for i, c in enumerate(s):
        if c in "([{":
            stack.append(i)
        elif c in ")]}" and stack:
            pairs[stack.pop()] = i
    j = 0
    while j < k and pairs.get(j) == len(s) - 1 - j:
        j += 1
    return s[j : len(s) - j].strip() if j else s


def _scalar(s: str, depth: int) -> Tree:
    s = _strip_parens(s.strip())
    if not s:
        return ("bad", "empty")
    choice = _CHOICE_PREFIX.match(s)
    if choice:
        return ("choice", choice.group(1).lower(), _struct(choice.group(2), depth + 1))
    pm = _PM.findall(s)
    if len(pm) == 1:  # a \pm b (anywhere, e.g. inside \frac) -> the two solutions a + b, a - b
        plus, minus = ("+", "-") if pm[0] != "\\mp" else ("-", "+")
        return ("list", (_scalar(_PM.sub(plus, s, 1), depth), _scalar(_PM.sub(minus, s, 1), depth)))
    s = _strip_units(s)
    if _CHOICE.match(s) and (s.startswith("(") or s.isupper()):
        return ("text", s.strip("() ").lower())
    if _is_text(s):
        return ("text", canon_text(s))
    if len(s) > MAX_PARSE_CHARS:
        return ("bad", "too_long")
    try:
        return ("expr", parse_expr(s))
    except TooLarge as e:
        return ("bad", f"too_large: {e}")
    except (ParseError, ValueError, ZeroDivisionError, RecursionError):
        return ("raw", canon_text(s) or s)


def _relation(s: str, depth: int) -> Tree | None:
    """Equations, `\\in`, and one-variable inequality chains (-> intervals); None if none."""
    for sep in ("\\in", "\\approx"):
        parts = split_top(s, (sep,))
        if len(parts) == 2 and parts[0].strip() and parts[1].strip():
            lhs = _struct(parts[0], depth + 1)
            keep_rhs = sep == "\\in" or _is_var(lhs)
            return _struct(parts[1], depth + 1) if keep_rhs else lhs
    parts = split_top(s, ("=",))
    if len(parts) >= 2 and all(p.strip() for p in parts):
        return ("eq", _struct(parts[0], depth + 1), _struct(parts[-1], depth + 1))
    if "≠" in s:
        ne = split_top(s, ("≠",))
        if len(ne) == 2 and _is_var(lhs := _struct(ne[0], depth + 1)) and lhs[0] == "expr":
            other = _struct(ne[1], depth + 1)
            if _is_const(other):  # x ≠ 2: the reals without 2
                return ("compl", ("set", (other,)))
            if other[0] == "list" and all(_is_const(o) for o in other[1]):  # x ≠ \\pm 3
                return ("compl", ("set", other[1]))
        return ("rel", canon_text(s) + s)
    pieces = re.split(r"(≤|≥|<|>)", s)
    if len(pieces) < 3:
        return None
    vals, ops = [p.strip() for p in pieces[0::2]], pieces[1::2]
    trees = [_struct(v, depth + 1) for v in vals]
    var_idx = [i for i, t in enumerate(trees) if _is_var(t)]
    if len(var_idx) != 1 or len(vals) > 3:
        return ("rel", s.replace(" ", ""))
    k = var_idx[0]
    inf, ninf = ("expr", ("c", "oo")), ("expr", ("neg", ("c", "oo")))
    lo, hi, lb, rb = ninf, inf, "(", ")"

    def bound(other: Tree, op: str, var_on_left: bool) -> None:
        nonlocal lo, hi, lb, rb
        closed = op in ("≤", "≥")
        is_upper = (op in ("<", "≤")) == var_on_left
        if is_upper:
            hi, rb = other, ("]" if closed else ")")
        else:
            lo, lb = other, ("[" if closed else "(")

    if k > 0:
        bound(trees[k - 1], ops[k - 1], False)
    if k < len(trees) - 1:
        bound(trees[k + 1], ops[k], True)
    return ("tuple", (lo, hi), lb, rb)


def _is_const(t: Tree) -> bool:
    return t[0] == "expr" and "'s'" not in repr(t[1])


def _symbolish(node: tuple) -> bool:
    return node[0] == "s" or (node[0] == "pow" and node[1][0] == "s" and node[2][0] in ("n", "neg"))


def _is_var(t: Tree) -> bool:
    """A lone variable (x, y_1, f(x)-ish products of symbols) or a tuple of them."""
    if t[0] == "expr":
        ast = t[1]
        if ast[0] == "s":
            return True
        # f(x), g(t), f^{-1}(x): at most two factors, each a symbol or a symbol to a numeric power
        return ast[0] == "mul" and len(ast[1]) <= 2 and all(_symbolish(f) for f in ast[1])
    if t[0] == "tuple":
        return all(_is_var(x) for x in t[1])
    return False


_MATRIX = re.compile(
    r"(?P<coef>[^&]*?)\s*(?:\\cdot\s*)?[(\[]?\s*\\begin\{(?P<env>[pbBvV]?matrix|smallmatrix|array)\}"
    r"(?:\{[^{}]*\})?(?P<body>.*)\\end\{(?P=env)\}\s*[)\]]?",
    re.DOTALL,
)


def _scaled(coef: Tree, cell: Tree) -> Tree:
    if cell[0] != "expr":
        return ("bad", "a scalar times a matrix with non-scalar entries")
    return ("expr", ("mul", (coef[1], cell[1])))


def _matrix(s: str, depth: int) -> Tree | None:
    """`pmatrix`/`bmatrix`/… (in brackets or not), optionally after a scalar: `\\frac12 \\begin{pmatrix}…`."""
    m = _MATRIX.fullmatch(s) if "\\begin{" in s else None
    if not m or "\\begin{" in m.group("coef") or "\\end{" in m.group("body"):
        return None
    rows = [r for r in split_top(m.group("body"), ("\\\\",)) if r.strip()]
    if len(rows) > MAX_ITEMS:
        return ("bad", "too_many_rows")
    cells = tuple(tuple(_struct(c, depth + 1) for c in split_top(r, ("&",))) for r in rows)
    coef_text = m.group("coef").strip()
    if coef_text in ("", "+"):
        return ("matrix", cells)
    coef = ("expr", ("neg", ("n", Fraction(1)))) if coef_text == "-" else _scalar(coef_text, depth + 1)
    if coef[0] != "expr":
        return None
    return ("matrix", tuple(tuple(_scaled(coef, c) for c in row) for row in cells))


def _struct(s: str, depth: int = 0) -> Tree:
    s = s.strip().rstrip(".").strip()
    while s.startswith("{") and _match(s, 0) == len(s) - 1:  # a TeX group around everything
        s = s[1:-1].strip()
    if depth > 12:
        return ("bad", "too_deep")
    mat = _matrix(s, depth)
    if mat is not None:
        return mat
    items = [p for p in split_top(s, (",", ";", " or ", " and ")) if p.strip()]
    if len(items) > MAX_ITEMS:
        return ("bad", "too_many_items")
    if len(items) > 1:
        return ("list", tuple(_struct(p, depth + 1) for p in items))
    union = split_top(s, ("\\cup", "∪"))
    if len(union) > MAX_ITEMS:
        return ("bad", "too_many_items")
    if len(union) > 1 and all(u.strip() for u in union):
        return ("union", tuple(_struct(u, depth + 1) for u in union))
    sets = set_tree(s, depth, _struct, split_top, _enclosed)
    if sets is not None:
        return sets
    if s.startswith("\\{") and s.endswith("\\}"):
        inner = [p for p in split_top(s[2:-2], (",", ";")) if p.strip()]
        return ("set", tuple(_struct(p, depth + 1) for p in inner))
    if len(s) > 1 and s[0] in "([" and s[-1] in ")]" and _enclosed(s):
        inner = split_top(s[1:-1], (",",))
        if len(inner) >= 2:
            return ("tuple", tuple(_struct(p, depth + 1) for p in inner), s[0], s[-1])
    rel = _relation(s, depth)
    if rel is not None:
        return rel
    return _scalar(s, depth)


@small_cache(maxsize=16_384)
def structure(s: str) -> Tree:
    """The structure tree of a cleaned answer string (see the module docstring)."""
    if len(s) > MAX_CLEAN_CHARS:
        return ("bad", "too_long")
    if s.startswith("\\text{") and s.endswith("}") and s.count("\\text{") == 1:
        return ("text", canon_text(s[6:-1]))
    return _struct(s)
