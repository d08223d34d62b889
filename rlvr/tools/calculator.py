"""The ``calculator`` tool: exact rational arithmetic over a walk of Python's AST, never ``eval``.

Numbers are `fractions.Fraction`s built from the literal's own text, so ``0.1 + 0.2`` is exactly
``0.3`` and ``123456789 * 987654321`` is exactly ``121932631112635269``. Allowed: integer and
decimal literals (``1_000``, ``2.5e3``), ``+ - * / // % **``, unary ``+ -``, parentheses, and the
functions ``abs``, ``min``, ``max``, ``round`` and ``gcd`` (a ``^`` is read as ``**``). Anything
else (names, attributes, calls of other functions, strings, comparisons) is an error that names the
construct. Results print as an integer, an exact decimal when the denominator has only the
factors 2 and 5 (``7/4`` -> ``1.75``), else as a fraction ``p/q``.

Bounds, so that no expression can take the host down: at most 500 characters, 200 operations,
exponents of at most 10,000 in size, and intermediate results of at most 20,000 bits. The walk
holds no state and runs in the calling thread (in microseconds), so it needs no deadline.

What it does not do: irrational functions (``sqrt``, ``sin``: they cannot be exact), variables,
or units.

Try it::

    >>> calculate("0.1 + 0.2"), calculate("2**100"), calculate("1/3 + 1/12"), calculate("7/4")
    ('0.3', '1267650600228229401496703205376', '5/12', '1.75')
"""

from __future__ import annotations

import ast
import math
import operator
import time
from fractions import Fraction
from typing import Any

from rlvr.tools.base import ToolResult

__all__ = ["Calculator", "CalculatorError", "calculate", "evaluate"]

MAX_CHARS = 500
MAX_NODES = 200
MAX_EXPONENT = 10_000
MAX_BITS = 20_000


class CalculatorError(ValueError):
    """An expression the calculator will not evaluate; the message says why."""


_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: None,
}
_FUNCS = {"abs": 1, "min": None, "max": None, "round": None, "gcd": None}


