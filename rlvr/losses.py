"""Per-token RL objectives, KL, entropy, value loss, aggregation, and the SFT/reward/preference losses.

What it does (pure tensor functions; shapes use B prompts, G group size, T tokens, V vocabulary,
P preference pairs; policy tensors are (B*G, T) and "mask" is 1 on completion tokens):
- `token_logprobs`, `entropy_from_logits`: from logits (B*G, T, V), one row at a time so the full
  (B*G, T, V) log-softmax is never materialised.
- Policy objectives returning (per-token loss (B*G, T), metrics): `ppo_clip` (separate low/high
  epsilon = DAPO clip-higher, optional dual clip c) and `gspo` (sequence-level, length-normalised
  ratio). Registry: `POLICY_LOSSES`, which also holds CISPO, SAPO, GMPO and DPPO from
  `rlvr.objectives` and KL-Cov / Clip-Cov from `rlvr.entropy_control`.
- `aggregate(loss, mask, mode, max_len)`: `token_mean`, `seq_mean_token_mean`,
  `seq_mean_token_sum_norm` (Dr.GRPO: divide by a constant length). Registry: `AGGREGATIONS`.
- `kl_penalty(logp, ref_logp, "k1"|"k2"|"k3")` for a KL loss term, `kl_reward` for the per-token
  reward penalty, `adaptive_kl_coef` (the PPO controller); `tis_weights` (truncated importance
  sampling between the sampler's and the trainer's logprobs); `value_loss` (clipped).
- Pipeline losses (scalars + metrics): `sft_loss`, `bradley_terry_loss`, `dpo_loss` (sigmoid, cDPO
  via label smoothing, IPO), `simpo_loss`, `orpo_loss`, `kto_loss`.

What it does not do: no models, no optimiser, no reward computation (see `rlvr.advantages`).

Try it:
    python -c "import torch; from rlvr.losses import ppo_clip, aggregate; \\
l, m = ppo_clip(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1), torch.ones(1, 2)); print(l, m)"
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlvr.advantages import masked_mean, masked_var, masked_whiten

__all__ = ["masked_mean", "masked_var", "masked_whiten"]  # extended below as names are defined

Metrics = dict[str, float]

# ---------------------------------------------------------------- logits -> per-token quantities


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log softmax(logits / temperature)[ids]; (B*G, T, V), (B*G, T) -> (B*G, T).

    Works row by row: gather the chosen logit, subtract logsumexp. Memory is one (T, V) row in
    float32 at a time instead of a (B*G, T, V) log-softmax.

    >>> token_logprobs(torch.zeros(1, 1, 4), torch.tensor([[2]]))
    tensor([[-1.3863]])
    """
    rows = []
    for row, row_ids in zip(logits, ids):  # (T, V), (T,)
        row = row.float() / temperature if temperature != 1.0 else row.float()
        picked = row.gather(-1, row_ids.unsqueeze(-1)).squeeze(-1)  # (T,)
        rows.append(picked - torch.logsumexp(row, dim=-1))
    return torch.stack(rows)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) per position: H = logsumexp(z) - sum softmax(z) * z. (B*G, T).

    >>> entropy_from_logits(torch.zeros(1, 1, 4))
    tensor([[1.3863]])
    """
    rows = []
    for row in logits:  # (T, V)
        row = row.float()
        probs = torch.softmax(row, dim=-1)
        rows.append(torch.logsumexp(row, dim=-1) - (probs * row).sum(-1))
    return torch.stack(rows)


# ---------------------------------------------------------------- aggregation


@dataclass(frozen=True)
class Aggregation:
    """One way to reduce a per-token loss (B*G, T) to a scalar, with what the rest of rlvr needs.

    reduce(loss, mask, max_len): the scalar. units(mask) -> (B*G,): what each row contributes to
    the denominator (tokens, 1 per non-empty row, 1 per row); a micro-batch's gradient-accumulation
    weight is its share of the units, summed over every process under DDP (the loss of the global
    batch). formula: the text `rlvr presets show` prints, with ``{term}`` and ``{length}`` holes.
    """

    name: str
    formula: str
    reduce: Callable[[torch.Tensor, torch.Tensor, int | None], torch.Tensor]
    units: Callable[[torch.Tensor], torch.Tensor]
    unit: str  # what `units` counts, in words


def _token_mean(loss: torch.Tensor, mask: torch.Tensor, max_len: int | None) -> torch.Tensor:
    return (loss * mask).sum() / mask.sum().clamp(min=1.0)


def _seq_mean_token_mean(loss: torch.Tensor, mask: torch.Tensor, max_len: int | None) -> torch.Tensor:
    lengths = mask.sum(-1)  # (B*G,)
    per_seq = (loss * mask).sum(-1) / lengths.clamp(min=1.0)
    has_tokens = (lengths > 0).to(loss.dtype)
    return (per_seq * has_tokens).sum() / has_tokens.sum().clamp(min=1.0)


def _seq_mean_token_sum_norm(loss: torch.Tensor, mask: torch.Tensor, max_len: int | None) -> torch.Tensor:
    if max_len is None:
        raise ValueError("aggregate: seq_mean_token_sum_norm needs max_len (the constant normaliser, e.g. the "
                         "run's max_new_tokens or algo.norm_length)")
    if max_len <= 0:
        raise ValueError(f"aggregate: max_len must be positive, got {max_len}")
    return (loss * mask).sum() / (loss.shape[0] * max_len)


AGGREGATIONS: dict[str, Aggregation] = {
    a.name: a
    for a in (
        Aggregation("token_mean", "1/Σ_i|o_i| Σ_i Σ_t {term}", _token_mean, lambda m: m.sum(-1), "tokens"),
        Aggregation("seq_mean_token_mean", "1/N Σ_i 1/|o_i| Σ_t {term}", _seq_mean_token_mean,
                    lambda m: (m.sum(-1) > 0).to(m.dtype), "completions with at least one token"),
        Aggregation("seq_mean_token_sum_norm", "1/(N·{length}) Σ_i Σ_t {term}", _seq_mean_token_sum_norm,
                    lambda m: torch.ones(m.shape[0], dtype=m.dtype), "completions"),
    )
}


def aggregate(
    loss: torch.Tensor, mask: torch.Tensor, mode: str = "token_mean", max_len: int | None = None
) -> torch.Tensor:
    """Reduce a per-token loss (B*G, T) to a scalar (over this process's rows).

    - token_mean:              sum_i sum_t l_it m_it / sum_i sum_t m_it        (DAPO, every token equal)
    - seq_mean_token_mean:     mean over sequences with >=1 token of (sum_t l m / sum_t m)   (GRPO)
    - seq_mean_token_sum_norm: sum_i sum_t l_it m_it / (N * max_len)            (Dr.GRPO, as in oat:
      N = number of rows, max_len a constant, the generation limit; required)
    Under DDP the trainer weights each process's value by its share of the global units
    (`Aggregation.units`), so the gradient is that of the global batch.

    >>> aggregate(torch.tensor([[1., 1.], [4., 0.]]), torch.tensor([[1., 1.], [1., 0.]]), "token_mean")
    tensor(2.)
    """
    if mode not in AGGREGATIONS:
        raise ValueError(f"aggregate: unknown mode {mode!r}; choose one of {sorted(AGGREGATIONS)}")
    return AGGREGATIONS[mode].reduce(loss, mask.to(loss.dtype), max_len)


# ---------------------------------------------------------------- policy objectives


def _as_token_adv(adv: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Advantages given per sequence (B*G,) or per token (B*G, T) -> (B*G, T)."""
    if adv.dim() == 1 and adv.shape[0] == like.shape[0]:
        return adv.reshape(-1, 1).expand_as(like)
    if adv.shape != like.shape:
        raise ValueError(
            f"advantages must be (B*G,) or (B*G, T) = {tuple(like.shape)}, got {tuple(adv.shape)}"
        )
    return adv


def _clip_objective(
    log_ratio: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None,
) -> tuple[torch.Tensor, Metrics]:
    """The shared clipped surrogate: -min(rho A, clip(rho, 1-lo, 1+hi) A), with optional dual clip."""
    ratio = torch.exp(log_ratio)  # (B*G, T)
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    loss = torch.maximum(unclipped, clipped)
    metrics: Metrics = {}
    if dual_clip is not None:
        if dual_clip <= 1.0:
            raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
        capped = torch.minimum(loss, -adv * dual_clip)  # for A < 0 the loss is at most -c A
        metrics["dual_clip_frac"] = masked_mean(((adv < 0) & (capped < loss)).float(), mask).item()
        loss = torch.where(adv < 0, capped, loss)
    with torch.no_grad():
        metrics["clip_frac"] = masked_mean((clipped > unclipped).float(), mask).item()
        metrics["clip_frac_low"] = masked_mean(((ratio < 1 - clip_low) & (adv < 0)).float(), mask).item()
        metrics["clip_frac_high"] = masked_mean(((ratio > 1 + clip_high) & (adv > 0)).float(), mask).item()
        metrics["ratio_mean"] = masked_mean(ratio, mask).item()
        big = torch.finfo(ratio.dtype).max
        metrics["ratio_max"] = torch.where(mask.bool(), ratio, -big).max().item() if mask.any() else 1.0
        metrics["ratio_min"] = torch.where(mask.bool(), ratio, big).min().item() if mask.any() else 1.0
    return loss * mask.to(loss.dtype), metrics


def ppo_clip(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
) -> tuple[torch.Tensor, Metrics]:
    """PPO clipped surrogate per token with rho_t = exp(logp_t - old_logp_t); returns ((B*G, T), metrics).

    loss_t = -min(rho A, clip(rho, 1 - clip_low, 1 + clip_high) A); DAPO's clip-higher is
    clip_high > clip_low. Dual clip (c > 1): for A < 0, loss_t = min(loss_t, -c A).
    Metrics: clip_frac (the clipped term is active), clip_frac_low/high, ratio stats, approx_kl
    (k3 of old vs new, the usual PPO diagnostic).

    >>> loss, m = ppo_clip(torch.log(torch.tensor([[1.5]])), torch.zeros(1, 1), torch.ones(1), torch.ones(1, 1))
    >>> loss, m["clip_frac"]
    (tensor([[-1.2000]]), 1.0)
    """
    log_ratio = logp - old_logp.detach()
    loss, metrics = _clip_objective(log_ratio, _as_token_adv(adv, logp), mask, clip_low, clip_high, dual_clip)
    with torch.no_grad():
        metrics["approx_kl"] = masked_mean(kl_penalty(old_logp, logp, "k3"), mask).item()
    return loss, metrics


def gspo(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    clip_low: float = 3e-4,
    clip_high: float = 4e-4,
    dual_clip: float | None = None,
) -> tuple[torch.Tensor, Metrics]:
    """GSPO: one ratio per sequence, s_i = exp(mean_t (logp - old_logp)) over its valid tokens.

    Written token-wise (GSPO-token form): rho_it = sg[s_i] * exp(logp_it - sg[logp_it]), whose value
    is s_i on every token and whose gradient is the sequence-level one. Pair it with
    `seq_mean_token_mean` so each sequence counts once. Defaults are the paper's (3e-4, 4e-4).

    >>> lp = torch.log(torch.tensor([[2.0, 0.5]]))  # mean log-ratio 0 -> s = 1
    >>> gspo(lp, torch.zeros(1, 2), torch.ones(1), torch.ones(1, 2))[0]
    tensor([[-1., -1.]])
    """
    mask_f = mask.to(logp.dtype)
    log_ratio = (logp - old_logp.detach()) * mask_f
    seq_log_ratio = log_ratio.sum(-1) / mask_f.sum(-1).clamp(min=1.0)  # (B*G,)
    token_log_ratio = seq_log_ratio.detach().unsqueeze(-1) + logp - logp.detach()  # (B*G, T)
    loss, metrics = _clip_objective(
        token_log_ratio, _as_token_adv(adv, logp), mask, clip_low, clip_high, dual_clip
    )
    with torch.no_grad():
        metrics["approx_kl"] = masked_mean(kl_penalty(old_logp, logp, "k3"), mask).item()
    return loss, metrics


# Each objective carries the ratio line `rlvr presets show` prints, and the ratio's symbol.
ppo_clip.ratio_formula = "ρ_i,t = π_θ(o_i,t | q, o_i,<t) / π_old(o_i,t | q, o_i,<t)"  # type: ignore[attr-defined]
ppo_clip.ratio_symbol = "ρ_i,t"  # type: ignore[attr-defined]
gspo.ratio_formula = "s_i = exp(1/|o_i| Σ_t log(π_θ(o_i,t)/π_old(o_i,t)))  [one ratio per sequence]"  # type: ignore[attr-defined]
gspo.ratio_symbol = "s_i"  # type: ignore[attr-defined]
ppo_clip.term = gspo.term = "min({rho}·{a}, clip({rho}, 1−{lo}, 1+{hi})·{a})"  # type: ignore[attr-defined]
POLICY_LOSSES: dict[str, Callable[..., tuple[torch.Tensor, Metrics]]] = {"ppo_clip": ppo_clip, "gspo": gspo}

# ---------------------------------------------------------------- KL, importance weights, value


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k3") -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from samples of pi; (B*G, T).

    With x = ref_logp - logp (log of pi_ref/pi):  k1 = -x;  k2 = x^2 / 2;  k3 = exp(x) - 1 - x
    (Schulman's unbiased, always >= 0 estimator). x is clamped to [-20, 20] in k3 only, so exp()
    cannot overflow (no effect on any realistic value).

    >>> kl_penalty(torch.tensor([0.0]), torch.log(torch.tensor([2.0])), "k3")
    tensor([0.3069])
    """
    x = ref_logp - logp
    if estimator == "k1":
        return -x
    if estimator == "k2":
        return 0.5 * x**2
    if estimator == "k3":
        x = x.clamp(-20.0, 20.0)
        return torch.exp(x) - 1.0 - x
    raise ValueError(f"kl_penalty: unknown estimator {estimator!r}; choose k1, k2 or k3")


# estimator -> the formula `rlvr presets show` prints
KL_ESTIMATORS: dict[str, str] = {
    "k1": "k1_t = log π_θ(o_t) − log π_ref(o_t)",
    "k2": "k2_t = ½ (log π_ref(o_t) − log π_θ(o_t))²",
    "k3": "k3_t = π_ref(o_t)/π_θ(o_t) − 1 − log(π_ref(o_t)/π_θ(o_t))",
}


def kl_reward(
    logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor, coef: float, estimator: str = "k1"
) -> torch.Tensor:
    """The KL as a per-token reward penalty: -coef * KL_t, detached, 0 on padding. (B*G, T)."""
    with torch.no_grad():
        return -coef * kl_penalty(logp, ref_logp, estimator) * mask.to(logp.dtype)


def adaptive_kl_coef(coef: float, observed_kl: float, target_kl: float, n_steps: int, horizon: int) -> float:
    """Ziegler et al.'s controller: coef * (1 + clip(KL/target - 1, -0.2, 0.2) * n_steps / horizon).

    >>> adaptive_kl_coef(0.1, observed_kl=12.0, target_kl=6.0, n_steps=100, horizon=1000)
    0.10200000000000001
    """
    error = min(max(observed_kl / target_kl - 1.0, -0.2), 0.2)
    return coef * (1.0 + error * n_steps / horizon)


def tis_weights(
    trainer_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor, cap: float = 2.0
) -> tuple[torch.Tensor, Metrics]:
    """Truncated importance sampling: w_t = min(exp(trainer_logp - sampler_logp), cap), detached.

    Multiply the per-token policy loss by w (before `aggregate`) to correct for the sampler (e.g.
    vLLM in bf16) and the trainer disagreeing about the same old policy.

    >>> tis_weights(torch.tensor([[0.0, 0.0]]), torch.log(torch.tensor([[0.5, 0.1]])), torch.ones(1, 2))[0]
    tensor([[2., 2.]])
    """
    with torch.no_grad():
        raw = torch.exp(trainer_logp - sampler_logp)
        w = raw.clamp(max=cap) * mask.to(raw.dtype)
        metrics = {
            "tis_mean_raw": masked_mean(raw, mask).item(),
            "tis_capped_frac": masked_mean((raw > cap).float(), mask).item(),
        }
    return w, metrics


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float | None = 0.2,
) -> tuple[torch.Tensor, Metrics]:
    """Clipped value loss per token: 0.5 * max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2).

    >>> value_loss(torch.tensor([[2.0]]), torch.tensor([[0.0]]), torch.tensor([[3.0]]), torch.ones(1, 1), 0.5)[0]
    tensor([[3.1250]])
    """
    unclipped = (values - returns) ** 2
    if clip is None:
        return 0.5 * unclipped * mask.to(values.dtype), {}
    v_clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    clipped = (v_clipped - returns) ** 2
    loss = 0.5 * torch.maximum(unclipped, clipped) * mask.to(values.dtype)
    return loss, {"vf_clip_frac": masked_mean((clipped > unclipped).float(), mask).item()}


# ---------------------------------------------------------------- pipeline losses (scalars)


def sft_loss(
    logp: torch.Tensor, mask: torch.Tensor, mode: str = "token_mean"
) -> tuple[torch.Tensor, Metrics]:
    """Masked NLL: aggregate(-logp, mask); mask is 0 on prompt and padding tokens. (B, T) -> ()."""
    loss = aggregate(-logp, mask, mode)
    return loss, {"nll": loss.item(), "tokens": float(mask.sum().item())}


def bradley_terry_loss(
    r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | float | None = None
) -> tuple[torch.Tensor, Metrics]:
    """Reward-model loss mean_p -log sigma(r_c - r_r - margin); (P,), (P,) -> ().

    Metrics: ``accuracy`` (r_c > r_r) and ``margin``, the mean r_c - r_r (without the target margin,
    so it is the same number as the held-out ``eval/margin``).

    >>> bradley_terry_loss(torch.tensor([0.0]), torch.tensor([0.0]))[0]
    tensor(0.6931)
    """
    gap = r_chosen - r_rejected
    loss = -F.logsigmoid(gap - (0.0 if margin is None else margin)).mean()
    return loss, {"accuracy": (gap > 0).float().mean().item(), "margin": gap.mean().item()}


def _pref_metrics(chosen_reward: torch.Tensor, rejected_reward: torch.Tensor) -> Metrics:
    with torch.no_grad():
        return {
            "reward_chosen": chosen_reward.mean().item(),
            "reward_rejected": rejected_reward.mean().item(),
            "reward_margin": (chosen_reward - rejected_reward).mean().item(),
            "reward_accuracy": (chosen_reward > rejected_reward).float().mean().item(),
        }


def dpo_loss(
    logp_chosen: torch.Tensor,
    logp_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, Metrics]:
    """DPO family on summed sequence logprobs (P,); h = (logp_c - ref_c) - (logp_r - ref_r).

    - sigmoid (DPO):   -log sigma(beta h)
    - sigmoid with label_smoothing eps (cDPO): -(1-eps) log sigma(beta h) - eps log sigma(-beta h)
    - ipo:             (h - 1/(2 beta))^2   (TRL feeds length-averaged logprobs here; pass those
                       if you want TRL's numbers, sums for the paper's)
    Metrics: implicit rewards beta*(logp - ref) of chosen/rejected, their margin and accuracy.

    >>> dpo_loss(*(torch.zeros(1),) * 4)[0]
    tensor(0.6931)
    """
    chosen_reward = beta * (logp_chosen - ref_chosen).detach()
    rejected_reward = beta * (logp_rejected - ref_rejected).detach()
    h = (logp_chosen - ref_chosen) - (logp_rejected - ref_rejected)
    if loss_type == "sigmoid":
        losses = -(1 - label_smoothing) * F.logsigmoid(beta * h) - label_smoothing * F.logsigmoid(-beta * h)
    elif loss_type == "ipo":
        losses = (h - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"dpo_loss: unknown loss_type {loss_type!r}; choose sigmoid or ipo")
    return losses.mean(), _pref_metrics(chosen_reward, rejected_reward)


def simpo_loss(
    avg_logp_chosen: torch.Tensor, avg_logp_rejected: torch.Tensor, beta: float = 2.0, gamma: float = 0.5
) -> tuple[torch.Tensor, Metrics]:
    """SimPO (no reference): -log sigma(beta * avg_c - beta * avg_r - gamma), avg = mean token logprob.

    gamma is the margin itself (the paper's gamma, TRL's CPO simpo_gamma), not the SimPO
    repository's gamma_beta_ratio (= gamma / beta).

    >>> simpo_loss(torch.tensor([-1.0]), torch.tensor([-1.0]), beta=2.0, gamma=0.0)[0]
    tensor(0.6931)
    """
    chosen, rejected = beta * avg_logp_chosen, beta * avg_logp_rejected
    loss = -F.logsigmoid(chosen - rejected - gamma).mean()
    return loss, _pref_metrics(chosen.detach(), rejected.detach())


def orpo_loss(
    avg_logp_chosen: torch.Tensor, avg_logp_rejected: torch.Tensor, nll_chosen: torch.Tensor, lam: float = 0.1
) -> tuple[torch.Tensor, Metrics]:
    """ORPO: NLL(chosen) - lam * log sigma(log odds_c - log odds_r), odds(y) = p/(1-p), log p = avg logprob.

    log odds = avg - log(1 - exp(avg)), computed as log(-expm1(avg)) with avg capped at -1e-6, which
    stays finite (and its gradient too) as p -> 1 where log1p(-exp(avg)) becomes -inf in float32.
    Inputs (P,), nll scalar.
    """

    def log1m_exp(a: torch.Tensor) -> torch.Tensor:  # log(1 - exp(a)) for a < 0
        return torch.log(-torch.expm1(a.clamp(max=-1e-6)))

    log_odds = (avg_logp_chosen - avg_logp_rejected) - (log1m_exp(avg_logp_chosen) - log1m_exp(avg_logp_rejected))
    ratio_term = -F.logsigmoid(log_odds).mean()
    metrics = _pref_metrics(avg_logp_chosen.detach(), avg_logp_rejected.detach())
    metrics["log_odds"] = log_odds.mean().item()
    return nll_chosen + lam * ratio_term, metrics


def kto_loss(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    desirable: torch.Tensor,
    kl_ref: torch.Tensor | float,
    beta: float = 0.1,
    weight_desirable: float = 1.0,
    weight_undesirable: float = 1.0,
) -> tuple[torch.Tensor, Metrics]:
    """KTO on unpaired examples (P,): r = logp - ref_logp (sums), z = kl_ref (clamped >= 0, detached).

    desirable:   w_D * (1 - sigma(beta (r - z)));  undesirable: w_U * (1 - sigma(beta (z - r)));
    mean over all examples. z is the batch KL estimate (TRL: mean logp - ref_logp on mismatched
    prompt/completion pairs).

    >>> kto_loss(torch.zeros(2), torch.zeros(2), torch.tensor([True, False]), 0.0)[0]
    tensor(0.5000)
    """
    z = torch.as_tensor(kl_ref, dtype=logp.dtype).detach().clamp(min=0.0)
    r = logp - ref_logp
    desirable = desirable.bool()
    losses = torch.where(
        desirable,
        weight_desirable * (1 - torch.sigmoid(beta * (r - z))),
        weight_undesirable * (1 - torch.sigmoid(beta * (z - r))),
    )
    with torch.no_grad():  # a class absent from the batch has no reward metric (not a false 0)
        metrics = {"kl_ref": float(z)}
        if desirable.any():
            metrics["reward_desirable"] = (beta * r[desirable]).mean().item()
        if (~desirable).any():
            metrics["reward_undesirable"] = (beta * r[~desirable]).mean().item()
    return losses.mean(), metrics


__all__ += [
    "AGGREGATIONS",
    "Aggregation",
    "KL_ESTIMATORS",
    "POLICY_LOSSES",
    "adaptive_kl_coef",
    "aggregate",
    "bradley_terry_loss",
    "dpo_loss",
    "entropy_from_logits",
    "gspo",
    "kl_penalty",
    "kl_reward",
    "kto_loss",
    "orpo_loss",
    "ppo_clip",
    "sft_loss",
    "simpo_loss",
    "tis_weights",
    "token_logprobs",
    "value_loss",
]

from rlvr.entropy_control import OBJECTIVES as _COV  # noqa: E402  (they use the helpers above)
from rlvr.objectives import OBJECTIVES as _NEWER  # noqa: E402

POLICY_LOSSES.update(_NEWER)
POLICY_LOSSES.update(_COV)
