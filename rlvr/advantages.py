"""Advantage estimators as pure tensor functions, plus the registry `ADVANTAGES`.

What it does: turns rewards into advantages.
- Outcome estimators take `rewards` of shape (B, G) (B prompts, G completions each) and return
  one advantage per completion, shape (B, G): `grpo` (group z-score), `dr_grpo` (group mean only),
  `rloo` (leave-one-out), `reinforce_pp` (global batch whitening), `reinforce_pp_baseline`
  (group mean subtracted, then global whitening). `expand_to_tokens` broadcasts them over tokens.
- `gae` (PPO) takes per-token rewards, values and a mask of shape (B*G, T) and returns per-token
  advantages and returns. `discounted_returns` is the critic-free version (REINFORCE with per-token
  rewards such as a KL penalty). `token_rewards` + `ppo_advantages` are PPO's whole path from a
  sequence score and a per-token KL to whitened advantages and the critic's returns.
- `masked_mean`, `masked_var`, `masked_whiten`: the masked statistics everything else uses.

Choices where the field disagrees (pinned in tests/test_advantages.py):
- std is the SAMPLE std (Bessel, divide by n-1), as `torch.std` in TRL and verl; the population
  std would make GRPO advantages sqrt((G-1)/G) smaller.
- The epsilon is added to the std, outside the square root: (x - mean) / (std + eps), eps = 1e-6.
- A group whose rewards are all equal gets advantage exactly 0 (no NaN, no 1e-8/eps residue).

What it does not do: no model calls, no KL shaping (see `rlvr.losses.kl_penalty`), no batching.
It imports only torch.

Try it:
    python -c "import torch; from rlvr.advantages import ADVANTAGES; \\
print(ADVANTAGES['grpo'](torch.tensor([[1., 0., 0., 1.]])))"
"""

from __future__ import annotations

from collections.abc import Callable

import torch

EPS = 1e-6

ADVANTAGES: dict[str, Callable[..., torch.Tensor]] = {}
# Estimators that need per-token rewards and values instead of (B, G) outcome rewards.
TOKEN_LEVEL = frozenset({"gae"})


