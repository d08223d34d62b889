"""`HFSampler`: transformers ``generate`` in batches, for CPUs and for models vLLM lacks.

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from rlvr.samplers import HFSampler, SamplingParams
    model = AutoModelForCausalLM.from_pretrained(path); tok = AutoTokenizer.from_pretrained(path)
    groups = HFSampler(model, tok, batch_size=32).generate(["2+2="], n=4, params=SamplingParams())

What it does:
- repeats each prompt n times, left-pads rows into batches of ``batch_size`` sequences and calls
  ``model.generate`` with an explicit `GenerationConfig` (only our sampling parameters; the
  checkpoint's generation defaults such as ``top_k=50`` or a repetition penalty are NOT applied);
- takes each token's logprob from ``generate``'s processed ``scores`` (temperature, top-k, top-p
  applied), i.e. the distribution the token was drawn from (the convention of
  `rlvr.samplers.base`);
- ends each completion at the first EOS (any id of the tokenizer's or the model's generation
  config) or at the first token whose decoding completes a stop string, searched in the
  completion only, as vLLM does; the rest of the row (padding) is dropped;
- ``seed`` seeds torch's RNG for the call, leaving the caller's RNG state as it was;
- ``timeout_s`` is a deadline checked between decoding steps: past it, `SamplerTimeout`;
- ``on_batch(sequences)``, when set, is called after each batch with the number of sequences it
  finished (progress bars: `rlvr eval` advances per batch, not per chunk of prompts).

Memory: ``generate`` keeps the scores of a batch, ``batch_size × max_new_tokens × vocab × 4``
bytes; lower ``batch_size`` for large vocabularies.

`update_weights`: a no-op when given the sampler's own model (the trainer and the sampler share
it, so it is always in sync); another module or a state dict is copied in with
``load_state_dict``. ``sleep()``/``wake()`` are no-ops. No probe check: there is no second copy
of the weights to drift.

Sampling with the same seed gives different samples here and in vLLM (different RNGs).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from rlvr.samplers.base import (
    Completion,
    Group,
    Prompts,
    Sampler,
    SamplerTimeout,
    SamplingParams,
    check_n,
    cut_at_stop,
    tokenize_prompts,
)

__all__ = ["HFSampler", "eos_ids", "finish"]


def eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every id that ends a completion: the tokenizer's EOS and the generation config's."""
    ids: set[int] = set()
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    gc = getattr(model, "generation_config", None)
    extra = getattr(gc, "eos_token_id", None)
    if extra is not None:
        ids.update(int(e) for e in (extra if isinstance(extra, (list, tuple)) else [extra]))
    return ids


def stop_window(stops: Sequence[str]) -> int:
    """How many trailing tokens to decode to see any stop string (each token is >= 1 char; +8 for
    tokens holding part of a multi-byte character)."""
    return max((len(s) for s in stops), default=0) + 8


def hits_stop(tokens: Sequence[int], tokenizer: Any, stops: Sequence[str], window: int) -> bool:
    """True when the last ``window`` tokens decode to text containing a stop string."""
    text = tokenizer.decode(list(tokens[-window:]), skip_special_tokens=True)
    return any(s in text for s in stops)


def finish(tokens: Sequence[int], eos: set[int], tokenizer: Any, stops: Sequence[str]) -> tuple[int, str]:
    """(length kept, finish reason) of one generated row: cut after the first EOS or stop string.

    >>> finish([5, 6, 2, 0, 0], eos={2}, tokenizer=None, stops=())
    (3, 'stop')
    >>> finish([5, 6, 7], eos={2}, tokenizer=None, stops=())
    (3, 'length')
    """
    window = stop_window(stops)
    for t, tok in enumerate(tokens):
        if tok in eos:
            return t + 1, "stop"
        if stops and hits_stop(tokens[: t + 1], tokenizer, stops, window):
            return t + 1, "stop"
    return len(tokens), "length"


