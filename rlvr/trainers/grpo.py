"""The training loop behind ``rlvr train``: GRPO, Dr.GRPO, DAPO, RLOO, REINFORCE++, GSPO and PPO.

Each step, read top to bottom in `train`:
  1. sample G completions for each of B prompts, in chunks; each chunk goes to the verifier
     workers (`rlvr.scoring.Scorer`) while the next chunk generates (overlapped scoring);
  2. shape rewards (DAPO's soft overlong penalty) and, with dynamic sampling, drop groups whose
     rewards all tie and sample more prompts until the batch is full (reported as groups/dropped);
  3. advantages from `rlvr.presets.outcome_advantages` (the preset's estimator); for PPO
     (advantage=gae) per token from the critic's values, the KL-shaped token rewards and GAE
     (`rlvr.trainers.critic`), and the adaptive KL controller moves towards its target;
  4. `ppo_epochs` x `num_minibatches` optimizer steps, each accumulating gradients over micro-batches
     (`rlvr.rollout.policy_loss`: clip objective, KL, entropy, TIS, aggregation from `rlvr.losses`);
     PPO's critic then takes the same number of steps on the clipped value loss;
  5. push the weights to the sampler (a no-op for the HF sampler, which shares them), log metrics
     and every rollout, run the alarms, evaluate on held-out problems, checkpoint.
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
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from rlvr.alarms import AlarmMonitor
from rlvr.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from rlvr.metrics import RunLogger, read_jsonl_metrics
from rlvr.presets import outcome_advantages
from rlvr.rollout import forward_logprobs, microbatch_weight, pack_groups, policy_loss, zero_variance
from rlvr.samplers import SamplingParams
from rlvr.scoring import Scorer
from rlvr.trainers import setup
from rlvr.trainers.config import TrainConfig
from rlvr.trainers.finalize import GracefulStop, write_final

__all__ = ["train"]


def _sample_round(ctx: Any, samples: list[Any], seed: int) -> list[dict[str, Any]]:
    """Generate G completions per sample in chunks, scoring each chunk while the next generates."""
    cfg, G = ctx.cfg, ctx.cfg.rollout.group_size
    prompts = [ctx.task.render(s, ctx.tokenizer) for s in samples]
    n_chunks = min(cfg.rollout.chunks, len(samples))
    bounds = [round(k * len(samples) / n_chunks) for k in range(n_chunks + 1)]
    pending = []
    for k in range(n_chunks):
        lo, hi = bounds[k], bounds[k + 1]
        params = dataclasses.replace(ctx.params, seed=seed + k)
        groups = ctx.sampler.generate(prompts[lo:hi], n=G, params=params)
        texts = [c.text for g in groups for c in g.completions]
        pending.append((lo, groups, ctx.scorer.submit(texts, [s for s in samples[lo:hi] for _ in range(G)])))
    out = []
    for lo, groups, future in pending:  # verifier work for earlier chunks ran during generation
        scores = future.result()
        for b, group in enumerate(groups):
            out.append({"sample": samples[lo + b], "group": group, "scores": scores[b * G:(b + 1) * G]})
    return out


def _collect(ctx: Any, state: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """One step's groups (this process's share), with dynamic sampling when the preset asks for it."""
    cfg, algo, acc = ctx.cfg, ctx.cfg.algo, ctx.acc
    per_round, quota = cfg.rollout.prompts_per_step, cfg.rollout.prompts_per_step // acc.num_processes
    kept: list[dict[str, Any]] = []
    spare: list[dict[str, Any]] = []
    seen: list[dict[str, Any]] = []
    rounds = 0
    while True:
        cursor = state["data_position"]
        idx = setup.data_order(len(ctx.train_samples), cfg.seed, cursor, per_round)[acc.process_index::acc.num_processes]
        state["data_position"] = cursor + per_round
        seed = (cfg.seed * 1_000_003 + cursor * 97 + acc.process_index * 13) % (2**62)
        groups = _sample_round(ctx, [ctx.train_samples[i] for i in idx], seed)
        for g in groups:
            g["rewards"] = _shaped_rewards(ctx, g)
        seen += groups
        rounds += 1
        if not algo.dynamic_sampling:
            kept = groups
            break
        for g in groups:
            flat = bool(zero_variance(g["rewards"][None])[0])
            (spare if flat or len(kept) >= quota else kept).append(g)
        missing = torch.tensor([float(quota - len(kept))], device=acc.device)  # NCCL reduces device tensors only
        if acc.reduce(missing, "sum").item() == 0 or rounds > algo.dynamic_sampling_rounds:
            break
    filler = quota - len(kept)  # still short after the extra rounds: pad with tied groups (A = 0)
    kept += spare[:filler]
    flat = zero_variance(torch.stack([g["rewards"] for g in seen]))
    return kept, {"groups/zero_var_frac": flat.float().mean().item(), "groups/dropped": float(flat.sum() - filler if algo.dynamic_sampling else 0),
                  "groups/sampling_rounds": float(rounds), "_seen": seen}


def _shaped_rewards(ctx: Any, g: dict[str, Any]) -> torch.Tensor:
    """(G,) verifier rewards plus DAPO's soft overlong penalty when the preset sets a buffer."""
    rewards = torch.tensor([float(s.reward) for s in g["scores"]])
    algo, max_new = ctx.cfg.algo, ctx.cfg.rollout.max_new_tokens
    if algo.overlong_buffer > 0:
        from rlvr.advantages import overlong_penalty

        lengths = torch.tensor([len(c.token_ids) for c in g["group"].completions])
        buffer = max(1, round(algo.overlong_buffer * max_new))
        rewards = rewards + overlong_penalty(lengths, max_new, buffer, algo.overlong_penalty)
    return rewards


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


