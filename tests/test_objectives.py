"""rlvr.objectives: CISPO, SAPO, GMPO and DPPO by hand, against their papers' formulas, and as presets."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.losses import POLICY_LOSSES, aggregate
from rlvr.objectives import cispo, dppo, gmpo, sapo
from rlvr.presets import describe, get_preset, with_overrides
from rlvr.rollout import policy_loss

T = torch.tensor
LN = math.log


def _grad(fn, logp: torch.Tensor, *args, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    logp = logp.clone().requires_grad_(True)
    loss, _ = fn(logp, *args, **kw)
    loss.sum().backward()
    return loss.detach(), logp.grad


# ---------------------------------------------------------------- CISPO


def test_cispo_by_hand():
    # ratios 0.5 and 8 (old_logp = 0); clip_low = 1 (no lower bound), clip_high = 4 (weight <= 5); A = 2.
    # weights w = [0.5, 5]; loss_t = -w A logp: -0.5*2*ln0.5 = +ln2 = 0.693147, -5*2*ln8 = -20.794415.
    # gradient d loss/d logp = -w A = [-1, -10] (the clipped token keeps its gradient, unlike PPO).
    logp = torch.log(T([[0.5, 8.0]]))
    loss, grad = _grad(cispo, logp, torch.zeros(1, 2), T([2.0]), torch.ones(1, 2), clip_low=1.0, clip_high=4.0)
    assert torch.allclose(loss, T([[LN(2), -10 * LN(8)]]), atol=1e-6)
    assert torch.allclose(grad, T([[-1.0, -10.0]]), atol=1e-6)
    _, m = cispo(logp, torch.zeros(1, 2), T([2.0]), torch.ones(1, 2))
    assert m["is_clip_frac"] == 0.5


def test_cispo_matches_the_papers_formula():
    # MiniMax-M1 eq. 4: J = 1/Σ|o_i| Σ_i Σ_t sg(r̂_i,t) Â_i log π_θ(o_i,t), r̂ = clip(r, 1-ε_low, 1+ε_high); loss = -J.
    g = torch.Generator().manual_seed(0)
    logp0 = torch.randn(3, 4, generator=g) * 0.5 - 1.0
    old = logp0 + torch.randn(3, 4, generator=g) * 0.4
    adv, mask = torch.randn(3, generator=g), T([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]]).float()
    logp = logp0.clone().requires_grad_(True)
    per_token, _ = cispo(logp, old, adv, mask, clip_low=0.2, clip_high=0.28)
    ours = aggregate(per_token, mask, "token_mean")
    ours.backward()
    ref_logp = logp0.clone().requires_grad_(True)
    total, n = 0.0, 0
    for i in range(3):
        for t in range(4):
            if mask[i, t]:
                r = math.exp(float(ref_logp[i, t].detach()) - float(old[i, t]))
                total = total + min(max(r, 0.8), 1.28) * float(adv[i]) * ref_logp[i, t]
                n += 1
    ref = -total / n
    ref.backward()
    assert abs(ours.item() - ref.item()) < 1e-6
    assert torch.allclose(logp.grad, ref_logp.grad, atol=1e-7)


# ---------------------------------------------------------------- SAPO


def test_sapo_by_hand():
    # token 1: ratio 1, A = +1, τ = 1: f = σ(0)·4 = 2, loss -2; d/dlogp = -A·4σ(1-σ)·ρ = -1 (PPO's gradient).
    # token 2: ratio 2, A = +1, τ = 1: f = 4σ(1) = 2.9242344, loss -2.9242344; grad = -4σ(1)σ(-1)·2 = -1.5728954.
    # row 2, token 1: ratio 1, A = -1, τ_neg = 1.05: f = 2/1.05 = 1.9047619, loss +1.9047619; grad = +1.
    logp = torch.log(T([[1.0, 2.0], [1.0, 1.0]]))
    mask = T([[1.0, 1.0], [1.0, 0.0]])
    loss, grad = _grad(sapo, logp, torch.zeros(2, 2), T([1.0, -1.0]), mask, sapo_tau_pos=1.0, sapo_tau_neg=1.05)
    s1 = 1 / (1 + math.exp(-1))
    assert torch.allclose(loss, T([[-2.0, -4 * s1], [2 / 1.05, 0.0]]), atol=1e-6)
    assert torch.allclose(grad, T([[-1.0, -8 * s1 * (1 - s1)], [1.0, 0.0]]), atol=1e-6)


def test_sapo_matches_the_papers_formula():
    # SAPO eq.: J = 1/G Σ_i 1/|y_i| Σ_t f_i,t(r_i,t) Â_i, f(x) = σ(τ(x-1))·4/τ, τ = τ_pos if Â > 0 else τ_neg.
    g = torch.Generator().manual_seed(1)
    logp0 = torch.randn(3, 3, generator=g) * 0.5 - 1.0
    old = logp0 + torch.randn(3, 3, generator=g) * 0.5
    adv, mask = T([0.7, -1.3, 0.4]), T([[1, 1, 1], [1, 1, 0], [1, 0, 0]]).float()
    logp = logp0.clone().requires_grad_(True)
    ours = aggregate(sapo(logp, old, adv, mask, sapo_tau_pos=0.9, sapo_tau_neg=1.4)[0], mask, "seq_mean_token_mean")
    ours.backward()
    ref_logp = logp0.clone().requires_grad_(True)
    seqs = []
    for i in range(3):
        tau = 0.9 if adv[i] > 0 else 1.4
        terms = [torch.sigmoid(tau * (torch.exp(ref_logp[i, t] - old[i, t]) - 1)) * 4 / tau * adv[i]
                 for t in range(3) if mask[i, t]]
        seqs.append(sum(terms) / len(terms))
    ref = -sum(seqs) / 3
    ref.backward()
    assert abs(ours.item() - ref.item()) < 1e-6
    assert torch.allclose(logp.grad, ref_logp.grad, atol=1e-7)


# ---------------------------------------------------------------- GMPO


def test_gmpo_by_hand():
    # δ = [ln2, ln0.5] = [0.693147, -0.693147], clip ±0.4, one sequence.
    # A = +1: δ̃ = min(δ, clip δ) = [0.4, -0.693147]; g = exp(-0.146574) = 0.863664; loss -0.863664.
    #   gradient: only the unclipped token 2 moves g: d loss/d logp_2 = -A g / 2 = -0.431832.
    # A = -1: δ̃ = max(δ, clip δ) = [0.693147, -0.4]; g = exp(0.146574) = 1.157869; loss +1.157869.
    #   gradient: only token 1: -A g / 2 = +0.578934.
    logp, old, mask = torch.log(T([[2.0, 0.5], [2.0, 0.5]])), torch.zeros(2, 2), torch.ones(2, 2)
    lp = logp.clone().requires_grad_(True)
    per_token, m = gmpo(lp, old, T([1.0, -1.0]), mask, clip_low=0.4, clip_high=0.4)
    agg = aggregate(per_token, mask, "seq_mean_token_mean")
    agg.backward()
    g_pos, g_neg = math.exp((0.4 - LN(2)) / 2), math.exp((LN(2) - 0.4) / 2)
    assert torch.allclose(per_token, T([[-g_pos, -g_pos], [g_neg, g_neg]]), atol=1e-6)
    assert abs(agg.item() - (-g_pos + g_neg) / 2) < 1e-6
    assert torch.allclose(lp.grad, T([[0.0, -g_pos / 2], [g_neg / 2, 0.0]]) / 2, atol=1e-6)  # /2: mean of 2 rows
    assert m["clip_frac"] == 0.5


def test_gmpo_matches_the_papers_formula():
    # GMPO eq. 4: J = 1/G Σ_i (Π_t |min(ρ_t Â_i, clip(ρ_t, e^-ε1, e^ε2) Â_i)|)^(1/|o_i|) · sgn(Â_i); loss = -J.
    g = torch.Generator().manual_seed(2)
    logp0 = torch.randn(4, 3, generator=g) * 0.5 - 1.0
    old = logp0 + torch.randn(4, 3, generator=g) * 0.5
    adv, mask = T([0.7, -1.3, 0.4, -0.2]), T([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]]).float()
    logp = logp0.clone().requires_grad_(True)
    ours = aggregate(gmpo(logp, old, adv, mask, clip_low=0.3, clip_high=0.5)[0], mask, "seq_mean_token_mean")
    ours.backward()
    ref_logp = logp0.clone().requires_grad_(True)
    js = []
    for i in range(4):
        prod, n = torch.tensor(1.0), 0
        for t in range(3):
            if mask[i, t]:
                rho = torch.exp(ref_logp[i, t] - old[i, t])
                prod = prod * torch.abs(torch.minimum(rho * adv[i], rho.clamp(math.exp(-0.3), math.exp(0.5)) * adv[i]))
                n += 1
        js.append(prod ** (1.0 / n) * torch.sign(adv[i]))
    ref = -sum(js) / 4
    ref.backward()
    assert abs(ours.item() - ref.item()) < 1e-6
    assert torch.allclose(logp.grad, ref_logp.grad, atol=1e-6)


# ---------------------------------------------------------------- DPPO


def test_dppo_by_hand():
    # δ_low = 0.25, δ_high = 0.2, cap C = 3. p_old, p, A per token:
    # (0.5, 0.8, +1): p - p_old = 0.3 > 0.2 -> masked, loss 0, grad 0.
    # (0.5, 0.6, +1): kept, ρ = 1.2: loss = -1.2·ln0.6 = 0.612990; grad -1.2.
    # (0.5, 0.2, -1): change -0.3 < -0.25 -> masked.
    # (0.5, 0.45, -1): kept, ρ = 0.9: loss = +0.9·ln0.45 = -0.718657; grad +0.9.
    # (0.05, 0.2, +1): change 0.15 kept, ρ = 4 capped at 3: loss = -3·ln0.2 = 4.828314; grad -3.
    # (0.5, 0.28, -1): change -0.22 >= -0.25 kept (δ_low, not δ_high), ρ = 0.56: loss = 0.56·ln0.28; grad +0.56.
    p_old, p = T([[0.5, 0.5, 0.5, 0.5, 0.05, 0.5]]), T([[0.8, 0.6, 0.2, 0.45, 0.2, 0.28]])
    adv = T([[1.0, 1.0, -1.0, -1.0, 1.0, -1.0]])
    loss, grad = _grad(dppo, torch.log(p), torch.log(p_old), adv, torch.ones(1, 6),
                       clip_low=0.25, clip_high=0.2, dppo_ratio_cap=3.0)
    want = [0.0, -1.2 * LN(0.6), 0.0, 0.9 * LN(0.45), -3 * LN(0.2), 0.56 * LN(0.28)]
    assert torch.allclose(loss, T([want]), atol=1e-5)
    assert torch.allclose(grad, T([[0.0, -1.2, 0.0, 0.9, -3.0, 0.56]]), atol=1e-5)
    _, m = dppo(torch.log(p), torch.log(p_old), adv, torch.ones(1, 6), clip_low=0.25, clip_high=0.2)
    assert m["mask_frac"] == pytest.approx(2 / 6) and m["ratio_cap_frac"] == pytest.approx(1 / 6)


def test_dppo_gradient_matches_the_papers_masked_surrogate():
    # DPPO (Binary-TV): J = E[ M_t · r_t · Â ], M_t = 0 where the TV change |p - p_old| leaves δ in the
    # advantage's direction; its gradient M ρ Â ∇logp is what our detached-weight surrogate gives (ρ < C).
    g = torch.Generator().manual_seed(3)
    old = torch.log(torch.rand(3, 4, generator=g) * 0.8 + 0.1)
    logp0 = torch.log((old.exp() + (torch.rand(3, 4, generator=g) - 0.5) * 0.6).clamp(0.02, 0.98))
    adv, mask = T([0.7, -1.3, 0.4]), T([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 0, 0]]).float()
    logp = logp0.clone().requires_grad_(True)
    ours = aggregate(dppo(logp, old, adv, mask, clip_low=0.15, clip_high=0.1, dppo_ratio_cap=100.0)[0], mask, "token_mean")
    ours.backward()
    ref_logp = logp0.clone().requires_grad_(True)
    total, n, masked = 0.0, 0, 0
    for i in range(3):
        for t in range(4):
            if mask[i, t]:
                change = float(ref_logp[i, t].detach().exp()) - float(old[i, t].exp())
                keep = change <= 0.1 if adv[i] > 0 else change >= -0.15
                masked += not keep
                total = total + keep * torch.exp(ref_logp[i, t] - old[i, t]) * adv[i]
                n += 1
    (-total / n).backward()
    assert 0 < masked < n  # the draw exercises both branches
    assert torch.allclose(logp.grad, ref_logp.grad, atol=1e-7)


# ---------------------------------------------------------------- as presets


@pytest.mark.parametrize("name", ["cispo", "sapo", "gmpo", "dppo"])
def test_presets_run_their_objective_through_the_rollout_loss(name):
    cfg = get_preset(name)
    assert cfg.loss == name and POLICY_LOSSES[name] is {"cispo": cispo, "sapo": sapo, "gmpo": gmpo, "dppo": dppo}[name]
    g = torch.Generator().manual_seed(4)
    old = torch.log(torch.rand(2, 3, generator=g) * 0.8 + 0.1)
    logp, adv, mask = old + 0.05, T([1.0, -0.5]), T([[1, 1, 1], [1, 1, 0]]).float()
    loss, metrics = policy_loss(cfg, logp, old, adv, mask)
    kw = {"cispo": {"clip_low": 1.0, "clip_high": 4.0}, "sapo": {"sapo_tau_pos": 1.0, "sapo_tau_neg": 1.05},
          "gmpo": {"clip_low": 0.4, "clip_high": 0.4},
          "dppo": {"clip_low": 0.2, "clip_high": 0.2, "dppo_ratio_cap": 3.0}}[name]
    direct = aggregate(POLICY_LOSSES[name](logp, old, adv, mask, **kw)[0], mask, cfg.aggregation)
    assert abs(loss.item() - direct.item()) < 1e-7 and metrics["loss/policy"] == pytest.approx(direct.item())
    # a changed knob reaches the objective (the fields are passed by name, not dropped)
    knob = {"cispo": {"clip_high": 0.01}, "sapo": {"sapo_tau_pos": 5.0}, "gmpo": {"clip_high": 0.01},
            "dppo": {"clip_high": 0.01}}[name]
    assert policy_loss(with_overrides(cfg, **knob), logp, old, adv, mask)[0].item() != pytest.approx(loss.item())


def test_describe_prints_each_new_objective():
    assert "sg(clip(ρ_i,t, 1−1, 1+4))·A_i·log π_θ(o_i,t)" in describe(get_preset("cispo"))
    assert "σ(τ·(ρ_i,t − 1))·4/τ·A_i, τ = 1 if A_i > 0 else 1.05" in describe(get_preset("sapo"))
    gm = describe(get_preset("gmpo"))
    assert "clip(δ, −0.4, 0.4)" in gm and "L = −1/N Σ_i 1/|o_i| Σ_t g_i·A_i" in gm
    assert "M_i,t·sg(min(ρ_i,t, 3))·A_i·log π_θ(o_i,t)" in describe(get_preset("dppo"))


def test_cli_presets_show_prints_the_exact_objective(capsys):
    from rlvr.cli import main

    assert main(["presets", "show", "cispo"]) == 0
    out = capsys.readouterr().out
    assert "objective   L = −1/Σ_i|o_i| Σ_i Σ_t sg(clip(ρ_i,t, 1−1, 1+4))·A_i·log π_θ(o_i,t)\n" in out
    assert main(["presets", "show", "sapo", "sapo_tau_neg=2"]) == 0
    assert "τ = 1 if A_i > 0 else 2" in capsys.readouterr().out


def test_knobs_an_objective_does_not_take_are_refused():
    with pytest.raises(ValueError, match="dual_clip is for ppo_clip/gspo"):
        with_overrides("sapo", dual_clip=3.0)
    with pytest.raises(ValueError, match="sapo_tau_neg=0"):
        with_overrides("sapo", sapo_tau_neg=0)
