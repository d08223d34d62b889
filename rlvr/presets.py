"""Algorithm presets: GRPO, Dr.GRPO, DAPO, RLOO, REINFORCE++, GSPO, PPO, CISPO, SAPO, GMPO and DPPO as named `AlgoConfig`s.

What it does:
- `AlgoConfig`: one frozen dataclass holding every algorithmic choice (a comment above each field).
  The functions it names live in `rlvr.advantages` and `rlvr.losses`; this is the only place
  where the named algorithms are spelled out as combinations of them.
- `PRESETS`, `get_preset(name)`, `with_overrides(cfg, **fields)`: any field can be overridden
  (`dataclasses.replace` works too); values are validated on construction.
- `describe(cfg)`: the exact objective the config resolves to, as plain-text formulas with the
  chosen numbers substituted (`rlvr presets show dapo` prints it).
- `outcome_advantages(cfg, rewards, ...)`: applies the config's reward shaping (KL in the reward)
  and advantage estimator to (B, G) outcome rewards, for the trainer loop.

What it does not do: train (see `rlvr.trainers`), or parse YAML (see `rlvr.config`).

Try it:
    python -c "from rlvr.presets import describe, get_preset; print(describe(get_preset('dapo')))"
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import typing
from dataclasses import dataclass
from typing import Any, Literal

import torch

from rlvr.advantages import ADVANTAGES
from rlvr.losses import AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES

# The closed sets of modes, checked at config load (file:line, key, closest value); the extensible
# registries (advantage estimators, policy losses) are checked against the live registry instead.
AggregationMode = Literal["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"]
KLEstimator = Literal["k1", "k2", "k3"]
KLPlacement = Literal["loss", "reward"]
assert set(typing.get_args(AggregationMode)) == set(AGGREGATIONS), "AggregationMode and losses.AGGREGATIONS disagree"
assert set(typing.get_args(KLEstimator)) == set(KL_ESTIMATORS), "KLEstimator and losses.KL_ESTIMATORS disagree"


def _correction_problems(cfg: AlgoConfig) -> list[str]:
    """What is wrong with the rollout-correction fields (rlvr.correction)."""
    from rlvr.correction import CORRECTIONS

    problems = []
    if cfg.correction not in CORRECTIONS:
        problems.append(f"correction={cfg.correction!r} is not one of {list(CORRECTIONS)}")
    if cfg.correction != "none" and cfg.tis_cap is not None:
        problems.append(f"tis_cap and correction={cfg.correction!r} both correct the sampler: set one (tis_cap=C is correction=token_tis, correction_cap=C)")
    if cfg.correction_cap <= 0:
        problems.append(f"correction_cap={cfg.correction_cap} must be > 0")
    if not 0 <= cfg.correction_lo <= 1 <= cfg.correction_hi:
        problems.append(f"correction_lo={cfg.correction_lo} and correction_hi={cfg.correction_hi} must satisfy 0 <= lo <= 1 <= hi")
    return problems


def _objective_problems(cfg: AlgoConfig) -> list[str]:
    """Knobs set for a policy objective that does not take them (they would be silently ignored)."""
    if cfg.loss not in POLICY_LOSSES:
        return []
    takes = set(inspect.signature(POLICY_LOSSES[cfg.loss]).parameters)
    problems = []
    if cfg.dual_clip is not None and "dual_clip" not in takes:
        problems.append(f"dual_clip is for ppo_clip/gspo; loss={cfg.loss!r} does not take it (set dual_clip=null)")
    if not (0 <= cfg.cov_top_frac <= 1 and 0 <= cfg.cov_clip_frac <= 1 and cfg.cov_lb <= cfg.cov_ub
            and cfg.cov_kl_coef >= 0):
        problems.append(f"cov_top_frac={cfg.cov_top_frac} and cov_clip_frac={cfg.cov_clip_frac} must be in [0, 1], "
                        f"cov_lb={cfg.cov_lb} <= cov_ub={cfg.cov_ub}, cov_kl_coef={cfg.cov_kl_coef} >= 0")
    if cfg.entropy_target is not None and (cfg.entropy_target <= 0 or cfg.entropy_coef_delta <= 0
                                           or not 0 <= cfg.entropy_coef <= cfg.entropy_coef_max):
        problems.append(f"entropy_target={cfg.entropy_target} and entropy_coef_delta={cfg.entropy_coef_delta} must be "
                        f"> 0 and entropy_coef={cfg.entropy_coef} (the starting value) within [0, "
                        f"entropy_coef_max={cfg.entropy_coef_max}]")
    if cfg.sapo_tau_pos <= 0 or cfg.sapo_tau_neg <= 0 or cfg.dppo_ratio_cap <= 0:
        problems.append(f"sapo_tau_pos={cfg.sapo_tau_pos}, sapo_tau_neg={cfg.sapo_tau_neg} and "
                        f"dppo_ratio_cap={cfg.dppo_ratio_cap} must be > 0")
    return problems


@dataclass(frozen=True)
class AlgoConfig:
    # Preset name and a one-line summary (display only).
    name: str = "custom"
    summary: str = ""
    # Advantage estimator, a key of rlvr.advantages.ADVANTAGES (grpo, dr_grpo, rloo, reinforce_pp,
    # reinforce_pp_baseline, gae).
    advantage: str = "grpo"
    # Divide group-centred advantages by the group std. None: as the estimator defines it.
    # False with advantage=grpo resolves to dr_grpo; True with dr_grpo resolves to grpo.
    std_normalize: bool | None = None
    # Per-token policy objective, a key of rlvr.losses.POLICY_LOSSES (ppo_clip, gspo, cispo, sapo,
    # gmpo, dppo).
    loss: str = "ppo_clip"
    # Ratio clip range [1 - clip_low, 1 + clip_high]; clip_high > clip_low is DAPO's clip-higher.
    # cispo: the clip of its detached weight; gmpo: the clip of the log-ratio, [-clip_low, clip_high];
    # dppo: the bounds on the probability change p - p_old.
    clip_low: float = 0.2
    clip_high: float = 0.2
    # Dual clip constant c > 1 (caps the loss at -c*A for negative advantages); None = off.
    # ppo_clip and gspo only.
    dual_clip: float | None = None
    # SAPO's gate temperatures for positive and negative advantages (loss=sapo only).
    sapo_tau_pos: float = 1.0
    sapo_tau_neg: float = 1.05
    # DPPO's cap on its detached ratio weight (loss=dppo only).
    dppo_ratio_cap: float = 3.0
    # KL-Cov (loss=kl_cov): penalty weight on |logp − old_logp| of the top cov_top_frac tokens by
    # covariance of logp and advantage. Clip-Cov (loss=clip_cov): the gradient of a random
    # cov_clip_frac of the tokens with covariance in [cov_lb, cov_ub] is cut (rlvr.entropy_control).
    cov_top_frac: float = 0.002
    cov_kl_coef: float = 1.0
    cov_clip_frac: float = 0.0002
    cov_lb: float = 1.0
    cov_ub: float = 5.0
    # Loss aggregation: token_mean, seq_mean_token_mean, seq_mean_token_sum_norm.
    aggregation: AggregationMode = "seq_mean_token_mean"
    # The constant length of seq_mean_token_sum_norm; None = the run's max_new_tokens.
    norm_length: int | None = None
    # KL to the reference model: weight (0 = no reference model is loaded), estimator (k1/k2/k3),
    # and where it goes: "loss" (a term beta * KL in the loss) or "reward" (a per-token penalty).
    kl_coef: float = 0.0
    kl_estimator: KLEstimator = "k3"
    kl_in: KLPlacement = "loss"
    # Adaptive KL controller (PPO): target KL per sequence and horizon; None = fixed kl_coef.
    kl_target: float | None = None
    kl_horizon: int = 10_000
    # Entropy bonus weight (the loss subtracts entropy_coef * aggregated entropy).
    entropy_coef: float = 0.0
    # Adaptive entropy coefficient: after each step the coefficient moves by entropy_coef_delta
    # towards keeping the mean token entropy at entropy_target (up when below, down when above),
    # within [0, entropy_coef_max], starting from entropy_coef; None = a fixed entropy_coef.
    entropy_target: float | None = None
    entropy_coef_delta: float = 0.001
    entropy_coef_max: float = 0.01
    # Dynamic sampling (DAPO): drop groups whose rewards all agree and sample more prompts until
    # the batch is full, at most dynamic_sampling_rounds extra generation rounds.
    dynamic_sampling: bool = False
    dynamic_sampling_rounds: int = 3
    # What a dropped group ties on: the primary verifier's "passed" (DAPO's recipe: all solved or
    # all failed) or its shaped "reward" (also counts length-penalty differences as signal).
    dynamic_sampling_filter: Literal["passed", "reward"] = "passed"
    # Truncated completions (hit max_new_tokens): mask them out of the loss ...
    overlong_mask: bool = False
    # ... and/or add DAPO's soft overlong penalty: the last overlong_buffer fraction of
    # max_new_tokens ramps the reward down linearly to -overlong_penalty. 0 = off.
    overlong_buffer: float = 0.0
    overlong_penalty: float = 1.0
    # Truncated importance sampling cap C between the sampler's and the trainer's logprobs; None = off.
    tis_cap: float | None = None
    # Rollout correction (rlvr.correction) between the sampler's logprobs and the trainer's, for
    # async training and engine drift: none, token_tis, seq_tis (cap correction_cap), seq_mask or
    # token_mask (IcePop; keep ratios in [correction_lo, correction_hi]).
    correction: Literal["none", "token_tis", "seq_tis", "seq_mask", "token_mask"] = "none"
    correction_cap: float = 2.0
    correction_lo: float = 0.5
    correction_hi: float = 2.0
    # Optimisation passes over each batch of rollouts.
    ppo_epochs: int = 1
    num_minibatches: int = 1
    # PPO critic: GAE discount and lambda, value clip range and value-loss weight.
    gamma: float = 1.0
    gae_lambda: float = 0.95
    value_clip: float | None = 0.2
    vf_coef: float = 0.1
    # Whiten per-token advantages over the batch (PPO) and/or whiten rewards before GAE.
    whiten_advantages: bool = False
    whiten_rewards: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.advantage not in ADVANTAGES:
            problems.append(f"advantage={self.advantage!r} is not one of {sorted(ADVANTAGES)}{_closest(self.advantage, ADVANTAGES)}")
        if self.std_normalize is not None and self.advantage not in ("grpo", "dr_grpo"):
            problems.append(f"std_normalize only applies to grpo/dr_grpo, not advantage={self.advantage!r}")
        if self.loss not in POLICY_LOSSES:
            problems.append(f"loss={self.loss!r} is not one of {sorted(POLICY_LOSSES)}{_closest(self.loss, POLICY_LOSSES)}")
        if self.aggregation not in AGGREGATIONS:
            problems.append(f"aggregation={self.aggregation!r} is not one of {list(AGGREGATIONS)}")
        if self.kl_estimator not in KL_ESTIMATORS:
            problems.append(f"kl_estimator={self.kl_estimator!r} is not one of {list(KL_ESTIMATORS)}")
        if self.kl_in not in typing.get_args(KLPlacement):
            problems.append(f"kl_in={self.kl_in!r} must be 'loss' or 'reward'")
        if self.dynamic_sampling_filter not in ("passed", "reward"):
            problems.append(f"dynamic_sampling_filter={self.dynamic_sampling_filter!r} must be 'passed' or 'reward'")
        if not (0 <= self.clip_low <= 1 and self.clip_high >= 0):
            problems.append(f"clip_low={self.clip_low} must be in [0, 1] and clip_high={self.clip_high} >= 0")
        problems += _objective_problems(self)
        if self.dual_clip is not None and self.dual_clip <= 1:
            problems.append(f"dual_clip={self.dual_clip} must be > 1 (or None)")
        if not 0 <= self.overlong_buffer <= 1:
            problems.append(
                f"overlong_buffer={self.overlong_buffer} is a fraction of max_new_tokens in [0, 1]"
            )
        if self.tis_cap is not None and self.tis_cap <= 0:
            problems.append(f"tis_cap={self.tis_cap} must be > 0 (or None)")
        problems += _correction_problems(self)
        if self.kl_coef < 0 or self.entropy_coef < 0:
            problems.append("kl_coef and entropy_coef must be >= 0")
        if self.ppo_epochs < 1 or self.num_minibatches < 1:
            problems.append("ppo_epochs and num_minibatches must be >= 1")
        if self.advantage == "gae" and self.loss != "ppo_clip":
            problems.append("advantage=gae needs loss=ppo_clip")
        if self.kl_target is not None:
            if self.kl_target <= 0 or self.kl_horizon < 1:
                problems.append(f"kl_target={self.kl_target} must be > 0 and kl_horizon={self.kl_horizon} >= 1")
            if not (self.advantage == "gae" and self.kl_in == "reward" and self.kl_coef > 0):
                problems.append("kl_target (the adaptive KL controller) acts on the KL penalty in PPO's reward: it "
                                "needs advantage=gae, kl_in=reward and kl_coef > 0 (its starting value); "
                                "set kl_target=null for a fixed kl_coef")
        if not (0 <= self.gamma <= 1 and 0 <= self.gae_lambda <= 1):
            problems.append(f"gamma={self.gamma} and gae_lambda={self.gae_lambda} must be in [0, 1]")
        if (self.value_clip is not None and self.value_clip <= 0) or self.vf_coef < 0:
            problems.append(f"value_clip={self.value_clip} must be > 0 (or None) and vf_coef={self.vf_coef} >= 0")
        if problems:
            raise ValueError(f"AlgoConfig {self.name!r}: " + "; ".join(problems))

    @property
    def resolved_advantage(self) -> str:
        """The estimator actually used, after std_normalize."""
        if self.advantage == "grpo" and self.std_normalize is False:
            return "dr_grpo"
        if self.advantage == "dr_grpo" and self.std_normalize is True:
            return "grpo"
        return self.advantage

    @property
    def needs_reference(self) -> bool:
        """A reference model is loaded only when the KL weight is non-zero."""
        return self.kl_coef > 0

    @property
    def needs_critic(self) -> bool:
        return self.advantage == "gae"


PRESETS: dict[str, AlgoConfig] = {
    p.name: p
    for p in (
        AlgoConfig(
            name="grpo",
            summary="GRPO (DeepSeekMath): group z-score advantage, PPO clip, per-sequence mean, k3 KL in the loss",
            advantage="grpo",
            aggregation="seq_mean_token_mean",
            kl_coef=0.04,
            kl_estimator="k3",
            kl_in="loss",
        ),
        AlgoConfig(
            name="dr_grpo",
            summary="Dr.GRPO: no std division, no per-length mean (constant normaliser), no KL",
            advantage="dr_grpo",
            aggregation="seq_mean_token_sum_norm",
        ),
        AlgoConfig(
            name="dapo",
            summary="DAPO: clip-higher, dynamic sampling, token-level loss, soft overlong penalty, no KL",
            advantage="grpo",
            clip_low=0.2,
            clip_high=0.28,
            aggregation="token_mean",
            dynamic_sampling=True,
            overlong_buffer=0.2,  # DAPO: 4096 of 20480 tokens
            overlong_penalty=1.0,
        ),
        AlgoConfig(
            name="rloo",
            summary="RLOO: leave-one-out baseline, KL as a reward penalty (k1)",
            advantage="rloo",
            aggregation="seq_mean_token_mean",
            kl_coef=0.05,
            kl_estimator="k1",
            kl_in="reward",
        ),
        AlgoConfig(
            name="reinforce_pp",
            summary="REINFORCE++: batch-whitened reward, KL as a reward penalty (k1), token-level loss",
            advantage="reinforce_pp",
            aggregation="token_mean",
            kl_coef=0.01,
            kl_estimator="k1",
            kl_in="reward",
        ),
        AlgoConfig(
            name="gspo",
            summary="GSPO: sequence-level length-normalised ratio with tight clipping, no KL",
            advantage="grpo",
            loss="gspo",
            clip_low=3e-4,
            clip_high=4e-4,
            aggregation="seq_mean_token_mean",
        ),
        AlgoConfig(
            name="cispo",
            summary="CISPO (MiniMax-M1): REINFORCE with a clipped, detached IS weight on every token, token-level loss",
            advantage="grpo",
            loss="cispo",
            clip_low=1.0,  # the paper: no lower bound
            clip_high=4.0,  # weight ≤ 5 (TRL's epsilon_high=5.0)
            aggregation="token_mean",
        ),
        AlgoConfig(
            name="sapo",
            summary="SAPO (Qwen): sigmoid soft gate on the token ratio instead of a hard clip, per-sequence mean",
            advantage="grpo",
            loss="sapo",
            sapo_tau_pos=1.0,
            sapo_tau_neg=1.05,
            aggregation="seq_mean_token_mean",
        ),
        AlgoConfig(
            name="gmpo",
            summary="GMPO: geometric mean of the token ratios, clipped in log space to (e^-0.4, e^0.4)",
            advantage="grpo",
            loss="gmpo",
            clip_low=0.4,
            clip_high=0.4,
            aggregation="seq_mean_token_mean",
        ),
        AlgoConfig(
            name="dppo",
            summary="DPPO (Binary-TV): trust region on the probability change p − p_old instead of the ratio",
            advantage="grpo",
            loss="dppo",
            clip_low=0.2,
            clip_high=0.2,
            dppo_ratio_cap=3.0,
            aggregation="token_mean",
        ),
        AlgoConfig(
            name="ppo",
            summary="PPO (RLHF style): critic + GAE, whitened advantages, clipped value loss, adaptive KL reward",
            advantage="gae",
            aggregation="token_mean",
            kl_coef=0.05,
            kl_estimator="k1",
            kl_in="reward",
            kl_target=6.0,
            ppo_epochs=4,
            gamma=1.0,
            gae_lambda=0.95,
            value_clip=0.2,
            vf_coef=0.1,
            whiten_advantages=True,
        ),
    )
}


def get_preset(name: str) -> AlgoConfig:
    """The preset called `name`; a KeyError lists the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None