def _update(ctx: Any, batch: Any, adv: torch.Tensor, old_logp: torch.Tensor | None, ref_logp: torch.Tensor | None,
            step: int) -> dict[str, float]:
    """`ppo_epochs` x `num_minibatches` optimizer steps over `batch`, accumulating micro-batches."""
    cfg, algo, acc = ctx.cfg, ctx.cfg.algo, ctx.acc
    n, mbs = len(batch), cfg.optim.micro_batch_size
    entropy = "grad" if algo.entropy_coef > 0 else "metric"
    sums: dict[str, float] = {}
    count = 0
    gen = torch.Generator().manual_seed(cfg.seed * 7919 + step)
    for _ in range(algo.ppo_epochs):
        order = torch.randperm(n, generator=gen) if algo.num_minibatches > 1 else torch.arange(n)
        size = math.ceil(n / algo.num_minibatches)
        for m in range(algo.num_minibatches):
            rows_idx = order[m * size:(m + 1) * size]
            group = _prefix_group(cfg, shuffled=algo.num_minibatches > 1)
            mb, mb_adv = batch.select(rows_idx), adv[rows_idx]
            mb_old = old_logp[rows_idx] if old_logp is not None else None
            mb_ref = ref_logp[rows_idx] if ref_logp is not None else None
            starts = list(range(0, len(mb), mbs))
            for s in starts:
                rows = slice(s, s + mbs)
                sync = contextlib.nullcontext() if s == starts[-1] else acc.no_sync(ctx.model)
                with sync, acc.autocast():
                    logp, ent = forward_logprobs(ctx.model, mb, rows, cfg.rollout.temperature, entropy, group)
                    old = mb_old[rows] if mb_old is not None else logp.detach()
                    loss, metrics = policy_loss(algo, logp, old, mb_adv[rows], mb.mask[rows], max_len=cfg.rollout.max_new_tokens,
                                                ref_logp=mb_ref[rows] if mb_ref is not None else None, entropy=ent, sampler_logp=mb.sampler_logp[rows])
                    acc.backward(loss * microbatch_weight(algo.aggregation, mb.mask, rows, len(mb)))
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
            if cfg.optim.max_grad_norm is not None:
                norm = acc.clip_grad_norm_(ctx.model.parameters(), cfg.optim.max_grad_norm)
                sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(norm) * len(starts)
            ctx.optimizer.step()
            ctx.scheduler.step()
            ctx.optimizer.zero_grad(set_to_none=True)
    return {k: v / count for k, v in sums.items()}


