"""The newer policy objectives: CISPO, SAPO, GMPO and DPPO (registered in `rlvr.losses.POLICY_LOSSES`).

What it does (pure tensor functions, same contract as `rlvr.losses.ppo_clip`: logp, old_logp (B*G, T),
adv (B*G,) or (B*G, T), mask (B*G, T) -> (per-token loss (B*G, T), metrics)):
- `cispo`: REINFORCE with a clipped, detached importance weight (MiniMax-M1).
- `sapo`: a sigmoid soft gate on the ratio instead of a hard clip (Qwen, SAPO).
- `gmpo`: the geometric mean of the token ratios, clipped in log space (GMPO).
- `dppo`: PPO's ratio mask replaced by a mask on the probability change (DPPO-Binary-TV).
Each carries ``ratio_formula`` / ``ratio_symbol`` / ``term`` (the text `rlvr presets show` prints;
``term`` has the holes {rho} {a} {lo} {hi} {c} {tau_pos} {tau_neg}). Extra knobs (sapo's
temperatures, dppo's cap) are keyword arguments named like the `rlvr.presets.AlgoConfig` fields
that feed them; `rlvr.rollout.policy_loss` passes exactly the fields a function's signature names.

What it does not do: aggregation (see `rlvr.losses.aggregate`), KL, entropy, or any trainer logic.

Try it:
    python -c "import torch; from rlvr.objectives import sapo; \\
print(sapo(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1), torch.ones(1, 2))[0])"
"""

from __future__ import annotations

import torch

from rlvr.advantages import masked_mean

Metrics = dict[str, float]


