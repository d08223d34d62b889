"""rlvr.entropy_control: the adaptive entropy coefficient on a collapsing run, KL-Cov and Clip-Cov by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.entropy_control import adaptive_entropy_coef, clip_cov, kl_cov, token_covariance
from rlvr.losses import POLICY_LOSSES
from rlvr.presets import describe, with_overrides
from rlvr.rollout import policy_loss

T = torch.tensor


def test_the_coefficient_rises_while_entropy_collapses_below_target_and_falls_when_it_recovers():
    # a run whose mean token entropy collapses 1.2 -> 0.03, then recovers; target 0.4, step 0.01, cap 0.03.
    history = [1.2, 0.9, 0.6, 0.35, 0.2, 0.1, 0.05, 0.03, 0.5, 0.7, 0.9, 0.9]
    coef, seen = 0.0, []
    for h in history:
        coef = adaptive_entropy_coef(coef, h, target=0.4, delta=0.01, max_coef=0.03)
        seen.append(coef)
    # above target: stays at its floor 0; below: +0.01 per step up to the cap; above again: -0.01 per step
    want = [0.0, 0.0, 0.0, 0.01, 0.02, 0.03, 0.03, 0.03, 0.02, 0.01, 0.0, 0.0]
    assert seen == pytest.approx(want, abs=1e-12)
    assert adaptive_entropy_coef(0.02, 0.4, 0.4, 0.01, 0.03) == 0.02  # at target: unchanged


def _batch():
    # two rows of two tokens; A = [+1, -1] per row; logp = [[-0.5, -1.0], [-2.0, -0.5]], old = logp - 0.1.
    # mean logp = -1, mean A = 0: Cov = (logp + 1)·A = [[0.5, 0.0], [1.0, -0.5]].
    logp = T([[-0.5, -1.0], [-2.0, -0.5]])
    return logp, logp - 0.1, T([1.0, -1.0]), torch.ones(2, 2)


def test_token_covariance_by_hand():
    logp, _, adv, mask = _batch()
    assert torch.allclose(token_covariance(logp, adv.reshape(-1, 1).expand(2, 2), mask), T([[0.5, 0.0], [1.0, -0.5]]))


def test_kl_cov_penalises_the_top_covariance_tokens():
    # ρ = e^0.1 = 1.105171 (inside the 0.2 clip): PPO term -A ρ = [[-ρ, -ρ], [ρ, ρ]].
    # top 1/4 by Cov: token (1, 0) (Cov 1.0): + 2·|0.1| = +0.2, gradient -A ρ + 2·sign(0.1) = ρ + 2.
    # top 2/4: also (0, 0) (Cov 0.5): -ρ + 0.2, gradient -ρ + 2.
    logp, old, adv, mask = _batch()
    rho = math.exp(0.1)
    for frac, picked in ((0.25, [(1, 0)]), (0.5, [(1, 0), (0, 0)])):
        lp = logp.clone().requires_grad_(True)
        loss, m = kl_cov(lp, old, adv, mask, cov_top_frac=frac, cov_kl_coef=2.0)
        loss.sum().backward()
        want, grad = T([[-rho, -rho], [rho, rho]]), T([[-rho, -rho], [rho, rho]])
        for i, t in picked:
            want[i, t] += 0.2
            grad[i, t] += 2.0
        assert torch.allclose(loss, want, atol=1e-6) and torch.allclose(lp.grad, grad, atol=1e-6)
        assert m["cov_selected_frac"] == len(picked) / 4


def test_clip_cov_cuts_the_gradient_of_tokens_in_the_covariance_band():
    # band [0.4, 1.0] holds (0, 0) (Cov 0.5) and (1, 0) (Cov 1.0). frac 1: both cut (gradient 0), the
    # values stay -A ρ; frac 1/4: one token (k = 1), drawn at random from the two.
    logp, old, adv, mask = _batch()
    rho = math.exp(0.1)
    lp = logp.clone().requires_grad_(True)
    loss, m = clip_cov(lp, old, adv, mask, cov_clip_frac=1.0, cov_lb=0.4, cov_ub=1.0)
    loss.sum().backward()
    assert torch.allclose(loss, T([[-rho, -rho], [rho, rho]]), atol=1e-6)
    assert torch.allclose(lp.grad, T([[0.0, -rho], [0.0, rho]]), atol=1e-6)
    assert (m["cov_band_frac"], m["cov_clipped_frac"]) == (0.5, 0.5)
    lp = logp.clone().requires_grad_(True)  # band [0.4, 0.9]: Cov 1.0 is above it, only (0, 0) is cut
    clip_cov(lp, old, adv, mask, cov_clip_frac=1.0, cov_lb=0.4, cov_ub=0.9)[0].sum().backward()
    assert torch.allclose(lp.grad, T([[0.0, -rho], [rho, rho]]), atol=1e-6)
    torch.manual_seed(0)
    lp = logp.clone().requires_grad_(True)
    clip_cov(lp, old, adv, mask, cov_clip_frac=0.25, cov_lb=0.4, cov_ub=1.0)[0].sum().backward()
    cut = [(i, t) for i, t in ((0, 0), (1, 0)) if lp.grad[i, t] == 0]
    assert len(cut) == 1 and lp.grad[0, 1] == pytest.approx(-rho) and lp.grad[1, 1] == pytest.approx(rho)


def test_cov_losses_are_config_choices_with_their_formula_and_knobs_checked():
    assert POLICY_LOSSES["kl_cov"] is kl_cov and POLICY_LOSSES["clip_cov"] is clip_cov
    cfg = with_overrides("dapo", loss="kl_cov", cov_top_frac=0.25, cov_kl_coef=2.0)
    assert "− 2·S_i,t·|log π_θ(o_i,t) − log π_old(o_i,t)|, S_i,t = 1 on the top 0.25 of tokens" in describe(cfg)
    logp, old, adv, mask = _batch()
    loss, _ = policy_loss(cfg, logp, old, adv, mask)
    assert loss.item() == pytest.approx(0.2 / 4, abs=1e-6)  # float32 token mean of [[-ρ, -ρ], [ρ + 0.2, ρ]]
    with pytest.raises(ValueError, match="cov_top_frac=1.5"):
        with_overrides("dapo", loss="kl_cov", cov_top_frac=1.5)
    with pytest.raises(ValueError, match="entropy_coef=0.5 \\(the starting value\\) within"):
        with_overrides("dapo", entropy_target=0.3, entropy_coef=0.5)
    text = describe(with_overrides("dapo", entropy_target=0.3, entropy_coef_delta=0.002, entropy_coef_max=0.02))
    assert "α_k+1 = clip(α_k ± 0.002, 0, 0.02): + when the step's mean token entropy < 0.3" in text
