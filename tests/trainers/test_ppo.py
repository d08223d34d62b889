"""PPO through `rlvr train --preset ppo` (critic, GAE, KL controller, learned rewards, resume), and a
learned reward mixed with a rule in GRPO.

The verifier-driven test uses the `length` reward on a random tiny model (its samples always vary
in length, so every step carries signal); the learned-reward test puts a sequence-classification
model behind the `reward_model` verifier and initialises the critic from it, as TRL does.
"""

from __future__ import annotations

import json
import shutil
import statistics

import pytest
import torch

from rlvr.losses import adaptive_kl_coef
from rlvr.metrics import read_jsonl_metrics

from .conftest import rlvr_cmd, run, small_config, write_config

pytestmark = pytest.mark.slow


def _rows(run_dir):
    return [r for r in read_jsonl_metrics(run_dir / "metrics.jsonl") if r["step"] > 0]


def test_ppo_reward_rises_critic_learns_and_kl_controller_tracks_its_target(tmp_path, tiny_model_dir):
    run_dir = tmp_path / "run"
    target, horizon, n = 0.5, 200, 8 * 4
    cfg = small_config(run_dir, tiny_model_dir, steps=12, preset="ppo",
                       algo={"kl_coef": 0.01, "kl_target": target, "kl_horizon": horizon, "entropy_coef": 0.001,
                             "whiten_advantages": False},
                       task={"verifier_options": {"length": {"max_chars": 80}}},
                       rollout={"prompts_per_step": 8}, optim={"lr": 2.0e-2}, critic={"lr": 1.0e-2},
                       logging={"eval_every": 0}, checkpoint={"every": 0})
    run(rlvr_cmd("train", str(write_config(tmp_path / "run.yaml", cfg))))
    rows = _rows(run_dir)
    assert len(rows) == 12
    rewards = [r["reward/mean"] for r in rows]
    assert statistics.fmean(rewards[-3:]) > statistics.fmean(rewards[:3]) + 0.1, rewards
    for key in ("loss/value", "value/mean", "value/explained_variance", "value/clip_frac", "kl/sequence",
                "kl_coef", "reward/kl_penalty", "kl", "entropy", "clip_frac", "approx_kl"):
        assert key in rows[-1], key
    # the critic learns the returns: its loss falls from the fresh head's
    assert statistics.fmean(r["loss/value"] for r in rows[-3:]) < rows[0]["loss/value"], [r["loss/value"] for r in rows]
    # the controller: each step's coefficient is the previous one moved by that step's sequence KL
    assert rows[0]["kl_coef"] == pytest.approx(0.01)
    for prev, cur in zip(rows, rows[1:]):
        expected = adaptive_kl_coef(prev["kl_coef"], prev["kl/sequence"], target, n, horizon)
        assert cur["kl_coef"] == pytest.approx(expected, rel=1e-6)
        assert cur["reward/kl_penalty"] == pytest.approx(-cur["kl_coef"] * cur["kl/sequence"], rel=1e-6)
    assert rows[0]["kl/sequence"] == pytest.approx(0.0, abs=1e-6)  # step 1 samples from the reference itself
    assert max(r["kl/sequence"] for r in rows) > 0


def _tiny_reward_model(tiny_model_dir, out):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(1)
    rm = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    rm.config.pad_token_id = AutoTokenizer.from_pretrained(tiny_model_dir).pad_token_id or 0
    rm.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


