"""rlvr.advantages: every estimator on tiny tensors, with the expected numbers derived by hand."""

from __future__ import annotations

import math

import pytest
import torch

from rlvr.advantages import (
    ADVANTAGES,
    EPS,
    discounted_returns,
    dr_grpo,
    expand_to_tokens,
    gae,
    grpo,
    masked_mean,
    masked_var,
    masked_whiten,
    overlong_penalty,
    ppo_advantages,
    reinforce_pp,
    reinforce_pp_baseline,
    rloo,
    token_rewards,
)

T = torch.tensor


def close(actual: torch.Tensor, expected, tol: float = 1e-6) -> None:
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=tol, rtol=0)


def test_registry_names():
    assert set(ADVANTAGES) >= {"grpo", "dr_grpo", "rloo", "reinforce_pp", "reinforce_pp_baseline", "gae"}


def test_grpo_uses_sample_std_and_eps_on_std():
    # r = [1, 0, 0, 1]: mean 0.5; deviations ±0.5; sum of squares 4 * 0.25 = 1.
    # sample var = 1 / (4 - 1) = 1/3 -> std = 0.5773503; A = ±0.5 / (0.5773503 + 1e-6) = ±0.8660239.
    adv = grpo(T([[1.0, 0.0, 0.0, 1.0]]))
    a = 0.5 / (math.sqrt(1 / 3) + EPS)
    close(adv, [[a, -a, -a, a]])
    # The population std (0.5) would give exactly ±(0.5 / (0.5 + 1e-6)) = ±0.999998: pinned out.
    assert abs(adv[0, 0].item() - 0.5 / (0.5 + EPS)) > 0.1


