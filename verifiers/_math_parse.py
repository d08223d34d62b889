"""A small, guarded LaTeX-math parser for answers: text -> picklable tuple AST.

What it does: tokenizes one cleaned answer expression (see `_math_clean`) and parses it by
recursive descent into a tuple AST. Every step is bounded: token count, nesting depth and number
length (`TooLarge`). Exact evaluation of the AST lives in `_math_exact`. It never imports sympy.

What it does not do: structure (sets, tuples, intervals, equations: `_math_normalize`), exact
values (`_math_exact`), symbolic algebra (`_math_sympy`), or extraction (`_math_extract`).

Try it::

    >>> from rlvr.verifiers._math_parse import parse_expr
    >>> parse_expr(r"2\\sqrt{3}")
    ('mul', (('n', Fraction(2, 1)), ('root', ('n', Fraction(3, 1)), ('n', Fraction(2, 1)))))

AST nodes: ("n", Fraction) number, ("s", name) symbol, ("c", "pi"|"e"|"i"|"oo") constant,
("add", items), ("mul", items), ("neg", x), ("div", a, b), ("pow", a, b), ("fact", x),
("root", x, n), ("abs", x), ("binom", n, k), ("f", name, arg, base_or_None). A `\\log` without a
base is ("f", "logx", arg, None): base 10 or e, decided by the comparison; `\\ln` is "log" with base
None (natural), `\\lg` "log" with base 10; `\\sin^{-1}` is "arcsin". A number in another base
(`0x3EB2`, `3EB2_{16}`) is a symbol with a canonical name ("0x3eb2"), and an unspaced letter-digit
run (`3eb2`, `x2`) a symbol named by its text: never a product (see `_glue_words`).
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["FUNCS", "MAX_DEPTH", "MAX_TOKENS", "ParseError", "TooLarge", "parse_expr", "tokenize"]

MAX_TOKENS = 400  # longer expressions are not parsed (cheap guard)
MAX_DEPTH = 60  # nesting depth of groups / unary operators
MAX_DIGITS = 4000  # a number literal longer than this is not converted to int

Node = tuple


class ParseError(ValueError):
    """The text is not an expression this parser understands."""


class TooLarge(ParseError):
    """The expression is well formed but too big or too deep to handle within the time budget."""


# fmt: off
FUNCS = {
    "sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "log", "ln", "exp", "lg",
}
# fmt: on
GREEK = set(
    "alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta kappa lambda mu nu xi rho sigma "
    "tau phi varphi chi psi omega Gamma Delta Theta Lambda Xi Sigma Phi Psi Omega".split()
)
_INVERTIBLE = {"sin", "cos", "tan", "sec", "csc", "cot"}
CONSTS = {"pi": "pi", "infty": "oo", "infinity": "oo", "e": "e"}
MUL_CMDS = {"cdot", "times", "ast"}
DIV_CMDS = {"div"}

_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+(?![A-Za-z]))?|\.\d+)"
    r"|(?P<cmd>\\[A-Za-z]+)"
    r"|(?P<sym>[A-Za-z])"
    r"|(?P<op>\\[{}|]|[-+*/^_!()\[\]{}|,'])"
    r")"
)


# A number in another base: 0x3EB2, 0b1011, 0o17 (any case), or 3EB2_{16}, 1011_2 (bases 2-36).
_BASED = re.compile(
    r"(?<![0-9A-Za-z.\\])(?:0(?P<pre>[xXbBoO])(?P<pdig>[0-9A-Za-z]+)"
    r"|(?P<sdig>\d[0-9A-Za-z]*)_(?:\{\s*\(?\s*(?P<sb1>\d+)\s*\)?\s*\}|(?P<sb2>\d+)))(?![0-9A-Za-z.])"
)
_PREFIX_BASE = {"x": 16, "b": 2, "o": 8}
_PREFIX_NAME = {16: "0x", 2: "0b", 8: "0o"}


def _based(m: re.Match[str]) -> tuple[str, str]:
    """A based literal's token: ("num", decimal) in base 10, ("word", canonical name) otherwise.

    The name is canonical (0x3eb2 for 0x3EB2 and 3EB2_{16}; 2101_3 for other bases), so equal
    values in the same base compare equal and anything else compares as a different name. Digits
    invalid for the base give the literal's exact text as the name (never a product).
    """
    pre = m.group("pre")
    digits = m.group("pdig") if pre else m.group("sdig")
    base = _PREFIX_BASE[pre.lower()] if pre else int(m.group("sb1") or m.group("sb2"))
    try:
        value = int(digits, base) if 2 <= base <= 36 and len(digits) <= MAX_DIGITS else None
    except ValueError:
        value = None
    if value is None:
        return ("word", re.sub(r"[\s{}()]", "", m.group(0)))
    if base == 10:
        return ("num", str(value))
    text = f"{value:x}" if base == 16 else f"{value:b}" if base == 2 else f"{value:o}" if base == 8 else ""
    if not text:
        text = digits.lstrip("0").lower() or "0"
        return ("word", f"{text}_{base}")
    return ("word", _PREFIX_NAME[base] + text)


_ROMAN = re.compile(r"M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})")


def _glue_words(s: str, toks: list[tuple[str, str, int, int]]) -> list[tuple[str, str]]:
    """Merge an unspaced run of numbers and letters into one opaque name where reading it as a
    product would be a guess: a letter directly followed by a digit (`3eb2`, `x2`, `2x3`,
    `0.5x2`), a leading zero directly followed by a letter (`0a`, `0xZZ`), or an upper-case Roman
    numeral (`IV` is not `VI`). `2x`, `3ab`, `2e5` and `\\pi2` keep their usual meaning."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(toks):
        j = i + 1
        if toks[i][0] in ("num", "sym"):
            while j < len(toks) and toks[j][0] in ("num", "sym") and toks[j][2] == toks[j - 1][3]:
                j += 1
        run = toks[i:j]
        kinds = [t[0] for t in run]
        letter_digit = any(a == "sym" and b == "num" for a, b in zip(kinds, kinds[1:]))
        zero_letter = len(run) > 1 and kinds[:2] == ["num", "sym"] and re.fullmatch(r"0+\.?", run[0][1])
        roman = len(run) > 1 and _ROMAN.fullmatch("".join(t[1] for t in run)) is not None
        if letter_digit or zero_letter or roman:
            out.append(("word", s[run[0][2] : run[-1][3]]))
        else:
            out.extend((t[0], t[1]) for t in run)
        i = j
    return out


