"""`products`: multi-digit products ("What is 347 * 89?") answered with the help of a Python tool.

The tool demo's task (`rlvr train --preset tool_demo`): a three-digit times a two-digit number, too
hard for a 1M-parameter model to compute in its head, easy for a one-line program. Each sample is
one episode in the task's own environment (`environment()`): a `ToolEnvironment` with the `python`
tool and fenced ```python calls. The model may write a call, read the output block the environment
appends, and answer in `<answer>` tags; the math verifier reads only the tags (`extract:
answer_tag` in the demo config) of the model's own text, never the tool's output.

Train and test never share a problem: held out means `rlvr.tasks.arithmetic.is_heldout("a * b")`
(md5 of the canonical problem, one in ten), and the demo's pretraining corpus
(`rlvr.demo.tool_corpus`) excludes the same problems.

What it does not do: run the episodes (`rlvr.rollout.episodes`) or the tools (`rlvr.tools`).

Try it::

    >>> from rlvr.tasks.products import generate
    >>> [(s.prompt, s.answer) for s in generate(n=2, seed=0, split="test")]  # doctest: +SKIP
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from rlvr.tasks.arithmetic import is_heldout
from rlvr.tasks.base import Task, register_task
from rlvr.verifiers.base import Sample

A_RANGE = (100, 999)  # the first factor: three digits
B_RANGE = (10, 99)  # the second factor: two digits


def generate(n: int = 1000, seed: int = 0, split: str = "train") -> list[Sample]:
    """`n` distinct products from `split` ("train" or "test"), deterministic in `seed`.

    >>> [s.prompt for s in generate(n=1, seed=0, split="test")] == [generate(n=3, seed=0, split="test")[0].prompt]
    True
    """
    if split not in ("train", "test"):
        raise ValueError(f"products split must be 'train' or 'test', got {split!r}")
    rng = random.Random(f"{seed}:products:{split}")
    seen: set[tuple[int, int]] = set()
    out: list[Sample] = []
    while len(out) < n:
        a, b = rng.randint(*A_RANGE), rng.randint(*B_RANGE)
        if (a, b) in seen or is_heldout(f"{a} * {b}") != (split == "test"):
            continue
        seen.add((a, b))
        out.append(Sample(prompt=f"What is {a} * {b}?", answer=str(a * b), metadata={"a": a, "b": b}))
    return out


@register_task("products")
@dataclass
class ProductsTask(Task):
    n: int = 4000
    n_test: int = 200
    seed: int = 0
    template: str = "r1_zero_tool"
    verifiers: dict[str, float] = field(default_factory=lambda: {"math": 1.0})
    # The environment each episode runs in (see `environment`).
    tools: tuple[str, ...] = ("python",)
    formats: tuple[str, ...] = ("python_fence",)
    max_turns: int = 3
    max_tokens: int = 96
    name: str = "products"

    def samples(self, split: str = "train", limit: int | None = None) -> list[Sample]:
        n = self.n if split == "train" else self.n_test
        return generate(min(n, limit) if limit else n, self.seed, split)

    def environment(self) -> Any:
        """A `ToolEnvironment` with the python tool and fenced calls (the demo corpus's format)."""
        from rlvr.rollout.episodes import ToolEnvironment

        return ToolEnvironment(tools=list(self.tools), formats=tuple(self.formats), max_turns=self.max_turns,
                               max_tokens=self.max_tokens)
