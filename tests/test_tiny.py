"""rlvr.tiny: the local tokenizer + random-init Qwen2 model load back through the hub code paths."""

from __future__ import annotations

import filecmp

import pytest
import torch

from rlvr.tiny import EOS_TOKEN, PAD_TOKEN, build_model, build_tiny_model, count_parameters


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", seed=0)


def test_loads_through_auto_classes(tiny_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    assert len(tok) == 1024 == model.config.vocab_size
    assert tok.eos_token == EOS_TOKEN and tok.pad_token == PAD_TOKEN
    assert tok.eos_token_id != tok.pad_token_id
    assert model.config.model_type == "qwen2"
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (128, 4)
    assert (model.config.num_attention_heads, model.config.num_key_value_heads) == (4, 2)
    assert model.config.intermediate_size == 512 and model.config.tie_word_embeddings
    # 1024*128 embedding + 4 layers * ~246k = ~1.05M parameters (NOTES.md says "1.1M").
    assert 1.0e6 < count_parameters(model) < 1.2e6
    ids = tok("Q: 23+48 = ? A:", return_tensors="pt")["input_ids"]
    out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert out.shape == (1, ids.shape[1] + 3)


def test_digits_split_and_roundtrip(tiny_dir):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    assert tok.tokenize("1234567") == list("1234567")
    text = "Q: 23+48 = ? A: 71 <answer>71</answer> (the river)\n\nDon't 12.5"
    assert [t for t in tok.tokenize(text) if any(c.isdigit() for c in t)] == list("23487171125")
    assert tok.decode(tok(text)["input_ids"]) == text
    # The pipeline AutoTokenizer rebuilds (Qwen2Tokenizer) splits exactly like the trained file.
    raw = Tokenizer.from_file(str(tiny_dir / "tokenizer.json"))
    assert raw.encode(text).ids == tok(text)["input_ids"]
    assert tok(EOS_TOKEN)["input_ids"] == [tok.eos_token_id]


def test_deterministic_given_seed(tiny_dir, tmp_path):
    again = build_tiny_model(tmp_path / "again", seed=0)
    assert filecmp.cmp(tiny_dir / "tokenizer.json", again / "tokenizer.json", shallow=False)
    assert filecmp.cmp(tiny_dir / "model.safetensors", again / "model.safetensors", shallow=False)

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(again)
    state = torch.random.get_rng_state()
    other = build_model(tok, seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is left alone
    base = build_model(tok, seed=0)
    w0, w1 = base.model.embed_tokens.weight, other.model.embed_tokens.weight
    assert not torch.equal(w0, w1)


def test_shape_overrides(tmp_path):
    path = build_tiny_model(
        tmp_path / "m",
        texts=["ab 12 cd"] * 50,
        vocab_size=300,
        hidden_size=64,
        num_hidden_layers=2,
        tie_word_embeddings=False,
    )
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (64, 2)
    assert not model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
