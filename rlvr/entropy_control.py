"""Entropy controls against entropy collapse: an adaptive entropy coefficient, and KL-Cov / Clip-Cov.

What it does (pure functions; shapes (B*G, T) with mask 1 on completion tokens):
- `adaptive_entropy_coef(coef, entropy, target, delta, max_coef)`: one controller step. The
  coefficient of the entropy bonus rises by `delta` after a step whose mean token entropy fell
  below `target` and falls by `delta` when above, clipped to [0, max_coef] (the fixed-step rule of
  Skywork-OR1's adaptive entropy control; SAC-style controllers update log α by gradient instead:
  same direction, different step). The trainer keeps the coefficient in its checkpointed state
  (``state["entropy_coef"]``), so a resumed run continues from it.
- `token_covariance(logp, adv, mask)`: Cov_t = (logp_t − mean logp)·(A_t − mean A), means over the
  batch's valid tokens (Cui et al. 2025, "The Entropy Mechanism of RL for Reasoning LMs": tokens
  with high covariance between log-probability and advantage are the ones that drive entropy down).
- `kl_cov` / `clip_cov`: policy objectives (registered in `rlvr.losses.POLICY_LOSSES`) that act on
  those tokens. kl_cov adds cov_kl_coef·|logp − old_logp| to the PPO-clip loss of the top
  cov_top_frac of tokens by covariance; clip_cov detaches the gradient of a cov_clip_frac sample of
  the tokens whose covariance lies in [cov_lb, cov_ub]. Both are otherwise `ppo_clip`.

What it does not do: compute entropy (see `rlvr.losses.entropy_from_logits`) or run the trainer.

Try it:
    python -c "from rlvr.entropy_control import adaptive_entropy_coef as f; print(f(0.0, 0.1, 0.3, 0.01, 0.1))"
"""

from __future__ import annotations

import math

import torch

from rlvr.advantages import masked_mean

Metrics = dict[str, float]


def adaptive_entropy_coef(coef: float, entropy: float, target: float, delta: float, max_coef: float) -> float:
    """The next entropy coefficient: coef + delta if entropy < target, coef − delta if above, in [0, max_coef].

    >>> adaptive_entropy_coef(0.0, entropy=0.1, target=0.3, delta=0.01, max_coef=0.05)
    0.01
    """
    if entropy < target:
        coef += delta
    elif entropy > target:
        coef -= delta
    return min(max(coef, 0.0), max_coef)


