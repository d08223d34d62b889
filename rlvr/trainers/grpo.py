"""The training loop behind ``rlvr train``: GRPO, Dr.GRPO, DAPO, RLOO, REINFORCE++, GSPO and PPO.

Each step, read top to bottom in `_train_step`:
  1. `rlvr.rollout.collect`: sample G completions for each of B prompts, in chunks; each chunk goes
     to the verifier workers (`rlvr.scoring.Scorer`) while the next chunk generates (overlapped
     scoring); DAPO's soft overlong penalty and overlong mask; with dynamic sampling, drop groups
     whose primary verdicts all tie and sample more prompts until the batch is full (reported as
     groups/dropped). It returns typed `ScoredGroup`s;
  2. advantages from `rlvr.presets.outcome_advantages` (the preset's estimator); for PPO
     (advantage=gae) per token from the critic's values, the KL-shaped token rewards and GAE
     (`rlvr.trainers.critic`), and the adaptive KL controller moves towards its target;
  3. `ppo_epochs` x `num_minibatches` optimizer steps (`rlvr.trainers.update.run_updates`), each
     accumulating gradients over micro-batches weighted by the global minibatch's units
     (`rlvr.rollout.policy_loss`: the one objective `rlvr presets show` prints); PPO's critic then
     takes the same number of steps on the clipped value loss through the same loop;
  4. push the weights to the sampler (a no-op for the HF sampler, which shares them), log metrics
     and every rollout, run the alarms, evaluate on held-out problems (`rlvr.rollout.evaluate`),
     checkpoint.
The run's parts (policy, reference, optimizer, critic, sampler, scorer, task, rollout plan) are
one typed record, `Parts`, built by `_build`.
Multi-turn episodes (the ``env:`` section, or a task that brings an environment): step 1 plays G
episodes per prompt instead (`rlvr.rollout.episodes`, tools run concurrently in the runner the
plan holds); observation tokens sit in the packed batch with loss mask 0, so they are out of
the policy loss, the KL and the entropy, and advantages stay per episode. PPO is refused.
Multi-process runs go through accelerate (DDP/FSDP/DeepSpeed configs in rlvr/configs/accelerate/):
each process takes its share of the prompts and gradients are averaged. A reference model is
loaded only when the KL weight is non-zero. `--resume` restores the newest checkpoint; sampling is
seeded by the data position, so the resumed steps repeat what an uninterrupted run would do.

What it does not do: any tensor math of its own (see `rlvr.rollout`, `rlvr.losses`,
`rlvr.advantages`, `rlvr.trainers.critic`).

Try it (a random tiny model, a few seconds a step)::

    rlvr train model.path=tiny steps=3 rollout.prompts_per_step=4 rollout.group_size=4 logging.run_dir=/tmp/r
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rlvr.alarms import AlarmMonitor
from rlvr.async_rollout import AsyncRollouts, take_snapshot
from rlvr.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from rlvr.losses import AGGREGATIONS
from rlvr.metrics import RunLogger, read_jsonl_metrics
from rlvr.presets import describe, outcome_advantages
from rlvr.rollout import (
    PromptBatch,
    RolloutPlan,
    ScoredGroup,
    collect,
    evaluate,
    forward_logprobs,
    pack_groups,
    policy_loss,
)
from rlvr.rollout.episodes import episode_metrics
from rlvr.samplers import SamplingParams
from rlvr.scoring import Scorer
from rlvr.trainers import setup
from rlvr.trainers.config import TrainConfig
from rlvr.trainers.finalize import GracefulStop, write_final
from rlvr.trainers.update import UpdatePlan, distributed, run_updates

__all__ = ["train"]


@dataclass
class Parts:
    """The run's parts, built once by `train` and passed to the step functions."""

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


def _agree(acc: Any) -> Callable[[int], int] | None:
    """missing -> missing summed over the processes (every rank stops drawing at the same round)."""
    if acc.num_processes == 1:
        return None
    # NCCL reduces device tensors only
    return lambda missing: int(acc.reduce(torch.tensor([float(missing)], device=acc.device), "sum").item())