def _criteria(prompt_len: int, tokenizer: Any, stops: Sequence[str], deadline: float | None) -> Any:
    """A transformers StoppingCriteria: stop strings per row, and the call's deadline."""
    import torch
    from transformers import StoppingCriteria

    window = stop_window(stops)

    class _Stop(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:  # (N, P+t) -> (N,)
            if deadline is not None and time.monotonic() > deadline:
                raise SamplerTimeout("HFSampler.generate passed its deadline (timeout_s)")
            done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            if stops:
                for i, row in enumerate(input_ids[:, prompt_len:].tolist()):
                    done[i] = hits_stop(row, tokenizer, stops, window)
            return done

    return _Stop()


class HFSampler(Sampler):
    """transformers ``generate`` with batching. ``batch_size`` counts sequences (prompts × n)."""

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 32, timeout_s: float | None = None,
                 on_batch: Callable[[int], None] | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.on_batch = on_batch
        self.eos = eos_ids(model, tokenizer)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise ValueError("the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token")
        self.pad_id = int(pad)

    def _generation_config(self, params: SamplingParams) -> Any:
        from transformers import GenerationConfig

        common = dict(max_new_tokens=params.max_new_tokens, pad_token_id=self.pad_id,
                      eos_token_id=sorted(self.eos) or None, output_scores=True,
                      return_dict_in_generate=True)
        if params.greedy:
            return GenerationConfig(do_sample=False, **common)
        return GenerationConfig(do_sample=True, temperature=params.temperature, top_p=params.top_p,
                                top_k=params.top_k, **common)

    def _batch(self, rows: list[list[int]], params: SamplingParams, deadline: float | None) -> list[Completion]:
        import torch

        device = next(self.model.parameters()).device
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)  # (N, P) left-padded
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(r)
            mask[i, width - len(r):] = 1
        out = self.model.generate(
            input_ids=ids.to(device), attention_mask=mask.to(device),
            generation_config=self._generation_config(params),
            stopping_criteria=[_criteria(width, self.tokenizer, params.stop, deadline)],
        )
        gen = out.sequences[:, width:]  # (N, T)
        scores = torch.stack(out.scores, dim=1).float()  # (N, T, V)
        logp = torch.log_softmax(scores, dim=-1).gather(-1, gen[..., None])[..., 0].cpu()  # (N, T)
        comps = []
        for i, row in enumerate(gen.tolist()):
            keep, reason = finish(row, self.eos, self.tokenizer, params.stop)
            toks = row[:keep]
            text = self.tokenizer.decode(toks, skip_special_tokens=True)
            comps.append(Completion(text=cut_at_stop(text, params.stop) if reason == "stop" else text,
                                    token_ids=toks, logprobs=logp[i, :keep].tolist(), finish_reason=reason))
        return comps

    def generate(self, prompts: Prompts, n: int, params: SamplingParams) -> list[Group]:
        """Sample ``n`` completions per prompt; see `rlvr.samplers.base` for the conventions."""
        import torch

        check_n(n)
        ids, texts = tokenize_prompts(prompts, self.tokenizer)
        rows = [p for p in ids for _ in range(n)]  # (B*G) prompt rows, prompt-major
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        was_training = self.model.training
        device = next(self.model.parameters()).device
        self.model.eval()
        comps: list[Completion] = []
        try:
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                for s in range(0, len(rows), self.batch_size):
                    comps.extend(self._batch(rows[s:s + self.batch_size], params, deadline))
                    if self.on_batch is not None:
                        self.on_batch(len(rows[s:s + self.batch_size]))
        finally:
            self.model.train(was_training)
        return [Group(prompt_token_ids=p, completions=comps[b * n:(b + 1) * n], prompt=t)
                for b, (p, t) in enumerate(zip(ids, texts))]

    def update_weights(self, weights: Any) -> None:
        """No-op for the sampler's own model; else copy the weights in (strict ``load_state_dict``)."""
        if weights is self.model:
            return
        state = weights.state_dict() if hasattr(weights, "state_dict") else weights
        self.model.load_state_dict(state, strict=True)
