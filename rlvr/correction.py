"""Rollout correction: weights that fix the gap between the policy that sampled and the one that trains.

The sampler's logprobs (``mu``: vLLM, maybe in bf16, maybe a few policy versions old in async mode)
differ from the trainer's logprobs of the same tokens under the weights it is about to update
(``pi_old``). Each mode below turns the log-ratio ``d_t = log pi_old(o_t) - log mu(o_t)`` into a
per-token weight ``w`` (n, T) that multiplies the per-token policy term before aggregation:

- ``token_tis``  w_t = min(exp(d_t), C)                       truncated IS per token (reuses
  `rlvr.losses.tis_weights`);
- ``seq_tis``    w_i = min(exp(sum_t d_t), C)                 one truncated weight per sequence;
- ``seq_mask``   w_i = 1[lo <= exp(sum_t d_t) <= hi]          a sequence whose ratio leaves
  [lo, hi] is dropped from the loss, the others are kept unweighted (rejection, as TRL's
  ``sequence_mask`` and verl's ``rollout_rs``);
- ``token_mask`` w_t = exp(d_t) * 1[lo <= exp(d_t) <= hi]     IcePop: IS weight per token, tokens
  whose ratio leaves [lo, hi] get weight 0.

Every weight is detached (no gradient) and 0 on padding. `correction_weights` dispatches on the
mode name and returns metrics: token and sequence ratio statistics (``is/token_ratio_mean``,
``is/token_ratio_max``, ``is/token_ratio_min``, ``is/seq_ratio_mean``) and the fraction of real
tokens the mode zeroes (``is/masked_frac``) or caps (``is/capped_frac``).

What it does not do: compute logprobs, or choose where the loss applies the weights
(`rlvr.rollout` multiplies them into the policy term).

Try it::

    >>> import torch
    >>> old, mu, m = torch.zeros(1, 2), torch.log(torch.tensor([[0.5, 4.0]])), torch.ones(1, 2)
    >>> correction_weights("token_mask", old, mu, m, lo=0.5, hi=2.0)[0]
    tensor([[2., 0.]])
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from rlvr.losses import masked_mean, tis_weights

__all__ = ["CORRECTIONS", "FORMULAS", "Correction", "correction_weights", "describe_correction", "seq_log_ratio",
           "seq_mask", "seq_tis", "token_mask"]

Correction = Literal["none", "token_tis", "seq_tis", "seq_mask", "token_mask"]
CORRECTIONS: tuple[str, ...] = ("none", "token_tis", "seq_tis", "seq_mask", "token_mask")

FORMULAS = {
    "none": "no correction (w = 1)",
    "token_tis": "w_i,t = min(π_old(o_i,t)/μ(o_i,t), {cap})  (token TIS)",
    "seq_tis": "w_i = min(Π_t π_old(o_i,t)/μ(o_i,t), {cap})  (sequence TIS, one weight per completion)",
    "seq_mask": "w_i = 1[{lo} ≤ Π_t π_old(o_i,t)/μ(o_i,t) ≤ {hi}]  (sequence masking: drop a completion whose ratio leaves the range)",
    "token_mask": "w_i,t = r_i,t·1[{lo} ≤ r_i,t ≤ {hi}], r_i,t = π_old(o_i,t)/μ(o_i,t)  (token masking, IcePop)",
}


def describe_correction(mode: str, cap: float, lo: float, hi: float) -> str:
    """The formula of `mode` with its constants, as `rlvr presets show` prints it.

    >>> describe_correction("seq_mask", 2.0, 0.5, 2.0)[:28]
    'w_i = 1[0.5 ≤ Π_t π_old(o_i,'
    """
    return FORMULAS[mode].format(cap=f"{cap:g}", lo=f"{lo:g}", hi=f"{hi:g}")


def _log_ratio(old_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(n, T) d_t = log pi_old - log mu on real tokens, 0 on padding."""
    return (old_logp.detach() - sampler_logp.detach()) * mask.to(old_logp.dtype)