def _prefix_group(cfg: TrainConfig, shuffled: bool) -> int:
    """G when micro-batches hold whole groups (each prompt then runs once per group), else 1."""
    g = cfg.rollout.group_size
    aligned = cfg.optim.micro_batch_size % g == 0 and not shuffled and not cfg.model.gradient_checkpointing
    return g if aligned else 1


def _no_grad_logprobs(model: Any, batch: Any, cfg: TrainConfig, group: int = 1) -> torch.Tensor:
    """(N, T) logprobs of `batch` under `model`, in micro-batches, without gradients."""
    mbs, parts = cfg.optim.micro_batch_size, []
    with torch.no_grad():
        for s in range(0, len(batch), mbs):
            parts.append(forward_logprobs(model, batch, slice(s, s + mbs), cfg.rollout.temperature, group_size=group)[0])
    return torch.cat(parts)


def _update(parts: Parts, batch: Any, adv: torch.Tensor, old_logp: torch.Tensor | None, ref_logp: torch.Tensor | None,
            step: int, times: dict[str, float] | None = None, algo: Any = None) -> dict[str, float]:
    """`ppo_epochs` x `num_minibatches` optimizer steps over `batch` (`rlvr.trainers.update.run_updates`);
    `algo`: this step's objective (default the run's; differs by the adaptive entropy coefficient)."""
    cfg, acc = parts.cfg, parts.acc
    algo = algo or cfg.algo
    entropy = "grad" if algo.entropy_coef > 0 else "metric"
    group = _prefix_group(cfg, shuffled=algo.num_minibatches > 1)

    def micro_step(idx: torch.Tensor, rows: slice, weight: float, last: bool) -> dict[str, float]:
        sel = idx[rows]
        mb = batch.select(sel)
        sync = contextlib.nullcontext() if last else acc.no_sync(parts.model)
        with sync, acc.autocast():
            logp, ent = forward_logprobs(parts.model, mb, slice(0, len(mb)), cfg.rollout.temperature, entropy, group)
            old = old_logp[sel] if old_logp is not None else logp.detach()
            loss, metrics = policy_loss(algo, logp, old, adv[sel], mb.mask, max_len=max_length(parts),
                                        ref_logp=ref_logp[sel] if ref_logp is not None else None, entropy=ent,
                                        sampler_logp=mb.sampler_logp)
            acc.backward(loss * weight)
        return metrics

    def optimizer_step() -> dict[str, float]:
        t_opt, out = time.perf_counter(), {}
        if cfg.optim.max_grad_norm is not None:
            out["grad_norm"] = float(acc.clip_grad_norm_(parts.model.parameters(), cfg.optim.max_grad_norm))
        parts.optimizer.step()
        parts.scheduler.step()
        parts.optimizer.zero_grad(set_to_none=True)
        clock["optimizer"] += time.perf_counter() - t_opt
        return out

    clock = {"optimizer": 0.0, "start": time.perf_counter()}
    plan = UpdatePlan(algo.ppo_epochs, algo.num_minibatches, cfg.optim.micro_batch_size, seed=cfg.seed * 7919 + step)
    out = run_updates(len(batch), plan, AGGREGATIONS[algo.aggregation].units(batch.mask), micro_step, optimizer_step,
                      **distributed(acc))
    if times is not None:
        times["time/optimizer"] = clock["optimizer"]
        times["time/forward_backward"] = time.perf_counter() - clock["start"] - clock["optimizer"]
    return out


def _entropy_step_algo(algo: Any, state: dict[str, Any]) -> Any:
    """The run's objective with this step's adaptive entropy coefficient (``state["entropy_coef"]``,
    checkpointed with the rest of ``state``); the run's own when the coefficient is fixed."""
    if algo.entropy_target is None:
        return algo
    return dataclasses.replace(algo, entropy_coef=float(state.setdefault("entropy_coef", algo.entropy_coef)))


