"""Shared plumbing of the pipeline trainers (`rlvr sft`, `rlvr rm`, `rlvr dpo`).

What it does:
- the config blocks the three stages share: `SamplingSourceConfig` (sample N completions per prompt
  of a task and keep what its verifiers pass: rejection-sampling SFT and verifier-made pairs);
- `start_run`: run directory, resolved config printed and saved, a `RunLogger`;
- `device_of`, `batch_to`: the trainer's device (CUDA when present, else CPU);
- `token_logps(model, batch)`: per-token logprobs of the next token and the shifted loss mask;
- `run_loop`: the optimizer loop every stage uses: seeded batches (`setup.data_order`), gradient
  accumulation over micro-batches, gradient clipping, LR schedule, metrics, periodic evaluation,
  atomic checkpoints and ``resume``; its only stage-specific parts are the callbacks
  ``loss_fn(indices) -> (loss, metrics)`` and ``eval_fn() -> metrics``;
- `greedy_accuracy`: held-out accuracy of a policy on a task (the task's primary verifier).

What it does not do: any loss formula (those are in `rlvr.losses`), or data parsing (see
`rlvr.preference`).

Try it::

    >>> list(chunks([1, 2, 3, 4, 5], 2))
    [[1, 2], [3, 4], [5]]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rlvr.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from rlvr.config import dump_yaml, print_config, save_resolved
from rlvr.io import InputError
from rlvr.losses import token_logprobs
from rlvr.metrics import RunLogger
from rlvr.trainers import setup

__all__ = [
    "SamplingSourceConfig",
    "batch_to",
    "chunks",
    "device_of",
    "greedy_accuracy",
    "run_loop",
    "sampled_rows",
    "save_final",
    "start_run",
    "token_logps",
]


@dataclass
class SamplingSourceConfig:
    # Build the training data by sampling a model on a task and checking with the task's verifiers.
    enabled: bool = False
    # Task name and options for rlvr.tasks.get_task (e.g. arithmetic, {level: 1}).
    task: str = "arithmetic"
    task_options: dict[str, Any] = field(default_factory=lambda: {"level": 1})
    # The model that samples (a directory or hub name, "demo", or null = the model being trained).
    model: str | None = None
    # Train prompts to sample, held-out prompts (from the task's test split) for the eval data.
    prompts: int = 256
    eval_prompts: int = 64
    # Completions per prompt (N), their token limit and temperature.
    samples_per_prompt: int = 8
    max_new_tokens: int = 24
    temperature: float = 1.0
    # At most this many kept completions (SFT) or pairs (RM/DPO) per prompt.
    per_prompt: int = 2
    # Sequences per generate call.
    batch_size: int = 64
    # Verifier worker processes (0 = in this process; needed for the reward_model verifier).
    workers: int = 0


def chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive slices of at most `size` items."""
    for lo in range(0, len(items), max(1, size)):
        yield list(items[lo : lo + size])


def device_of(model: Any) -> torch.device:
    return next(model.parameters()).device


def pick_device() -> torch.device:
    """The trainer's device: the first CUDA device when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def batch_to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def start_run(cfg: Any, title: str, quiet: bool = False) -> tuple[Path, RunLogger]:
    """Create the run directory, print and save the resolved config, open the metrics logger."""
    run_dir = Path(cfg.logging.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print_config(cfg, title=title)
    save_resolved(cfg, run_dir)
    torch.manual_seed(cfg.seed)
    logger = RunLogger(run_dir, tensorboard=cfg.logging.tensorboard, wandb_project=cfg.logging.wandb_project)
    return run_dir, logger


def token_logps(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(logp (N, L-1), mask (N, L-1)): logprob of each next token and the loss mask, shifted.

    `batch` holds input_ids and mask, plus attention_mask (padded rows) or position_ids (packed
    rows, see `rlvr.preference.pack`).
    """
    kwargs = {k: batch[k] for k in ("attention_mask", "position_ids") if k in batch}
    logits = model(input_ids=batch["input_ids"], use_cache=False, **kwargs).logits[:, :-1]  # (N, L-1, V)
    return token_logprobs(logits, batch["input_ids"][:, 1:]), batch["mask"][:, 1:]


def _progress_bar(cfg: Any, total: int, initial: int, desc: str) -> Any:
    mode = cfg.logging.progress
    if mode == "none":
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        dynamic_ncols=True,
        file=sys.stderr,
        disable=None if mode == "auto" else False,
    )


