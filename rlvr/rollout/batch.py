"""Rollout glue: groups of completions become padded tensors, logprobs and one policy loss.

What it does (the plumbing between `rlvr.samplers`, `rlvr.losses` and the trainers):
- `pack_groups(groups, pad_id)`: the sampler's `Group`s -> a `RolloutBatch` of tensors. Prompts are
  left-padded to one width P, completions right-padded to T, so completion token t of every row
  sits at column P + t; ``position_ids`` count real tokens only, so padding changes nothing.
- `forward_logprobs(model, batch, rows)`: per-token logprobs (and entropy) of the completion tokens
  for a slice of rows, computing the output head only on the last T + 1 positions.
- `policy_loss(algo, ...)`: the per-step objective as `rlvr.presets.AlgoConfig` spells it, composed
  from `rlvr.losses` only (policy term, KL term, entropy bonus, TIS weights, aggregation).
- `microbatch_weight(mode, mask, rows, total)`: the factor that makes the sum of micro-batch losses
  equal the loss of the whole minibatch, for each aggregation mode (gradient accumulation).
- `zero_variance(rewards)`: which groups carry no learning signal.

What it does not do: any RL formula of its own (advantages and losses live in `rlvr.advantages`
and `rlvr.losses`), generation, or scoring.

Try it::

    >>> from rlvr.samplers import Completion, Group
    >>> b = pack_groups([Group([5, 6], [Completion("x", [7], [-0.1], "stop")])], pad_id=0)
    >>> b.input_ids.tolist(), b.mask.tolist()
    ([[5, 6, 7]], [[1.0]])
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rlvr.losses import (
    AGGREGATIONS,
    POLICY_LOSSES,
    aggregate,
    entropy_from_logits,
    kl_penalty,
    tis_weights,
    token_logprobs,
)

__all__ = ["RolloutBatch", "forward_logprobs", "microbatch_weight", "objective_kwargs", "pack_groups", "policy_loss",
           "prefix_then_tails", "zero_variance"]


@dataclass
class RolloutBatch:
    """N = B*G rows, prompt-major (row b*G + g is completion g of prompt b)."""

    input_ids: torch.Tensor  # (N, P+T) left-padded prompt, then right-padded completion
    attention_mask: torch.Tensor  # (N, P+T) 1 on real tokens
    position_ids: torch.Tensor  # (N, P+T) 0.. over real tokens
    completion_ids: torch.Tensor  # (N, T)
    mask: torch.Tensor  # (N, T) float, 1 on completion tokens
    sampler_logp: torch.Tensor  # (N, T) the sampler's logprobs, 0 on padding
    truncated: torch.Tensor  # (N,) bool: finish_reason == "length"
    prompt_width: int  # P

    @property
    def lengths(self) -> torch.Tensor:  # (N,)
        return self.mask.sum(-1)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def select(self, idx: torch.Tensor) -> RolloutBatch:
        """The rows `idx` (a 1-D index tensor), same widths."""
        return RolloutBatch(self.input_ids[idx], self.attention_mask[idx], self.position_ids[idx],
                            self.completion_ids[idx], self.mask[idx], self.sampler_logp[idx],
                            self.truncated[idx], self.prompt_width)

    def mask_truncated(self) -> None:
        """Drop completions cut at the token limit from the loss (their mask rows become 0)."""
        self.mask = self.mask * (~self.truncated).unsqueeze(-1).to(self.mask.dtype)


def pack_groups(groups: Sequence[Any], pad_id: int) -> RolloutBatch:
    """Pad every completion of `groups` (prompt-major) into one `RolloutBatch`.

    `groups` are `rlvr.rollout.ScoredGroup`s (whose per-token ``loss_masks`` become ``mask``) or
    the sampler's `Group`s (mask 1 on every completion token).
    """
    rows = [(g.prompt_token_ids, c, m) for g in groups
            for c, m in zip(g.completions, getattr(g, "loss_masks", None) or [None] * len(g.completions))]
    if not rows:
        raise ValueError("pack_groups: no completions")
    width = max(len(p) for p, _, _ in rows)
    t_len = max(1, max(len(c.token_ids) for _, c, _ in rows))
    n = len(rows)
    ids = torch.full((n, width + t_len), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width + t_len), dtype=torch.long)
    logp = torch.zeros((n, t_len))
    mask = torch.zeros((n, t_len))
    truncated = torch.zeros(n, dtype=torch.bool)
    for i, (prompt, comp, loss_mask) in enumerate(rows):
        k = len(comp.token_ids)
        ids[i, width - len(prompt): width] = torch.tensor(prompt)
        ids[i, width: width + k] = torch.tensor(comp.token_ids, dtype=torch.long)
        attn[i, width - len(prompt): width + k] = 1
        logp[i, :k] = torch.tensor(comp.logprobs[:k])
        mask[i, :k] = 1.0 if loss_mask is None else torch.tensor(loss_mask[:k], dtype=torch.float32)
        truncated[i] = comp.finish_reason == "length"
    positions = (attn.cumsum(-1) - 1).clamp(min=0)  # (N, P+T)
    return RolloutBatch(
        input_ids=ids, attention_mask=attn, position_ids=positions, completion_ids=ids[:, width:],
        mask=mask, sampler_logp=logp, truncated=truncated, prompt_width=width,
    )


def forward_logprobs(
    model: Any, batch: RolloutBatch, rows: slice, temperature: float = 1.0, entropy: str = "none",
    group_size: int = 1,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logp (n, T), entropy (n, T) or None) of the completion tokens of `batch[rows]`.

    entropy: "none", "metric" (computed without gradient) or "grad" (differentiable, for a bonus).
    group_size > 1: `rows` are whole groups of G completions of one prompt (prompt-major), so the
    prompt is run once per group and its key/value cache shared by the G completions (the same
    numbers, fewer tokens through the model: B*P + B*G*T instead of B*G*(P+T)).
    """
    if group_size > 1:
        logits = _shared_prefix_logits(model, batch, rows, group_size)
    else:
        t_len = batch.completion_ids.shape[1]
        out = model(
            input_ids=batch.input_ids[rows], attention_mask=batch.attention_mask[rows],
            position_ids=batch.position_ids[rows], logits_to_keep=t_len + 1, use_cache=False,
        )
        logits = out.logits[:, :-1]  # (n, T, V): position P-1+t predicts completion token t
    if temperature != 1.0:
        logits = logits / temperature
    logp = token_logprobs(logits, batch.completion_ids[rows])
    ent = None
    if entropy == "grad":
        ent = entropy_from_logits(logits)
    elif entropy == "metric":
        with torch.no_grad():
            ent = entropy_from_logits(logits.detach())
    return logp, ent