def _entropy_controller_step(acc: Any, algo: Any, state: dict[str, Any], metrics: dict[str, float]) -> None:
    """Move ``state["entropy_coef"]`` after a step (`rlvr.entropy_control.adaptive_entropy_coef`), on the
    entropy averaged over every process (one coefficient everywhere); logs the coefficient used."""
    from rlvr.entropy_control import adaptive_entropy_coef

    entropy = acc.reduce(torch.tensor(metrics["entropy"], dtype=torch.float64, device=acc.device), "mean").item()
    metrics["entropy_coef"] = float(state["entropy_coef"])
    state["entropy_coef"] = adaptive_entropy_coef(metrics["entropy_coef"], entropy, algo.entropy_target,
                                                  algo.entropy_coef_delta, algo.entropy_coef_max)


def _step_metrics(groups: list[ScoredGroup], extra: dict[str, float]) -> dict[str, float]:
    """Reward, accuracy, per-component rewards, lengths and verifier health over the step's groups
    (and, for multi-turn episodes, tool calls, errors, turns and tokens: `episode_metrics`)."""
    scores = [s for g in groups for s in g.scores]
    n = len(scores)
    rewards = torch.cat([g.shaped for g in groups])
    lengths = [x for g in groups for x in g.lengths]
    out = {"reward/mean": rewards.mean().item(), "reward/std": rewards.std().item() if n > 1 else 0.0,
           "accuracy": sum(bool(s.passed) for s in scores) / n, "length/mean": sum(lengths) / n,
           "length/clipped_frac": sum(t for g in groups for t in g.truncated) / n}
    comps = [c for g in groups for c in g.component_rewards]
    for name in sorted({k for c in comps for k in c}):
        out[f"reward/{name}"] = sum(c.get(name, 0.0) for c in comps) / n
    errors = [(s.info or {}).get("error") for s in scores]
    out["verifier/error_rate"] = sum(e is not None for e in errors) / n
    out["verifier/timeout_rate"] = sum(e == "timeout" for e in errors) / n
    flags = [s.suspicious for s in scores if s.suspicious is not None]  # Score's typed hacking flag
    if flags:
        out["code/suspicious_rate"] = sum(flags) / len(flags)
    trajectories = [t for g in groups for t in g.trajectories]
    if trajectories:
        out.update(episode_metrics(trajectories))
    out.update(extra)
    return out


