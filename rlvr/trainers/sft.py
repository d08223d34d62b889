"""Supervised fine-tuning behind ``rlvr sft``: response tokens only, chat or prompt/completion data,
optional packing, a held-out eval loss, and rejection-sampling SFT.

The recipe (`train_sft`):
  1. load the policy (`rlvr.trainers.setup`: "demo", "tiny" or any transformers directory / hub name);
  2. data: rows from ``data.train`` (a local file or hub dataset; `rlvr.preference` formats), or,
     with ``rejection_sampling.enabled``, sample N completions per task prompt, keep the ones the
     task's verifiers pass (at most ``per_prompt`` distinct ones per prompt) and train on those;
     the kept rows are saved to ``rejection_train.jsonl`` / ``rejection_eval.jsonl`` in the run;
  3. tokens: the prompt (and every non-assistant chat turn) is masked out of the loss; with
     ``data.packing`` several examples share a row of ``data.max_length`` tokens, each attending
     to itself only (position ids restart per example);
  4. `rlvr.trainers.common.run_loop` with `rlvr.losses.sft_loss` (token mean over the batch;
     micro-batches weighted by their share of response tokens, so accumulation changes nothing);
  5. eval: the token-mean NLL on held-out rows (``data.eval``, or ``data.eval_fraction`` of the
     train rows), plus greedy task accuracy when rejection sampling; the final model goes to
     ``RUN_DIR/final`` and the numbers to ``summary.json``.

What it does not do: any loss math of its own, or RL.

Try it (the random tiny model, a few seconds)::

    rlvr sft model.path=tiny data.train=rows.jsonl steps=20 logging.run_dir=/tmp/sft
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rlvr.config import load_config
from rlvr.io import InputError, write_jsonl
from rlvr.losses import sft_loss
from rlvr.preference import Example, encode_sft_row, load_table, pack, pad_examples, split_heldout
from rlvr.trainers import setup
from rlvr.trainers.common import (
    SamplingSourceConfig,
    batch_to,
    chunks,
    greedy_accuracy,
    pick_device,
    run_loop,
    sampled_rows,
    save_final,
    start_run,
    token_logps,
)
from rlvr.trainers.config import CheckpointConfig, LoggingConfig, ModelConfig, OptimConfig

__all__ = ["SFTConfig", "SFTDataConfig", "load_sft_config", "rejection_rows", "train_sft"]

log = logging.getLogger("rlvr.sft")


@dataclass
class SFTDataConfig:
    # Training rows: a local .jsonl/.json/.parquet/.csv file or a hub dataset name (unused with
    # rejection_sampling.enabled).
    train: str | None = None
    split: str = "train"
    # Held-out rows for the eval loss (a file or hub dataset); null = hold out eval_fraction of train.
    eval: str | None = None
    eval_split: str = "test"
    eval_fraction: float = 0.05
    # Column names: prompt/completion rows, or chat rows with a list of {role, content} messages.
    prompt_field: str = "prompt"
    completion_field: str = "completion"
    messages_field: str = "messages"
    # Tokens per example (longer ones are cut); with packing, tokens per packed row.
    max_length: int = 512
    packing: bool = False
    # Append the tokenizer's EOS to prompt/completion completions (the model learns to stop).
    add_eos: bool = True
    # Read at most this many rows (null = all).
    limit: int | None = None


@dataclass
class SFTConfig:
    # Seeds the data order, the held-out split and sampling.
    seed: int = 0
    # Optimizer steps, and examples (or packed rows) per step.
    steps: int = 200
    batch_size: int = 32
    # Continue from the newest checkpoint in logging.run_dir.
    resume: bool = False
    model: ModelConfig = field(default_factory=ModelConfig)
    data: SFTDataConfig = field(default_factory=SFTDataConfig)
    # Rejection-sampling SFT: sample, keep what the task's verifiers pass, train on it.
    rejection_sampling: SamplingSourceConfig = field(default_factory=SamplingSourceConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-4, micro_batch_size=16))
    logging: LoggingConfig = field(default_factory=lambda: LoggingConfig(run_dir="runs/sft", eval_every=50))
    checkpoint: CheckpointConfig = field(default_factory=lambda: CheckpointConfig(every=0))

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if not self.rejection_sampling.enabled and not self.data.train:
            raise ValueError("set data.train (a file or hub dataset) or rejection_sampling.enabled=true")


def load_sft_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> SFTConfig:
    return load_config(SFTConfig, path, overrides)


def rejection_rows(
    cfg: SFTConfig, model: Any, tokenizer: Any
) -> tuple[list[dict], list[dict], dict[str, float], Any, list]:
    """Sample the task and keep verified completions: (train rows, eval rows, stats, task, eval samples)."""
    return sampled_rows(
        cfg.rejection_sampling,
        model,
        tokenizer,
        seed=cfg.seed,
        kind="kept",
        progress=cfg.logging.progress != "none",
    )


def _encode(rows: list[dict], where: Any, tokenizer: Any, d: SFTDataConfig) -> list[Example]:
    return [
        encode_sft_row(
            r,
            where(i),
            tokenizer,
            prompt_field=d.prompt_field,
            completion_field=d.completion_field,
            messages_field=d.messages_field,
            max_length=d.max_length,
            add_eos=d.add_eos,
        )
        for i, r in enumerate(rows)
    ]


def _load_examples(cfg: SFTConfig, tokenizer: Any) -> tuple[list[Example], list[Example]]:
    d = cfg.data
    rows, where = load_table(d.train, d.split, d.limit)
    if not rows:
        raise InputError(f"{d.train}: no rows")
    examples = _encode(rows, where, tokenizer, d)
    if d.eval:
        erows, ewhere = load_table(d.eval, d.eval_split, d.limit)
        return examples, _encode(erows, ewhere, tokenizer, d)
    train_idx, eval_idx = split_heldout(len(examples), d.eval_fraction, cfg.seed)
    return [examples[i] for i in train_idx], [examples[i] for i in eval_idx]


@torch.no_grad()
def eval_loss(model: Any, examples: list[Example], pad_id: int, batch_size: int = 32) -> dict[str, float]:
    """Token-mean NLL of the response tokens of `examples` (the same number `sft_loss` trains on)."""
    if not examples:
        return {}
    model.eval()
    device = next(model.parameters()).device
    nll, tokens = 0.0, 0.0
    for part in chunks(examples, batch_size):
        logp, mask = token_logps(model, batch_to(pad_examples(part, pad_id), device))
        nll -= float((logp * mask).sum())
        tokens += float(mask.sum())
    return {"eval/loss": nll / max(tokens, 1.0)}


def train_sft(cfg: SFTConfig, quiet: bool = False) -> dict[str, Any]:
    """Run SFT as configured; returns the summary (also written to ``RUN_DIR/summary.json``)."""
    run_dir, logger = start_run(cfg, "rlvr sft", quiet)
    path = setup.model_path(cfg, run_dir)
    model, tokenizer = setup.load_policy(path, cfg)
    model.to(pick_device())
    pad_id = int(tokenizer.pad_token_id)
    extra: dict[str, float] = {}
    task = eval_samples = None
    if cfg.rejection_sampling.enabled:
        train_rows, eval_rows, extra, task, eval_samples = rejection_rows(cfg, model, tokenizer)
        write_jsonl(run_dir / "rejection_train.jsonl", train_rows)
        write_jsonl(run_dir / "rejection_eval.jsonl", eval_rows)
        d = cfg.data
        train_ex = _encode(train_rows, lambda i: f"{run_dir / 'rejection_train.jsonl'}:{i + 1}", tokenizer, d)
        eval_ex = _encode(eval_rows, lambda i: f"{run_dir / 'rejection_eval.jsonl'}:{i + 1}", tokenizer, d)
        logger.metrics(0, extra)
        log.info("rejection sampling: %s", {k: round(v, 3) for k, v in extra.items()})
    else:
        train_ex, eval_ex = _load_examples(cfg, tokenizer)
    if cfg.data.packing:
        packed = pack(train_ex, cfg.data.max_length, pad_id)
        items = [{k: v[i] for k, v in packed.items()} for i in range(packed["input_ids"].shape[0])]
        collate = lambda rows: {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
        counts = [float(r["mask"][1:].sum()) for r in items]
    else:
        items = train_ex
        collate = lambda rows: pad_examples(rows, pad_id)
        counts = [float(sum(e.mask[1:])) for e in items]
    device = next(model.parameters()).device

    def loss_fn(micro: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        logp, mask = token_logps(model, batch_to(collate([items[i] for i in micro]), device))
        loss, _ = sft_loss(logp, mask)
        return loss, {"loss": loss.item()}

    def weight_fn(micro: list[int], batch: list[int]) -> float:  # share of the step's response tokens
        return sum(counts[i] for i in micro) / max(sum(counts[i] for i in batch), 1.0)

    def eval_fn() -> dict[str, float]:
        out = eval_loss(model, eval_ex, pad_id, cfg.optim.micro_batch_size)
        if task is not None and eval_samples:
            out.update(
                greedy_accuracy(model, tokenizer, task, eval_samples, cfg.rejection_sampling.max_new_tokens)
            )
        return out

    first, last = run_loop(
        cfg,
        model,
        tokenizer,
        run_dir,
        logger,
        n_train=len(items),
        loss_fn=loss_fn,
        eval_fn=eval_fn,
        weight_fn=weight_fn,
        desc="sft",
    )
    final = save_final(model, tokenizer, run_dir / "final")
    summary = {
        "model": str(final),
        "train_examples": len(train_ex),
        "train_rows": len(items),
        "eval_examples": len(eval_ex),
        "before": first,
        "after": last,
        **extra,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    logger.close()
    return summary