def _step_metrics(groups: list[dict[str, Any]], extra: dict[str, float]) -> dict[str, float]:
    """Reward, accuracy, per-component rewards, lengths and verifier health over the step's groups."""
    scores = [s for g in groups for s in g["scores"]]
    comps = [c for g in groups for c in g["group"].completions]
    n = len(scores)
    rewards = torch.cat([g["rewards"] for g in groups])
    out = {"reward/mean": rewards.mean().item(), "reward/std": rewards.std().item() if n > 1 else 0.0,
           "accuracy": sum(bool(s.passed) for s in scores) / n,
           "length/mean": sum(len(c.token_ids) for c in comps) / n,
           "length/clipped_frac": sum(c.finish_reason == "length" for c in comps) / n}
    for name in sorted({k for s in scores for k in (s.info or {}).get("rewards", {})}):
        out[f"reward/{name}"] = sum((s.info or {}).get("rewards", {}).get(name, 0.0) for s in scores) / n
    errors = [(s.info or {}).get("error") for s in scores]
    out["verifier/error_rate"] = sum(e is not None for e in errors) / n
    out["verifier/timeout_rate"] = sum(e == "timeout" for e in errors) / n
    flags = [(s.info or {}).get("code", {}).get("suspicious") for s in scores if isinstance((s.info or {}).get("code"), dict)]
    if flags:
        out["code/suspicious_rate"] = sum(bool(f) for f in flags) / len(flags)
    out.update(extra)
    return out


