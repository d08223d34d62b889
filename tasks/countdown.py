"""`countdown`: reach a target with given numbers (TinyZero-style), and its safe verifier.

The generator is seeded: it draws 3 or 4 numbers, combines all of them with +, −, ×, ÷ (exact
division only) into a random expression and takes its value as the target, so every problem is
solvable. The `countdown` verifier parses the final answer with `ast` (never `eval`), accepts only
integer literals, the four operators and parentheses, checks that the equation uses exactly the
given numbers (each once, all of them) and evaluates it with exact fractions.

Try it::

    >>> from rlvr.tasks.countdown import check_equation
    >>> check_equation("(25 - 5) * 4", numbers=[4, 5, 25], target=80)
    (True, 'match')
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass, field
from fractions import Fraction

from rlvr.tasks.base import Task, register_task
from rlvr.verifiers.base import Sample, Score, register_verifier

MAX_EQUATION_CHARS = 200
_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b}
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)

PROMPT = (
    "Using the numbers {numbers}, create an equation that equals {target}. You can use basic arithmetic "
    "operations (+, -, *, /) and each number can only be used once. Show your work in <think> </think> "
    "tags. And return the final answer in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>."
)


def _evaluate(node: ast.AST, used: list[int]) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        left, right = _evaluate(node.left, used), _evaluate(node.right, used)
        if isinstance(node.op, ast.Div) and right == 0:
            raise ZeroDivisionError("division by zero")
        return _OPS[type(node.op)](left, right)
    raise ValueError(f"not allowed in a countdown equation: {type(node).__name__}")


def check_equation(equation: str, numbers: list[int], target: int) -> tuple[bool, str]:
    """(ok, reason) for `equation` against the puzzle. Reasons: match, parse_error, wrong_numbers,
    wrong_value, division_by_zero, too_long."""
    text = equation.strip()
    if "=" in text:  # "(25 - 5) * 4 = 80": judge the left side
        text = text.split("=", 1)[0].strip()
    text = text.replace("×", "*").replace("÷", "/").replace("−", "-")
    if len(text) > MAX_EQUATION_CHARS:
        return False, "too_long"
    if not re.fullmatch(r"[\d\s+\-*/()]+", text or "x"):
        return False, "parse_error"
    try:
        tree = ast.parse(text, mode="eval")
        used: list[int] = []
        value = _evaluate(tree.body, used)
    except ZeroDivisionError:
        return False, "division_by_zero"
    except (SyntaxError, ValueError, RecursionError):
        return False, "parse_error"
    if sorted(used) != sorted(int(n) for n in numbers):
        return False, "wrong_numbers"
    return (value == target, "match" if value == target else "wrong_value")


@register_verifier("countdown")
def countdown_verifier(completion: str, sample: Sample, format_score: float = 0.0) -> Score:
    """1.0 when the last <answer> equation uses exactly the given numbers and reaches the target.
    `format_score` is given to a parseable equation that is wrong (TinyZero used 0.1)."""
    found = _ANSWER.findall(completion)
    if not found:
        return Score(0.0, False, {"reason": "no_final_answer", "extracted": None})
    equation = found[-1].strip()
    numbers = list(sample.metadata.get("numbers") or [])
    ok, reason = check_equation(equation, numbers, int(sample.answer))
    reward = 1.0 if ok else (format_score if reason in ("wrong_value", "wrong_numbers") else 0.0)
    return Score(reward, ok, {"reason": reason, "extracted": equation[:200]})


def _puzzle(rng: random.Random, count: int, max_number: int, max_target: int) -> tuple[list[int], int] | None:
    nums = [rng.randint(1, max_number) for _ in range(count)]
    order = nums[:]
    rng.shuffle(order)
    value = Fraction(order[0])
    for n in order[1:]:
        op = rng.choice("+-*/")
        if op == "/" and (n == 0 or (value / n).denominator != 1):
            op = "+"
        value = {"+": value + n, "-": value - n, "*": value * n, "/": value / n}[op]
    if value.denominator != 1 or not (1 <= value <= max_target):
        return None
    return sorted(nums), int(value)


def generate(n: int, seed: int = 0, counts: tuple[int, ...] = (3, 4), max_number: int = 99, max_target: int = 999) -> list[Sample]:
    """`n` solvable countdown puzzles, deterministic in `seed`."""
    rng = random.Random(f"countdown:{seed}")
    out: list[Sample] = []
    while len(out) < n:
        made = _puzzle(rng, rng.choice(counts), max_number, max_target)
        if made is None:
            continue
        nums, target = made
        out.append(Sample(prompt=PROMPT.format(numbers=nums, target=target), answer=target, metadata={"numbers": nums}))
    return out


@register_task("countdown")
@dataclass
class CountdownTask(Task):
    n: int = 1000
    n_test: int = 200
    seed: int = 0
    template: str = "r1_zero"
    verifiers: dict[str, float] = field(default_factory=lambda: {"countdown": 1.0})
    name: str = "countdown"

    def samples(self, split: str = "train", limit: int | None = None) -> list[Sample]:
        n = self.n if split == "train" else self.n_test
        n = min(n, limit) if limit else n
        return generate(n, seed=self.seed if split == "train" else self.seed + 10_000)