def register_advantage(name: str, formula: str = "") -> Callable[[Callable[..., torch.Tensor]], Callable[..., torch.Tensor]]:
    """Add an estimator to `ADVANTAGES` under `name` (a duplicate name is an error).

    formula: the line `rlvr presets show` prints for it (``{eps}``, ``{gamma}``, ``{lam}`` are
    filled in); it is kept on the function as ``fn.formula``.
    """

    def wrap(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        if name in ADVANTAGES:
            raise ValueError(f"advantage estimator {name!r} is already registered")
        fn.formula = formula or f"A = {name}(r)"  # type: ignore[attr-defined]
        ADVANTAGES[name] = fn
        return fn

    return wrap


# ---------------------------------------------------------------- masked statistics


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `x` where `mask` is 1; over everything (dim=None) or along `dim`. Empty -> 0.

    >>> masked_mean(torch.tensor([1., 2., 9.]), torch.tensor([1., 1., 0.]))
    tensor(1.5000)
    """
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1.0)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sample variance (divide by n-1) of `x` where `mask` is 1; 0 when fewer than 2 entries."""
    mask = mask.to(x.dtype)
    n = mask.sum()
    centred = (x - masked_mean(x, mask)) * mask
    return (centred**2).sum() / (n - 1).clamp(min=1.0)


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = EPS
) -> torch.Tensor:
    """(x - mean) / (std + eps) over the masked entries (sample std); masked-out entries become 0.

    With `shift_mean=False` the mean is added back (scale only, as some PPO codes whiten rewards).

    >>> masked_whiten(torch.tensor([1., 3., 100.]), torch.tensor([1., 1., 0.]))
    tensor([-0.7071,  0.7071,  0.0000])
    """
    mean = masked_mean(x, mask)
    out = (x - mean) / (masked_var(x, mask).sqrt() + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(x.dtype)


# ---------------------------------------------------------------- outcome estimators, (B, G) -> (B, G)


def _check_groups(rewards: torch.Tensor, name: str, min_group: int = 1) -> None:
    if rewards.dim() != 2:
        raise ValueError(f"{name}: rewards must have shape (B, G), got {tuple(rewards.shape)}")
    if rewards.shape[1] < min_group:
        raise ValueError(f"{name}: needs a group size G >= {min_group}, got G={rewards.shape[1]}")


def _flat_groups(rewards: torch.Tensor) -> torch.Tensor:
    """(B, G) bool: True in every slot of a group whose rewards are all equal."""
    flat = rewards.amax(dim=1, keepdim=True) == rewards.amin(dim=1, keepdim=True)  # (B, 1)
    return flat.expand_as(rewards)


@register_advantage("grpo", "A_i = (r_i − mean_g r) / (std_g r + {eps:g})   [sample std (n−1) over the G completions]")
def grpo(rewards: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """GRPO: A_i = (r_i - mean_g r) / (std_g r + eps), sample std over the G completions.

    >>> grpo(torch.tensor([[1., 0.]]))
    tensor([[ 0.7071, -0.7071]])
    """
    _check_groups(rewards, "grpo", min_group=2)
    mean = rewards.mean(dim=1, keepdim=True)  # (B, 1)
    std = rewards.std(dim=1, keepdim=True, unbiased=True)  # (B, 1)
    adv = (rewards - mean) / (std + eps)  # (B, G)
    return torch.where(_flat_groups(rewards), torch.zeros_like(adv), adv)


@register_advantage("dr_grpo", "A_i = r_i − mean_g r   [no std division]")
def dr_grpo(rewards: torch.Tensor) -> torch.Tensor:
    """Dr.GRPO: A_i = r_i - mean_g r (no std division, which biases towards easy/hard prompts).

    >>> dr_grpo(torch.tensor([[1., 0., 0., 0.]]))
    tensor([[ 0.7500, -0.2500, -0.2500, -0.2500]])
    """
    _check_groups(rewards, "dr_grpo")
    adv = rewards - rewards.mean(dim=1, keepdim=True)  # (B, G)
    return torch.where(_flat_groups(rewards), torch.zeros_like(adv), adv)


@register_advantage("rloo", "A_i = r_i − 1/(G−1) Σ_{{j≠i}} r_j  = G/(G−1) · (r_i − mean_g r)")
def rloo(rewards: torch.Tensor) -> torch.Tensor:
    """RLOO: A_i = r_i - mean_{j != i} r_j, which equals G/(G-1) * (r_i - mean_g r).

    >>> rloo(torch.tensor([[1., 0., 0.]]))
    tensor([[ 1.0000, -0.5000, -0.5000]])
    """
    _check_groups(rewards, "rloo", min_group=2)
    g = rewards.shape[1]
    others = (rewards.sum(dim=1, keepdim=True) - rewards) / (g - 1)  # (B, G) leave-one-out mean
    adv = rewards - others
    return torch.where(_flat_groups(rewards), torch.zeros_like(adv), adv)


@register_advantage("reinforce_pp", "A_i = (r_i − mean_batch r) / (std_batch r + {eps:g})   [over all B·G completions]")
def reinforce_pp(rewards: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """REINFORCE++: A = (r - mean_batch r) / (std_batch r + eps) over all B*G completions.

    Each completion counts once (OpenRLHF whitens over tokens, which weights long completions
    more; with per-token rewards use `discounted_returns` + `masked_whiten` for that form).

    >>> reinforce_pp(torch.tensor([[1., 0.], [0., 0.]]))
    tensor([[ 1.5000, -0.5000],
            [-0.5000, -0.5000]])
    """
    _check_groups(rewards, "reinforce_pp")
    return masked_whiten(rewards, torch.ones_like(rewards), eps=eps)


@register_advantage("reinforce_pp_baseline", "A_i = (r_i − mean_g r) / (std_batch(r − mean_g r) + {eps:g})")
def reinforce_pp_baseline(rewards: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """REINFORCE++-baseline: subtract the group mean, then whiten over the whole batch.

    The group mean removes per-prompt difficulty (as in GRPO); the global std keeps the scale
    comparable across prompts (unlike GRPO's per-group std). Flat groups stay exactly 0.

    >>> reinforce_pp_baseline(torch.tensor([[1., 0.], [1., 1.]]))
    tensor([[ 1.2247, -1.2247],
            [ 0.0000,  0.0000]])
    """
    _check_groups(rewards, "reinforce_pp_baseline")
    centred = dr_grpo(rewards)  # (B, G), flat groups exactly 0
    return centred / (centred.flatten().std(unbiased=True) + eps) if centred.numel() > 1 else centred


def expand_to_tokens(adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Broadcast per-completion advantages (B, G) or (B*G,) over tokens: (B*G, T), 0 on padding."""
    return adv.reshape(-1, 1).to(mask.dtype if mask.is_floating_point() else adv.dtype) * mask


# ---------------------------------------------------------------- per-token estimators, (B*G, T)


def discounted_returns(token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """G_t = sum_{k>=t} gamma^(k-t) r_k within each row's valid tokens; 0 on padding. (B*G, T).

    >>> discounted_returns(torch.tensor([[0., 1., 5.]]), torch.tensor([[1., 1., 0.]]), gamma=0.5)
    tensor([[0.5000, 1.0000, 0.0000]])
    """
    mask = mask.to(token_rewards.dtype)
    out = torch.zeros_like(token_rewards)
    running = torch.zeros_like(token_rewards[:, 0])  # (B*G,)
    for t in reversed(range(token_rewards.shape[1])):
        running = (token_rewards[:, t] + gamma * running) * mask[:, t]
        out[:, t] = running
    return out


@register_advantage("gae", "δ_t = r_t + γ·V_{{t+1}} − V_t,  A_t = Σ_k (γλ)^k δ_{{t+k}},  γ = {gamma:g}, λ = {lam:g}")
def gae(
    token_rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over right-padded rows; returns (advantages, returns).

    delta_t = r_t + gamma * V_{t+1} * m_{t+1} - V_t      (V beyond the last valid token is 0)
    A_t = delta_t + gamma * lam * m_{t+1} * A_{t+1};  returns_t = A_t + V_t;  both 0 on padding.
    All inputs are (B*G, T); nothing here is differentiable (values are detached).

    >>> adv, ret = gae(torch.tensor([[0., 1.]]), torch.tensor([[0.5, 0.5]]), torch.ones(1, 2), 1.0, 1.0)
    >>> adv, ret
    (tensor([[0.5000, 0.5000]]), tensor([[1., 1.]]))
    """
    values = values.detach()
    mask = mask.to(values.dtype)
    if not (token_rewards.shape == values.shape == mask.shape):
        raise ValueError(f"gae: shapes differ: {token_rewards.shape}, {values.shape}, {mask.shape}")
    n, t_len = values.shape
    adv = torch.zeros_like(values)
    next_adv = torch.zeros(n, dtype=values.dtype)  # (B*G,)
    next_value = torch.zeros(n, dtype=values.dtype)
    next_mask = torch.zeros(n, dtype=values.dtype)
    for t in reversed(range(t_len)):
        delta = token_rewards[:, t] + gamma * next_value * next_mask - values[:, t]
        next_adv = (delta + gamma * lam * next_mask * next_adv) * mask[:, t]
        adv[:, t] = next_adv
        next_value, next_mask = values[:, t], mask[:, t]
    returns = (adv + values) * mask
    return adv, returns


def token_rewards(
    scores: torch.Tensor, mask: torch.Tensor, kl: torch.Tensor | None = None, kl_coef: float = 0.0
) -> torch.Tensor:
    """PPO's per-token rewards (N, T): -kl_coef * KL_t on every completion token, plus the
    sequence's score (N,) on its last valid token; 0 on padding. A row with no tokens gets nothing.

    >>> token_rewards(torch.tensor([1.0]), torch.tensor([[1., 1., 0.]]), torch.tensor([[0.5, 1.0, 9.0]]), 0.1)
    tensor([[-0.0500,  0.9000,  0.0000]])
    """
    mask = mask.to(scores.dtype)
    rewards = torch.zeros_like(mask)
    if kl is not None:
        rewards = torch.where(mask.bool(), -kl_coef * kl.to(mask.dtype), rewards)
    last = mask.sum(-1).long() - 1  # (N,)
    rows = torch.nonzero(last >= 0).squeeze(-1)
    rewards[rows, last[rows]] += scores[rows]
    return rewards


def ppo_advantages(
    scores: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    kl: torch.Tensor | None = None,
    *,
    kl_coef: float = 0.0,
    gamma: float = 1.0,
    lam: float = 0.95,
    whiten_rewards: bool = False,
    whiten_advantages: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's (advantages, returns), both (N, T), from sequence scores (N,), critic values (N, T)
    and the per-token KL to the reference (N, T, optional).

    1. `token_rewards`: score on the last token, -kl_coef * KL on every token;
    2. whiten_rewards: scale the token rewards by their batch std (mean kept, as TRL does);
    3. `gae` -> advantages and returns (returns = advantages + values, before any whitening);
    4. whiten_advantages: z-score the advantages over the batch's valid tokens.

    >>> adv, ret = ppo_advantages(torch.tensor([1.0]), torch.zeros(1, 2), torch.ones(1, 2), lam=1.0, whiten_advantages=False)
    >>> adv, ret
    (tensor([[1., 1.]]), tensor([[1., 1.]]))
    """
    rewards = token_rewards(scores, mask, kl, kl_coef)
    if whiten_rewards:
        rewards = masked_whiten(rewards, mask, shift_mean=False)
    adv, returns = gae(rewards, values, mask, gamma, lam)
    if whiten_advantages:
        adv = masked_whiten(adv, mask)
    return adv, returns


# ---------------------------------------------------------------- reward shaping before the estimator


def overlong_penalty(lengths: torch.Tensor, max_len: int, buffer: int, factor: float = 1.0) -> torch.Tensor:
    """DAPO's soft overlong punishment, added to the reward of each completion; lengths (B, G).

    0 when |o| <= L - B;  factor * (L - B - |o|) / B when L - B < |o| <= L;  -factor beyond L
    (L = max_len, B = buffer tokens). A completion at exactly L gets -factor.

    >>> overlong_penalty(torch.tensor([10, 15, 20]), max_len=20, buffer=10)
    tensor([ 0.0000, -0.5000, -1.0000])
    """
    if not 0 < buffer <= max_len:
        raise ValueError(
            f"overlong_penalty: need 0 < buffer <= max_len, got buffer={buffer}, max_len={max_len}"
        )
    over = (lengths.to(torch.float32) - (max_len - buffer)).clamp(
        min=0.0, max=float(buffer)
    )  # tokens into the buffer
    return 0.0 - factor * over / buffer  # 0.0 - ... keeps +0.0 (not -0.0) below the buffer