def _shared_prefix_logits(model: Any, batch: RolloutBatch, rows: slice, g: int) -> torch.Tensor:
    """(n, T, V) completion logits, running each group's prompt once (see `forward_logprobs`)."""
    head, tail = prefix_then_tails(model, batch, rows, g, logits_to_keep=1)  # head predicts completion token 0
    return torch.cat([head.logits[:, -1:].repeat_interleave(g, 0), tail.logits[:, :-1]], dim=1)


def prefix_then_tails(model: Any, batch: RolloutBatch, rows: slice, g: int, **head_kwargs: Any) -> tuple[Any, Any]:
    """Run each group's prompt once and its G completions on a copy of the prompt's key/value cache.

    `rows` are whole groups (prompt-major). Returns the model's outputs for the prompts (n/G rows,
    width P) and for the completions (n rows, width T; position t sees the prompt and tokens <= t).
    Works for any transformers decoder head (causal LM, sequence or token classification): the
    cache is passed in, so heads that do not return it still fill it. Gradients flow through both.
    """
    from transformers import DynamicCache

    p_width = batch.prompt_width
    ids, attn, pos = batch.input_ids[rows], batch.attention_mask[rows], batch.position_ids[rows]
    if ids.shape[0] % g:
        raise ValueError(f"shared-prefix forward needs whole groups: {ids.shape[0]} rows, group size {g}")
    config = getattr(getattr(model, "module", model), "config", None)
    cache = DynamicCache(config=config)
    kw = _cache_kwarg(model)
    head = model(input_ids=ids[::g, :p_width], attention_mask=attn[::g, :p_width], position_ids=pos[::g, :p_width],
                 **{kw: cache}, use_cache=True, **head_kwargs)
    for layer in cache.layers:  # (n/G, heads, P, d) -> (n, heads, P, d)
        layer.keys = layer.keys.repeat_interleave(g, 0)
        layer.values = layer.values.repeat_interleave(g, 0)
    tail = model(input_ids=ids[:, p_width:], attention_mask=attn, position_ids=pos[:, p_width:],
                 **{kw: cache}, use_cache=True)
    return head, tail


def _cache_kwarg(model: Any) -> str:
    """The forward keyword that takes a KV cache: ``cache`` (transformers >= 5.2x, where
    ``past_key_values`` is deprecated) or ``past_key_values`` (older releases)."""
    m = getattr(model, "module", model)  # DDP
    m = m.get_base_model() if hasattr(m, "get_base_model") else m  # peft
    return _forward_cache_kwarg(type(m))


@functools.cache
def _forward_cache_kwarg(cls: type) -> str:
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


def microbatch_weight(mode: str, mask: torch.Tensor, rows: slice, total_rows: int | None = None) -> float:
    """Weight of the micro-batch `mask[rows]` so that sum_k w_k * aggregate(mb_k) = aggregate(all),
    for one process: its share of the aggregation's units (`rlvr.losses.Aggregation.units`).
    (`rlvr.trainers.update.run_updates` does the same over every process's units under DDP.)

    token_mean: its share of the tokens; seq_mean_token_mean: its share of the rows with at least
    one token; seq_mean_token_sum_norm: its share of the rows (the normaliser N * L is per row).

    >>> m = torch.tensor([[1., 1.], [1., 0.], [0., 0.]])
    >>> microbatch_weight("token_mean", m, slice(0, 1)), microbatch_weight("seq_mean_token_mean", m, slice(0, 1))
    (0.6666666666666666, 0.5)
    """
    if mode not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation mode {mode!r}")
    units = AGGREGATIONS[mode].units(mask)  # (N,)
    return float(units[rows].sum()) / max(float(units.sum()), 1.0)