def _token_adv(adv: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    from rlvr.losses import _as_token_adv

    return _as_token_adv(adv, like)


def _common_metrics(ratio: torch.Tensor, logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> Metrics:
    from rlvr.losses import kl_penalty

    with torch.no_grad():
        return {"ratio_mean": masked_mean(ratio, mask).item(),
                "approx_kl": masked_mean(kl_penalty(old_logp, logp, "k3"), mask).item()}


def cispo(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
          clip_low: float = 1.0, clip_high: float = 4.0) -> tuple[torch.Tensor, Metrics]:
    """CISPO (MiniMax-M1, arXiv:2506.13585): loss_t = -sg(clip(ρ_t, 1 - clip_low, 1 + clip_high)) · A · logp_t.

    Every token keeps a gradient (A ∇logp scaled by the clipped weight); PPO instead drops the
    gradient of clipped tokens. The paper sets no lower bound (a large ε_low): clip_low = 1 gives
    the bound 0. Implementations disagree on the upper bound's spelling: verl clamps at
    1 + clip_ratio_high, TRL at epsilon_high itself (its recommended 5.0). We follow the paper and
    verl (1 + clip_high), so the preset's clip_high = 4 is TRL's 5.0. Metric: ``is_clip_frac``.

    >>> cispo(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1), torch.ones(1, 1))[0]
    tensor([[-0.]])
    """
    a = _token_adv(adv, logp)
    ratio = torch.exp(logp - old_logp.detach())
    weight = ratio.clamp(1.0 - clip_low, 1.0 + clip_high).detach()  # (B*G, T)
    loss = -weight * a * logp
    metrics = _common_metrics(ratio, logp, old_logp, mask)
    with torch.no_grad():
        metrics["is_clip_frac"] = masked_mean((weight != ratio).float(), mask).item()
    return loss * mask.to(loss.dtype), metrics


def sapo(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
         sapo_tau_pos: float = 1.0, sapo_tau_neg: float = 1.05) -> tuple[torch.Tensor, Metrics]:
    """SAPO (Qwen, arXiv:2511.20347): loss_t = -f(ρ_t) · A, f(ρ) = σ(τ (ρ - 1)) · 4/τ, τ = τ_pos if A > 0 else τ_neg.

    The gate's gradient 4 σ(1 - σ) ρ ∇logp equals PPO's at ρ = 1 and decays smoothly as the ratio
    leaves 1 (faster for negative advantages, τ_neg > τ_pos). The paper's defaults are (1.0, 1.05);
    verl's fallback for τ_neg is 1.0, TRL/Trinity/AReaL use 1.05: we use the paper's. A = 0 takes
    τ_neg (as verl's `A > 0` test does; the term is 0 either way). Metric: ``gate_mean`` (the mean
    derivative factor 4σ(1-σ), 1 on-policy).
    """
    a = _token_adv(adv, logp)
    ratio = torch.exp(logp - old_logp.detach())
    tau = torch.where(a > 0, torch.full_like(a, sapo_tau_pos), torch.full_like(a, sapo_tau_neg))
    s = torch.sigmoid(tau * (ratio - 1.0))
    loss = -s * (4.0 / tau) * a
    metrics = _common_metrics(ratio, logp, old_logp, mask)
    with torch.no_grad():
        metrics["gate_mean"] = masked_mean(4.0 * s * (1.0 - s), mask).item()
    return loss * mask.to(loss.dtype), metrics


def gmpo(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
         clip_low: float = 0.4, clip_high: float = 0.4) -> tuple[torch.Tensor, Metrics]:
    """GMPO (arXiv:2507.20673): one ratio per sequence, the geometric mean of clipped token ratios.

    With δ_t = logp_t - old_logp_t and s = sign(A): δ̃_t = s · min(s δ_t, s · clip(δ_t, -clip_low,
    clip_high)) (the PPO-style pessimistic clip, in log space: the paper's (e^-0.4, e^0.4)),
    g_i = exp(mean_t δ̃_t) over the sequence's valid tokens, loss_i = -A_i g_i. The value is put on
    every token of the row (so `seq_mean_token_mean` gives loss_i with its full gradient; the
    preset uses it). Needs one advantage per sequence: token advantages are averaged over the
    valid tokens, as verl does. Metric: ``clip_frac`` (tokens whose clipped δ is active).
    """
    mask_f = mask.to(logp.dtype)
    a_tok = _token_adv(adv, logp)
    a_seq = (a_tok * mask_f).sum(-1) / mask_f.sum(-1).clamp(min=1.0)  # (B*G,)
    delta = logp - old_logp.detach()
    sign = torch.sign(a_seq).unsqueeze(-1)  # (B*G, 1)
    clipped = sign * torch.minimum(sign * delta, sign * delta.clamp(-clip_low, clip_high))
    g = torch.exp((clipped * mask_f).sum(-1) / mask_f.sum(-1).clamp(min=1.0))  # (B*G,)
    loss = (-a_seq * g).unsqueeze(-1).expand_as(logp)
    metrics = _common_metrics(torch.exp(delta), logp, old_logp, mask)
    with torch.no_grad():
        metrics["clip_frac"] = masked_mean((clipped != delta).float(), mask).item()
        metrics["seq_ratio_mean"] = g.mean().item() if g.numel() else 1.0
    return loss * mask_f, metrics


def dppo(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
         clip_low: float = 0.2, clip_high: float = 0.2, dppo_ratio_cap: float = 3.0) -> tuple[torch.Tensor, Metrics]:
    """DPPO-Binary-TV (arXiv:2602.04879): a trust region on the probability change, not the ratio.

    Token t is kept unless the step moved it past the region in the direction the advantage
    pushes: M_t = 0 if A > 0 and p_t - p_old,t > clip_high, or A ≤ 0 and p_t - p_old,t < -clip_low
    (p = exp(logp): the total-variation change of the binary distribution {o_t, not o_t}). Inside,
    the gradient is the unclipped policy gradient A · ρ ∇logp, with ρ truncated at dppo_ratio_cap:
    loss_t = -M_t · sg(min(ρ_t, C)) · A · logp_t. Implementations: verl takes C from clip_ratio_c
    (its actor default 3.0), which we copy as dppo_ratio_cap; A = 0 takes the negative branch as in
    verl (the term is 0). The paper's Binary-KL variant (a KL bound on the same binary
    distributions) is not implemented. Metric: ``mask_frac`` (tokens masked out).
    """
    a = _token_adv(adv, logp)
    ratio = torch.exp(logp - old_logp.detach())
    with torch.no_grad():
        change = torch.exp(logp) - torch.exp(old_logp)
        keep = torch.where(a > 0, change <= clip_high, change >= -clip_low).to(logp.dtype)
        weight = ratio.clamp(max=dppo_ratio_cap)
    loss = -keep * weight * a * logp
    metrics = _common_metrics(ratio, logp, old_logp, mask)
    with torch.no_grad():
        metrics["mask_frac"] = masked_mean(1.0 - keep, mask).item()
        metrics["ratio_cap_frac"] = masked_mean((ratio > dppo_ratio_cap).float(), mask).item()
    return loss * mask.to(loss.dtype), metrics


_TOKEN_RATIO = "ρ_i,t = π_θ(o_i,t | q, o_i,<t) / π_old(o_i,t | q, o_i,<t)"
cispo.ratio_formula = _TOKEN_RATIO  # type: ignore[attr-defined]
cispo.ratio_symbol = "ρ_i,t"  # type: ignore[attr-defined]
cispo.term = "sg(clip({rho}, 1−{lo}, 1+{hi}))·{a}·log π_θ(o_i,t)"  # type: ignore[attr-defined]
sapo.ratio_formula = _TOKEN_RATIO  # type: ignore[attr-defined]
sapo.ratio_symbol = "ρ_i,t"  # type: ignore[attr-defined]
sapo.term = "σ(τ·({rho} − 1))·4/τ·{a}, τ = {tau_pos} if {a} > 0 else {tau_neg}"  # type: ignore[attr-defined]
gmpo.ratio_formula = ("g_i = exp(1/|o_i| Σ_t δ̃_i,t), δ = log π_θ(o_i,t) − log π_old(o_i,t), "  # type: ignore[attr-defined]
                      "δ̃ = sgn(A_i)·min(sgn(A_i)·δ, sgn(A_i)·clip(δ, −{lo}, {hi}))  [geometric mean, one per sequence]")
gmpo.ratio_symbol = "g_i"  # type: ignore[attr-defined]
gmpo.term = "{rho}·{a}"  # type: ignore[attr-defined]
dppo.ratio_formula = _TOKEN_RATIO  # type: ignore[attr-defined]
dppo.ratio_symbol = "ρ_i,t"  # type: ignore[attr-defined]
dppo.term = ("M_i,t·sg(min({rho}, {c}))·{a}·log π_θ(o_i,t), M_i,t = 0 where {a} > 0 and π_θ(o_i,t) − π_old(o_i,t) > {hi} "  # type: ignore[attr-defined]
             "or {a} ≤ 0 and π_θ(o_i,t) − π_old(o_i,t) < −{lo}, else 1")

OBJECTIVES = {"cispo": cispo, "sapo": sapo, "gmpo": gmpo, "dppo": dppo}

__all__ = ["OBJECTIVES", "cispo", "dppo", "gmpo", "sapo"]
