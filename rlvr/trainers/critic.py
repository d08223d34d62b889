"""PPO's critic for ``rlvr train --preset ppo``: a separate value model, its update, and the step's
per-token advantages.

What it does:
- `Critic`: a transformers token-classification model with one label (a backbone plus a scalar
  value head read at every position), initialised from the policy's starting weights (a fresh
  head) or from ``critic.path`` (e.g. a reward model from ``rlvr rm``, as TRL initialises its value
  model). Dropout is switched off, as in TRL and OpenRLHF, so values do not jitter between passes.
  It has its own AdamW optimizer and schedule (``critic.lr``, default ``optim.lr``).
  - `values(batch)`: V_t (N, T) for the state before completion token t, without gradients;
  - `update(batch, old_values, returns, step)`: `ppo_epochs` x `num_minibatches` steps on the
    clipped value loss (`rlvr.losses.value_loss`, token mean, times ``algo.vf_coef``);
  - `state()` / `load_state()`: weights, optimizer and schedule, saved inside the trainer's atomic
    checkpoint (``critic.pt``) so a killed PPO run resumes with its critic.
- `ppo_step_advantages(critic, acc, batch, scores, old_logp, ref_logp, state)`: the KL per token
  (`rlvr.losses.kl_penalty`), PPO's advantages and returns (`rlvr.advantages.ppo_advantages`) and
  the adaptive KL controller's update (`rlvr.losses.adaptive_kl_coef`), with the metrics to log.

What it does not do: the policy update (the GRPO-family loop in `rlvr.trainers.grpo` runs it with
per-token advantages), or any formula of its own.

Try it (the demo model, PPO against the math verifier, about 2 s a step)::

    rlvr train preset=ppo steps=40 logging.run_dir=runs/ppo-demo
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from rlvr.advantages import masked_mean, ppo_advantages
from rlvr.losses import AGGREGATIONS, adaptive_kl_coef, aggregate, kl_penalty, value_loss
from rlvr.rollout import RolloutBatch, prefix_then_tails
from rlvr.trainers.setup import build_optimizer, disable_dropout
from rlvr.trainers.update import UpdatePlan, distributed, run_updates

__all__ = ["Critic", "ppo_step_advantages"]


class Critic:
    """A separate value model V(s_t) with its own optimizer; see the module docstring."""

    def __init__(self, path: str | Path, cfg: Any, acc: Any, total_updates: int):
        from transformers import AutoModelForTokenClassification

        from rlvr.models import ModelLoadError, quiet_new_head

        self.cfg, self.acc = cfg, acc
        try:
            with quiet_new_head():  # the value head is new unless critic.path is a reward model
                model = AutoModelForTokenClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"critic.path={str(path)!r}: cannot load a value model from it: {e}") from None
        disable_dropout(model)  # values must not change between the rollout pass and the update
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = 0
        model.train()
        optimizer, self.scheduler = build_optimizer(cfg, model, total_updates, lr=cfg.critic.lr)
        self.model, self.optimizer = acc.prepare(model, optimizer)

    def _forward(self, batch: RolloutBatch, rows: slice, group: int = 1) -> torch.Tensor:
        """(n, T) values: the head at position P-1+t sees the prompt and completion tokens < t.

        group > 1: `rows` are whole groups of G completions of one prompt, so the prompt runs once
        per group and its key/value cache is shared (as `rlvr.rollout.forward_logprobs` does for
        the policy): the same values, B*P + B*G*T tokens through the critic instead of B*G*(P+T).
        """
        p, t_len = batch.prompt_width, batch.completion_ids.shape[1]
        ids, attn, pos = batch.input_ids[rows], batch.attention_mask[rows], batch.position_ids[rows]
        if group > 1 and ids.shape[0] % group == 0:
            head, tail = prefix_then_tails(self.model, batch, rows, group)  # head: V before token 0
            return torch.cat([head.logits[:, -1:, 0].repeat_interleave(group, 0), tail.logits[:, :-1, 0]], dim=1).float()
        out = self.model(input_ids=ids, attention_mask=attn, position_ids=pos)
        return out.logits[:, p - 1:p - 1 + t_len, 0].float()

    def _group(self, shuffled: bool) -> int:
        """G when micro-batches hold whole groups (then each prompt runs once per group), else 1."""
        g, mbs = self.cfg.rollout.group_size, self.cfg.optim.micro_batch_size
        return g if mbs % g == 0 and not shuffled and not self.cfg.model.gradient_checkpointing else 1

    def values(self, batch: RolloutBatch) -> torch.Tensor:
        """(N, T) values of every completion state, 0 on padding, without gradients."""
        mbs, parts, group = self.cfg.optim.micro_batch_size, [], self._group(shuffled=False)
        with torch.no_grad(), self.acc.autocast():
            for s in range(0, len(batch), mbs):
                parts.append(self._forward(batch, slice(s, s + mbs), group))
        return torch.cat(parts) * batch.mask

    def update(self, batch: RolloutBatch, old_values: torch.Tensor, returns: torch.Tensor, step: int) -> dict[str, float]:
        """The critic's share of a PPO step: epochs x minibatches of the clipped value loss (token mean),
        through the policy's loop (`rlvr.trainers.update.run_updates`)."""
        algo, acc = self.cfg.algo, self.acc
        group = self._group(shuffled=algo.num_minibatches > 1)

        def micro_step(idx: torch.Tensor, rows: slice, weight: float, last: bool) -> dict[str, float]:
            sel = idx[rows]
            mb = batch.select(sel)
            sync = contextlib.nullcontext() if last else acc.no_sync(self.model)
            with sync, acc.autocast():
                per_token, metrics = value_loss(self._forward(mb, slice(0, len(mb)), group), old_values[sel], returns[sel],
                                                mb.mask, algo.value_clip)
                loss = algo.vf_coef * aggregate(per_token, mb.mask, "token_mean")
                acc.backward(loss * weight)
            return {"loss/value": loss.item() / max(algo.vf_coef, 1e-12), "value/clip_frac": metrics.get("vf_clip_frac", 0.0)}

        def optimizer_step() -> dict[str, float]:
            if self.cfg.optim.max_grad_norm is not None:
                acc.clip_grad_norm_(self.model.parameters(), self.cfg.optim.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            return {}

        plan = UpdatePlan(algo.ppo_epochs, algo.num_minibatches, self.cfg.optim.micro_batch_size,
                          seed=self.cfg.seed * 7907 + step)
        return run_updates(len(batch), plan, AGGREGATIONS["token_mean"].units(batch.mask), micro_step, optimizer_step,
                           **distributed(acc))

    def state(self) -> dict[str, Any]:
        return {"model": self.acc.unwrap_model(self.model).state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.acc.unwrap_model(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def ppo_step_advantages(
    critic: Critic, acc: Any, batch: RolloutBatch, scores: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None,
    state: dict[str, Any],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]:
    """(advantages, old_values, returns, metrics) for one PPO step; updates ``state["kl_coef"]``.

    The KL coefficient used for this batch is the controller's current value; afterwards the
    controller moves it towards ``algo.kl_target`` (fixed when kl_target is None).
    """
    algo = critic.cfg.algo
    coef = float(state.setdefault("kl_coef", algo.kl_coef))
    kl = kl_penalty(old_logp, ref_logp, algo.kl_estimator) * batch.mask if ref_logp is not None else None
    values = critic.values(batch)
    adv, returns = ppo_advantages(scores, values, batch.mask, kl, kl_coef=coef, gamma=algo.gamma, lam=algo.gae_lambda,
                                  whiten_rewards=algo.whiten_rewards, whiten_advantages=algo.whiten_advantages)
    mask = batch.mask
    residual = masked_mean((returns - values) ** 2, mask) - masked_mean(returns - values, mask) ** 2
    var_ret = masked_mean(returns**2, mask) - masked_mean(returns, mask) ** 2
    metrics = {"kl_coef": coef, "value/mean": masked_mean(values, mask).item(),
               "value/returns_mean": masked_mean(returns, mask).item(),
               "value/explained_variance": (1.0 - residual / var_ret).item() if var_ret > 1e-12 else 0.0}
    if kl is not None:
        # nats per sequence (what kl_target is measured in) over every process's sequences, so each
        # process's controller makes the same update, with the global batch as its step count (as TRL)
        n = len(batch)
        seq_kl = kl.sum(-1).mean()
        if acc.num_processes > 1:
            seq_kl = acc.reduce(seq_kl.detach().clone(), "mean")
            n *= acc.num_processes
        seq_kl = seq_kl.item()
        metrics.update({"kl/sequence": seq_kl, "reward/kl_penalty": -coef * seq_kl})
        if algo.kl_target is not None:
            state["kl_coef"] = adaptive_kl_coef(coef, seq_kl, algo.kl_target, n, algo.kl_horizon)
    return adv, values, returns, metrics
