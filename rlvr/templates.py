"""Prompt templates: how a task's question becomes the text the policy continues.

A registry of named templates. `render(name, question, tokenizer=None)` returns the prompt string.

- ``r1_zero``: DeepSeek-R1-Zero's plain-text template for base models (no chat template). The
  prompt ends with "Assistant:" and the model is expected to write ``<think>…</think>
  <answer>…</answer>``.
- ``r1_zero_short``: a one-line variant that only asks for ``<answer>`` tags, for tiny base models
  that cannot yet write a reasoning trace (the embedded demo uses it).
- ``r1_zero_tool``: ``r1_zero_short`` that also says the Assistant can run Python code (the tool
  demo's prompt, `rlvr train --preset tool_demo`).
- ``qwen_math_boxed``: the Qwen2.5-Math instruction ("Please reason step by step, and put your
  final answer within \\boxed{}.") through the tokenizer's chat template.
- ``chat``: the question as a single user turn through the tokenizer's chat template.
- ``none``: the question as is.

What this module does not do: tokenise, or decide which verifier reads the answer (tasks do).

Try it::

    >>> from rlvr.templates import render
    >>> render("r1_zero_short", "What is 2 + 3?").splitlines()[-1]
    'Assistant:'
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlvr.io import InputError

__all__ = ["Template", "TemplateError", "get_template", "list_templates", "register_template", "render"]


class TemplateError(InputError):
    """An unknown template, or a chat template used without a tokenizer that has one."""


@dataclass(frozen=True)
class Template:
    """A named prompt template. `fn(question, tokenizer) -> str`."""

    name: str
    fn: Callable[[str, Any], str]
    needs_chat_template: bool = False
    description: str = ""

    def __call__(self, question: str, tokenizer: Any = None) -> str:
        if self.needs_chat_template and getattr(tokenizer, "chat_template", None) is None:
            raise TemplateError(
                f"template {self.name!r} uses the tokenizer's chat template, but "
                f"{'no tokenizer was given' if tokenizer is None else 'this tokenizer has none'}; "
                "use 'r1_zero' or 'none' for base models"
            )
        return self.fn(question, tokenizer)


_TEMPLATES: dict[str, Template] = {}


def register_template(name: str, *, needs_chat_template: bool = False, description: str = ""):
    """Register `fn(question, tokenizer) -> str` as template `name` (a decorator)."""

    def deco(fn: Callable[[str, Any], str]) -> Callable[[str, Any], str]:
        _TEMPLATES[name] = Template(name, fn, needs_chat_template, description or (fn.__doc__ or "").strip())
        return fn

    return deco


def get_template(name: str) -> Template:
    if name not in _TEMPLATES and ":" in name:  # path/to/file.py:fn or package.module:fn (rlvr.plugins)
        from rlvr.plugins import is_reference, load_object

        if is_reference(name):
            obj = load_object(name)
            if not callable(obj):
                raise TemplateError(f"template {name!r} is not callable (expected fn(question, tokenizer) -> str)")
            _TEMPLATES[name] = obj if isinstance(obj, Template) else Template(name, obj, False, (obj.__doc__ or "").strip())
    if name not in _TEMPLATES:
        close = difflib.get_close_matches(name, list(_TEMPLATES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TemplateError(f"unknown template {name!r}{hint} (known: {', '.join(sorted(_TEMPLATES))})")
    return _TEMPLATES[name]


def list_templates() -> list[str]:
    return sorted(_TEMPLATES)


def render(name: str, question: str, tokenizer: Any = None) -> str:
    """The prompt text for `question` under template `name`."""
    return get_template(name)(question, tokenizer)


R1_ZERO = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The Assistant first thinks about the reasoning process in the mind and then provides the user with "
    "the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> "
    "</answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here "
    "</answer>.\nUser: {question}\nAssistant:"
)
R1_ZERO_SHORT = (
    "A conversation between User and Assistant. The Assistant puts the final answer inside "
    "<answer> </answer> tags.\nUser: {question}\nAssistant:"
)
R1_ZERO_TOOL = (
    "A conversation between User and Assistant. The Assistant can run Python code and puts the final "
    "answer inside <answer> </answer> tags.\nUser: {question}\nAssistant:"
)
QWEN_MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@register_template("r1_zero")
def _r1_zero(question: str, tokenizer: Any = None) -> str:
    """DeepSeek-R1-Zero's template for base models: think, then answer, in tags."""
    return R1_ZERO.format(question=question.strip())


@register_template("r1_zero_short")
def _r1_zero_short(question: str, tokenizer: Any = None) -> str:
    """A short R1-Zero template asking only for <answer> tags (for tiny base models)."""
    return R1_ZERO_SHORT.format(question=question.strip())


@register_template("r1_zero_tool")
def _r1_zero_tool(question: str, tokenizer: Any = None) -> str:
    """`r1_zero_short` saying the Assistant can run Python code (the tool demo's prompt)."""
    return R1_ZERO_TOOL.format(question=question.strip())


def _chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


@register_template("qwen_math_boxed", needs_chat_template=True)
def _qwen_math_boxed(question: str, tokenizer: Any = None) -> str:
    """Qwen2.5-Math's boxed instruction as the system turn, through the chat template."""
    return _chat(
        tokenizer,
        [{"role": "system", "content": QWEN_MATH_INSTRUCTION}, {"role": "user", "content": question.strip()}],
    )


@register_template("chat", needs_chat_template=True)
def _chat_template(question: str, tokenizer: Any = None) -> str:
    """The question as one user turn through the tokenizer's chat template."""
    return _chat(tokenizer, [{"role": "user", "content": question.strip()}])


@register_template("none")
def _none(question: str, tokenizer: Any = None) -> str:
    """The question unchanged."""
    return question