def run_loop(
    cfg: Any,
    model: Any,
    tokenizer: Any,
    run_dir: Path,
    logger: RunLogger,
    *,
    n_train: int,
    loss_fn: Callable[[list[int]], tuple[torch.Tensor, dict[str, float]]],
    eval_fn: Callable[[], dict[str, float]] | None = None,
    weight_fn: Callable[[list[int], list[int]], float] | None = None,
    desc: str = "train",
) -> tuple[dict[str, float], dict[str, float]]:
    """Train `model` for ``cfg.steps`` optimizer steps of ``cfg.batch_size`` items; return (first, last) eval.

    Each step takes the next `cfg.batch_size` indices of a seeded endless shuffle of range(n_train),
    splits them into micro-batches of ``cfg.optim.micro_batch_size`` and accumulates
    ``weight * loss_fn(micro)`` (weight: the micro-batch's share of the items, or `weight_fn`).
    Evaluates before the first step, every ``cfg.logging.eval_every`` steps (0 = never) and after
    the last step; saves
    a checkpoint every ``cfg.checkpoint.every`` steps and at the end. ``cfg.resume`` continues
    from the newest checkpoint in the run directory with the same data order.
    """
    optimizer, scheduler = setup.build_optimizer(cfg, model, cfg.steps)
    start, first_eval, last_eval = 0, {}, {}
    ckpt = latest_checkpoint(run_dir) if cfg.resume else None
    if ckpt is not None:
        state = load_checkpoint(ckpt, model=model, optimizer=optimizer, scheduler=scheduler)
        start, first_eval = int(state["step"]), dict(state.get("first_eval") or {})
        last_eval = dict(state.get("last_eval") or first_eval)
        logger.truncate_after(start)
    elif eval_fn is not None:
        first_eval = last_eval = eval_fn()
        logger.metrics(0, first_eval)
    bar = _progress_bar(cfg, cfg.steps, start, desc)
    model.train()
    for step in range(start + 1, cfg.steps + 1):
        t0 = time.perf_counter()
        idx = setup.data_order(n_train, cfg.seed, (step - 1) * cfg.batch_size, cfg.batch_size)
        optimizer.zero_grad(set_to_none=True)
        rows, weights = [], []
        for micro in chunks(idx, cfg.optim.micro_batch_size):
            w = weight_fn(micro, idx) if weight_fn is not None else len(micro) / len(idx)
            with setup.autocast(cfg, model):
                loss, metrics = loss_fn(micro)
            (loss * w).backward()
            rows.append({k: float(v) for k, v in metrics.items()})
            weights.append(w)
        sums = mean_metrics(rows, weights)
        params = [p for p in model.parameters() if p.requires_grad]
        if cfg.optim.max_grad_norm is not None:
            sums["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(params, cfg.optim.max_grad_norm))
        optimizer.step()
        scheduler.step()
        sums.update({"lr": scheduler.get_last_lr()[0], "time/step": time.perf_counter() - t0})
        every = cfg.logging.eval_every
        if eval_fn is not None and (step == cfg.steps or (every and step % every == 0)):
            last_eval = eval_fn()
            model.train()
            sums.update(last_eval)
        logger.metrics(step, sums)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                {
                    k: f"{v:.3g}"
                    for k, v in sums.items()
                    if k in ("loss", "eval/loss", "accuracy", "eval/accuracy", "reward_margin")
                }
            )
        if step == cfg.steps or (cfg.checkpoint.every and step % cfg.checkpoint.every == 0):
            save_checkpoint(
                run_dir,
                step,
                model=model,
                tokenizer=tokenizer,
                optimizer=optimizer,
                scheduler=scheduler,
                state={"step": step, "first_eval": first_eval, "last_eval": last_eval},  # a resumed run still reports before -> after
                config_yaml=dump_yaml(cfg),
                keep_last=cfg.checkpoint.keep_last,
            )
    if bar is not None:
        bar.close()
    model.eval()
    return first_eval, last_eval


