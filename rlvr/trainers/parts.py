"""The parts of a ``rlvr train`` run, built once: policy, reference, optimizer, critic, sampler, task,
rollout plan (with its episodes), and the prompt stream and async producer that feed the steps.

`rlvr.trainers.grpo` runs the steps over what this module builds:
- `Parts`: the run's parts as one typed record; `build_parts(cfg, acc, run_dir, resume)` builds
  them (the weights from `rlvr.trainers.setup`, a checkpoint's state on ``--resume``, the task,
  the multi-turn `EpisodeSetup` of the ``env:`` section, the sampler, the curriculum);
- `rollout_plan`: what each step collects (G completions, or G episodes, per prompt);
- `prompt_stream`: round -> this process's next prompts, seeded by the data position;
- `async_source`: the producer thread of async training (``rollout.max_staleness``), or None;
  `closing_source` stops it however the loop ends.

What it does not do: run a step, compute losses or evaluate (`rlvr.trainers.grpo`,
`rlvr.rollout`).

Try it::

    >>> from rlvr.trainers.config import load_train_config
    >>> plan = rollout_plan(load_train_config(None, ["rollout.group_size=4", "rollout.max_new_tokens=32"]))
    >>> plan.n, plan.params.max_new_tokens, plan.episodes
    (4, 32, None)
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr.async_rollout import AsyncRollouts
from rlvr.checkpoint import latest_checkpoint, load_checkpoint
from rlvr.rollout import PromptBatch, RolloutPlan, collect
from rlvr.samplers import SamplingParams
from rlvr.trainers import setup
from rlvr.trainers.config import TrainConfig

__all__ = ["Parts", "async_source", "build_parts", "closing_source", "max_length", "prompt_stream", "rollout_plan"]


@dataclass
class Parts:
    """The run's parts, built once by `build_parts` and passed to the step functions."""

    cfg: TrainConfig
    acc: Any  # accelerate.Accelerator
    model: Any  # the policy (prepared by accelerate)
    tokenizer: Any
    ref: Any | None  # the frozen reference (only with a KL weight)
    optimizer: Any
    scheduler: Any
    critic: Any | None  # rlvr.trainers.critic.Critic (PPO only)
    sampler: Any
    scorer: Any  # rlvr.scoring.Scorer
    task: Any
    train_samples: list[Any]
    plan: RolloutPlan  # what each step collects
    curriculum: Any | None = None  # rlvr.curriculum.Curriculum when curriculum.enabled