def tokenize(s: str) -> list[tuple[str, str]]:
    """Split `s` into (kind, text) tokens; kind is num, cmd, sym, op or word (an opaque name: a
    based literal such as 0x3eb2, or a glued run such as 3eb2, see `_glue_words`).
    Raises ParseError."""
    raw: list[tuple[str, str, int, int]] = []
    pos, n = 0, len(s)
    while pos < n:
        if s[pos].isspace():
            pos += 1
            continue
        b = _BASED.match(s, pos) if s[pos].isdigit() else None
        if b:
            kind, text = _based(b)
            raw.append((kind, text, -1, -1))  # never glued to a neighbour
            pos = b.end()
        else:
            m = _TOKEN.match(s, pos)
            if not m or m.end() == pos:
                raise ParseError(f"unexpected character {s[pos]!r} at {pos}")
            kind = m.lastgroup or "op"
            raw.append((kind, m.group(kind).strip(), m.start(kind), m.end()))
            pos = m.end()
        if len(raw) > MAX_TOKENS:
            raise TooLarge(f"more than {MAX_TOKENS} tokens")
    return _glue_words(s, raw)


def _number(text: str) -> Fraction:
    mant, _, exp = text.lower().partition("e")
    if len(mant) > MAX_DIGITS:
        raise TooLarge(f"number with {len(mant)} digits")
    value = Fraction(mant if mant != "." else "0")
    if exp:
        e = int(exp)
        if abs(e) > 1000:
            raise TooLarge(f"exponent {e} in scientific notation")
        value *= Fraction(10) ** e
    return value


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]):
        self.toks, self.i, self.depth, self.abs_depth = tokens, 0, 0, 0

    # -- helpers ------------------------------------------------------------------------------
    def peek(self, k: int = 0) -> tuple[str, str] | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise ParseError("unexpected end of expression")
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok[1] != text:
            raise ParseError(f"expected {text!r}, got {tok[1]!r}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise TooLarge(f"nesting deeper than {MAX_DEPTH}")

    def group(self) -> Node:
        """A LaTeX argument: {expr}, or a single token (\\frac12 is normalized before)."""
        tok = self.peek()
        if tok and tok[1] == "{":
            self.take()
            node = self.expr()
            self.expect("}")
            return node
        return self.postfix()

    # -- grammar ------------------------------------------------------------------------------
    def expr(self) -> Node:
        self.enter()
        items = [self.term()]
        while (tok := self.peek()) and tok[1] in "+-" and tok[0] == "op":
            self.take()
            t = self.term()
            items.append(("neg", t) if tok[1] == "-" else t)
        self.depth -= 1
        return items[0] if len(items) == 1 else ("add", tuple(items))

    def term(self) -> Node:
        factors = [self.unary()]
        while (tok := self.peek()) is not None:
            kind, text = tok
            if (kind == "op" and text == "*") or (kind == "cmd" and text[1:] in MUL_CMDS):
                self.take()
                factors.append(self.unary())
            elif (kind == "op" and text == "/") or (kind == "cmd" and text[1:] in DIV_CMDS):
                self.take()
                den = self.unary()
                num = factors[0] if len(factors) == 1 else ("mul", tuple(factors))
                factors = [("div", num, den)]
            elif self.starts_atom(tok):
                factors.append(self.power())
            else:
                break
        return factors[0] if len(factors) == 1 else ("mul", tuple(factors))

    def starts_atom(self, tok: tuple[str, str]) -> bool:
        kind, text = tok
        if kind in ("num", "sym", "word"):
            return True
        if kind == "cmd":
            name = text[1:]
            return name in FUNCS or name in CONSTS or name in GREEK or name in {"frac", "sqrt", "binom"}
        return text in ("(", "{", "[") or (text == "|" and self.abs_depth == 0)

    def unary(self) -> Node:
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in "+-":
            self.take()
            self.enter()
            inner = self.unary()
            self.depth -= 1
            return ("neg", inner) if tok[1] == "-" else inner
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        tok = self.peek()
        if tok and tok[1] == "^":
            self.take()
            self.enter()
            nxt = self.peek()
            if nxt and nxt[1] in "+-" and nxt[0] == "op":
                exp = self.unary()
            else:
                exp = self.group()
            self.depth -= 1
            return ("pow", base, exp)
        return base

    def postfix(self) -> Node:
        node = self.atom()
        while (tok := self.peek()) and tok[1] == "!":
            self.take()
            node = ("fact", node)
        return node

    def atom(self) -> Node:
        self.enter()
        kind, text = self.take()
        if kind == "num":
            node: Node = ("n", _number(text))
        elif kind == "sym":
            node = self.symbol(text)
        elif kind == "word":
            node = ("s", text)
        elif kind == "cmd":
            node = self.command(text[1:])
        elif text in ("(", "[", "{"):
            node = self.expr()
            self.expect({"(": ")", "[": "]", "{": "}"}[text])
        elif text == "|":
            self.abs_depth += 1
            node = ("abs", self.expr())
            self.abs_depth -= 1
            self.expect("|")
        else:
            raise ParseError(f"unexpected {text!r}")
        self.depth -= 1
        return node

    def symbol(self, name: str) -> Node:
        if name == "i":
            return ("c", "i")
        if name == "e":
            return ("c", "e")
        tok = self.peek()
        if tok and tok[1] == "_":  # x_1, a_{n}
            self.take()
            sub = self.take()
            if sub[1] == "{":
                parts = []
                while (t := self.take())[1] != "}":
                    parts.append(t[1])
                    if len(parts) > 20:
                        raise ParseError("subscript too long")
                name = f"{name}_{''.join(parts)}"
            else:
                name = f"{name}_{sub[1]}"
        return ("s", name)

    def command(self, name: str) -> Node:
        if name in CONSTS:
            return ("c", CONSTS[name])
        if name in GREEK:  # \theta, \alpha: plain symbols
            return self.symbol(name)
        if name == "frac":
            num = self.group()
            return ("div", num, self.group())
        if name == "binom":
            n = self.group()
            return ("binom", n, self.group())
        if name == "sqrt":
            index: Node = ("n", Fraction(2))
            tok = self.peek()
            if tok and tok[1] == "[":
                self.take()
                index = self.expr()
                self.expect("]")
            return ("root", self.group(), index)
        if name in FUNCS:
            return self.function(name)
        raise ParseError(f"unknown command \\{name}")

    def function(self, name: str) -> Node:
        base: Node | None = None
        power: Node | None = None
        for _ in range(2):
            tok = self.peek()
            if tok and tok[1] == "_" and name in ("log", "lg"):
                self.take()
                base = self.group()
            elif tok and tok[1] == "^":
                self.take()
                power = self.group()
        tok = self.peek()
        if tok and tok[1] in ("(", "{"):
            self.take()
            arg = self.expr()
            self.expect(")" if tok[1] == "(" else "}")
        else:
            arg = self.power()
        if name == "lg":
            name, base = "log", ("n", Fraction(10))
        if name == "log" and base is None:
            name = "logx"  # \log x: base 10 or e, ambiguous (the comparison tries both readings)
        name = "log" if name == "ln" else name
        if power == ("neg", ("n", Fraction(1))) and name in _INVERTIBLE:  # \sin^{-1} x is arcsin x
            name, power = "arc" + name, None
        node: Node = ("f", name, arg, base)
        return ("pow", node, power) if power is not None else node


def parse_expr(text: str) -> Node:
    """Parse one scalar expression (no top-level commas or relations) into a tuple AST."""
    tokens = tokenize(text)
    if not tokens:
        raise ParseError("empty expression")
    p = _Parser(tokens)
    node = p.expr()
    if p.i != len(tokens):
        raise ParseError(f"unexpected {tokens[p.i][1]!r} after a complete expression")
    return node