def evaluate(expression: str) -> Fraction:
    """The exact value of `expression` (see the module docstring for what is allowed).

    >>> evaluate("(2 + 3) * 4 - 10 / 4")
    Fraction(35, 2)
    """
    if not isinstance(expression, str):
        raise CalculatorError(f"expression must be a string, got {type(expression).__name__}")
    text = expression.strip().replace("^", "**").replace("\u00d7", "*").replace("\u00f7", "/")
    if not text:
        raise CalculatorError("empty expression")
    if len(text) > MAX_CHARS:
        raise CalculatorError(f"expression longer than {MAX_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise CalculatorError(f"not an arithmetic expression: {getattr(e, 'msg', None) or e}") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise CalculatorError(f"expression has {nodes} parts; at most {MAX_NODES}")
    return _Walk(text).eval(tree.body)


class _Walk:
    def __init__(self, text: str):
        self.text = text

    def eval(self, node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant):
            return self.number(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
            x = self.eval(node.operand)
            return -x if isinstance(node.op, ast.USub) else x
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            a, b = self.eval(node.left), self.eval(node.right)
            if isinstance(node.op, ast.Pow):
                return _check(_power(a, b))
            if isinstance(node.op, (ast.Div, ast.FloorDiv, ast.Mod)) and b == 0:
                raise CalculatorError("division by zero")
            return _check(Fraction(_BINOPS[type(node.op)](a, b)))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS:
            if node.keywords:
                raise CalculatorError(f"{node.func.id}() takes no keyword arguments")
            return self.call(node.func.id, [self.eval(a) for a in node.args])
        raise CalculatorError(f"not allowed in the calculator: {_describe(node, self.text)}")

    def number(self, node: ast.Constant) -> Fraction:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise CalculatorError(f"not a number: {_describe(node, self.text)}")
        if isinstance(v, int):
            return _check(Fraction(v))
        src = (ast.get_source_segment(self.text, node) or repr(v)).replace("_", "")
        try:
            return _check(Fraction(src))  # the literal as written, not its binary float
        except (ValueError, ZeroDivisionError):
            raise CalculatorError(f"not a finite number: {src}") from None

    @staticmethod
    def call(name: str, args: list[Fraction]) -> Fraction:
        if name == "abs" and len(args) == 1:
            return abs(args[0])
        if name in ("min", "max") and args:
            return (min if name == "min" else max)(args)
        if name == "round" and len(args) in (1, 2):
            if len(args) == 2 and (args[1].denominator != 1 or abs(args[1]) > 1000):
                raise CalculatorError("round(x, n): n must be an integer of at most 1000")
            return Fraction(round(args[0], int(args[1])) if len(args) == 2 else round(args[0]))
        if name == "gcd" and args and all(a.denominator == 1 for a in args):
            return Fraction(math.gcd(*(int(a) for a in args)))
        raise CalculatorError(f"bad arguments for {name}(): {', '.join(_show(a) for a in args) or 'none'}")


def _power(a: Fraction, b: Fraction) -> Fraction:
    if b.denominator != 1:
        raise CalculatorError(f"exponent {_show(b)} is not an integer (the result would not be exact)")
    e = int(b)
    if abs(e) > MAX_EXPONENT:
        raise CalculatorError(f"exponent {e} is larger than {MAX_EXPONENT}")
    if a == 0 and e < 0:
        raise CalculatorError("division by zero (0 to a negative power)")
    bits = max(a.numerator.bit_length(), a.denominator.bit_length()) * abs(e)
    if bits > MAX_BITS:
        raise CalculatorError(f"result would have about {bits} bits; at most {MAX_BITS}")
    return a**e


def _check(x: Fraction) -> Fraction:
    if max(x.numerator.bit_length(), x.denominator.bit_length()) > MAX_BITS:
        raise CalculatorError(f"intermediate result has more than {MAX_BITS} bits")
    return x


def _describe(node: ast.AST, text: str) -> str:
    seg = ast.get_source_segment(text, node) or type(node).__name__
    return f"{seg[:40]!r} ({type(node).__name__})"


def _show(x: Fraction) -> str:
    """An integer, an exact decimal (denominator 2^a 5^b), or p/q.

    >>> _show(Fraction(7, 4)), _show(Fraction(-1, 3)), _show(Fraction(10)), _show(Fraction(1, 80))
    ('1.75', '-1/3', '10', '0.0125')
    """
    if x.denominator == 1:
        return str(x.numerator)
    d, twos, fives = x.denominator, 0, 0
    while d % 2 == 0:
        d, twos = d // 2, twos + 1
    while d % 5 == 0:
        d, fives = d // 5, fives + 1
    if d != 1:
        return f"{x.numerator}/{x.denominator}"
    places = max(twos, fives)
    digits = abs(x.numerator) * 10**places // x.denominator
    sign = "-" if x < 0 else ""
    whole, frac = divmod(digits, 10**places)
    return f"{sign}{whole}.{frac:0{places}d}".rstrip("0")


def calculate(expression: str) -> str:
    """`evaluate` as text (see `_show`)."""
    return _show(evaluate(expression))


class Calculator:
    """The ``calculator`` tool: ``{"expression": "..."}`` -> the exact value as text."""

    name = "calculator"
    description = "Exact arithmetic: + - * / // % ** and parentheses, abs, min, max, round, gcd."
    parameters: dict[str, Any] = {
        "type": "object",
        "properties": {"expression": {"type": "string", "description": "e.g. (1234 * 5678) / 2"}},
        "required": ["expression"],
    }

    def __call__(self, arguments: dict[str, Any], *, timeout_s: float = 10.0) -> ToolResult:
        t0 = time.monotonic()
        extra = sorted(set(arguments) - {"expression"})
        if "expression" not in arguments or extra:
            why = f"unexpected argument {extra[0]!r}" if extra else "missing argument 'expression'"
            return ToolResult(f"error: calculator: {why}", "error", wall_s=time.monotonic() - t0,
                              info={"reason": "bad_arguments"})
        try:
            out = calculate(arguments["expression"])
        except CalculatorError as e:
            return ToolResult(f"error: {e}", "error", wall_s=time.monotonic() - t0, info={"reason": "bad_expression"})
        return ToolResult(out, wall_s=time.monotonic() - t0)

    def __repr__(self) -> str:
        return "Calculator()"
