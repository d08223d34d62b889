"""Samplers: prompts become groups of completions with per-token logprobs.

| sampler             | where it runs                          | weight sync                          |
|---------------------|----------------------------------------|--------------------------------------|
| `HFSampler`         | transformers ``generate``, any device  | shares the trainer's model (no copy) |
| `VLLMSampler`       | vLLM in this process (colocated)       | push + probe check after every step  |
| `VLLMServerSampler` | a ``rlvr serve`` vLLM server over HTTP | push + probe check after every step  |

All return `Group`s of `Completion`s under one convention (`rlvr.samplers.base`); see
docs/generation.md. Importing this package never imports vLLM: the vLLM samplers import it when
they start (`VLLMServerSampler` never does; the server does).

Try it:
    >>> from rlvr.samplers import SamplingParams
    >>> SamplingParams(max_new_tokens=8).max_new_tokens
    8
"""

from rlvr.samplers.base import (
    Completion,
    Group,
    Sampler,
    SamplerClosedError,
    SamplerError,
    SamplerTimeout,
    SamplingParams,
    WeightSyncError,
)
from rlvr.samplers.hf import HFSampler
from rlvr.samplers.sync import SyncReport
from rlvr.samplers.vllm import VLLMSampler
from rlvr.samplers.vllm_server import VLLMServerSampler

__all__ = [
    "Completion",
    "Group",
    "HFSampler",
    "Sampler",
    "SamplerClosedError",
    "SamplerError",
    "SamplerTimeout",
    "SamplingParams",
    "SyncReport",
    "VLLMSampler",
    "VLLMServerSampler",
    "WeightSyncError",
]