def policy_loss(
    algo: Any,
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    max_len: int | None = None,
    ref_logp: torch.Tensor | None = None,
    entropy: torch.Tensor | None = None,
    sampler_logp: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The scalar loss of one micro-batch under `algo` (an `AlgoConfig`): the objective
    `rlvr.presets.describe(algo)` prints. Shapes (n, T); adv (n,) or (n, T); mask is the loss mask
    (truncated completions already zeroed when the preset masks them, see `rlvr.rollout.collect`).

    L = aggregate(w * policy_term) [+ kl_coef * aggregate(KL) when kl_in == "loss"]
        [- entropy_coef * aggregate(entropy)], w = TIS weights when ``algo.tis_cap`` is set, or
        the `rlvr.correction` weights of ``algo.correction`` (which needs ``sampler_logp``).
    Every input the preset needs is required: ``sampler_logp`` with tis_cap, ``ref_logp`` with a KL
    loss term, ``entropy`` with an entropy bonus, ``max_len`` (or algo.norm_length) for
    seq_mean_token_sum_norm; a missing one is a ValueError, never a silently dropped term.
    Metrics: the policy loss's (clip fractions, ratios, approx_kl), ``loss/policy`` (the aggregated
    policy term), and when given ``kl`` and ``entropy`` as token means (comparable across presets).
    """
    name = getattr(algo, "name", "?")
    objective = POLICY_LOSSES[algo.loss]
    per_token, metrics = objective(logp, old_logp, adv, mask, **objective_kwargs(algo, objective))
    if algo.tis_cap is not None:
        if sampler_logp is None:
            raise ValueError(f"preset {name!r} has tis_cap set: pass sampler_logp")
        w, tis_metrics = tis_weights(old_logp, sampler_logp, mask, algo.tis_cap)
        per_token = per_token * w
        metrics.update(tis_metrics)
    if algo.correction != "none":
        per_token = per_token * _correction(algo, old_logp, sampler_logp, mask, metrics)
    norm = algo.norm_length or max_len
    if algo.aggregation == "seq_mean_token_sum_norm" and norm is None:
        raise ValueError(f"preset {name!r} uses seq_mean_token_sum_norm: pass max_len (the run's max_new_tokens) "
                         "or set algo.norm_length")
    loss = aggregate(per_token, mask, algo.aggregation, norm)
    metrics["loss/policy"] = loss.item()
    if algo.kl_in == "loss" and algo.kl_coef > 0 and ref_logp is None:
        raise ValueError(f"preset {name!r} has a KL loss term: pass ref_logp")
    if ref_logp is not None:
        kl = kl_penalty(logp, ref_logp, algo.kl_estimator)  # (n, T)
        metrics["kl"] = aggregate(kl.detach(), mask, "token_mean").item()
        if algo.kl_in == "loss" and algo.kl_coef > 0:
            loss = loss + algo.kl_coef * aggregate(kl, mask, algo.aggregation, norm)
    if algo.entropy_coef > 0 and entropy is None:
        raise ValueError(f"preset {name!r} has an entropy bonus: pass entropy")
    if entropy is not None:
        metrics["entropy"] = aggregate(entropy.detach(), mask, "token_mean").item()
        if algo.entropy_coef > 0:
            loss = loss - algo.entropy_coef * aggregate(entropy, mask, algo.aggregation, norm)
    return loss, metrics


def objective_kwargs(algo: Any, objective: Any) -> dict[str, Any]:
    """The `algo` fields the policy objective takes: those its signature names after (logp, old_logp,
    adv, mask), e.g. clip_low/clip_high/dual_clip for ppo_clip, sapo_tau_pos/sapo_tau_neg for sapo."""
    params = list(inspect.signature(objective).parameters)[4:]
    return {p: getattr(algo, p) for p in params if hasattr(algo, p)}


def _correction(algo: Any, old_logp: torch.Tensor, sampler_logp: torch.Tensor | None, mask: torch.Tensor,
                metrics: dict[str, float]) -> torch.Tensor:
    """(n, T) rollout-correction weights of `algo.correction` (`rlvr.correction`); adds its metrics."""
    from rlvr.correction import correction_weights

    if sampler_logp is None:
        raise ValueError(f"correction={algo.correction!r} needs the sampler's logprobs (sampler_logp)")
    w, m = correction_weights(algo.correction, old_logp, sampler_logp, mask, cap=algo.correction_cap,
                              lo=algo.correction_lo, hi=algo.correction_hi)
    metrics.update(m)
    return w


def zero_variance(rewards: torch.Tensor) -> torch.Tensor:
    """(B,) bool: groups whose G rewards all tie (their advantages are 0: no learning signal).

    >>> zero_variance(torch.tensor([[1., 1.], [0., 1.]])).tolist()
    [True, False]
    """
    return rewards.max(-1).values == rewards.min(-1).values