def seq_log_ratio(old_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(n,) log of the sequence ratio, sum_t d_t (0 for a row without tokens).

    >>> seq_log_ratio(torch.tensor([[0.0, 0.0]]), torch.tensor([[-1.0, -2.0]]), torch.tensor([[1.0, 0.0]]))
    tensor([1.])
    """
    return _log_ratio(old_logp, sampler_logp, mask).sum(-1)


def seq_tis(old_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor, cap: float) -> torch.Tensor:
    """(n, T) w_i = min(exp(sum_t d_t), cap) on every real token of row i (clamped in log space)."""
    with torch.no_grad():
        s = seq_log_ratio(old_logp, sampler_logp, mask).clamp(max=math.log(cap))
        return s.exp()[:, None] * mask.to(s.dtype)


def seq_mask(old_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """(n, T) 1 on the real tokens of rows with lo <= exp(sum_t d_t) <= hi, else 0."""
    with torch.no_grad():
        s = seq_log_ratio(old_logp, sampler_logp, mask)
        keep = (s >= math.log(lo)) & (s <= math.log(hi))
        return keep.to(mask.dtype)[:, None] * mask


def token_mask(old_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """(n, T) IcePop: r_t = exp(d_t) where lo <= r_t <= hi, else 0; 0 on padding."""
    with torch.no_grad():
        r = _log_ratio(old_logp, sampler_logp, mask).exp()
        keep = (r >= lo) & (r <= hi)
        return r * keep.to(r.dtype) * mask.to(r.dtype)


def _stats(old_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """IS-ratio statistics over real tokens and over rows with at least one token."""
    with torch.no_grad():
        real = mask > 0
        r = _log_ratio(old_logp, sampler_logp, mask).exp()
        rows = real.any(-1)
        if not bool(real.any()):
            return {"is/token_ratio_mean": 1.0, "is/token_ratio_max": 1.0, "is/token_ratio_min": 1.0, "is/seq_ratio_mean": 1.0}
        seq = seq_log_ratio(old_logp, sampler_logp, mask)[rows].exp()
        return {"is/token_ratio_mean": masked_mean(r, mask).item(), "is/token_ratio_max": r[real].max().item(),
                "is/token_ratio_min": r[real].min().item(), "is/seq_ratio_mean": seq.mean().item()}


def correction_weights(
    mode: str, old_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor, *,
    cap: float = 2.0, lo: float = 0.5, hi: float = 2.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """(w (n, T) detached, metrics) for `mode` (one of `CORRECTIONS`); shapes (n, T).

    ``cap`` bounds the TIS modes, ``[lo, hi]`` the masking modes. ``none`` returns the mask itself.
    """
    if mode == "none":
        w = mask.to(old_logp.dtype)
    elif mode == "token_tis":
        w, _ = tis_weights(old_logp.detach(), sampler_logp.detach(), mask, cap)
    elif mode == "seq_tis":
        w = seq_tis(old_logp, sampler_logp, mask, cap)
    elif mode == "seq_mask":
        w = seq_mask(old_logp, sampler_logp, mask, lo, hi)
    elif mode == "token_mask":
        w = token_mask(old_logp, sampler_logp, mask, lo, hi)
    else:
        raise ValueError(f"unknown rollout correction {mode!r}; one of {', '.join(CORRECTIONS)}")
    metrics = _stats(old_logp, sampler_logp, mask)
    real = mask > 0
    n_real = max(int(real.sum()), 1)
    metrics["is/masked_frac"] = float(((w == 0) & real).sum()) / n_real
    if mode in ("token_tis", "seq_tis"):
        raw = _log_ratio(old_logp, sampler_logp, mask)
        over = (raw > math.log(cap)) if mode == "token_tis" else (raw.sum(-1, keepdim=True) > math.log(cap)).expand_as(raw)
        metrics["is/capped_frac"] = float((over & real).sum()) / n_real
    return w, metrics