def with_overrides(cfg: AlgoConfig | str, **fields: Any) -> AlgoConfig:
    """A copy of `cfg` (or of the preset named `cfg`) with `fields` replaced, validated again.

    >>> with_overrides("dapo", clip_high=0.3).clip_high
    0.3
    """
    base = get_preset(cfg) if isinstance(cfg, str) else cfg
    known = {f.name for f in dataclasses.fields(AlgoConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown AlgoConfig field(s) {unknown}; fields are {sorted(known)}")
    return dataclasses.replace(base, **fields)


def preset_tree(name: str) -> dict[str, Any]:
    """{"algo": {...}} for `rlvr.config.load_config(..., presets=preset_tree)`."""
    return {"algo": dataclasses.asdict(get_preset(name))}


def outcome_advantages(
    cfg: AlgoConfig, rewards: torch.Tensor, kl_per_seq: torch.Tensor | None = None
) -> torch.Tensor:
    """Advantages (B, G) from outcome rewards (B, G) under `cfg` (not for gae, which is per token).

    With kl_in="reward" and kl_coef > 0, each completion's summed per-token KL (B, G) is
    subtracted first: r_i <- r_i - kl_coef * sum_t KL_it (so RLOO's baseline sees it too).
    """
    if cfg.needs_critic:
        raise ValueError(f"preset {cfg.name!r} uses gae: call rlvr.advantages.gae on per-token rewards")
    if cfg.kl_in == "reward" and cfg.kl_coef > 0:
        if kl_per_seq is None:
            raise ValueError(f"preset {cfg.name!r} puts the KL in the reward: pass kl_per_seq (B, G)")
        rewards = rewards - cfg.kl_coef * kl_per_seq
    return ADVANTAGES[cfg.resolved_advantage](rewards)


def _closest(name: str, known: Any) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


from rlvr.objective_text import describe  # noqa: E402 - re-exported: rlvr.presets.describe

__all__ = [
    "PRESETS",
    "AlgoConfig",
    "describe",
    "get_preset",
    "outcome_advantages",
    "preset_tree",
    "with_overrides",
]
