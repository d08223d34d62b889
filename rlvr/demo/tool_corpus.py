"""Synthetic pretraining text for the tool demo's base model: multi-digit products, rarely solved
with a Python tool call.

What it does:
- `documents(seed)`: an endless, deterministic stream of short documents. 70% are products of a
  three-digit and a two-digit number ("347 * 89 = 30883", a User/Assistant exchange, ...); 30%
  are English sentences (`rlvr.demo.corpus`'s generator). Conversations mostly answer directly
  inside `<answer>` tags (with the true product, which a 1M-parameter model cannot compute, so its
  own guesses are wrong). Only `TOOL_FRACTION` of them (8%) write the product as a Python call,
  read the tool's output block and copy the number into the tags::

      User: What is 347 * 89?
      Assistant: ```python
      print(347 * 89)
      ```
      ```output
      30883
      ```
      <answer>30883</answer>

  The call is exactly what `rlvr.tools.parse` reads as a `python` call and the output block is
  exactly the observation `rlvr.rollout.episodes.ToolEnvironment` appends for the `python` tool,
  so the rare behaviour in pretraining is the one GRPO can amplify in real episodes.
  `CODE_FRACTION` (12%) of the product documents are a bare python block with its output block and
  a line that reads the number off it (no conversation, no question): they teach copying from an
  output block without making the conversation's call more likely.
- `is_held_out(a, b)`: `rlvr.tasks.arithmetic.is_heldout` on "a * b" (md5 of the canonical
  problem, ~10% of pairs); held-out pairs never appear in the corpus. `eval_pairs(n)` lists some.
- `demo_prompt`, `tool_episode`: the prompt the demo asks and the text of a tool-using reply.

What it does not do: tokenize, train, or run tools (see `rlvr.demo.tool_pretrain`, `rlvr.tools`).

Try it:
    python -c "from rlvr.demo.tool_corpus import sample_documents; print(*sample_documents(8), sep='\\n---\\n')"
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator

from rlvr.demo.corpus import _english_doc
from rlvr.tasks.arithmetic import is_heldout
from rlvr.tasks.products import A_RANGE, B_RANGE

PRODUCT_FRACTION = 0.70  # share of documents about products; the rest is English text
CHAT_FRACTION = 0.6  # share of product documents written as a User/Assistant exchange
TOOL_FRACTION = 0.08  # share of those exchanges that answer with a python call
CODE_FRACTION = 0.12  # share of product documents that are a bare python block, its output and a reading
MAX_SENTENCES = 2  # sentences per English document

SYSTEM = "A conversation between User and Assistant."
INSTRUCTION = "The Assistant can run Python code and puts the final answer inside <answer> </answer> tags."
PROMPT_TEMPLATE = SYSTEM + " " + INSTRUCTION + "\nUser: What is {a} * {b}?\nAssistant:"  # = template r1_zero_tool

# What the model writes to call the tool, and the observation the environment appends after it
# (rlvr.tools.parse: a fenced python block; ToolEnvironment: the python tool's output block).
CALL = " ```python\nprint({a} * {b})\n```\n"
OUTPUT = "```output\n{out}\n```\n"
ANSWER = "<answer>{p}</answer>"

# Free styles of stating a product (no tool, no tags); `{p}` is the product.
_STYLES = (
    "{a} * {b} = {p}",
    "{a}*{b}={p}",
    "{a} times {b} equals {p}.",
    "The product of {a} and {b} is {p}.",
    "Q: {a} * {b} = ? A: {p}",
    "Multiplying {a} by {b} gives {p}.",
    "Question: What is {a} * {b}?\nAnswer: {p}",
    "What is {a} * {b}? The answer is {p}.",
)
# Direct replies in a conversation; most use the tags the demo prompt asks for.
_DIRECT = (
    " " + ANSWER,
    " " + ANSWER,
    " " + ANSWER,
    " {a} * {b} = " + ANSWER,
    " {p}",
    " The answer is {p}.",
)
# What follows an output block in a bare code document (copying the number is the skill).
_READINGS = (ANSWER, "The answer is {p}.", "So {a} * {b} = {p}.", "{p}")
_PREAMBLES = ("", "", SYSTEM + "\n", SYSTEM + " " + INSTRUCTION + "\n", SYSTEM + " " + INSTRUCTION + "\n")


def is_held_out(a: int, b: int) -> bool:
    """True for the ~10% of products kept out of pretraining (the arithmetic task's hash rule).

    >>> is_held_out(347, 89) == is_held_out(89, 347)
    True
    """
    return is_heldout(f"{a} * {b}")


def eval_pairs(n: int = 200, seed: int = 0) -> list[tuple[int, int]]:
    """The first `n` held-out problems of the `products` task (its test split) as (a, b) pairs.

    >>> len(eval_pairs(50)), all(is_held_out(a, b) for a, b in eval_pairs(50))
    (50, True)
    """
    from rlvr.tasks.products import generate

    return [(s.metadata["a"], s.metadata["b"]) for s in generate(n, seed, "test")]


def demo_prompt(a: int, b: int) -> str:
    """The demo prompt for one product.

    >>> demo_prompt(347, 89).splitlines()[-2:]
    ['User: What is 347 * 89?', 'Assistant:']
    """
    return PROMPT_TEMPLATE.format(a=a, b=b)


def tool_episode(a: int, b: int) -> tuple[str, str, str]:
    """(model turn 1, observation, model turn 2) of a reply that uses the tool.

    >>> "".join(tool_episode(2, 3))
    ' ```python\\nprint(2 * 3)\\n```\\n```output\\n6\\n```\\n<answer>6</answer>'
    """
    p = a * b
    return CALL.format(a=a, b=b), OUTPUT.format(out=p), ANSWER.format(p=p)


_TAGGED = re.compile(r"<answer>\s*(-?\d+)\s*</answer>")


def parse_tagged_answer(text: str) -> int | None:
    """The integer inside the first `<answer>...</answer>` pair, or None."""
    m = _TAGGED.search(text)
    return int(m.group(1)) if m else None


def _pair(rng: random.Random) -> tuple[int, int]:
    while True:
        a, b = rng.randint(*A_RANGE), rng.randint(*B_RANGE)
        if not is_held_out(a, b):
            return a, b


def _product_doc(rng: random.Random) -> str:
    a, b = _pair(rng)
    if rng.random() < CODE_FRACTION:
        call, output, _ = tool_episode(a, b)
        return call.lstrip() + output + rng.choice(_READINGS).format(a=a, b=b, p=a * b)
    if rng.random() >= CHAT_FRACTION:
        return rng.choice(_STYLES).format(a=a, b=b, p=a * b)
    head = rng.choice(_PREAMBLES) + f"User: What is {a} * {b}?\nAssistant:"
    if rng.random() < TOOL_FRACTION:
        return head + "".join(tool_episode(a, b))
    return head + rng.choice(_DIRECT).format(a=a, b=b, p=a * b)


def documents(seed: int = 0) -> Iterator[str]:
    """An endless deterministic stream of documents (no end-of-text marker; the packer adds it)."""
    rng = random.Random(seed)
    while True:
        if rng.random() < PRODUCT_FRACTION:
            yield _product_doc(rng)
        else:
            yield _english_doc(rng, MAX_SENTENCES)


def sample_documents(n: int, seed: int = 0) -> list[str]:
    """The first `n` documents of the stream.

    >>> len(sample_documents(5))
    5
    """
    return list(itertools.islice(documents(seed), n))
