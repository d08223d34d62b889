"""Prompt templates: exact text for base-model templates, chat templates through a real tokenizer."""

from __future__ import annotations

import pytest

from rlvr.templates import TemplateError, get_template, list_templates, render


def test_registry_has_the_documented_templates():
    assert {"r1_zero", "r1_zero_short", "qwen_math_boxed", "chat", "none"} <= set(list_templates())


def test_r1_zero_short_is_the_demo_prompt():
    assert render("r1_zero_short", " What is 2 + 3? ") == (
        "A conversation between User and Assistant. The Assistant puts the final answer inside "
        "<answer> </answer> tags.\nUser: What is 2 + 3?\nAssistant:"
    )


def test_r1_zero_mentions_both_tags_and_ends_with_assistant():
    text = render("r1_zero", "Q?")
    assert "<think> </think>" in text and "<answer> </answer>" in text and text.endswith("User: Q?\nAssistant:")


def test_none_is_identity():
    assert render("none", "  raw  ") == "  raw  "


def test_unknown_template_suggests_closest():
    with pytest.raises(TemplateError, match="did you mean 'r1_zero'"):
        get_template("r1_zer")


def test_chat_templates_need_a_tokenizer_with_one():
    with pytest.raises(TemplateError, match="no tokenizer was given"):
        render("chat", "hi")

    class NoChat:
        chat_template = None

    with pytest.raises(TemplateError, match="this tokenizer has none"):
        render("qwen_math_boxed", "hi", NoChat())


def test_chat_template_renders_through_a_real_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["hello world what is two plus two"], trainers.BpeTrainer(vocab_size=60, special_tokens=["<unk>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>")
    fast.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    fast.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert render("chat", "What is 2+2?", loaded) == "<|user|>What is 2+2?\n<|assistant|>"
    assert render("qwen_math_boxed", "Q", loaded).startswith(
        "<|system|>Please reason step by step, and put your final answer within \\boxed{}.\n<|user|>Q\n"
    )