def test_ppo_against_a_reward_model_with_math_as_the_accuracy(tmp_path, tiny_model_dir):
    from rlvr.verifiers.base import get_verifier

    rm_dir = _tiny_reward_model(tiny_model_dir, tmp_path / "rm")
    run_dir = tmp_path / "run"
    cfg = small_config(run_dir, tiny_model_dir, steps=2, preset="ppo",
                       task={"verifiers": {"reward_model": 1.0, "math": 0.0}, "primary": "math",
                             "verifier_options": {"reward_model": {"path": str(rm_dir)}}},
                       critic={"path": str(rm_dir)}, logging={"eval_every": 2}, checkpoint={"every": 0},
                       scoring={"workers": 1})  # the batched reward model moves scoring in-process
    run(rlvr_cmd("train", str(write_config(tmp_path / "run.yaml", cfg))))
    records = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 4 * 4
    assert len({round(r["reward"], 6) for r in records}) > 4  # a learned score, not a 0/1 rule
    # the reward the trainer used is the reward model's score of that text, recomputed here
    from transformers import AutoTokenizer

    from rlvr.tasks import get_task

    task, tok = get_task("arithmetic", level=1, n=64, n_test=8), AutoTokenizer.from_pretrained(tiny_model_dir)
    by_prompt = {task.render(s, tok): s for s in task.samples("train")}
    rm = get_verifier("reward_model", path=str(rm_dir))
    for rec in records[:4]:
        assert rec["reward"] == pytest.approx(rec["rewards"]["reward_model"], abs=1e-6)
        assert rec["reward"] == pytest.approx(rm(rec["completion"], by_prompt[rec["prompt"]]).reward, abs=1e-4)
        assert isinstance(rec["passed"], bool)  # `passed` is the math verifier's (primary), not None
    rows = _rows(run_dir)
    assert "eval/accuracy" in rows[-1] and "loss/value" in rows[-1]


def test_critic_starts_from_a_reward_models_head(tmp_path, tiny_model_dir):
    from accelerate import Accelerator
    from safetensors.torch import load_file

    from rlvr.trainers.config import load_train_config
    from rlvr.trainers.critic import Critic

    rm_dir = _tiny_reward_model(tiny_model_dir, tmp_path / "rm")
    cfg = load_train_config(None, ["preset=ppo", f"critic.path={rm_dir}", f"model.path={tiny_model_dir}"])
    critic = Critic(rm_dir, cfg, Accelerator(cpu=True), total_updates=1)
    saved = load_file(rm_dir / "model.safetensors")
    assert torch.equal(critic.model.score.weight.detach(), saved["score.weight"])
    assert not any(m.p for m in critic.model.modules() if isinstance(m, torch.nn.Dropout))


def test_ppo_resume_restores_the_critic_and_the_kl_coefficient(tmp_path, tiny_model_dir):
    def config(run_dir):
        return small_config(run_dir, tiny_model_dir, steps=4, preset="ppo",
                            algo={"kl_coef": 0.05, "kl_target": 0.5, "kl_horizon": 200},
                            logging={"eval_every": 0}, checkpoint={"every": 2, "keep_last": 0})

    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    run(rlvr_cmd("train", str(write_config(tmp_path / "full.yaml", config(full_dir)))))
    # the "killed" run: everything the full run had written when its step-2 checkpoint completed
    (cut_dir / "checkpoints").mkdir(parents=True)
    shutil.copytree(full_dir / "checkpoints" / "step-000002", cut_dir / "checkpoints" / "step-000002")
    (cut_dir / "checkpoints" / "latest").write_text("step-000002\n")
    assert (cut_dir / "checkpoints" / "step-000002" / "critic.pt").exists()
    lines = (full_dir / "metrics.jsonl").read_text().splitlines()
    (cut_dir / "metrics.jsonl").write_text("\n".join(lines[:2]) + "\n")
    run(rlvr_cmd("train", str(write_config(tmp_path / "cut.yaml", config(cut_dir))), "--resume"))

    full, cut = _rows(full_dir), _rows(cut_dir)
    assert [r["step"] for r in cut] == [1, 2, 3, 4]
    for a, b in zip(full[2:], cut[2:]):
        for key in ("loss/value", "value/mean", "kl_coef", "kl/sequence", "reward/mean", "loss/policy"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), key


