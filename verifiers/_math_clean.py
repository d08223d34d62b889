"""Answer strings -> one canonical string: LaTeX noise and presentation removed (`clean`).

`clean` removes `$…$`, `\\(`, `\\left`/`\\right`, `\\!`, `\\,`, `\\displaystyle`, `\\dfrac`/`\\tfrac`,
`\\text`-style wrappers, degree signs, percent signs (percent is a unit: 25\\% == 25), currency
(`\\$`), thousands separators (`1,000`, MATH's `1,\\!000`, `10\\,000`, `10{,}000`, `10 000`: a comma
or space followed by exactly three digits, groups of three after 1-3 leading digits; `(1,500)` alone
in brackets stays a pair), degrees inside trig functions (`\\sin 30^\\circ` -> `\\sin (30\\pi/180)`),
and rewrites repeating decimals (`0.\\overline{3}`, `0.333\\ldots` -> 1/3), mixed numbers
(`2\\frac{1}{2}`, `2 1/2`), shorthand (`\\frac12`, `\\sqrt2`) and unicode (`−`, `π`, `≤`).
Every pattern is anchored or bounded so that cleaning stays linear-ish; answers longer than
`MAX_CLEAN_CHARS` only get a cheap whitespace/`$`/separator strip. `canon_text` is the form used to
compare word answers.

What it does not do: units after a number, lists, intervals, equations (`_math_normalize`).

Try it::

    >>> from rlvr.verifiers._math_clean import clean
    >>> clean(r"$\\$10{,}000.00$"), clean(r"0.\\overline{3}"), clean(r"\\left( 2\\frac12, 30^\\circ \\right)")
    ('10000.00', '\\\\frac{1}{3}', '( (2+\\\\frac{1}{2}), 30 )')
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache, wraps
from typing import Any

__all__ = ["MAX_CLEAN_CHARS", "canon_text", "clean", "small_cache"]

MAX_CLEAN_CHARS = 5_000  # longer answers only get a cheap, linear clean-up

_SUBS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), r)
    for p, r in [
        (r"(?<!\\)\\(?:\(|\)|\[|\])", " "),
        (r"\\\$|\$", " "),
        (r"\\[dtc]frac(?![a-zA-Z])", r"\\frac"),
        (r"\\[dt]binom(?![a-zA-Z])", r"\\binom"),
        (r"\\(?:left|right|[bB]igg?[lr]?)(?![a-zA-Z])\.?", ""),
        (r"\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits|hline|mathstrut)(?![a-zA-Z])", " "),
        (r"(?<=\d),\s*\\!\s*(?=\d)", ","),  # MATH's `1,\\!000`: the comma decides (see _THOUSANDS)
        (r"(?<=\d)(?:\\[,!;: ]|\{,\}|~)(?=\d)", ""),
        (r"\{,\}", ","),
        (r"(?<!\\)\\[,!;: >]|\\q?quad(?![a-zA-Z])|~", " "),
        (r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°|\\degree(?![a-zA-Z])|\^\s*\{\s*o\s*\}", " "),
        (r"\\%|%|\\percent(?![a-zA-Z])", " "),
        (r"\\mathbb\s*\{\s*R\s*\}|\bAll real numbers\b|\ball real numbers\b", r"(-\\infty,\\infty)"),
        (r"\\langle(?![a-zA-Z])|⟨", "("),
        (r"\\rangle(?![a-zA-Z])|⟩", ")"),
        (r"\\(?:emptyset|varnothing)(?![a-zA-Z])|∅", r"\\{\\}"),
        (r"\\(?:lbrace|\{)", r"\\{ "),
        (r"\\(?:rbrace|\})", r" \\}"),
        (r"\\[lr]?vert(?![a-zA-Z])|\\mid(?![a-zA-Z])|\\[lr]Vert(?![a-zA-Z])", "|"),
        (r"\\(?:leqslant|leq|le)(?![a-zA-Z])|<=|≤|⩽", "≤"),
        (r"\\(?:geqslant|geq|ge)(?![a-zA-Z])|>=|≥|⩾", "≥"),
        (r"\\(?:neq|ne)(?![a-zA-Z])|!=|≠", "≠"),
        (r"\\lt(?![a-zA-Z])", "<"),
        (r"\\gt(?![a-zA-Z])", ">"),
        (r"\\infty?(?![a-zA-Z])|∞|\binfinity\b", r"\\infty "),
        (r"π", r"\\pi "),
        (r"×|\\times(?![a-zA-Z])", r"\\cdot "),
        (r"÷", r"\\div "),
        (r"[−–]", "-"),
        (r"√", r"\\sqrt"),
        (r"\\(?:dots|ldots|cdots)(?![a-zA-Z])", "..."),
        (
            (
                r"\\(?:emph|textbf|textit|mathbf|mathit|mathrm|mathsf|mathtt|textrm|textnormal|text|mbox|"
                r"operatorname|hbox|textup|textsf)\s*\{"
            ),
            r"\\text{",
        ),
        (r"\\(?:color\{[^{}]*\}|textcolor\{[^{}]*\})", ""),
        (r"\\(?:frac|binom)\s*(\d)\s*(\d)", r"\\frac{\1}{\2}"),
        (r"\\frac\s*([a-zA-Z\d])\s*\{", r"\\frac{\1}{"),
        (r"\\frac\s*(\{[^{}]*\})\s*([a-zA-Z\d])", r"\\frac\1{\2}"),
        (r"\\sqrt\s*([a-zA-Z\d])", r"\\sqrt{\1}"),
    ]
]
_THOUSANDS = re.compile(
    r"(?<![\d.,])[1-9]\d{0,2}(?:,\d{3})+(?!\d|,\d)|(?<![\d. ])\d{1,3}(?: \d{3})+(?![\d ])"
)
_EXCEPT = re.compile(
    r"(\(-\\infty\s*,\s*\\infty\s*\))\s*,?\s*(?:except|but)\s+(?:for\s+)?(?:[a-z]\s*=\s*)?([^=<>≠]{1,200})$"
)
_DEGREE_MARK = r"(?:\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|°|\\degree(?![a-zA-Z])|\^\s*\{\s*o\s*\})"
_TRIG = re.compile(r"(?<![A-Za-z])(?:sin|cos|tan|sec|csc|cot)(?![a-z])")
_TRIG_DEGREES = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?|(?<![\\A-Za-z])[A-Za-z])\s*" + _DEGREE_MARK)
_REPEAT = re.compile(r"(?<!\d)(-?)(\d{0,100})\.(\d{0,100})\\(?:overline|bar|dot)\s*\{?\s*(\d{1,100})\s*\}?")
_SCALES = {"thousand": 3, "million": 6, "billion": 9, "trillion": 12}
_SCALE = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(thousand|million|billion|trillion)\b", re.IGNORECASE)
_ELLIPSIS = re.compile(r"(?<!\d)(-?)(\d{0,20})\.(\d{0,20}?)(\d{1,6}?)\4{1,40}\s*(?:\.\.\.|…)")
_MIXED_TEX = re.compile(r"(?<![\d.}^_])(\d+)\s*\\frac\{(\d+)\}\{(\d+)\}")
_MIXED_PLAIN = re.compile(r"^(-?)(\d+)\s+(\d+)\s*/\s*(\d+)$")
_WRAPPERS = re.compile(r"\\(?:boxed|fbox|underbrace|overbrace|underline|overline|hat|vec|tag)\s*\{")
_TEXT_CMD = re.compile(r"\\text\{")
_PLAIN_FUNCS = re.compile(r"(?<![\\A-Za-z])(sqrt|pi|sin|cos|tan|log|ln|exp|infty)(?![A-Za-z])")


_BRACES = re.compile(r"\\.|[{}]", re.DOTALL)


def _match(s: str, i: int) -> int:
    """Index of the '}' closing s[i] == '{', or -1 (scans brace tokens only)."""
    depth = 0
    for m in _BRACES.finditer(s, i):
        c = m.group(0)
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return m.start()
    return -1


def _unwrap(s: str, pattern: re.Pattern[str], keep: str) -> str:
    """Replace `\\cmd{X}` by X (keep == "x") or by ' X ' (keep == "space"); drops a `_{…}` label."""
    for _ in range(50):
        m = pattern.search(s)
        if not m:
            return s
        end = _match(s, m.end() - 1)
        if end < 0:
            return s[: m.start()] + s[m.end() :]
        inner = s[m.end() : end]
        rest = s[end + 1 :]
        if m.group(0).startswith(("\\underbrace", "\\overbrace")):
            rest = re.sub(r"^\s*[_^]\s*(?:\{[^{}]*\}|\S)", "", rest)
        if m.group(0).startswith("\\overline") and re.search(r"\d\.\d*$|\.$", s[: m.start()]):
            return s  # a repeating decimal; handled by _REPEAT
        s = s[: m.start()] + (f" {inner} " if keep == "space" else inner) + rest
    return s


def _repeat_sub(m: re.Match[str]) -> str:
    sign, whole, fixed, rep = m.groups()
    value = Fraction(int(whole or "0"))
    if fixed:
        value += Fraction(int(fixed), 10 ** len(fixed))
    value += Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** len(fixed))
    return f"{sign}\\frac{{{value.numerator}}}{{{value.denominator}}}"


def _except_sub(m: re.Match[str]) -> str:
    """`(-\\infty,\\infty) except 2 and 3` -> `(-\\infty,\\infty) \\setminus \\{2, 3\\}`."""
    points = re.split(r"\s*(?:,|\band\b)\s*", m.group(2).strip().rstrip("."))
    return f"{m.group(1)} \\setminus \\{{ {', '.join(p for p in points if p)} \\}}"


def _thousands_sub(m: re.Match[str]) -> str:
    """Drop the separators of one grouped number, except `(1,500)` / `[0,100]`: a pair, not a number."""
    s, text = m.string, m.group(0)
    before, after = s[: m.start()].rstrip()[-1:], s[m.end() :].lstrip()[:1]
    if text.count(",") == 1 and before in ("(", "[") and after in (")", "]"):
        return text
    return text.replace(",", "").replace(" ", "")


def small_cache(maxsize: int, max_chars: int = 2_000) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`lru_cache` for calls whose string arguments total at most `max_chars` (bounded memory)."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        cached = lru_cache(maxsize=maxsize)(fn)

        @wraps(fn)
        def wrapper(*args: Any) -> Any:
            if sum(len(a) for a in args if isinstance(a, str)) > max_chars:
                return fn(*args)
            return cached(*args)

        wrapper.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return wrapper

    return deco


@small_cache(maxsize=16_384)
def clean(s: str) -> str:
    """Canonical string form of an answer (see the module docstring). Cheap and linear-ish."""
    s = str(s).strip()
    if len(s) > MAX_CLEAN_CHARS:  # only cheap, linear clean-up for huge answers
        return re.sub(r"[\s$]|\\[,!;: ]|\{,\}", "", s).rstrip(".")
    s = _unwrap(s, _WRAPPERS, "x")
    if _TRIG.search(s):  # an angle in degrees inside sin/cos/...: convert it (elsewhere 30° == 30)
        s = _TRIG_DEGREES.sub(r"(\1\\pi/180)", s)
    for pat, rep in _SUBS:
        s = pat.sub(rep, s)
    s = _REPEAT.sub(_repeat_sub, s)
    s = _ELLIPSIS.sub(_repeat_sub, s)
    s = _PLAIN_FUNCS.sub(r"\\\1 ", s)
    s = _unwrap(s, _TEXT_CMD, "space")
    s = _EXCEPT.sub(_except_sub, s)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"^(\*\*|__)(.+)\1$", r"\2", s).strip()  # markdown bold around the whole answer
    s = re.sub(r"^(?:(?:the )?(?:final )?answer(?: is)?\s*[:=]?\s*)", "", s, flags=re.IGNORECASE)
    s = s.rstrip(" .")
    s = re.sub(r"^\\?\$\s*|(?<=\d)\s*\\?\$$", "", s)
    s = _SCALE.sub(lambda m: f"({m.group(1)}\\cdot 10^{{{_SCALES[m.group(2).lower()]}}})", s)
    s = _THOUSANDS.sub(_thousands_sub, s)
    s = _MIXED_TEX.sub(r"(\1+\\frac{\2}{\3})", s)
    s = _MIXED_PLAIN.sub(r"\1(\2+\3/\4)", s)
    return s


def canon_text(s: str) -> str:
    """Text form for word / choice answers: lower case, letters and digits only, except that digit
    groups stay apart (`1:23` -> "1|23", never "123" like `12:3` or `1011_2` and `101_{12}`)."""
    s = s.lower().replace("\\text", " ")
    s = re.sub(r"^\s*(?:the|an|a)\s+", "", s)
    s = re.sub(r"(?<=\d)[^a-z0-9]+(?=\d)", "|", s)
    return re.sub(r"[^a-z0-9|]+", "", s)
