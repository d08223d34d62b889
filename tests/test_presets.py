"""rlvr.presets: the named algorithms, overrides, the printed objective, and cross-checks between them."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from rlvr.advantages import ADVANTAGES, EPS
from rlvr.losses import POLICY_LOSSES, aggregate
from rlvr.presets import (
    PRESETS,
    AlgoConfig,
    describe,
    get_preset,
    outcome_advantages,
    preset_tree,
    with_overrides,
)
from rlvr.rollout import overlong_shaping, pack_groups, policy_loss
from rlvr.rollout.batch import objective_kwargs

T = torch.tensor


def test_all_presets_exist_and_validate():
    assert list(PRESETS) == ["grpo", "dr_grpo", "dapo", "rloo", "reinforce_pp", "gspo", "cispo", "sapo", "gmpo", "dppo", "ppo"]
    for name, cfg in PRESETS.items():
        assert cfg.name == name and cfg.summary
        assert dataclasses.replace(cfg) == cfg  # re-validates without error


def test_preset_choices():
    dapo = get_preset("dapo")
    assert (dapo.clip_low, dapo.clip_high, dapo.aggregation) == (0.2, 0.28, "token_mean")
    assert dapo.dynamic_sampling and dapo.overlong_buffer == 0.2 and dapo.kl_coef == 0
    assert get_preset("dr_grpo").aggregation == "seq_mean_token_sum_norm"
    assert get_preset("gspo").loss == "gspo"
    ppo = get_preset("ppo")
    assert ppo.needs_critic and ppo.kl_target is not None and ppo.kl_in == "reward"
    assert get_preset("grpo").needs_reference and not get_preset("dapo").needs_reference


def test_overrides_and_validation():
    cfg = with_overrides("dapo", clip_high=0.3, tis_cap=2.0)
    assert (cfg.clip_high, cfg.tis_cap, cfg.name) == (0.3, 2.0, "dapo")
    assert get_preset("dapo").clip_high == 0.28  # the preset itself is untouched
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.clip_high = 0.5  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"unknown AlgoConfig field\(s\) \['clip_hi'\]"):
        with_overrides("dapo", clip_hi=0.3)
    with pytest.raises(ValueError, match="aggregation='mean' is not one of"):
        with_overrides("grpo", aggregation="mean")
    with pytest.raises(ValueError, match="std_normalize only applies"):
        with_overrides("rloo", std_normalize=True)
    with pytest.raises(KeyError, match="unknown preset 'dapoo'"):
        get_preset("dapoo")
    assert preset_tree("gspo")["algo"]["loss"] == "gspo"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kl_target": 0.0}, r"kl_target=0.0 must be > 0"),  # would divide by zero after the first step
        ({"kl_horizon": 0}, r"kl_horizon=0 >= 1"),
        ({"kl_in": "loss"}, r"kl_target .* needs advantage=gae, kl_in=reward and kl_coef > 0"),  # silently ignored before
        ({"kl_coef": 0.0}, r"kl_target .* needs advantage=gae, kl_in=reward and kl_coef > 0"),
        ({"gae_lambda": 3.0}, r"gae_lambda=3.0 must be in \[0, 1\]"),
        ({"value_clip": -0.2}, r"value_clip=-0.2 must be > 0"),
    ],
)
def test_ppo_settings_are_checked(overrides, message):
    with pytest.raises(ValueError, match=message):
        with_overrides("ppo", **overrides)
    with_overrides("ppo", kl_target=None, kl_in="loss")  # a fixed coefficient in the loss is fine


def test_std_normalize_switches_grpo_and_dr_grpo():
    assert with_overrides("grpo", std_normalize=False).resolved_advantage == "dr_grpo"
    assert with_overrides("dr_grpo", std_normalize=True).resolved_advantage == "grpo"
    rewards = T([[1.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(
        outcome_advantages(with_overrides("grpo", std_normalize=False), rewards),
        T([[0.75, -0.25, -0.25, -0.25]]),
    )


def test_describe_dapo_substitutes_the_numbers():
    text = describe(get_preset("dapo"))
    assert "L = −1/Σ_i|o_i| Σ_i Σ_t min(ρ_i,t·A_i, clip(ρ_i,t, 1−0.2, 1+0.28)·A_i)" in text
    assert "A_i = (r_i − mean_g r) / (std_g r + 1e-06)" in text
    assert "B = 0.2·L_max" in text and "dynamic" in text and "no reference model" in text


def test_describe_every_preset_and_shows_overrides():
    for cfg in PRESETS.values():
        text = describe(cfg)
        assert text.startswith(f"preset {cfg.name}") and "overrides" not in text
    assert "s_i = exp(1/|o_i| Σ_t" in describe(get_preset("gspo"))
    assert "1/(N·L_max)" in describe(get_preset("dr_grpo"))
    assert "γ = 1, λ = 0.95" in describe(get_preset("ppo"))
    text = describe(
        with_overrides(
            "grpo", dual_clip=3.0, entropy_coef=0.01, norm_length=64, aggregation="seq_mean_token_sum_norm"
        )
    )
    assert (
        "overrides   dual_clip=3.0, aggregation='seq_mean_token_sum_norm', norm_length=64, entropy_coef=0.01"
        in text
    )
    assert "max(J_i,t, 3·A_i) where A_i < 0" in text and "− 0.01·1/(N·64)" in text


def _policy_loss(cfg: AlgoConfig, logp, old, adv, mask, max_len=None):
    objective = POLICY_LOSSES[cfg.loss]
    loss, _ = objective(logp, old, adv, mask, **objective_kwargs(cfg, objective))
    return aggregate(loss, mask, cfg.aggregation, max_len=cfg.norm_length or max_len)


def test_dr_grpo_aggregation_equals_grpo_when_all_lengths_are_the_normaliser():
    g = torch.Generator().manual_seed(0)
    logp, old = torch.randn(6, 5, generator=g) * 0.1, torch.randn(6, 5, generator=g) * 0.1
    adv = torch.randn(6, generator=g)
    full = torch.ones(6, 5)
    grpo, dr = get_preset("grpo"), get_preset("dr_grpo")
    torch.testing.assert_close(
        _policy_loss(dr, logp, old, adv, full, max_len=5),
        _policy_loss(grpo, logp, old, adv, full),
        atol=1e-7,
        rtol=0,
    )
    # ... and they differ as soon as lengths vary (the whole point of Dr.GRPO).
    ragged = full.clone()
    ragged[0, 2:] = 0
    assert (
        abs(_policy_loss(dr, logp, old, adv, ragged, 5) - _policy_loss(grpo, logp, old, adv, ragged)) > 1e-4
    )


def test_rloo_preset_is_scaled_dr_grpo():
    rewards = torch.rand(3, 4, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(
        outcome_advantages(get_preset("rloo"), rewards, kl_per_seq=torch.zeros(3, 4)),
        4 / 3 * outcome_advantages(get_preset("dr_grpo"), rewards),
        atol=1e-6,
        rtol=0,
    )


def test_kl_in_reward_enters_before_the_estimator():
    # rloo (coef 0.05): r = [1, 0] - 0.05 * [2, 0] = [0.9, 0]; G = 2 -> A = [0.9, -0.9].
    adv = outcome_advantages(get_preset("rloo"), T([[1.0, 0.0]]), kl_per_seq=T([[2.0, 0.0]]))
    torch.testing.assert_close(adv, T([[0.9, -0.9]]))
    with pytest.raises(ValueError, match="kl_per_seq"):
        outcome_advantages(get_preset("rloo"), T([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="gae"):
        outcome_advantages(get_preset("ppo"), T([[1.0, 0.0]]))


def test_grpo_preset_advantage_pins_sample_std():
    adv = outcome_advantages(get_preset("grpo"), T([[1.0, 0.0]]))
    a = 0.5 / (math.sqrt(0.5) + EPS)  # sample std of [1, 0] = sqrt(0.5)
    torch.testing.assert_close(adv, T([[a, -a]]), atol=1e-6, rtol=0)
    assert ADVANTAGES[get_preset("grpo").resolved_advantage] is ADVANTAGES["grpo"]


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "dapo", "rloo", "reinforce_pp", "gspo", "cispo", "sapo", "gmpo",
                                  "dppo"])
def test_one_gradient_step_raises_the_rewarded_completion(name):
    # A 2-completion group over a 3-token vocabulary: completion 0 is rewarded. One SGD step on
    # the preset's objective must raise its log-likelihood and lower the other's.
    cfg = get_preset(name)
    logits = torch.zeros(2, 3, 3, requires_grad=True)  # (B*G, T, V)
    ids = T([[0, 1, 2], [2, 1, 0]])
    mask = torch.ones(2, 3)

    def logp():
        return torch.log_softmax(logits, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)

    before = logp().detach()
    adv = outcome_advantages(cfg, T([[1.0, 0.0]]), kl_per_seq=torch.zeros(1, 2)).flatten()
    loss = _policy_loss(cfg, logp(), before, adv, mask, max_len=3)
    loss.backward()
    with torch.no_grad():
        logits -= 1.0 * logits.grad
    after = logp().detach().sum(-1)
    assert after[0] > before.sum(-1)[0] and after[1] < before.sum(-1)[1]


def test_cli_presets_list_and_show(capsys):
    from rlvr.cli import main

    assert main(["presets", "list"]) == 0
    assert "dapo" in capsys.readouterr().out
    assert main(["presets", "show", "dapo", "clip_high=0.3", "overlong_mask=true"]) == 0
    out = capsys.readouterr().out
    assert "clip(ρ_i,t, 1−0.2, 1+0.3)" in out and "overrides   clip_high=0.3, overlong_mask=True" in out
    assert main(["presets", "show", "dapo", "clip_high=x"]) == 2
    assert "clip_high expects float, got 'x'" in capsys.readouterr().err
    assert main(["presets", "show", "nope"]) == 2


def test_the_trainers_objective_composes_the_pieces_by_hand():
    # rlvr.rollout.policy_loss is the objective `rlvr train` runs and `presets show` prints.
    # ratio 1 everywhere (logp = old = 0), A = 1 on both tokens: the clipped term is -1 per token.
    z, ones = torch.zeros(1, 2), torch.ones(1, 2)
    ln2 = torch.full((1, 2), math.log(2.0))
    # grpo: -1 + 0.04 * k3, where k3 = 2 - 1 - ln 2 = 0.3068528 on each token.
    loss, m = policy_loss(get_preset("grpo"), z, z, T([1.0]), ones, ref_logp=ln2)
    torch.testing.assert_close(loss, T(-1.0 + 0.04 * (1 - math.log(2.0))), atol=1e-6, rtol=0)
    assert m["loss/policy"] == -1.0 and abs(m["kl"] - (1 - math.log(2.0))) < 1e-6
    # TIS cap 2: w = min(1/0.5, 2) = 2 and min(1/4, 2) = 0.25 -> per-sequence mean of -2, -0.25.
    cfg = with_overrides("grpo", kl_coef=0.0, tis_cap=2.0)
    loss, m = policy_loss(cfg, z, z, T([1.0]), ones, sampler_logp=torch.log(T([[0.5, 4.0]])))
    torch.testing.assert_close(loss, T(-1.125))
    # entropy bonus 0.1 with H = [1, 3]: -1 - 0.1 * 2 = -1.2
    cfg = with_overrides("grpo", kl_coef=0.0, entropy_coef=0.1)
    loss, _ = policy_loss(cfg, z, z, T([1.0]), ones, entropy=T([[1.0, 3.0]]))
    torch.testing.assert_close(loss, T(-1.2))
    # Dr.GRPO normaliser = max_new_tokens 4: (-1 - 1) / (1 * 4) = -0.5
    loss, _ = policy_loss(get_preset("dr_grpo"), z, z, T([1.0]), ones, max_len=4)
    torch.testing.assert_close(loss, T(-0.5))


def test_a_missing_input_the_preset_needs_is_an_error_never_a_dropped_term():
    z, ones = torch.zeros(1, 2), torch.ones(1, 2)
    with pytest.raises(ValueError, match="ref_logp"):
        policy_loss(get_preset("grpo"), z, z, T([1.0]), ones)
    with pytest.raises(ValueError, match="sampler_logp"):  # TIS without the sampler's logprobs
        policy_loss(with_overrides("dapo", tis_cap=2.0), z, z, T([1.0]), ones)
    with pytest.raises(ValueError, match="entropy"):
        policy_loss(with_overrides("dapo", entropy_coef=0.1), z, z, T([1.0]), ones)
    # Dr.GRPO's normaliser is the run's constant, never the batch width (T = 2 here)
    with pytest.raises(ValueError, match="max_len"):
        policy_loss(get_preset("dr_grpo"), z, z, T([1.0]), ones)
    loss, _ = policy_loss(with_overrides("dr_grpo", norm_length=8), z, z, T([1.0]), ones)
    torch.testing.assert_close(loss, T(-2.0 / 8))


def test_logged_kl_is_the_token_mean_while_the_loss_term_uses_the_presets_aggregation():
    # grpo (seq_mean_token_mean), ragged rows of 1 and 3 tokens, k1 KL of 1 and 3 per token:
    # the loss term is 0.04 * mean(1, 3) = 0.08; the logged kl is (1 + 9) / 4 = 2.5.
    cfg = with_overrides("grpo", kl_estimator="k1")
    z, mask = torch.zeros(2, 3), T([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    logp = T([[1.0, 0.0, 0.0], [3.0, 3.0, 3.0]])  # k1 = logp - ref with ref = 0
    loss, m = policy_loss(cfg, logp, logp.detach(), T([0.0, 0.0]), mask, ref_logp=z)
    torch.testing.assert_close(loss, T(0.04 * 2.0))
    assert m["kl"] == pytest.approx(2.5)


def test_overlong_mask_and_penalty():
    from rlvr.rollout import ScoredGroup
    from rlvr.samplers import Completion
    from rlvr.verifiers import Sample, Score

    # dapo + overlong_mask: row 1 is truncated, its loss mask is zeroed, so only row 0 (A = 1)
    # counts: token_mean = -1.
    cfg = with_overrides("dapo", overlong_mask=True)
    g = ScoredGroup(Sample(), "p", [1], [Completion("a", [2, 3], [0.0, 0.0], "stop"),
                                         Completion("b", [4, 5], [0.0, 0.0], "length")], [Score(1.0), Score(0.0)])
    g.mask_truncated()
    mask = pack_groups([g], pad_id=0).mask
    assert mask.tolist() == [[1.0, 1.0], [0.0, 0.0]]
    z = torch.zeros(2, 2)
    loss, _ = policy_loss(cfg, z, z, T([1.0, -5.0]), mask)
    torch.testing.assert_close(loss, T(-1.0))
    # dapo's buffer 0.2 of max_new_tokens 20 = 4 tokens: 16 -> 0, 18 -> -0.5, 20 -> -1.
    dapo = get_preset("dapo")
    out = overlong_shaping(T([1.0, 1.0, 0.0]), T([16, 18, 20]), 20, dapo.overlong_buffer, dapo.overlong_penalty)
    torch.testing.assert_close(out, T([1.0, 0.5, -1.0]))
    assert torch.equal(overlong_shaping(T([1.0]), T([20]), 20, get_preset("grpo").overlong_buffer, 1.0), T([1.0]))


def test_mode_fields_are_checked_at_load_with_the_line_and_the_closest_value(tmp_path):
    from rlvr.config import ConfigError
    from rlvr.trainers.config import load_train_config

    path = tmp_path / "run.yaml"
    path.write_text("preset: dapo\nalgo:\n  aggregation: token_meen\n  kl_in: rewards\n")
    with pytest.raises(ConfigError) as e:
        load_train_config(path, [])
    msg = str(e.value)
    assert f"{path}:3" in msg and "algo.aggregation" in msg and "did you mean 'token_mean'?" in msg
    assert f"{path}:4" in msg and "algo.kl_in" in msg and "did you mean 'reward'?" in msg


def test_a_refused_algo_setting_points_at_the_line_that_set_it(tmp_path):
    from rlvr.config import ConfigError
    from rlvr.trainers.config import load_train_config

    path = tmp_path / "run.yaml"
    path.write_text("preset: ppo\nalgo:\n  kl_target: 0\n  gae_lambda: 3\n")
    with pytest.raises(ConfigError) as e:
        load_train_config(path, [])
    msg = str(e.value)
    assert f"{path}:3: algo: AlgoConfig 'ppo': kl_target=0.0 must be > 0" in msg
    assert f"(gae_lambda set at {path}:4)" in msg
    with pytest.raises(ConfigError, match=r"override 'algo.kl_target=0': algo: AlgoConfig 'ppo': kl_target=0.0"):
        load_train_config(None, ["preset=ppo", "algo.kl_target=0"])