def test_critic_values_with_a_shared_prompt_equal_the_full_forward(tiny_model_dir):
    from accelerate import Accelerator

    from rlvr.rollout import pack_groups
    from rlvr.samplers import Completion, Group
    from rlvr.trainers.config import load_train_config
    from rlvr.trainers.critic import Critic

    cfg = load_train_config(None, ["preset=ppo", f"model.path={tiny_model_dir}", "rollout.group_size=3"])
    critic = Critic(tiny_model_dir, cfg, Accelerator(cpu=True), total_updates=1)
    groups = [Group(prompt, [Completion("", ids, [0.0] * len(ids), "stop") for ids in comps])
              for prompt, comps in (([5, 6, 7], [[8], [9, 10, 11], [12, 13]]), ([20], [[21, 22], [23], [24, 25, 26, 27]]))]
    batch = pack_groups(groups, pad_id=0)
    full, shared = critic._forward(batch, slice(0, 6), 1), critic._forward(batch, slice(0, 6), 3)
    assert torch.allclose(full * batch.mask, shared * batch.mask, atol=1e-5)
    # gradients agree too (the update uses the shared path)
    for group in (1, 3):
        critic.optimizer.zero_grad()
        (critic._forward(batch, slice(0, 6), group) * batch.mask).sum().backward()
        grads = [p.grad.clone() for p in critic.model.parameters() if p.grad is not None]
        if group == 1:
            ref = grads
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ref, grads))


def test_grpo_with_a_reward_model_mixed_with_a_rule(tmp_path, tiny_model_dir):
    """The same learned reward in a GRPO run, weighted together with a rule-based verifier."""
    rm_dir = _tiny_reward_model(tiny_model_dir, tmp_path / "rm")
    run_dir = tmp_path / "run"
    cfg = small_config(run_dir, tiny_model_dir, steps=1, preset="grpo",
                       task={"verifiers": {"reward_model": 0.5, "length": 1.0, "math": 0.0}, "primary": "math",
                             "verifier_options": {"reward_model": {"path": str(rm_dir)}, "length": {"max_chars": 32}}},
                       logging={"eval_every": 0}, checkpoint={"every": 0})
    run(rlvr_cmd("train", str(write_config(tmp_path / "run.yaml", cfg))))
    records = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    assert len(records) == 4 * 4
    for rec in records:
        parts = rec["rewards"]
        assert rec["reward"] == pytest.approx(0.5 * parts["reward_model"] + parts["length"], abs=1e-6)
    assert len({round(r["rewards"]["reward_model"], 6) for r in records}) > 4


def test_a_broken_critic_path_names_the_key(tmp_path, tiny_model_dir):
    from accelerate import Accelerator

    from rlvr.models import ModelLoadError
    from rlvr.trainers.config import load_train_config
    from rlvr.trainers.critic import Critic

    (tmp_path / "empty").mkdir()
    cfg = load_train_config(None, ["preset=ppo", f"model.path={tiny_model_dir}"])
    with pytest.raises(ModelLoadError, match=r"critic\.path=.*empty.*cannot load a value model"):
        Critic(tmp_path / "empty", cfg, Accelerator(cpu=True), total_updates=1)


def test_preset_flag_is_the_preset_key_and_algo_overrides_stay_on_top(tmp_path, tiny_model_dir):
    cfg = write_config(tmp_path / "run.yaml", small_config(tmp_path / "run", tiny_model_dir))
    out = run(rlvr_cmd("train", str(cfg), "--preset", "ppo", "algo.clip_high=0.3", "--print-config")).stdout
    for line in ("preset: ppo", "name: ppo", "advantage: gae", "clip_high: 0.3"):
        assert line in out, (line, out)
    # with no config file, --preset ppo runs the shipped PPO demo (KL on), not the GRPO demo with kl_coef 0
    out = run(rlvr_cmd("train", "--preset", "ppo", "--print-config")).stdout
    for line in ("name: ppo", "kl_coef: 0.05", "kl_target: 1.0", "run_dir: runs/ppo-demo"):
        assert line in out, (line, out)