def test_grpo_two_groups_are_independent():
    # Group 1: [3, 1] mean 2, sample std sqrt(((1)^2 + (-1)^2) / 1) = sqrt(2) -> ±1/(sqrt 2 + eps).
    # Group 2: [0, 0] is flat -> exactly 0.
    adv = grpo(T([[3.0, 1.0], [0.0, 0.0]]))
    a = 1 / (math.sqrt(2) + EPS)
    close(adv, [[a, -a], [0.0, 0.0]])


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"])
def test_zero_variance_groups_give_exact_zero_without_nan(name):
    # In float32, mean([0.9, 0.9, 0.9]) != 0.9 (residue 6e-8, std 7e-8): the bare GRPO formula
    # would give 6e-8 / (7e-8 + 1e-6) = 0.055 -- a fake learning signal. The rule makes it 0.
    rewards = T([[0.9, 0.9, 0.9], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    naive = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + EPS)
    assert naive[0].abs().max() > 0.01
    adv = ADVANTAGES[name](rewards)
    assert torch.isfinite(adv).all()
    assert torch.equal(adv[:2], torch.zeros(2, 3))
    assert adv[2, 0] > 0 > adv[2, 1]


def test_reinforce_pp_all_equal_batch_is_zero():
    assert torch.equal(reinforce_pp(T([[2.0, 2.0], [2.0, 2.0]])), torch.zeros(2, 2))


def test_dr_grpo_mean_only():
    # [1,0,0,0]: mean 0.25 -> [0.75, -0.25, -0.25, -0.25];  [3,1,2,2]: mean 2 -> [1, -1, 0, 0].
    close(
        dr_grpo(T([[1.0, 0.0, 0.0, 0.0], [3.0, 1.0, 2.0, 2.0]])), [[0.75, -0.25, -0.25, -0.25], [1, -1, 0, 0]]
    )


def test_rloo_leave_one_out():
    # [1,0,0,0]: A_0 = 1 - mean(0,0,0) = 1;  A_j = 0 - mean(1,0,0) = -1/3.
    close(rloo(T([[1.0, 0.0, 0.0, 0.0]])), [[1.0, -1 / 3, -1 / 3, -1 / 3]])


def test_rloo_equals_scaled_mean_centred_reward():
    g = 5
    rewards = torch.rand(7, g, generator=torch.Generator().manual_seed(0))
    close(rloo(rewards), g / (g - 1) * (rewards - rewards.mean(1, keepdim=True)), tol=1e-6)


def test_reinforce_pp_global_whitening():
    # [1,0,0,0] over the whole batch: mean 0.25, deviations 0.75, -0.25 x3;
    # sum sq = 0.5625 + 3 * 0.0625 = 0.75; sample var = 0.75/3 = 0.25 -> std 0.5.
    s = 0.5 + EPS
    close(reinforce_pp(T([[1.0, 0.0], [0.0, 0.0]])), [[0.75 / s, -0.25 / s], [-0.25 / s, -0.25 / s]])


def test_reinforce_pp_baseline_group_mean_then_batch_std():
    # centred: [0.5, -0.5] and [0, 0]; batch of 4 values, mean 0, sum sq 0.5, sample var 0.5/3.
    s = math.sqrt(0.5 / 3) + EPS
    close(reinforce_pp_baseline(T([[1.0, 0.0], [1.0, 1.0]])), [[0.5 / s, -0.5 / s], [0.0, 0.0]])


def test_group_size_errors():
    with pytest.raises(ValueError, match="G >= 2"):
        grpo(T([[1.0], [0.0]]))
    with pytest.raises(ValueError, match=r"shape \(B, G\)"):
        rloo(T([1.0, 0.0]))


def test_masked_statistics():
    x, m = T([1.0, 3.0, 100.0]), T([1.0, 1.0, 0.0])
    close(masked_mean(x, m), 2.0)
    close(masked_var(x, m), 2.0)  # ((1-2)^2 + (3-2)^2) / (2 - 1)
    s = math.sqrt(2.0) + EPS
    close(masked_whiten(x, m), [-1 / s, 1 / s, 0.0])
    close(masked_whiten(x, m, shift_mean=False), [2 - 1 / s, 2 + 1 / s, 0.0])
    close(masked_mean(T([[1.0, 2.0], [5.0, 7.0]]), T([[1, 0], [1, 1]]), dim=1), [1.0, 6.0])
    close(masked_mean(x, torch.zeros(3)), 0.0)  # empty mask -> 0, not NaN


def test_expand_to_tokens():
    mask = T([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    close(expand_to_tokens(T([[2.0, -1.0]]), mask), [[2.0, 2.0, 0.0], [-1.0, 0.0, 0.0]])


def test_gae_right_padding_by_hand():
    # gamma 0.9, lambda 0.5. Row 0 has 2 valid tokens (the 3rd reward/value must be ignored):
    #   t=1: delta = 1 + 0.9*0 - 0.2 = 0.8                      A1 = 0.8
    #   t=0: delta = 0 + 0.9*0.2 - 0.5 = -0.32                  A0 = -0.32 + 0.45*0.8 = 0.04
    #   returns = A + V = [0.54, 1.0, 0]
    # Row 1, all valid, V = 0: A2 = 2; A1 = 0 + 0.45*2 = 0.9; A0 = 1 + 0.45*0.9 = 1.405.
    rewards = T([[0.0, 1.0, 9.0], [1.0, 0.0, 2.0]])
    values = T([[0.5, 0.2, 7.0], [0.0, 0.0, 0.0]])
    mask = T([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.5)
    close(adv, [[0.04, 0.8, 0.0], [1.405, 0.9, 2.0]])
    close(ret, [[0.54, 1.0, 0.0], [1.405, 0.9, 2.0]])


def test_gae_lambda_one_zero_values_is_monte_carlo_return():
    rewards = T([[0.5, 0.0, 1.0, 3.0]])
    mask = T([[1.0, 1.0, 1.0, 0.0]])
    adv, _ = gae(rewards, torch.zeros(1, 4), mask, gamma=0.5, lam=1.0)
    close(adv, discounted_returns(rewards, mask, gamma=0.5))
    # returns: t2 = 1; t1 = 0 + 0.5*1 = 0.5; t0 = 0.5 + 0.5*0.5 = 0.75; padding 0.
    close(adv, [[0.75, 0.5, 1.0, 0.0]])


def test_gae_lambda_zero_is_one_step_td():
    # lambda 0: A_t = r_t + gamma V_{t+1} - V_t. V = [1, 2], r = [0, 1], gamma 1:
    # A0 = 0 + 2 - 1 = 1; A1 = 1 + 0 - 2 = -1.
    adv, ret = gae(T([[0.0, 1.0]]), T([[1.0, 2.0]]), torch.ones(1, 2), gamma=1.0, lam=0.0)
    close(adv, [[1.0, -1.0]])
    close(ret, [[2.0, 1.0]])


def test_overlong_penalty_by_hand():
    # L = 20, buffer 4: no penalty up to 16; then (16 - |o|)/4: 17 -> -0.25, 19 -> -0.75, 20 -> -1.
    out = overlong_penalty(T([[10, 16], [17, 19], [20, 20]]), max_len=20, buffer=4, factor=1.0)
    close(out, [[0.0, 0.0], [-0.25, -0.75], [-1.0, -1.0]])
    close(overlong_penalty(T([18]), 20, 4, factor=0.5), [-0.25])
    with pytest.raises(ValueError, match="buffer"):
        overlong_penalty(T([1]), 20, 0)


# ---------------------------------------------------------------- PPO: token rewards and the whole advantage path


def _ppo_inputs():
    scores = torch.tensor([1.0, 0.0])
    values = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    kl = torch.tensor([[0.1, 0.2, 7.0], [0.3, 7.0, 7.0]])  # 7.0 sits on padding and must be ignored
    return scores, values, mask, kl


def test_token_rewards_put_the_score_on_the_last_token_and_kl_everywhere():
    scores, _, mask, kl = _ppo_inputs()
    # row 0: [-0.5*0.1, -0.5*0.2 + 1.0, 0]; row 1: [-0.5*0.3 + 0.0, 0, 0]
    r = token_rewards(scores, mask, kl, kl_coef=0.5)
    assert torch.allclose(r, torch.tensor([[-0.05, 0.9, 0.0], [-0.15, 0.0, 0.0]]), atol=1e-7)
    assert torch.equal(token_rewards(scores, mask), torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))
    # a row with no tokens gets nothing (and does not crash)
    assert torch.equal(token_rewards(torch.tensor([3.0]), torch.zeros(1, 2)), torch.zeros(1, 2))


def test_ppo_advantages_by_hand():
    scores, values, mask, kl = _ppo_inputs()
    adv, ret = ppo_advantages(scores, values, mask, kl, kl_coef=0.5, gamma=1.0, lam=0.5, whiten_advantages=False)
    # row 0: delta_1 = 0.9 - 0.5 = 0.4 -> A_1 = 0.4; delta_0 = -0.05 + 0.5 - 0.5 = -0.05 -> A_0 = -0.05 + 0.5*0.4 = 0.15
    # row 1: delta_0 = -0.15 - 0.2 = -0.35. Returns = A + V.
    assert torch.allclose(adv, torch.tensor([[0.15, 0.4, 0.0], [-0.35, 0.0, 0.0]]), atol=1e-6)
    assert torch.allclose(ret, torch.tensor([[0.65, 0.9, 0.0], [-0.15, 0.0, 0.0]]), atol=1e-6)
    # whitened over the 3 valid tokens: mean 0.2/3, sample std sqrt(0.291667/2) = 0.381881
    adv_w, ret_w = ppo_advantages(scores, values, mask, kl, kl_coef=0.5, gamma=1.0, lam=0.5)
    assert torch.allclose(adv_w, torch.tensor([[0.218218, 0.872872, 0.0], [-1.091089, 0.0, 0.0]]), atol=1e-5)
    assert torch.equal(ret_w, ret)  # returns come from the raw advantages


def test_ppo_advantages_whitened_rewards_keep_their_mean():
    scores, values, mask, kl = _ppo_inputs()
    # token rewards [-0.05, 0.9 | -0.15]: mean 0.233333, sample std 0.579511; (x - mean)/std + mean
    zero = torch.zeros_like(values)
    adv, _ = ppo_advantages(scores, zero, mask, kl, kl_coef=0.5, gamma=1.0, lam=0.0,
                            whiten_rewards=True, whiten_advantages=False)
    assert torch.allclose(adv, torch.tensor([[-0.255585, 1.383723, 0.0], [-0.428151, 0.0, 0.0]]), atol=1e-5)
