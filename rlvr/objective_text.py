"""`describe`: the exact objective an `rlvr.presets.AlgoConfig` resolves to, as labelled text lines.

``rlvr presets show NAME`` prints it, and every run writes it to RUN_DIR/objective.txt. One line
per piece (reward, advantage, policy term, KL, entropy, aggregation, rollout correction), with the
config's numbers substituted, so what a run optimises can be read without reading code.

What it does not do: compute anything (the objective itself is `rlvr.rollout.policy_loss`).

Try it::

    python -c "from rlvr.presets import describe, get_preset; print(describe(get_preset('dapo')))"
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from rlvr.advantages import ADVANTAGES, EPS
from rlvr.losses import AGGREGATIONS, KL_ESTIMATORS, POLICY_LOSSES

if TYPE_CHECKING:
    from rlvr.presets import AlgoConfig

__all__ = ["describe"]


def _aggregate_text(cfg: AlgoConfig, term: str) -> str:
    length = cfg.norm_length if cfg.norm_length is not None else "L_max"
    return AGGREGATIONS[cfg.aggregation].formula.format(term=term, length=length)


def describe(cfg: AlgoConfig, base: str | None = None, max_new_tokens: int | None = None) -> str:
    """The exact objective `cfg` resolves to, one labelled line per piece, numbers substituted.

    base: the preset the overrides are shown against (default ``cfg.name``; a run passes its
    ``preset``). max_new_tokens: the run's limit, substituted for L_max when given.

    >>> from rlvr.presets import get_preset
    >>> print(describe(get_preset("dapo")).splitlines()[0])
    preset dapo: DAPO: clip-higher, dynamic sampling, token-level loss, soft overlong penalty, no KL
    """
    from rlvr.presets import PRESETS  # here: rlvr.presets re-exports this function

    adv = cfg.resolved_advantage
    lines = [f"preset {cfg.name}: {cfg.summary}" if cfg.summary else f"preset {cfg.name}"]
    base = base or cfg.name
    if base in PRESETS:
        ref = dataclasses.replace(PRESETS[base], name=cfg.name, summary=cfg.summary)
        changed = [
            f"{f.name}={getattr(cfg, f.name)!r}"
            for f in dataclasses.fields(cfg)
            if getattr(cfg, f.name) != getattr(ref, f.name)
        ]
        if changed:
            lines.append("overrides   " + ", ".join(changed))
    if max_new_tokens is not None and cfg.norm_length is None:  # the run's constant, substituted
        cfg = dataclasses.replace(cfg, norm_length=max_new_tokens)
    reward = "r_i = verifier reward of completion o_i"
    if cfg.overlong_buffer > 0:
        reward += (
            f" + overlong: 0 if |o_i| ≤ L_max − B; −{cfg.overlong_penalty:g}·(|o_i| − (L_max − B))/B inside the"
            f" buffer, B = {cfg.overlong_buffer:g}·L_max"
        )
    if cfg.kl_in == "reward" and cfg.kl_coef > 0:
        where = "r_t (per token)" if adv == "gae" else "r_i"
        reward += f"; KL penalty: {where} −= {cfg.kl_coef:g}·{cfg.kl_estimator}"
        if adv != "gae":
            reward += " summed over the completion's tokens"
    lines.append(f"reward      {reward}")
    lines.append("advantage   " + ADVANTAGES[adv].formula.format(eps=EPS, gamma=cfg.gamma, lam=cfg.gae_lambda))
    if adv in ("grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"):
        lines.append("            a group whose rewards are all equal gets A = 0 exactly")
    if cfg.whiten_advantages:
        lines.append(f"            then whitened over the batch's tokens: (A − mean) / (std + {EPS:g})")
    objective_fn = POLICY_LOSSES[cfg.loss]
    holes = {"rho": objective_fn.ratio_symbol, "a": "A_i,t" if adv == "gae" else "A_i", "lo": f"{cfg.clip_low:g}",
             "hi": f"{cfg.clip_high:g}", "c": f"{cfg.dppo_ratio_cap:g}", "tau_pos": f"{cfg.sapo_tau_pos:g}",
             "tau_neg": f"{cfg.sapo_tau_neg:g}", "kl_coef": f"{cfg.cov_kl_coef:g}", "top_frac": f"{cfg.cov_top_frac:g}",
             "clip_frac": f"{cfg.cov_clip_frac:g}", "cov_lb": f"{cfg.cov_lb:g}", "cov_ub": f"{cfg.cov_ub:g}"}
    lines.append(f"ratio       {objective_fn.ratio_formula.format(**holes)}")
    a = holes["a"]
    term = objective_fn.term.format(**holes)
    dual = None
    if cfg.entropy_target is not None:
        entropy_line = (f"entropy     α_k+1 = clip(α_k ± {cfg.entropy_coef_delta:g}, 0, {cfg.entropy_coef_max:g}): + when the "
                        f"step's mean token entropy < {cfg.entropy_target:g}, − when above; α_0 = {cfg.entropy_coef:g}")
    if cfg.dual_clip is not None:
        dual = f"J_i,t = {term}, then J_i,t = max(J_i,t, {cfg.dual_clip:g}·{a}) where {a} < 0 (dual clip)"
        term = "J_i,t"
    objective = f"L = −{_aggregate_text(cfg, term)}"
    if cfg.kl_in == "loss" and cfg.kl_coef > 0:
        objective += f" + {cfg.kl_coef:g}·{_aggregate_text(cfg, cfg.kl_estimator + '_t')}"
    if cfg.entropy_coef > 0 or cfg.entropy_target is not None:
        coef = f"{cfg.entropy_coef:g}" if cfg.entropy_target is None else "α_k"
        objective += f" − {coef}·{_aggregate_text(cfg, 'H_t')}"
    if cfg.needs_critic:
        clip = f"clip(V, V_old ± {cfg.value_clip:g})" if cfg.value_clip is not None else "V"
        objective += f" + {cfg.vf_coef:g}·{_aggregate_text(cfg, f'½ max((V−R)², ({clip}−R)²)')}"
    lines.append(f"objective   {objective}")
    if dual is not None:
        lines.append(f"            {dual}")
    if cfg.entropy_target is not None:
        lines.append(entropy_line)
    if cfg.aggregation == "seq_mean_token_sum_norm":
        where = cfg.norm_length if cfg.norm_length is not None else "the run's max_new_tokens"
        lines.append(f"            L_max = {where} (a constant, not the batch's lengths; required)")
    if cfg.kl_coef > 0:
        ctrl = (
            f", adaptive towards KL = {cfg.kl_target:g} (horizon {cfg.kl_horizon})" if cfg.kl_target else ""
        )
        lines.append(
            f"kl          {KL_ESTIMATORS[cfg.kl_estimator]}  (coef {cfg.kl_coef:g} in the {cfg.kl_in}{ctrl})"
        )
    else:
        lines.append("kl          none (kl_coef = 0: no reference model is loaded)")
    if cfg.tis_cap is not None:
        lines.append(
            f"is-correct  each token's term × min(π_old^trainer/π_old^sampler, {cfg.tis_cap:g}) (TIS)"
        )
    if cfg.correction != "none":
        from rlvr.correction import describe_correction

        lines.append(f"is-correct  each token's term × {describe_correction(cfg.correction, cfg.correction_cap, cfg.correction_lo, cfg.correction_hi)}")
        lines.append("            π_old = the trainer's weights before this step, μ = the policy that sampled (rollout.max_staleness)")
    ties = ("the primary verifier's passed all agree (all solved or all failed)" if cfg.dynamic_sampling_filter == "passed"
            else "std_g r = 0 (shaped rewards)")
    sampling = f"dynamic: groups where {ties} are dropped and more prompts sampled"
    sampling += f" (≤ {cfg.dynamic_sampling_rounds} extra rounds)" if cfg.dynamic_sampling else ""
    lines.append(f"sampling    {sampling if cfg.dynamic_sampling else 'every group is kept'}")
    truncated = "masked out of the loss" if cfg.overlong_mask else "kept in the loss"
    lines.append(f"truncated   completions that hit max_new_tokens are {truncated}")
    lines.append(
        f"updates     {cfg.ppo_epochs} epoch(s) × {cfg.num_minibatches} minibatch(es) per batch of rollouts"
    )
    lines.append(
        f"accumulate  each micro-batch's loss × its share of the minibatch's {AGGREGATIONS[cfg.aggregation].unit}, "
        "counted over every process (the global batch's loss)"
    )
    return "\n".join(lines)