def save_final(model: Any, tokenizer: Any, out_dir: Path) -> Path:
    """``save_pretrained`` the trained model and tokenizer into `out_dir` (loadable by transformers)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@torch.no_grad()
def greedy_accuracy(
    model: Any, tokenizer: Any, task: Any, samples: Sequence[Any], max_new_tokens: int, batch_size: int = 64
) -> dict[str, float]:
    """Greedy held-out accuracy: the fraction of `samples` whose task verifier passes (in-process),
    through `rlvr.rollout.evaluate`."""
    from rlvr.rollout import PromptBatch, evaluate
    from rlvr.samplers import HFSampler, SamplingParams
    from rlvr.scoring import Scorer

    batch = PromptBatch(list(samples), [task.render(s, tokenizer) for s in samples])
    with Scorer(task.verifier(), workers=0) as scorer:
        metrics = evaluate(HFSampler(model, tokenizer, batch_size=batch_size), scorer, batch,
                           SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens))[1]
    return {k: metrics[k] for k in ("eval/accuracy", "eval/reward")}


def sampled_rows(
    src: SamplingSourceConfig, model: Any, tokenizer: Any, *, seed: int, kind: str, progress: bool = False
) -> tuple[list[dict], list[dict], dict[str, float], Any, list[Any]]:
    """Sample the task with `model` (or ``src.model``) and keep what its verifiers decide.

    kind="kept": prompt/completion rows of distinct passed completions (rejection-sampling SFT);
    kind="pairs": prompt/chosen/rejected rows, passed against failed (`pairs_from_scores`).
    Returns (train rows, held-out rows from the task's test split, stats, task, held-out samples).
    """
    from rlvr.preference import pairs_from_scores, sample_and_score
    from rlvr.tasks import get_task

    task = get_task(src.task, **src.task_options)
    if src.model is not None:  # another sampler (e.g. a teacher): its own weights and tokenizer
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from rlvr.models import resolve_model_path

        path = resolve_model_path(src.model)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(pick_device())
        tokenizer = AutoTokenizer.from_pretrained(path)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
    stats: dict[str, float] = {}
    out: list[tuple[list[dict], list[Any]]] = []
    for split, n, offset in (("train", src.prompts, 0), ("test", src.eval_prompts, 10**6)):
        samples = task.samples(split, limit=n) if n > 0 else []
        if not samples:
            out.append(([], []))
            continue
        groups = sample_and_score(
            model,
            tokenizer,
            task,
            samples,
            n=src.samples_per_prompt,
            max_new_tokens=src.max_new_tokens,
            temperature=src.temperature,
            seed=seed + offset,
            batch_size=src.batch_size,
            workers=src.workers,
            progress=progress,
        )
        prompts, texts, passed = [g.prompt for g in groups], [g.texts for g in groups], [g.passed for g in groups]
        if kind == "kept":
            rows = [
                {"prompt": p, "completion": t}
                for p, ts, ok in zip(prompts, texts, passed)
                for t in list(dict.fromkeys(t for t, k in zip(ts, ok) if k))[: src.per_prompt]
            ]
        else:
            rows = pairs_from_scores(prompts, texts, passed, per_prompt=src.per_prompt)
        flat = [bool(k) for ks in passed for k in ks]
        stats[f"sampled/{split}_pass_rate"] = sum(flat) / len(flat)
        stats[f"sampled/{split}_rows"] = float(len(rows))
        out.append((rows, samples))
    (train_rows, _), (eval_rows, eval_samples) = out
    if not train_rows:
        what = "passed the verifiers" if kind == "kept" else "gave a passed/failed pair"
        raise InputError(
            f"sampling {src.prompts} {src.task!r} prompts x {src.samples_per_prompt}: nothing {what}; "
            "raise samples_per_prompt or temperature, or start from a stronger model"
        )
    return train_rows, eval_rows, stats, task, eval_samples


def mean_metrics(rows: Sequence[dict[str, float]], weights: Sequence[float]) -> dict[str, float]:
    """Weighted mean of metric dicts; each key over the rows that have it (a KTO micro-batch with no
    undesirable example has no ``reward_undesirable``).

    >>> mean_metrics([{"a": 1.0, "b": 4.0}, {"a": 3.0}], [1.0, 3.0])
    {'a': 2.5, 'b': 4.0}
    """
    keys = dict.fromkeys(k for r in rows for k in r)
    out = {}
    for k in keys:
        pairs = [(r[k], w) for r, w in zip(rows, weights) if k in r]
        total = sum(w for _, w in pairs) or 1.0
        out[k] = sum(v * w for v, w in pairs) / total
    return out