def _progress(cfg: TrainConfig, start: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    off = not enabled or cfg.logging.progress == "none"
    return tqdm(total=cfg.steps, initial=start, desc="rlvr train", disable=off, dynamic_ncols=True, file=sys.stderr)


def _build(cfg: TrainConfig, acc: Any, run_dir: Path, resume: bool, task: Any = None,
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


def _async_source(parts: Parts, state: dict[str, Any], start: int) -> AsyncRollouts | None:
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


def _train_step(parts: Parts, state: dict[str, Any], step: int,
                source: AsyncRollouts | None = None) -> tuple[dict[str, float], list[ScoredGroup]]:
    """One step: collect (or take the producer's batch), advantages, optimizer steps (and the
    critic's), weights to the sampler."""
    cfg, acc, algo = parts.cfg, parts.acc, parts.cfg.algo
    t0 = time.perf_counter()
    # 1-2. sample and score (overlapped), shape rewards, dynamic sampling
    if source is None:
        rollout = collect(parts.sampler, parts.scorer, prompt_stream(parts, state), parts.plan,
                          policy_version=step - 1, agree=_agree(acc))
        t_gen, times = time.perf_counter() - t0, {}
    else:  # async: the producer generated it from policy version step - 1 - staleness
        got = source.get(step)
        rollout, t_gen, state["data_position"] = got.payload, got.generate_s, got.end
        times = {"time/wait_rollout": time.perf_counter() - t0, "async/staleness": float(got.staleness),
                 "async/policy_version": float(got.version), **source.metrics()}
    curriculum = {}
    if parts.curriculum is not None:  # every group seen (kept or dropped) is one visit of its prompt
        visits = [[(g.index, s.passed) for s in g.scores] for g in rollout.seen]
        if acc.num_processes > 1:  # every rank applies every rank's visits, in rank order: one state everywhere
            from accelerate.utils import gather_object

            visits = gather_object(visits)
        for visit in visits:
            parts.curriculum.update(visit)
        state["curriculum"] = parts.curriculum.state_dict()
        curriculum = parts.curriculum.pool_sizes()
    # 3. advantages per group, then the packed batch (loss masks: truncated rows zeroed when asked)
    rewards = torch.stack([g.shaped for g in rollout.groups])  # (B, G)
    batch = pack_groups(rollout.groups, parts.tokenizer.pad_token_id)
    need_old = algo.ppo_epochs > 1 or algo.num_minibatches > 1 or algo.tis_cap is not None or algo.correction != "none"
    group = _prefix_group(cfg, shuffled=False)
    t_old = time.perf_counter()
    old_logp = _no_grad_logprobs(parts.model, batch, cfg, group) if need_old or algo.kl_in == "reward" or parts.critic else None
    t_ref = time.perf_counter()
    ref_logp = _no_grad_logprobs(parts.ref, batch, cfg, group) if parts.ref is not None else None  # once per step
    times.update({"time/old_logprobs": t_ref - t_old, "time/ref_logprobs": time.perf_counter() - t_ref})
    ppo_metrics: dict[str, float] = {}
    if parts.critic is not None:  # PPO: per-token advantages from the critic and GAE
        from rlvr.trainers.critic import ppo_step_advantages

        adv, old_values, returns, ppo_metrics = ppo_step_advantages(
            parts.critic, acc, batch, rewards.reshape(-1), old_logp, ref_logp if algo.kl_in == "reward" else None, state)
    else:
        kl_seq = None
        if ref_logp is not None and algo.kl_in == "reward":
            from rlvr.losses import kl_reward

            kl_seq = -kl_reward(old_logp, ref_logp, batch.mask, 1.0, algo.kl_estimator).sum(-1).view_as(rewards)
        adv = outcome_advantages(algo, rewards, kl_seq).reshape(-1)  # (B*G,)
    # 4. optimizer steps (and the critic's, for PPO)
    t1 = time.perf_counter()
    step_algo = _entropy_step_algo(algo, state)
    train_metrics = _update(parts, batch, adv, old_logp if need_old else None, ref_logp, step, times, step_algo)
    if algo.entropy_target is not None:
        _entropy_controller_step(acc, algo, state, train_metrics)
    if parts.critic is not None:
        train_metrics.update(ppo_metrics)
        train_metrics.update(parts.critic.update(batch, old_values, returns, step))
    # 5. weights to the sampler (async: published; the producer pushes them between two batches)
    t_sync = time.perf_counter()
    if source is not None:  # published by `train` after this step's eval (which may push it first)
        source.pending = take_snapshot(step, acc.unwrap_model(parts.model), parts.sampler)
    elif cfg.rollout.backend != "hf":
        parts.sampler.update_weights(acc.unwrap_model(parts.model))
    times["time/weight_sync"] = time.perf_counter() - t_sync
    metrics = _step_metrics(rollout.seen, {**rollout.stats.metrics(), **train_metrics, **curriculum})
    metrics = {k: acc.reduce(torch.tensor(v, dtype=torch.float64, device=acc.device), "mean").item()
               for k, v in sorted(metrics.items())}
    metrics.update(times)
    metrics.update({"lr": parts.scheduler.get_last_lr()[0], "time/generate_score": t_gen,
                    "time/train": time.perf_counter() - t1, "time/step": time.perf_counter() - t0})
    return metrics, rollout.seen


def train(cfg: TrainConfig, *, resume: bool = False, config_yaml: str | None = None, task: Any = None,
          verifier: Any = None, sampler: Any = None) -> dict[str, Any]:
    """Run (or resume) training as `cfg` says; returns a summary (eval accuracy first/last, wall time).
    `task` and `verifier` (built in Python, e.g. by `rlvr.GRPOTrainer`) replace the config's; so does
    `sampler` (an engine already running, e.g. one shared by tests; it is left open at the end)."""
    from accelerate import Accelerator

    wall = time.perf_counter()
    bf16 = cfg.model.dtype == "bfloat16" or (cfg.model.dtype == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    acc = Accelerator(mixed_precision="bf16" if bf16 else "no", cpu=not torch.cuda.is_available())
    if cfg.rollout.prompts_per_step % acc.num_processes:
        raise ValueError(f"rollout.prompts_per_step={cfg.rollout.prompts_per_step} must divide among {acc.num_processes} processes")
    run_dir = Path(cfg.logging.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    parts, state, ckpt = _build(cfg, acc, run_dir, resume, task, sampler)
    if acc.is_main_process:  # the objective this run trains, as `rlvr presets show` prints it
        (run_dir / "objective.txt").write_text(describe(cfg.algo, base=cfg.preset, max_new_tokens=max_length(parts)) + "\n")
    eval_samples = parts.task.samples(cfg.task.eval_split, cfg.task.eval_limit) if cfg.logging.eval_every else []
    main = acc.is_main_process
    logger = RunLogger(run_dir, tensorboard=cfg.logging.tensorboard and main, wandb_project=cfg.logging.wandb_project if main else None)
    monitor, start = AlarmMonitor(), int(state["step"])
    if main and resume:  # drop what was logged after the checkpoint (everything, without one)
        logger.truncate_after(start if ckpt is not None else -1)
        for row in read_jsonl_metrics(logger.path("metrics")) if logger.path("metrics").exists() else []:
            monitor.update(int(row["step"]), {k: v for k, v in row.items() if k != "step"})
    history = {"eval_first": state.get("eval_first"), "eval_last": state.get("eval_last")}
    held_out = PromptBatch(eval_samples, [parts.task.render(s, parts.tokenizer) for s in eval_samples])
    greedy = SamplingParams(temperature=0.0, max_new_tokens=cfg.rollout.max_new_tokens, stop=tuple(cfg.rollout.stop))

    def run_eval(step: int) -> dict[str, float]:
        if not (main and eval_samples):
            return {}
        with source.exclusive() if source is not None else contextlib.nullcontext():  # pushes this step's weights
            res = evaluate(parts.sampler, parts.scorer, held_out, greedy, episodes=parts.plan.episodes)[1]
        history["eval_first"] = res["eval/accuracy"] if history["eval_first"] is None else history["eval_first"]
        history["eval_last"] = res["eval/accuracy"]
        return res

    bar = _progress(cfg, start, main)
    deadline = None if cfg.max_minutes is None else time.monotonic() + 60 * cfg.max_minutes
    last: dict[str, float] = {}
    verifier = verifier if verifier is not None else setup.task_verifier(parts.task, cfg.task)
    workers = setup.scoring_workers(verifier, cfg.scoring.workers)
    if start > 0 and cfg.rollout.backend != "hf":  # the engine started from the base weights: the checkpoint's
        parts.sampler.update_weights(acc.unwrap_model(parts.model))
    source = _async_source(parts, state, start)
    with (Scorer(verifier, workers=workers, timeout_s=cfg.scoring.timeout_s) as parts.scorer,
          _closing_tools(parts.plan.episodes), GracefulStop() as stop, _closing(source)):  # producer first
        if start == 0 and main and eval_samples:
            logger.metrics(0, run_eval(0))
        if source is not None:  # after the first eval: the engine sees the calls of a synchronous run
            source.start()
        step = start
        for step in range(start + 1, cfg.steps + 1):
            metrics, seen = _train_step(parts, state, step, source)
            records = [r for g in seen for r in g.records()] if cfg.logging.rollouts else []
            if acc.num_processes > 1 and records:
                from accelerate.utils import gather_object

                records = gather_object(records)
            out_of_time = (deadline is not None and time.monotonic() > deadline) or stop.requested
            if acc.num_processes > 1:  # every rank stops at the same step
                out_of_time = bool(acc.reduce(torch.tensor(float(out_of_time), device=acc.device), "max").item())
            # the last step evaluates, also when max_minutes ends the run early (the held-out "after")
            if cfg.logging.eval_every and (step % cfg.logging.eval_every == 0 or step == cfg.steps or out_of_time):
                metrics.update(run_eval(step))
            if source is not None:  # the producer may now push this step's weights and generate on
                source.publish(source.pending)
            if main:
                logger.metrics(step, metrics)
                logger.rollouts(step, records)
                for alarm in monitor.update(step, metrics):
                    logger.alarm(step, alarm.to_dict())
                    bar.write(f"ALARM {alarm}")
            last = metrics
            bar.update(1)
            bar.set_postfix({k: f"{metrics[m]:.3g}" for k, m in (("reward", "reward/mean"), ("acc", "accuracy"), ("eval", "eval/accuracy"),
                             ("kl", "kl"), ("len", "length/mean"), ("s/step", "time/step")) if m in metrics}, refresh=False)
            if step == cfg.steps or out_of_time or (cfg.checkpoint.every and step % cfg.checkpoint.every == 0):
                state.update(step=step, eval_first=history["eval_first"], eval_last=history["eval_last"])
                if main:
                    save_checkpoint(run_dir, step, model=acc.unwrap_model(parts.model), tokenizer=parts.tokenizer,
                                    optimizer=parts.optimizer, scheduler=parts.scheduler, state=state, config_yaml=config_yaml,
                                    keep_last=cfg.checkpoint.keep_last,
                                    extra={"critic": parts.critic.state()} if parts.critic is not None else None)
                acc.wait_for_everyone()
            if out_of_time:
                why = "SIGTERM" if stop.requested else f"max_minutes={cfg.max_minutes} reached"
                bar.write(f"rlvr train: {why} at step {step}; checkpoint saved to {run_dir}/checkpoints (continue with --resume)",
                          file=sys.stderr)
                break
    bar.close()
    logger.close()
    if main and not stop.requested:  # RUN_DIR/final: the model to use (LoRA: merged, adapter beside it)
        write_final(run_dir, acc.unwrap_model(parts.model), parts.tokenizer, config_yaml, cfg.rollout.max_new_tokens)
    fingerprints = _weight_fingerprints(acc, acc.unwrap_model(parts.model))
    if cfg.rollout.backend != "hf":
        if sampler is None:  # ours; a sampler passed in stays open for its owner
            parts.sampler.close()
    return {"steps": step, "steps_planned": cfg.steps, "finished": step >= cfg.steps,
            "eval_first": history["eval_first"], "eval_last": history["eval_last"],
            "wall_seconds": time.perf_counter() - wall, "last": last, "run_dir": str(run_dir),
            "weight_fingerprints": fingerprints, "stopped_by": "SIGTERM" if stop.requested else None}


@contextlib.contextmanager
def _closing(source: AsyncRollouts | None) -> Any:
    """Stop the producer (async training) however the loop ends."""
    try:
        yield
    finally:
        if source is not None:
            source.close()


@contextlib.contextmanager
def _closing_tools(episodes: Any) -> Any:
    """Close the episodes' tool runner (its sandbox pool and workers) however the loop ends."""
    try:
        yield
    finally:
        if episodes is not None and episodes.runner is not None:
            episodes.runner.close()


def _weight_fingerprints(acc: Any, model: Any) -> list[str]:
    """sha256 of every rank's weights; raises when the processes of a multi-process run disagree."""
    import hashlib

    digest = hashlib.sha256()
    for name, p in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(p.detach().cpu().float().contiguous().numpy().tobytes())
    prints = [digest.hexdigest()]
    if acc.num_processes > 1:
        from accelerate.utils import gather_object

        prints = gather_object(prints)
        if len(set(prints)) != 1:
            raise RuntimeError(f"the {acc.num_processes} processes ended with different weights: {prints}")
    return prints