def rollout_plan(cfg: TrainConfig, num_processes: int = 1, episodes: Any = None) -> RolloutPlan:
    """What each step collects: G completions (or, with `episodes`, G multi-turn episodes) of this
    process's share of the prompts, as the preset says."""
    params = SamplingParams(temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p, top_k=cfg.rollout.top_k,
                            max_new_tokens=cfg.rollout.max_new_tokens, stop=tuple(cfg.rollout.stop))
    return RolloutPlan.from_algo(cfg.algo, cfg.rollout.group_size, params, cfg.rollout.chunks,
                                 quota=cfg.rollout.prompts_per_step // num_processes, episodes=episodes)


def max_length(parts: Parts) -> int:
    """The longest completion a step can hold: the episode budget, or max_new_tokens for single turns
    (the normaliser of seq_mean_token_sum_norm)."""
    episodes = parts.plan.episodes
    return episodes.env.max_tokens if episodes is not None else parts.cfg.rollout.max_new_tokens


def prompt_stream(parts: Parts, state: dict[str, Any]) -> Callable[[int], PromptBatch]:
    """Round -> this process's next prompts, advancing ``state["data_position"]`` (seeded by it, so
    a resumed run draws what an uninterrupted one would)."""
    cfg, acc = parts.cfg, parts.acc
    per_round = cfg.rollout.prompts_per_step

    def draw(_round: int) -> PromptBatch:
        cursor = state["data_position"]
        order = parts.curriculum.next(per_round) if parts.curriculum is not None else \
            setup.data_order(len(parts.train_samples), cfg.seed, cursor, per_round)
        idx = order[acc.process_index::acc.num_processes]
        state["data_position"] = cursor + per_round
        samples = [parts.train_samples[i] for i in idx]
        seed = (cfg.seed * 1_000_003 + cursor * 97 + acc.process_index * 13) % (2**62)
        return PromptBatch(samples, [parts.task.render(s, parts.tokenizer) for s in samples], idx, seed)

    return draw


def build_parts(cfg: TrainConfig, acc: Any, run_dir: Path, resume: bool, task: Any = None,
           sampler: Any = None) -> tuple[Parts, dict[str, Any], Path | None]:
    """The run's parts (policy, reference, optimizer, critic, sampler, task) and the resumed state."""
    from rlvr.tasks import get_task

    path = setup.model_path(cfg, run_dir, acc.is_main_process)
    acc.wait_for_everyone()
    model, tokenizer = setup.load_policy(path, cfg)
    ref = setup.load_reference(path) if cfg.algo.needs_reference else None
    updates = cfg.steps * cfg.algo.ppo_epochs * cfg.algo.num_minibatches
    optimizer, scheduler = setup.build_optimizer(cfg, model, updates)
    state: dict[str, Any] = {"step": 0, "data_position": 0}
    ckpt = latest_checkpoint(run_dir) if resume else None
    if resume and ckpt is None:
        print(f"rlvr train: --resume: no checkpoint in {run_dir}/checkpoints, starting fresh", file=sys.stderr)
    if ckpt is not None:
        lora = cfg.model.lora.enabled
        state = load_checkpoint(ckpt, model=None if lora else model, optimizer=optimizer, scheduler=scheduler)
        if lora:
            setup.load_adapter(model, ckpt / "model")
        if acc.is_main_process:
            print(f"rlvr train: --resume: continuing after step {state['step']} of {cfg.steps} from {ckpt}", file=sys.stderr)
    model, optimizer = acc.prepare(model, optimizer)
    critic = None
    if cfg.algo.needs_critic:
        from rlvr.checkpoint import load_extra
        from rlvr.trainers.critic import Critic

        critic = Critic(cfg.critic.path or path, cfg, acc, updates)
        if ckpt is not None:
            critic.load_state(load_extra(ckpt, "critic"))
    task = task if task is not None else get_task(cfg.task.name, **cfg.task.options)
    episodes = setup.build_episodes(cfg, task, tokenizer)
    if sampler is None:
        sampler = setup.build_sampler(cfg, acc.unwrap_model(model), tokenizer, path, episodes=episodes is not None)
    parts = Parts(cfg=cfg, acc=acc, model=model, tokenizer=tokenizer, ref=ref, optimizer=optimizer, scheduler=scheduler,
                  critic=critic, sampler=sampler, scorer=None, task=task, train_samples=task.samples("train"),
                  plan=rollout_plan(cfg, acc.num_processes, episodes))
    if cfg.curriculum.enabled:
        from rlvr.curriculum import Curriculum

        parts.curriculum = Curriculum.from_config(cfg.curriculum, len(parts.train_samples), cfg.seed)
        if "curriculum" in state:
            parts.curriculum.load_state_dict(state["curriculum"])
    return parts, state, ckpt


def async_source(parts: Parts, state: dict[str, Any], start: int) -> AsyncRollouts | None:
    """The producer thread of async training (`rlvr.async_rollout`), or None to train synchronously."""
    cfg, k = parts.cfg, parts.cfg.rollout.max_staleness
    if not (cfg.rollout.async_producer if cfg.rollout.async_producer is not None else k > 0):
        return None
    if cfg.rollout.backend == "hf" or parts.acc.num_processes > 1 or parts.curriculum is not None:
        why = ("the hf sampler shares the trainer's model" if cfg.rollout.backend == "hf" else
               "async needs one training process" if parts.acc.num_processes > 1 else
               "the curriculum draws from what the last step learnt")
        print(f"rlvr train: rollout.max_staleness={k}: {why}; training synchronously", file=sys.stderr)
        return None
    if k > 0 and cfg.algo.correction == "none" and cfg.algo.tis_cap is None:
        print(f"rlvr train: max_staleness={k} with algo.correction=none: samples up to {k} step(s) old are weighted "
              "as if on-policy; algo.correction=token_tis is recommended (docs/training.md, async)", file=sys.stderr)
    tokenizer = copy.deepcopy(parts.tokenizer)  # the producer thread's own (prompts and observations)
    episodes = parts.plan.episodes
    plan = parts.plan if episodes is None else \
        dataclasses.replace(parts.plan, episodes=dataclasses.replace(episodes, tokenizer=tokenizer))
    mine = dataclasses.replace(parts, tokenizer=tokenizer, plan=plan)

    def produce(step: int, position: int) -> tuple[Any, int]:
        cursor = {"data_position": position}
        rollout = collect(parts.sampler, parts.scorer, prompt_stream(mine, cursor), mine.plan,
                          policy_version=source.engine_version)
        return rollout, cursor["data_position"]

    source = AsyncRollouts(parts.sampler, produce, max_staleness=k, first_step=start + 1, last_step=cfg.steps,
                           position=int(state["data_position"]), version=start, wait_s=cfg.rollout.async_wait_s)
    return source


@contextlib.contextmanager
def closing_source(source: AsyncRollouts | None) -> Any:
    """Stop the producer (async training) however the loop ends."""
    try:
        yield
    finally:
        if source is not None:
            source.close()