def _rollout_records(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    recs = []
    for g in groups:
        for c, s, r in zip(g["group"].completions, g["scores"], g["rewards"].tolist()):
            info = dict(s.info or {})
            recs.append({"prompt": g["group"].prompt, "completion": c.text, "answer": g["sample"].answer,
                         "reward": r, "rewards": info.pop("rewards", {}), "passed": s.passed,
                         "finish_reason": c.finish_reason, "length": len(c.token_ids), "info": info})
    return recs


def _progress(cfg: TrainConfig, start: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    off = not enabled or cfg.logging.progress == "none"
    return tqdm(total=cfg.steps, initial=start, desc="rlvr train", disable=off, dynamic_ncols=True, file=sys.stderr)


def train(cfg: TrainConfig, *, resume: bool = False, config_yaml: str | None = None, task: Any = None,
          verifier: Any = None) -> dict[str, Any]:
    """Run (or resume) training as `cfg` says; returns a summary (eval accuracy first/last, wall time).
    `task` and `verifier` (built in Python, e.g. by `rlvr.GRPOTrainer`) replace the config's."""
    from accelerate import Accelerator

    from rlvr.tasks import get_task

    wall = time.perf_counter()
    bf16 = cfg.model.dtype == "bfloat16" or (cfg.model.dtype == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    acc = Accelerator(mixed_precision="bf16" if bf16 else "no", cpu=not torch.cuda.is_available())
    if cfg.rollout.prompts_per_step % acc.num_processes:
        raise ValueError(f"rollout.prompts_per_step={cfg.rollout.prompts_per_step} must divide among {acc.num_processes} processes")
    run_dir = Path(cfg.logging.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = setup.model_path(cfg, run_dir, acc.is_main_process)
    acc.wait_for_everyone()
    ctx = type("Ctx", (), {})()  # the run's parts, passed to the step functions
    ctx.cfg, ctx.acc = cfg, acc
    model, ctx.tokenizer = setup.load_policy(path, cfg)
    ctx.ref = setup.load_reference(path) if cfg.algo.needs_reference else None
    updates = cfg.steps * cfg.algo.ppo_epochs * cfg.algo.num_minibatches
    ctx.optimizer, ctx.scheduler = setup.build_optimizer(cfg, model, updates)
    state: dict[str, Any] = {"step": 0, "data_position": 0}
    ckpt = latest_checkpoint(run_dir) if resume else None
    if resume and ckpt is None:
        print(f"rlvr train: --resume: no checkpoint in {run_dir}/checkpoints, starting fresh", file=sys.stderr)
    if ckpt is not None:
        lora = cfg.model.lora.enabled
        state = load_checkpoint(ckpt, model=None if lora else model, optimizer=ctx.optimizer, scheduler=ctx.scheduler)
        if lora:
            setup.load_adapter(model, ckpt / "model")
        if acc.is_main_process:
            print(f"rlvr train: --resume: continuing after step {state['step']} of {cfg.steps} from {ckpt}", file=sys.stderr)
    ctx.model, ctx.optimizer = acc.prepare(model, ctx.optimizer)
    ctx.critic = None
    if cfg.algo.needs_critic:
        from rlvr.checkpoint import load_extra
        from rlvr.trainers.critic import Critic

        ctx.critic = Critic(cfg.critic.path or path, cfg, acc, updates)
        if ckpt is not None:
            ctx.critic.load_state(load_extra(ckpt, "critic"))
    policy = acc.unwrap_model(ctx.model)
    ctx.sampler = setup.build_sampler(cfg, policy, ctx.tokenizer, path)
    ctx.params = SamplingParams(temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p, top_k=cfg.rollout.top_k,
                                max_new_tokens=cfg.rollout.max_new_tokens, stop=tuple(cfg.rollout.stop))
    ctx.task = task if task is not None else get_task(cfg.task.name, **cfg.task.options)
    ctx.train_samples = ctx.task.samples("train")
    eval_samples = ctx.task.samples(cfg.task.eval_split, cfg.task.eval_limit) if cfg.logging.eval_every else []
    main = acc.is_main_process
    logger = RunLogger(run_dir, tensorboard=cfg.logging.tensorboard and main, wandb_project=cfg.logging.wandb_project if main else None)
    monitor, start = AlarmMonitor(), int(state["step"])
    if main and resume:  # drop what was logged after the checkpoint (everything, without one)
        logger.truncate_after(start if ckpt is not None else -1)
        for row in read_jsonl_metrics(logger.path("metrics")) if logger.path("metrics").exists() else []:
            monitor.update(int(row["step"]), {k: v for k, v in row.items() if k != "step"})
    history = {"eval_first": state.get("eval_first"), "eval_last": state.get("eval_last")}

    def run_eval(step: int) -> dict[str, float]:
        if not (main and eval_samples):
            return {}
        res = setup.evaluate(ctx.sampler, ctx.task, eval_samples, ctx.scorer, cfg, ctx.tokenizer)
        history["eval_first"] = res["eval/accuracy"] if history["eval_first"] is None else history["eval_first"]
        history["eval_last"] = res["eval/accuracy"]
        return res

    bar = _progress(cfg, start, main)
    deadline = None if cfg.max_minutes is None else time.monotonic() + 60 * cfg.max_minutes
    last: dict[str, float] = {}
    verifier = verifier if verifier is not None else setup.task_verifier(ctx.task, cfg.task)
    workers = setup.scoring_workers(verifier, cfg.scoring.workers)
    with Scorer(verifier, workers=workers, timeout_s=cfg.scoring.timeout_s) as ctx.scorer, GracefulStop() as stop:
        if start == 0 and main and eval_samples:
            logger.metrics(0, run_eval(0))
        step = start
        for step in range(start + 1, cfg.steps + 1):
            t0 = time.perf_counter()
            # 1-2. sample and score (overlapped), shape rewards, dynamic sampling
            groups, extra = _collect(ctx, state)
            seen = extra.pop("_seen")
            t_gen = time.perf_counter() - t0
            # 3. advantages per group, then the packed batch
            rewards = torch.stack([g["rewards"] for g in groups])  # (B, G)
            batch = pack_groups([g["group"] for g in groups], ctx.tokenizer.pad_token_id)
            if cfg.algo.overlong_mask:
                batch.mask_truncated()
            algo = cfg.algo
            need_old = algo.ppo_epochs > 1 or algo.num_minibatches > 1 or algo.tis_cap is not None
            group = _prefix_group(cfg, shuffled=False)
            old_logp = _no_grad_logprobs(ctx.model, batch, cfg, group) if need_old or algo.kl_in == "reward" or ctx.critic else None
            ref_logp = _no_grad_logprobs(ctx.ref, batch, cfg, group) if ctx.ref is not None else None  # once per step
            ppo_metrics: dict[str, float] = {}
            if ctx.critic is not None:  # PPO: per-token advantages from the critic and GAE
                from rlvr.trainers.critic import ppo_step_advantages

                adv, old_values, returns, ppo_metrics = ppo_step_advantages(
                    ctx, batch, rewards.reshape(-1), old_logp, ref_logp if algo.kl_in == "reward" else None, state)
            else:
                kl_seq = None
                if ref_logp is not None and algo.kl_in == "reward":
                    from rlvr.losses import kl_reward

                    kl_seq = -kl_reward(old_logp, ref_logp, batch.mask, 1.0, algo.kl_estimator).sum(-1).view_as(rewards)
                adv = outcome_advantages(algo, rewards, kl_seq).reshape(-1)  # (B*G,)
            # 4. optimizer steps (and the critic's, for PPO)
            t1 = time.perf_counter()
            train_metrics = _update(ctx, batch, adv, old_logp if need_old else None, ref_logp, step)
            if ctx.critic is not None:
                train_metrics.update(ppo_metrics)
                train_metrics.update(ctx.critic.update(batch, old_values, returns, step))
            # 5. weights to the sampler, logs, alarms, eval, checkpoint
            if cfg.rollout.backend != "hf":
                ctx.sampler.update_weights(acc.unwrap_model(ctx.model))
            metrics = _step_metrics(seen, {**extra, **train_metrics})
            metrics = {k: acc.reduce(torch.tensor(v, dtype=torch.float64, device=acc.device), "mean").item()
                       for k, v in sorted(metrics.items())}
            records = _rollout_records(seen) if cfg.logging.rollouts else []
            if acc.num_processes > 1 and records:
                from accelerate.utils import gather_object

                records = gather_object(records)
            metrics.update({"lr": ctx.scheduler.get_last_lr()[0], "time/generate_score": t_gen,
                            "time/train": time.perf_counter() - t1, "time/step": time.perf_counter() - t0})
            out_of_time = (deadline is not None and time.monotonic() > deadline) or stop.requested
            if acc.num_processes > 1:  # every rank stops at the same step
                out_of_time = bool(acc.reduce(torch.tensor(float(out_of_time), device=acc.device), "max").item())
            # the last step evaluates, also when max_minutes ends the run early (the held-out "after")
            if cfg.logging.eval_every and (step % cfg.logging.eval_every == 0 or step == cfg.steps or out_of_time):
                metrics.update(run_eval(step))
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
                    save_checkpoint(run_dir, step, model=acc.unwrap_model(ctx.model), tokenizer=ctx.tokenizer, optimizer=ctx.optimizer,
                                    scheduler=ctx.scheduler, state=state, config_yaml=config_yaml, keep_last=cfg.checkpoint.keep_last,
                                    extra={"critic": ctx.critic.state()} if ctx.critic is not None else None)
                acc.wait_for_everyone()
            if out_of_time:
                why = "SIGTERM" if stop.requested else f"max_minutes={cfg.max_minutes} reached"
                bar.write(f"rlvr train: {why} at step {step}; checkpoint saved to {run_dir}/checkpoints (continue with --resume)",
                          file=sys.stderr)
                break
    bar.close()
    logger.close()
    if main and not stop.requested:  # RUN_DIR/final: the model to use (LoRA: merged, adapter beside it)
        write_final(run_dir, acc.unwrap_model(ctx.model), ctx.tokenizer, config_yaml, cfg.rollout.max_new_tokens)
    fingerprints = _weight_fingerprints(acc, acc.unwrap_model(ctx.model))
    if cfg.rollout.backend != "hf":
        ctx.sampler.close()
    return {"steps": step, "steps_planned": cfg.steps, "finished": step >= cfg.steps,
            "eval_first": history["eval_first"], "eval_last": history["eval_last"],
            "wall_seconds": time.perf_counter() - wall, "last": last, "run_dir": str(run_dir),
            "weight_fingerprints": fingerprints, "stopped_by": "SIGTERM" if stop.requested else None}


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
