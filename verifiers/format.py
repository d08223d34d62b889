"""The format verifier: does a completion follow the R1 template ``<think>…</think><answer>…</answer>``?

`get_verifier("format")` returns a `FormatVerifier`. By default a completion passes when, after
leading and trailing whitespace, it is exactly one think block followed by one answer block:

    <think> reasoning </think> <answer> final answer </answer>

- whitespace (spaces, newlines) around and between the blocks is fine;
- text before ``<think>`` fails (``text_before_think``) unless ``allow_prefix=True``;
- text after ``</answer>`` fails (``trailing_text``) unless ``allow_trailing=True``. This default is
  deliberate: a bonus for the tags alone taught a small model to append junk after ``</answer>``
  (docs/NOTES: measured facts);
- an empty (or whitespace-only) answer fails (``empty_answer``); an empty think block passes
  unless ``require_think_text=True``;
- when the prompt already ends with ``<think>`` (DeepSeek-R1 chat templates do this), the
  completion starts inside the think block; this is detected from ``sample.prompt`` unless
  ``think_in_prompt`` is set to True or False.

``info["reason"]`` is ``"ok"`` or the first failure; ``info["failures"]`` lists every failure found:
``missing_think_open``, ``missing_think_close``, ``missing_answer_open``, ``missing_answer_close``,
``multiple_think_blocks``, ``multiple_answer_blocks``, ``think_close_before_open``,
``answer_close_before_open``, ``answer_before_think``, ``text_before_think``,
``text_between_blocks``, ``trailing_text``, ``empty_answer``, ``empty_think``, ``pattern_mismatch``.
``info["answer"]`` holds the answer block's text (first 200 characters) when there is one.

Partial credit (``partial_credit=True``): a failing completion earns 0.25 for each of the four tags
present exactly once, capped at 0.75, so only the full template earns 1.0. Off by default.

A custom ``pattern`` (a regular expression, matched with `re.fullmatch` and DOTALL against the
stripped completion) replaces the tag checks; failures are then just ``pattern_mismatch``.

This module also registers ``length``, a logging-only component for `combine` (``passed=None``).

What it does not do: check the answer itself (that is the math or code verifier's job).

Try it::

    >>> from rlvr.verifiers import Sample, get_verifier
    >>> fmt = get_verifier("format")
    >>> fmt("<think>3*4=12</think>\\n<answer>12</answer>", Sample()).passed
    True
    >>> fmt("<think>3*4=12</think><answer>12</answer> I hope this helps!", Sample()).info["reason"]
    'trailing_text'
"""

from __future__ import annotations

import re
from typing import Any

from rlvr.verifiers.base import Sample, Score, register_verifier

__all__ = ["FormatVerifier", "length"]

_TAG_NAME = re.compile(r"[A-Za-z_][\w\-]*")
# Failures in the order `info["reason"]` reports them: structure first, then content.
_ORDER = [
    "missing_think_open",
    "missing_think_close",
    "missing_answer_open",
    "missing_answer_close",
    "multiple_think_blocks",
    "multiple_answer_blocks",
    "think_close_before_open",
    "answer_close_before_open",
    "answer_before_think",
    "text_before_think",
    "text_between_blocks",
    "empty_think",
    "empty_answer",
    "trailing_text",
]


