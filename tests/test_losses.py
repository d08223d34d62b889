"""rlvr.losses: every objective, KL estimator, aggregation and pipeline loss, numbers derived by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.losses import (
    adaptive_kl_coef,
    aggregate,
    bradley_terry_loss,
    dpo_loss,
    entropy_from_logits,
    gspo,
    kl_penalty,
    kl_reward,
    kto_loss,
    orpo_loss,
    ppo_clip,
    sft_loss,
    simpo_loss,
    tis_weights,
    token_logprobs,
    value_loss,
)

T = torch.tensor
LN2 = math.log(2.0)


def close(actual, expected, tol: float = 1e-6) -> None:
    actual = torch.as_tensor(actual)
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=tol, rtol=0)


def softplus(x: float) -> float:
    """-log sigmoid(-x) = log(1 + e^x), the hand formula for the logistic losses below."""
    return math.log1p(math.exp(x))


# ---------------------------------------------------------------- logits helpers


def test_token_logprobs_by_hand_and_matches_log_softmax():
    # logits [0, ln 3]: softmax = [1/4, 3/4]; picking id 1 -> ln(3/4) = -0.2876821, id 0 -> ln(1/4).
    logits = T([[[0.0, math.log(3.0)], [0.0, math.log(3.0)]]])  # (1, 2, 2)
    close(token_logprobs(logits, T([[1, 0]])), [[math.log(0.75), math.log(0.25)]])
    # temperature 2 halves the logits: [0, ln 3 / 2] -> p(1) = sqrt3 / (1 + sqrt3).
    close(
        token_logprobs(logits, T([[1, 1]]), temperature=2.0)[0, 0],
        math.log(math.sqrt(3) / (1 + math.sqrt(3))),
    )
    g = torch.Generator().manual_seed(0)
    big = torch.randn(3, 5, 11, generator=g)
    ids = torch.randint(0, 11, (3, 5), generator=g)
    ref = torch.log_softmax(big, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    close(token_logprobs(big, ids), ref, tol=1e-6)


def test_token_logprobs_gradient_flows():
    logits = torch.zeros(1, 1, 4, requires_grad=True)
    token_logprobs(logits, T([[2]])).sum().backward()
    # d log softmax_2 / d z = onehot(2) - softmax = [-0.25, -0.25, 0.75, -0.25]
    close(logits.grad[0, 0], [-0.25, -0.25, 0.75, -0.25])


def test_entropy_by_hand():
    # uniform over 4 -> ln 4; [1/4, 3/4] -> -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.5623351
    logits = T([[[0.0, 0.0, 0.0, 0.0], [0.0, math.log(3.0), -1e9, -1e9]]])
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    close(entropy_from_logits(logits), [[math.log(4.0), h]], tol=1e-5)


# ---------------------------------------------------------------- aggregation

LOSS = T([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
MASK = T([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])


def test_aggregate_token_mean():
    close(aggregate(LOSS, MASK, "token_mean"), (1 + 2 + 3 + 4) / 4)  # 2.5


def test_aggregate_seq_mean_token_mean():
    close(aggregate(LOSS, MASK, "seq_mean_token_mean"), (6 / 3 + 4 / 1) / 2)  # 3.0


def test_aggregate_seq_mean_token_sum_norm():
    # (sum of all masked losses) / (rows * constant): (6 + 4) / (2 * 3) and (6 + 4) / (2 * 5)
    close(aggregate(LOSS, MASK, "seq_mean_token_sum_norm", max_len=3), 10 / 6)
    close(aggregate(LOSS, MASK, "seq_mean_token_sum_norm", max_len=5), 1.0)
    # the normaliser is a constant of the run, never the batch's width: leaving it out is an error
    with pytest.raises(ValueError, match="needs max_len"):
        aggregate(LOSS, MASK, "seq_mean_token_sum_norm")


def test_aggregate_modes_agree_when_all_rows_full_length():
    loss = torch.rand(4, 6, generator=torch.Generator().manual_seed(1))
    full = torch.ones(4, 6)
    a = aggregate(loss, full, "token_mean")
    close(aggregate(loss, full, "seq_mean_token_mean"), a)
    close(aggregate(loss, full, "seq_mean_token_sum_norm", max_len=6), a)


def test_aggregate_empty_rows_and_bad_mode():
    mask = T([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    close(aggregate(LOSS, mask, "seq_mean_token_mean"), 1.5)  # the empty row does not count
    close(aggregate(LOSS, torch.zeros(2, 3), "token_mean"), 0.0)
    with pytest.raises(ValueError, match="unknown mode"):
        aggregate(LOSS, MASK, "sum")


# ---------------------------------------------------------------- PPO clip, dual clip, GSPO


def _ratios(*r: float) -> tuple[torch.Tensor, torch.Tensor]:
    logp = torch.log(T([list(r)])).requires_grad_(True)
    return logp, torch.zeros(1, len(r))


def test_ppo_clip_higher_by_hand():
    # eps_low 0.2, eps_high 0.28: clip range [0.8, 1.28]. loss = max(-rho A, -clip(rho) A).
    #   rho 1.5, A +1: max(-1.5, -1.28) = -1.28  (clipped, high side)
    #   rho 0.5, A +1: max(-0.5, -0.8)  = -0.5   (unclipped)
    #   rho 1.1, A -1: max(1.1, 1.1)    = 1.1    (inside the range)
    #   rho 0.7, A -1: max(0.7, 0.8)    = 0.8    (clipped, low side)
    logp, old = _ratios(1.5, 0.5, 1.1, 0.7)
    adv = T([[1.0, 1.0, -1.0, -1.0]])
    loss, m = ppo_clip(logp, old, adv, torch.ones(1, 4), clip_low=0.2, clip_high=0.28)
    close(loss, [[-1.28, -0.5, 1.1, 0.8]])
    assert (m["clip_frac"], m["clip_frac_high"], m["clip_frac_low"]) == (0.5, 0.25, 0.25)
    close(m["ratio_mean"], (1.5 + 0.5 + 1.1 + 0.7) / 4)
    close((m["ratio_max"], m["ratio_min"]), (1.5, 0.5))
    # approx_kl = mean k3 with x = log rho: rho - 1 - log rho
    close(m["approx_kl"], sum(r - 1 - math.log(r) for r in (1.5, 0.5, 1.1, 0.7)) / 4, tol=1e-6)
    # gradients wrt logp: clipped tokens get 0; others d(-A rho)/dlogp = -A rho.
    loss.sum().backward()
    close(logp.grad, [[0.0, -0.5, 1.1, 0.0]])


def test_ppo_clip_symmetric_and_sequence_advantages():
    logp, old = _ratios(1.5, 0.5)
    loss, _ = ppo_clip(logp, old, T([2.0]), torch.ones(1, 2))  # (B*G,) advantage broadcast
    close(loss, [[-2 * 1.2, -2 * 0.5]])
    with pytest.raises(ValueError, match=r"advantages must be \(B\*G,\) or \(B\*G, T\)"):
        ppo_clip(logp, old, T([[2.0, 1.0, 0.0]]), torch.ones(1, 2))  # e.g. a (B, G) tensor by mistake


def test_dual_clip_caps_negative_advantages():
    # c = 3, A = -1: rho 5 -> ppo loss max(5, 0.8) = 5, capped at -c A = 3; rho 2 -> 2 (below cap).
    # A = +1, rho 5: -1.2 unchanged (dual clip only acts on A < 0).
    logp, old = _ratios(5.0, 2.0, 5.0)
    loss, m = ppo_clip(logp, old, T([[-1.0, -1.0, 1.0]]), torch.ones(1, 3), dual_clip=3.0)
    close(loss, [[3.0, 2.0, -1.2]])
    close(m["dual_clip_frac"], 1 / 3)
    with pytest.raises(ValueError, match="dual_clip"):
        ppo_clip(logp, old, T([[-1.0, -1.0, 1.0]]), torch.ones(1, 3), dual_clip=0.5)


def test_ppo_clip_masks_padding():
    logp, old = _ratios(1.0, 9.0)
    loss, m = ppo_clip(logp, old, T([1.0]), T([[1.0, 0.0]]))
    close(loss, [[-1.0, 0.0]])
    assert m["clip_frac"] == 0.0 and m["ratio_max"] == 1.0


def test_gspo_sequence_ratio_by_hand():
    # token ratios 2 and 0.5: mean log-ratio (ln 2 - ln 2)/2 = 0 -> s = 1 on both tokens, loss -A.
    logp, old = _ratios(2.0, 0.5)
    loss, _ = gspo(logp, old, T([1.0]), torch.ones(1, 2))
    close(loss, [[-1.0, -1.0]])
    # padding is excluded from the mean: valid tokens ratio 1.0002 each -> s = 1.0002 (inside
    # [1 - 3e-4, 1 + 4e-4]); the padded token's ratio 50 is ignored.
    logp, old = _ratios(1.0002, 1.0002, 50.0)
    loss, _ = gspo(logp, old, T([1.0]), T([[1.0, 1.0, 0.0]]))
    close(loss, [[-1.0002, -1.0002, 0.0]])


def test_gspo_equals_token_ratio_when_all_tokens_share_a_log_ratio():
    logp, old = _ratios(1.1, 1.1, 1.1)
    mask, adv = torch.ones(1, 3), T([0.7])
    g, _ = gspo(logp, old, adv, mask, clip_low=0.2, clip_high=0.28)
    p, _ = ppo_clip(logp.detach(), old, adv, mask, clip_low=0.2, clip_high=0.28)
    close(g, p)


def test_gspo_gradient_is_the_sequence_level_gradient():
    # loss_i = -A s_i with s_i = exp(mean_t log ratio): d/dlogp_t = -A s_i / |o_i|. With
    # seq_mean_token_mean the token form must give exactly that gradient.
    logp, old = _ratios(1.00005, 0.99995, 1.0001)
    loss, _ = gspo(logp, old, T([2.0]), torch.ones(1, 3))
    aggregate(loss, torch.ones(1, 3), "seq_mean_token_mean").backward()
    s = math.exp((math.log(1.00005) + math.log(0.99995) + math.log(1.0001)) / 3)
    close(logp.grad, [[-2.0 * s / 3] * 3])


# ---------------------------------------------------------------- KL, TIS, value


def test_kl_estimators_by_hand():
    # logp = 0, ref = ln 2 -> x = ref - logp = ln 2.
    # k1 = -x = -0.693147; k2 = x^2/2 = 0.240227; k3 = e^x - 1 - x = 2 - 1 - ln 2 = 0.306853.
    logp, ref = T([0.0]), T([LN2])
    close(kl_penalty(logp, ref, "k1"), [-LN2])
    close(kl_penalty(logp, ref, "k2"), [LN2**2 / 2])
    close(kl_penalty(logp, ref, "k3"), [1 - LN2])
    for k in ("k1", "k2", "k3"):
        close(kl_penalty(ref, ref, k), [0.0])
    assert torch.isfinite(kl_penalty(T([-100.0]), T([0.0]), "k3")).all()  # exp is clamped
    with pytest.raises(ValueError, match="k4"):
        kl_penalty(logp, ref, "k4")


def test_kl_reward_is_detached_penalty():
    logp = T([[0.0, 0.0]], requires_grad=True)
    out = kl_reward(logp, T([[LN2, LN2]]), T([[1.0, 0.0]]), coef=0.1, estimator="k1")
    close(out, [[0.1 * LN2, 0.0]])  # -0.1 * k1 = -0.1 * (-ln 2)
    assert not out.requires_grad


def test_adaptive_kl_controller():
    # error = clip(KL/target - 1, -0.2, 0.2); coef * (1 + error * n / horizon)
    close(adaptive_kl_coef(0.1, 12.0, 6.0, 100, 1000), 0.1 * (1 + 0.2 * 0.1))  # error 1 -> 0.2
    close(adaptive_kl_coef(0.1, 3.0, 6.0, 100, 1000), 0.1 * (1 - 0.2 * 0.1))  # error -0.5 -> -0.2
    close(adaptive_kl_coef(0.1, 6.6, 6.0, 100, 1000), 0.1 * (1 + 0.1 * 0.1))  # error 0.1


def test_tis_weights_by_hand():
    # trainer logp 0, sampler ln 0.5 / ln 0.1 / ln 2 -> raw ratios 2, 10, 0.5; cap 2 -> 2, 2, 0.5.
    w, m = tis_weights(torch.zeros(1, 3), torch.log(T([[0.5, 0.1, 2.0]])), torch.ones(1, 3), cap=2.0)
    close(w, [[2.0, 2.0, 0.5]])
    close(m["tis_mean_raw"], (2 + 10 + 0.5) / 3, tol=1e-5)
    close(m["tis_capped_frac"], 1 / 3)  # only 10 exceeds the cap (2 is not > 2)


def test_value_loss_clipped_by_hand():
    # V 2, V_old 0, R 3, clip 0.5: unclipped (2-3)^2 = 1; clipped V = 0.5 -> (0.5-3)^2 = 6.25;
    # 0.5 * max = 3.125. Second token inside the clip range: 0.5 * (2.9 - 3)^2 = 0.005.
    loss, m = value_loss(T([[2.0, 2.9]]), T([[0.0, 2.8]]), T([[3.0, 3.0]]), torch.ones(1, 2), clip=0.5)
    close(loss, [[3.125, 0.005]])
    assert m["vf_clip_frac"] == 0.5
    close(value_loss(T([[2.0]]), T([[0.0]]), T([[3.0]]), torch.ones(1, 1), clip=None)[0], [[0.5]])


# ---------------------------------------------------------------- SFT, reward model, preference losses


def test_sft_loss_masks_the_prompt():
    loss, m = sft_loss(T([[-1.0, -2.0, -3.0]]), T([[0.0, 1.0, 1.0]]))
    close(loss, 2.5)  # (2 + 3) / 2
    assert m["tokens"] == 2.0


def test_bradley_terry_by_hand():
    # -log sigma(2) = log(1 + e^-2) = 0.126928; -log sigma(0) = ln 2 -> mean 0.410038.
    loss, m = bradley_terry_loss(T([2.0, 0.0]), T([0.0, 0.0]))
    close(loss, (softplus(-2.0) + LN2) / 2)
    assert m["accuracy"] == 0.5
    # margin 1: -log sigma(1) and -log sigma(-1)
    loss, _ = bradley_terry_loss(T([2.0, 0.0]), T([0.0, 0.0]), margin=1.0)
    close(loss, (softplus(-1.0) + softplus(1.0)) / 2)


def test_dpo_sigmoid_cdpo_ipo_by_hand():
    # h = (logp_c - ref_c) - (logp_r - ref_r) = (-1 + 2) - (-3 + 2) = 2; beta 0.5 -> beta h = 1.
    args = (T([-1.0]), T([-3.0]), T([-2.0]), T([-2.0]))
    loss, m = dpo_loss(*args, beta=0.5)
    close(loss, softplus(-1.0))  # -log sigma(1) = 0.3132617
    close((m["reward_chosen"], m["reward_rejected"], m["reward_margin"]), (0.5, -0.5, 1.0))
    assert m["reward_accuracy"] == 1.0
    # cDPO eps 0.1: 0.9 * (-log sigma(1)) + 0.1 * (-log sigma(-1))
    close(dpo_loss(*args, beta=0.5, label_smoothing=0.1)[0], 0.9 * softplus(-1.0) + 0.1 * softplus(1.0))
    # IPO: (h - 1/(2 beta))^2 = (2 - 1)^2 = 1
    close(dpo_loss(*args, beta=0.5, loss_type="ipo")[0], 1.0)
    with pytest.raises(ValueError, match="hinge"):
        dpo_loss(*args, loss_type="hinge")


def test_dpo_small_beta_closed_form():
    # -log sigma(x) = ln 2 - x/2 + x^2/8 + O(x^4); beta = 1e-4, h = 2 -> x = 2e-4.
    x = 2e-4
    loss, _ = dpo_loss(
        T([-1.0], dtype=torch.float64),
        T([-3.0], dtype=torch.float64),
        T([-2.0], dtype=torch.float64),
        T([-2.0], dtype=torch.float64),
        beta=1e-4,
    )
    close(loss, LN2 - x / 2 + x * x / 8, tol=1e-12)


def test_simpo_by_hand():
    # beta 2, gamma 0.5: z = 2*(-0.5) - 2*(-1.0) - 0.5 = 0.5 -> -log sigma(0.5) = 0.4740770.
    loss, m = simpo_loss(T([-0.5]), T([-1.0]), beta=2.0, gamma=0.5)
    close(loss, softplus(-0.5))
    close(m["reward_margin"], 1.0)


def test_orpo_by_hand():
    # p_c = 0.5 -> odds 1, log odds 0; p_r = 0.2 -> odds 0.25, log odds ln 0.25.
    # -log sigma(0 - ln 0.25) = log(1 + 0.25) = 0.2231436; loss = nll + 0.1 * that.
    loss, m = orpo_loss(torch.log(T([0.5])), torch.log(T([0.2])), T(2.0), lam=0.1)
    close(loss, 2.0 + 0.1 * math.log(1.25))
    close(m["log_odds"], -math.log(0.25))


def test_kto_by_hand():
    # r = logp - ref = [1, 0]; z = 0.5, beta 1.
    # desirable: 1 - sigma(1 - 0.5); undesirable: 1 - sigma(0.5 - 0). Both 1 - sigma(0.5) = 0.3775407.
    sig = 1 / (1 + math.exp(-0.5))
    loss, _ = kto_loss(T([1.0, 0.0]), T([0.0, 0.0]), T([True, False]), 0.5, beta=1.0)
    close(loss, 1 - sig)
    loss, _ = kto_loss(T([1.0, 0.0]), T([0.0, 0.0]), T([True, False]), 0.5, beta=1.0, weight_desirable=2.0)
    close(loss, (2 * (1 - sig) + (1 - sig)) / 2)
    # a negative KL estimate is clamped to 0: desirable 1 - sigma(1), undesirable 1 - sigma(0)
    loss, m = kto_loss(T([1.0, 0.0]), T([0.0, 0.0]), T([True, False]), -1.0, beta=1.0)
    close(loss, ((1 - 1 / (1 + math.exp(-1))) + 0.5) / 2)
    assert m["kl_ref"] == 0.0


def test_orpo_stays_finite_as_the_chosen_probability_reaches_one():
    # log1p(-exp(avg)) is -inf once exp(avg) rounds to 1 in float32; the capped log(-expm1) is not
    chosen = torch.tensor([-1e-8, 0.0], requires_grad=True)
    loss, _ = orpo_loss(chosen, torch.tensor([-2.0, -2.0]), torch.tensor(0.5))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(chosen.grad).all()
    # and it is the same formula where both forms are finite: log(1 - 0.5) for avg = log 0.5
    close(orpo_loss(torch.log(T([0.5])), torch.log(T([0.2])), T(0.0), lam=1.0)[0], math.log(1.25))


def test_kto_metrics_leave_out_a_class_the_batch_lacks():
    _, m = kto_loss(T([1.0, 2.0]), T([0.0, 0.0]), T([True, True]), 0.0, beta=0.5)
    close(m["reward_desirable"], 0.75)
    assert "reward_undesirable" not in m
