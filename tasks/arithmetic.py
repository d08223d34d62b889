"""`arithmetic`: a seeded generator of arithmetic problems with difficulty levels.

Levels:
  1. two-digit addition ("What is 23 + 48?"), the embedded demo's task;
  2. three-digit addition and subtraction;
  3. two or three operands mixing +, − and × on numbers up to 99;
  4. three or four operands with parentheses, numbers up to 999.

Train and test never share a problem: a problem is held out when a stable hash of its text falls
in the held-out bucket (`is_heldout`), and the demo's pretraining corpus excludes the same
problems, so held-out accuracy measures unseen sums.

Try it::

    >>> from rlvr.tasks.arithmetic import generate
    >>> [(s.prompt, s.answer) for s in generate(level=1, n=2, seed=0, split="train")]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field

from rlvr.tasks.base import Task, register_task
from rlvr.verifiers.base import Sample

HELDOUT_BUCKETS = 10  # one problem in ten is held out


def problem_key(expression: str) -> str:
    """The canonical text of a problem: spaces removed, and the operands of a lone + or × sorted,
    so "48 + 23" and "23 + 48" are one problem (the demo corpus uses the same key)."""
    text = expression.replace(" ", "").replace("×", "*")
    m = re.fullmatch(r"(\d+)([+*])(\d+)", text)
    if m:
        lo, hi = sorted((int(m.group(1)), int(m.group(3))))
        return f"{lo}{m.group(2)}{hi}"
    return text


def is_heldout(expression: str) -> bool:
    """True when `expression` (e.g. "23 + 48") belongs to the held-out split. Stable across runs
    and machines (md5 of `problem_key`)."""
    return int(hashlib.md5(problem_key(expression).encode()).hexdigest(), 16) % HELDOUT_BUCKETS == 0


def _expression(rng: random.Random, level: int) -> str:
    if level == 1:
        return f"{rng.randint(10, 99)} + {rng.randint(10, 99)}"
    if level == 2:
        return f"{rng.randint(100, 999)} {rng.choice('+-')} {rng.randint(100, 999)}"
    if level == 3:
        terms = [str(rng.randint(2, 99)) for _ in range(rng.randint(2, 3))]
        ops = [rng.choice(["+", "-", "*"]) for _ in terms[1:]]
        return " ".join(t for pair in zip(terms, ops + [""]) for t in pair if t)
    if level == 4:
        a, b, c = (rng.randint(2, 999) for _ in range(3))
        op1, op2 = rng.choice("+-*"), rng.choice("+-")
        d = rng.randint(2, 99)
        return f"({a} {op1} {b}) {op2} {c} * {d}" if rng.random() < 0.5 else f"{a} {op2} ({b} {op1} {c})"
    raise ValueError(f"arithmetic level must be 1-4, got {level}")


def _value(expression: str) -> int:
    """Exact integer value of a generated expression (digits, + - *, parentheses only)."""
    import ast

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in (ast.Add, ast.Sub, ast.Mult):
            a, b = ev(node.left), ev(node.right)
            return a + b if isinstance(node.op, ast.Add) else a - b if isinstance(node.op, ast.Sub) else a * b
        raise ValueError(f"unexpected node in generated expression {expression!r}")

    return ev(ast.parse(expression, mode="eval"))


def generate(level: int = 1, n: int = 1000, seed: int = 0, split: str = "train") -> list[Sample]:
    """`n` distinct problems of `level` from `split` ("train" or "test"), deterministic in `seed`."""
    if split not in ("train", "test"):
        raise ValueError(f"arithmetic split must be 'train' or 'test', got {split!r}")
    rng = random.Random(f"{seed}:{level}:{split}")
    want_heldout = split == "test"
    seen: set[str] = set()
    out: list[Sample] = []
    for _ in range(200 * n + 1000):
        if len(out) == n:
            break
        expr = _expression(rng, level)
        if expr in seen or is_heldout(expr) != want_heldout:
            continue
        seen.add(expr)
        shown = expr.replace("*", "×")
        out.append(Sample(prompt=f"What is {shown}?", answer=str(_value(expr)), metadata={"expression": expr, "level": level}))
    if len(out) < n:
        raise ValueError(f"arithmetic level {level} has only {len(out)} distinct {split} problems; asked for {n}")
    return out


@register_task("arithmetic")
@dataclass
class ArithmeticTask(Task):
    level: int = 1
    n: int = 1000
    n_test: int = 200
    seed: int = 0
    template: str = "r1_zero_short"
    verifiers: dict[str, float] = field(default_factory=lambda: {"math": 1.0})
    name: str = "arithmetic"

    def samples(self, split: str = "train", limit: int | None = None) -> list[Sample]:
        n = self.n if split == "train" else self.n_test
        return generate(self.level, min(n, limit) if limit else n, self.seed, split)