@register_verifier("format")
class FormatVerifier:
    """Check the ``<think>…</think><answer>…</answer>`` template (see the module docstring).

    think_tag, answer_tag: tag names (without brackets), e.g. ``"reasoning"`` and ``"solution"``.
    require_think: when False, the think block is optional (answer-only outputs pass).
    think_in_prompt: the prompt already opened the think block; None detects it from
        ``sample.prompt`` ending with the open tag.
    allow_prefix, allow_trailing: accept text before the think block / after ``</answer>``.
    require_think_text: fail an empty think block.
    partial_credit: 0.25 per tag present exactly once, at most 0.75, for failing completions.
    pattern: a regex the whole (stripped) completion must match instead of the tag checks.
    """

    def __init__(
        self,
        think_tag: str = "think",
        answer_tag: str = "answer",
        *,
        require_think: bool = True,
        think_in_prompt: bool | None = None,
        allow_prefix: bool = False,
        allow_trailing: bool = False,
        require_think_text: bool = False,
        partial_credit: bool = False,
        pattern: str | None = None,
    ):
        for field_name, tag in (("think_tag", think_tag), ("answer_tag", answer_tag)):
            if not isinstance(tag, str) or not _TAG_NAME.fullmatch(tag):
                raise ValueError(f"format verifier: {field_name}={tag!r} is not a tag name like 'think'")
        if think_tag == answer_tag:
            raise ValueError(f"format verifier: think_tag and answer_tag are both {think_tag!r}")
        self.think_tag, self.answer_tag = think_tag, answer_tag
        self.require_think, self.think_in_prompt = require_think, think_in_prompt
        self.allow_prefix, self.allow_trailing = allow_prefix, allow_trailing
        self.require_think_text, self.partial_credit = require_think_text, partial_credit
        try:
            self.pattern = re.compile(pattern, re.DOTALL) if pattern is not None else None
        except re.error as e:
            raise ValueError(f"format verifier: pattern={pattern!r} is not a valid regex: {e}") from e
        t, a = re.escape(think_tag), re.escape(answer_tag)
        self._tags = {
            "think_open": re.compile(rf"<{t}>"),
            "think_close": re.compile(rf"</{t}>"),
            "answer_open": re.compile(rf"<{a}>"),
            "answer_close": re.compile(rf"</{a}>"),
        }

    def __call__(self, completion: str, sample: Sample) -> Score:
        text = completion.strip()
        if self.pattern is not None:
            ok = self.pattern.fullmatch(text) is not None
            failures = [] if ok else ["pattern_mismatch"]
            return Score(float(ok), ok, {"reason": failures[0] if failures else "ok", "failures": failures})
        opened = self.think_in_prompt
        if opened is None:
            opened = (sample.prompt or "").rstrip().endswith(f"<{self.think_tag}>")
        if opened and self.require_think:
            text = f"<{self.think_tag}>" + completion  # the prompt opened the block
        failures, info = self._check(text)
        ok = not failures
        if ok:
            reward = 1.0
        elif self.partial_credit:
            present = sum(len(rx.findall(text)) == 1 for rx in self._tags.values())
            reward = min(0.25 * present, 0.75)
        else:
            reward = 0.0
        info.update(reason=failures[0] if failures else "ok", failures=failures)
        return Score(reward=reward, passed=ok, info=info)

    def _check(self, text: str) -> tuple[list[str], dict[str, Any]]:
        found = {k: [m.span() for m in rx.finditer(text)] for k, rx in self._tags.items()}
        failures: list[str] = []
        info: dict[str, Any] = {}
        need = ("answer_open", "answer_close") + (("think_open", "think_close") if self.require_think else ())
        for part in ("think_open", "think_close", "answer_open", "answer_close"):
            if not found[part] and part in need:
                failures.append(f"missing_{part}")
        for block in ("think", "answer"):
            if len(found[f"{block}_open"]) > 1 or len(found[f"{block}_close"]) > 1:
                failures.append(f"multiple_{block}_blocks")
        spans = {k: v[0] for k, v in found.items() if v}
        has_think = "think_open" in spans and "think_close" in spans
        if has_think and spans["think_close"][0] < spans["think_open"][1]:
            failures.append("think_close_before_open")
        if "answer_open" in spans and "answer_close" in spans:
            a_open = spans["answer_open"]
            closes = [c for c in found["answer_close"] if c[0] >= a_open[1]]
            if not closes:
                failures.append("answer_close_before_open")
            else:
                answer = text[a_open[1] : closes[0][0]]
                info["answer"] = answer.strip()[:200]
                if not answer.strip():
                    failures.append("empty_answer")
                tail = text[found["answer_close"][-1][1] :]
                if tail.strip() and not self.allow_trailing:
                    failures.append("trailing_text")
                    info["trailing"] = tail.strip()[:80]
        if has_think and spans["think_close"][0] >= spans["think_open"][1]:
            think = text[spans["think_open"][1] : spans["think_close"][0]]
            info["think_chars"] = len(think.strip())
            if self.require_think_text and not think.strip():
                failures.append("empty_think")
            if "answer_open" in spans:
                if spans["answer_open"][0] < spans["think_open"][0]:
                    failures.append("answer_before_think")
                elif text[spans["think_close"][1] : spans["answer_open"][0]].strip():
                    failures.append("text_between_blocks")
        first = min((sp[0] for sp in spans.values()), default=None)
        if first is not None and text[:first].strip() and not self.allow_prefix:
            failures.append("text_before_think")
        return sorted(failures, key=_ORDER.index), info

    def __repr__(self) -> str:
        return f"FormatVerifier(think_tag={self.think_tag!r}, answer_tag={self.answer_tag!r})"


@register_verifier("length")
def length(completion: str, sample: Sample, *, max_chars: int | None = None) -> Score:
    """A logging/shaping term: reward = characters (or min(1, chars / max_chars)); passed=None.

    Use it in `combine` with weight 0 to log lengths, or a negative weight as a length penalty.

    >>> length("abcd", Sample(), max_chars=8).reward
    0.5
    """
    n = len(completion)
    reward = float(n) if not max_chars else min(1.0, n / max_chars)
    return Score(reward=reward, passed=None, info={"chars": n, "words": len(completion.split())})