def token_covariance(logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B*G, T) centred products (logp − mean)(A − mean) over the valid tokens, detached; 0 on padding."""
    with torch.no_grad():
        lp, a, m = logp.detach(), adv, mask.to(logp.dtype)
        cov = (lp - masked_mean(lp, m)) * (a - masked_mean(a, m))
        return cov * m


def _ppo_base(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
              clip_low: float, clip_high: float) -> tuple[torch.Tensor, torch.Tensor, Metrics]:
    from rlvr.losses import _as_token_adv, ppo_clip

    a = _as_token_adv(adv, logp)
    loss, metrics = ppo_clip(logp, old_logp, a, mask, clip_low=clip_low, clip_high=clip_high)
    return loss, a, metrics


def kl_cov(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
           clip_low: float = 0.2, clip_high: float = 0.2, cov_top_frac: float = 0.002,
           cov_kl_coef: float = 1.0) -> tuple[torch.Tensor, Metrics]:
    """KL-Cov: ppo_clip, plus cov_kl_coef·|logp_t − old_logp_t| on the k = max(1, round(frac·N_valid))
    tokens of highest covariance (ties: the lower flat index first, as torch.topk on CPU).

    verl's kl_cov drops PPO's clip (it uses −A·ρ) and SkyRL follows it; the paper's listing adds the
    penalty to the unclipped surrogate as well. We keep the clipped surrogate (the preset's base
    objective) and say so in `rlvr presets show`: with the paper's setting (on-policy, one update
    per batch, ρ = 1) the two are equal.
    """
    loss, a, metrics = _ppo_base(logp, old_logp, adv, mask, clip_low, clip_high)
    cov = token_covariance(logp, a, mask)
    valid = mask.bool().reshape(-1)
    n_valid = int(valid.sum())
    selected = torch.zeros_like(valid)
    if n_valid and cov_top_frac > 0:
        k = max(1, round(cov_top_frac * n_valid))
        scores = torch.where(valid, cov.reshape(-1), torch.full_like(cov.reshape(-1), -math.inf))
        selected[torch.topk(scores, k).indices] = True
    sel = selected.reshape(mask.shape).to(loss.dtype)
    loss = loss + cov_kl_coef * sel * (logp - old_logp.detach()).abs() * mask.to(loss.dtype)
    metrics["cov_selected_frac"] = float(sel.sum()) / max(n_valid, 1)
    return loss, metrics


def clip_cov(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
             clip_low: float = 0.2, clip_high: float = 0.2, cov_clip_frac: float = 0.0002, cov_lb: float = 1.0,
             cov_ub: float = 5.0) -> tuple[torch.Tensor, Metrics]:
    """Clip-Cov: ppo_clip with the gradient detached on k = max(1, round(frac·N_valid)) tokens drawn at
    random (torch's global generator, seeded by the run) among those with cov_lb ≤ Cov_t ≤ cov_ub
    (all of them if fewer). The loss value is unchanged; only the gradient of those tokens is cut.
    verl and SkyRL draw the same way and their defaults (2e-4, 1, 5) are ours; they multiply those
    tokens' loss by 0 (same gradient, value 0), we keep the value so the logged loss stays comparable.
    """
    loss, a, metrics = _ppo_base(logp, old_logp, adv, mask, clip_low, clip_high)
    cov = token_covariance(logp, a, mask).reshape(-1)
    band = mask.bool().reshape(-1) & (cov >= cov_lb) & (cov <= cov_ub)
    candidates = band.nonzero().squeeze(-1)
    cut = torch.zeros_like(band)
    n_valid = int(mask.sum())
    if candidates.numel() and cov_clip_frac > 0:
        k = min(candidates.numel(), max(1, round(cov_clip_frac * n_valid)))
        cut[candidates[torch.randperm(candidates.numel())[:k]]] = True
    cut = cut.reshape(mask.shape)
    loss = torch.where(cut, loss.detach(), loss)
    metrics["cov_band_frac"] = float(band.sum()) / max(n_valid, 1)
    metrics["cov_clipped_frac"] = float(cut.sum()) / max(n_valid, 1)
    return loss, metrics


_TOKEN_RATIO = "ρ_i,t = π_θ(o_i,t | q, o_i,<t) / π_old(o_i,t | q, o_i,<t)"
kl_cov.ratio_formula = clip_cov.ratio_formula = _TOKEN_RATIO  # type: ignore[attr-defined]
kl_cov.ratio_symbol = clip_cov.ratio_symbol = "ρ_i,t"  # type: ignore[attr-defined]
kl_cov.term = ("min({rho}·{a}, clip({rho}, 1−{lo}, 1+{hi})·{a}) − {kl_coef}·S_i,t·|log π_θ(o_i,t) − log π_old(o_i,t)|, "  # type: ignore[attr-defined]
               "S_i,t = 1 on the top {top_frac} of tokens by Cov_i,t = (log π_θ(o_i,t) − mean log π)·(A_i,t − mean A)")
clip_cov.term = ("min({rho}·{a}, clip({rho}, 1−{lo}, 1+{hi})·{a}) with the gradient cut on a random {clip_frac} of the tokens "  # type: ignore[attr-defined]
                 "whose Cov_i,t = (log π_θ(o_i,t) − mean log π)·(A_i,t − mean A) lies in [{cov_lb}, {cov_ub}]")

OBJECTIVES = {"kl_cov": kl_cov, "clip_cov": clip_cov}

__all__ = ["OBJECTIVES", "adaptive_entropy_coef", "clip_cov", "kl_cov", "token_covariance"]
