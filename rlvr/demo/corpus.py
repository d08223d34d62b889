"""Synthetic pretraining text for the demo base model: two-digit additions plus English distractors.

What it does:
- `documents(seed)`: an endless, deterministic stream of short documents. 70% are two-digit
  additions written in free styles ("Q: 23+48 = ? A: 71", "23 plus 48 equals 71.", a User/Assistant
  exchange, ...); 30% are generated English sentences (no downloads). Only ~3% of the arithmetic
  documents write the answer as `<answer>71</answer>`; nothing ever uses `<think>`. That rare
  format is what GRPO later amplifies (RL amplifies a behaviour the base already has).
- `is_held_out(a, b)`: the fixed hash rule that keeps ~10% of the (a, b) pairs out of pretraining,
  so the RL demo can evaluate on problems the model never saw. `held_out_pairs()` lists them.
- `PROMPT_TEMPLATE`, `parse_free_answer`, `parse_tagged_answer`: what the demo asks and how it reads
  the reply.

What it does not do: tokenize or train (see `rlvr.demo.pretrain`).

Try it:
    python -c "from rlvr.demo.corpus import sample_documents; print(*sample_documents(8), sep='\\n---\\n')"
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from collections.abc import Iterator

LOW, HIGH = 10, 99  # operands are two-digit numbers, inclusive
ARITH_FRACTION = 0.70  # share of documents that are additions; the rest is English text
TAG_FRACTION = 0.03  # share of arithmetic documents that write the answer inside <answer> tags
MAX_PROBLEMS = 1  # additions per arithmetic document (1..MAX_PROBLEMS, one per line)
MAX_SENTENCES = 2  # sentences per English document (1..MAX_SENTENCES)
HELD_OUT_MOD = 10  # a pair is held out when hash(pair) % HELD_OUT_MOD == 0 (~10% of pairs)

SYSTEM = "A conversation between User and Assistant."
TAG_INSTRUCTION = "The Assistant puts the final answer inside <answer> </answer> tags."
# The prompt the RL demo and the base-model evaluation use.
PROMPT_TEMPLATE = SYSTEM + " " + TAG_INSTRUCTION + "\nUser: What is {a} + {b}?\nAssistant:"

# Free styles of writing "a + b = s"; `{s}` is where the answer goes.
_STYLES = (
    "Q: {a}+{b} = ? A: {s}",
    "{a} plus {b} equals {s}.",
    "{a} + {b} = {s}",
    "What is {a} + {b}? {s}",
    "What is {a} plus {b}? The answer is {s}.",
    "The sum of {a} and {b} is {s}.",
    "If you add {a} and {b} you get {s}.",
    "Adding {b} to {a} gives {s}.",
    "Question: What is {a} + {b}?\nAnswer: {s}",
    "User: What is {a} + {b}?\nAssistant: {s}",
    "User: What is {a} + {b}?\nAssistant: The answer is {s}.",
    "User: What is {a} + {b}?\nAssistant: {a} + {b} = {s}.",
    "User: Can you add {a} and {b}?\nAssistant: Sure, {a} + {b} = {s}.",
    "{a}+{b}={s}",
)
# Preambles of conversation documents (so the demo prompt is in-distribution).
_PREAMBLES = ("", "", "", SYSTEM + "\n", SYSTEM + " ", SYSTEM + " " + TAG_INSTRUCTION + "\n")

_SUBJECTS = (
    "The farmer",
    "My sister",
    "The old teacher",
    "A young sailor",
    "The children",
    "Our neighbour",
    "The doctor",
    "A small dog",
    "The captain",
    "Every student",
    "The merchant",
    "Her brother",
    "The baker",
    "A tired traveller",
    "The village council",
    "The museum guide",
    "Grandmother",
)
_VERBS = (
    "walked to",
    "painted",
    "remembered",
    "cleaned",
    "visited",
    "described",
    "looked at",
    "built",
    "forgot about",
    "wrote about",
    "carried",
    "found",
    "opened",
    "closed",
    "sold",
    "repaired",
    "talked about",
    "dreamed of",
    "waited near",
    "left",
)
_OBJECTS = (
    "the river",
    "a wooden bridge",
    "the kitchen window",
    "the quiet library",
    "an ancient map",
    "the garden gate",
    "a basket of apples",
    "the northern forest",
    "the harbour",
    "a silver coin",
    "the train station",
    "a yellow boat",
    "the mountain road",
    "the school yard",
    "a letter",
    "the market square",
    "a warm loaf of bread",
    "the lighthouse",
    "an empty room",
    "the orchard",
)
_TAILS = (
    "",
    "",
    " in the morning",
    " after the storm",
    " before dinner",
    " on a cold winter day",
    " with great care",
    " without a word",
    " for the first time",
    " once again",
    " at sunset",
    " during the festival",
    " because it was raining",
    " while everyone slept",
)
_CONNECTORS = ("Then", "Later", "After that", "Meanwhile", "Soon", "However", "Still", "Finally")


def pair_key(a: int, b: int) -> str:
    """The unordered key of a pair: 23+48 and 48+23 are the same problem for hold-out purposes."""
    lo, hi = sorted((a, b))
    return f"{lo}+{hi}"


def is_held_out(a: int, b: int) -> bool:
    """True for the ~10% of pairs that never appear in pretraining (md5 of the unordered pair).

    >>> is_held_out(23, 48) == is_held_out(48, 23)
    True
    """
    digest = hashlib.md5(pair_key(a, b).encode()).hexdigest()
    return int(digest, 16) % HELD_OUT_MOD == 0


def held_out_pairs() -> list[tuple[int, int]]:
    """All held-out (a, b) pairs with both operands in [10, 99], in a fixed order."""
    return [(a, b) for a in range(LOW, HIGH + 1) for b in range(LOW, HIGH + 1) if is_held_out(a, b)]


def eval_pairs(n: int = 200) -> list[tuple[int, int]]:
    """`n` held-out pairs spread evenly over the held-out list (all operand ranges), fixed order.

    The base-model evaluation and the RL demo's held-out accuracy use this set.

    >>> len(eval_pairs(100)), all(is_held_out(a, b) for a, b in eval_pairs(100))
    (100, True)
    """
    held = held_out_pairs()
    if not 0 < n <= len(held):
        raise ValueError(f"eval_pairs: n must be in 1..{len(held)}, got {n}")
    return [held[i * len(held) // n] for i in range(n)]


def train_pairs() -> list[tuple[int, int]]:
    """All (a, b) pairs pretraining may use."""
    return [(a, b) for a in range(LOW, HIGH + 1) for b in range(LOW, HIGH + 1) if not is_held_out(a, b)]


def demo_prompt(a: int, b: int) -> str:
    """The demo prompt for one problem.

    >>> demo_prompt(2, 3).endswith("User: What is 2 + 3?\\nAssistant:")
    True
    """
    return PROMPT_TEMPLATE.format(a=a, b=b)


_INT = re.compile(r"-?\d+")
_TAGGED = re.compile(r"<answer>\s*(-?\d+)\s*</answer>")


def parse_free_answer(completion: str) -> int | None:
    """The last integer on the first non-empty line of the reply, or None.

    "Right in free text" means this equals a+b, so "43 + 39 = 82." and "<answer>82</answer>" both
    count as 82.

    >>> parse_free_answer(" 43 + 39 = 82.\\nUser: What is 1 + 2?")
    82
    """
    lines = [ln for ln in completion.splitlines() if ln.strip()]
    found = _INT.findall(lines[0]) if lines else []
    return int(found[-1]) if found else None


def parse_tagged_answer(completion: str) -> int | None:
    """The integer inside the first `<answer>...</answer>` pair, or None when there is none."""
    m = _TAGGED.search(completion)
    return int(m.group(1)) if m else None


def _arith_doc(rng: random.Random, pairs: list[tuple[int, int]], max_problems: int) -> str:
    """1..max_problems additions in one style, one per line; ~3% of documents use answer tags."""
    style = rng.choice(_STYLES)
    tagged = rng.random() < TAG_FRACTION
    if tagged and rng.random() < 0.2:  # some tagged docs follow the exact instruction of the demo prompt
        style = SYSTEM + " " + TAG_INSTRUCTION + "\nUser: What is {a} + {b}?\nAssistant: {s}"
    lines = []
    for _ in range(rng.randint(1, max_problems)):
        a, b = rng.choice(pairs)
        answer = f"<answer>{a + b}</answer>" if tagged else str(a + b)
        lines.append(style.format(a=a, b=b, s=answer))
    text = "\n".join(lines)
    if text.startswith("User:"):
        text = rng.choice(_PREAMBLES) + text
    return text


def _sentence(rng: random.Random) -> str:
    sentence = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}{rng.choice(_TAILS)}."
    if rng.random() < 0.15:
        sentence = f"In {rng.randint(1850, 2020)}, " + sentence[0].lower() + sentence[1:]
    return sentence


def _english_doc(rng: random.Random, max_sentences: int) -> str:
    sentences = [_sentence(rng)]
    for _ in range(rng.randint(0, max_sentences - 1)):
        s = _sentence(rng)
        if rng.random() < 0.4:
            s = f"{rng.choice(_CONNECTORS)} " + s[0].lower() + s[1:]
        sentences.append(s)
    return " ".join(sentences)


def documents(
    seed: int = 0, max_problems: int = MAX_PROBLEMS, max_sentences: int = MAX_SENTENCES
) -> Iterator[str]:
    """An endless deterministic stream of documents (no end-of-text marker; the packer adds it).

    An arithmetic document holds 1..max_problems additions; an English one 1..max_sentences
    sentences (about 12 tokens each). The defaults make both kinds about equally long, so the 70/30
    split of documents is also about 70/30 in tokens.
    """
    rng = random.Random(seed)
    pairs = train_pairs()
    while True:
        if rng.random() < ARITH_FRACTION:
            yield _arith_doc(rng, pairs, max_problems)
        else:
            yield _english_doc(rng, max_sentences)


def sample_documents(n: int, seed: int = 0, **kw: int) -> list[str]:
    """The first `n` documents of the stream.

    >>> len(sample_documents(5))
    5
    """
    return list(itertools.islice(documents(seed, **kw), n))
