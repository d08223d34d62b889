"""Bradley-Terry reward models behind ``rlvr rm``: a scalar head read at the last token.

The recipe (`train_reward_model`):
  1. pairs: ``{"prompt", "chosen", "rejected"}`` rows from ``data.train`` (a local file or hub
     dataset, `rlvr.preference` formats; an optional ``data.margin_field`` column), or, with
     ``from_verifier.enabled``, sample N completions per task prompt and pair verified-correct ones
     with verified-wrong ones (saved as ``pairs_train.jsonl`` / ``pairs_eval.jsonl``);
  2. the model: ``AutoModelForSequenceClassification(num_labels=1)`` over ``model.path`` (a new
     random linear head on a causal LM works); transformers reads the head at the last non-pad
     token of each row (rows are right-padded with the tokenizer's pad token);
  3. `rlvr.trainers.common.run_loop` with `rlvr.losses.bradley_terry_loss`
     (-log sigma(r_chosen - r_rejected - margin)); chosen and rejected go through one forward pass;
  4. held-out pairwise accuracy before and after (and during, every ``logging.eval_every`` steps);
  5. ``normalize``: the mean and std of the rewards of the train pairs' chosen responses (the
     demonstrations) are stored in the model config as ``rlvr_reward_mean``/``rlvr_reward_std``;
     the ``reward_model`` verifier subtracts the mean, so demonstrations average 0;
  6. ``ensemble: N`` trains N members (seeds seed..seed+N-1: a different head init and data order
     each) into ``RUN_DIR/final/member-K`` with an ``ensemble.json``; the held-out numbers use the
     members' mean reward, and ``eval/disagreement`` is the mean std of the members' rewards.

What it does not do: any loss math of its own, or PPO (the reward model feeds PPO/GRPO through the
``reward_model`` verifier, `rlvr.verifiers.reward_model`).

Try it::

    rlvr rm model.path=tiny data.train=pairs.jsonl steps=20 logging.run_dir=/tmp/rm
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rlvr.config import load_config
from rlvr.io import InputError, write_jsonl
from rlvr.losses import bradley_terry_loss
from rlvr.metrics import RunLogger
from rlvr.preference import Example, encode_pair, load_table, pack_pairs, pad_examples, split_heldout
from rlvr.trainers import setup
from rlvr.trainers.common import (
    SamplingSourceConfig,
    batch_to,
    chunks,
    pick_device,
    run_loop,
    sampled_rows,
    start_run,
)
from rlvr.trainers.config import CheckpointConfig, LoggingConfig, ModelConfig, OptimConfig

__all__ = [
    "PairDataConfig",
    "RewardConfig",
    "load_pair_data",
    "load_reward_model",
    "pair_rewards",
    "train_reward_model",
]


@dataclass
class PairDataConfig:
    # Preference rows: a local .jsonl/.json/.parquet/.csv file or a hub dataset (unused with from_verifier.enabled).
    train: str | None = None
    split: str = "train"
    # Held-out pairs (a file or hub dataset); null = hold out eval_fraction of the train pairs.
    eval: str | None = None
    eval_split: str = "test"
    eval_fraction: float = 0.1
    # Column names; chosen/rejected are strings or message lists (see rlvr.preference).
    prompt_field: str = "prompt"
    chosen_field: str = "chosen"
    rejected_field: str = "rejected"
    # Optional per-pair margin column (reward models only), added to the global `margin`.
    margin_field: str | None = None
    # Tokens per sequence (the prompt's start is cut first).
    max_length: int = 512
    # Read at most this many rows (null = all).
    limit: int | None = None


@dataclass
class RewardConfig:
    # Seeds the head init, data order and held-out split (member K of an ensemble uses seed + K).
    seed: int = 0
    # Optimizer steps, and preference pairs per step.
    steps: int = 200
    batch_size: int = 32
    resume: bool = False
    # The base model: a causal LM (a fresh scalar head is added) or a sequence-classification model.
    model: ModelConfig = field(default_factory=ModelConfig)
    data: PairDataConfig = field(default_factory=PairDataConfig)
    # Verifier-made pairs: sample a policy on a task, pair passed completions with failed ones.
    from_verifier: SamplingSourceConfig = field(default_factory=SamplingSourceConfig)
    # Bradley-Terry margin: loss = -log sigma(r_c - r_r - margin).
    margin: float = 0.0
    # Train this many reward models (an ensemble); the verifier averages them.
    ensemble: int = 1
    # After training, store the chosen responses' reward mean/std so the verifier centres rewards on them.
    normalize: bool = True
    # The rlvr.templates name the data's prompts were rendered with (e.g. r1_zero_short for pairs
    # built from task.render). Recorded with the model, so the reward_model verifier renders a
    # task's raw question the same way; null = the one --from-verifier used, else none (as is).
    prompt_template: str | None = None
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-5, micro_batch_size=16))
    logging: LoggingConfig = field(default_factory=lambda: LoggingConfig(run_dir="runs/rm", eval_every=50))
    checkpoint: CheckpointConfig = field(default_factory=lambda: CheckpointConfig(every=0))

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.ensemble < 1:
            raise ValueError("steps, batch_size and ensemble must be >= 1")
        if not self.from_verifier.enabled and not self.data.train:
            raise ValueError("set data.train (a file or hub dataset) or from_verifier.enabled=true")


def load_reward_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RewardConfig:
    return load_config(RewardConfig, path, overrides)


Pair = tuple[Example, Example, float]  # chosen, rejected, margin


def _encode_pairs(rows: list[dict], where: Any, tokenizer: Any, d: PairDataConfig) -> list[Pair]:
    out = []
    for i, row in enumerate(rows):
        c, r = encode_pair(
            row,
            where(i),
            tokenizer,
            prompt_field=d.prompt_field,
            chosen_field=d.chosen_field,
            rejected_field=d.rejected_field,
            max_length=d.max_length,
        )
        margin = 0.0
        if d.margin_field is not None:
            value = row.get(d.margin_field)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"{where(i)}: field {d.margin_field!r} must be a number, got {value!r}")
            margin = float(value)
        out.append((c, r, margin))
    return out


def load_pair_data(
    cfg: Any, tokenizer: Any, policy: Any = None
) -> tuple[list[Pair], list[Pair], dict[str, float]]:
    """(train pairs, held-out pairs, stats) from files or from the verifier (rows saved in the run dir)."""
    d, run_dir = cfg.data, Path(cfg.logging.run_dir)
    if cfg.from_verifier.enabled:
        train_rows, eval_rows, stats, task, _ = sampled_rows(
            cfg.from_verifier,
            policy,
            tokenizer,
            seed=cfg.seed,
            kind="pairs",
            progress=cfg.logging.progress != "none",
        )
        files = [run_dir / "pairs_train.jsonl", run_dir / "pairs_eval.jsonl"]
        write_jsonl(files[0], train_rows)
        write_jsonl(files[1], eval_rows)
        stats["template"] = task.template
        return (
            _encode_pairs(train_rows, lambda i: f"{files[0]}:{i + 1}", tokenizer, d),
            _encode_pairs(eval_rows, lambda i: f"{files[1]}:{i + 1}", tokenizer, d),
            stats,
        )
    rows, where = load_table(d.train, d.split, d.limit)
    if not rows:
        raise InputError(f"{d.train}: no rows")
    pairs = _encode_pairs(rows, where, tokenizer, d)
    if d.eval:
        erows, ewhere = load_table(d.eval, d.eval_split, d.limit)
        return pairs, _encode_pairs(erows, ewhere, tokenizer, d), {}
    train_idx, eval_idx = split_heldout(len(pairs), d.eval_fraction, cfg.seed)
    return [pairs[i] for i in train_idx], [pairs[i] for i in eval_idx], {}


def load_reward_model(path: str | Path, tokenizer: Any, seed: int = 0, cfg: Any = None) -> Any:
    """``AutoModelForSequenceClassification(num_labels=1)`` over `path`; the new head's init is seeded.
    With a `RewardConfig`, ``model.gradient_checkpointing`` and ``model.lora`` apply (LoRA adapters
    on the backbone, the head trained in full; the saved model has the adapters merged in)."""
    from transformers import AutoModelForSequenceClassification

    from rlvr.models import quiet_new_head

    with torch.random.fork_rng(), quiet_new_head():  # the score head is new by design
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = int(tokenizer.pad_token_id)
    setup.disable_dropout(model)
    if cfg is not None:
        if cfg.model.gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.config.use_cache = False
        model = setup.apply_lora(model, cfg, "SEQ_CLS")
    return model.to(pick_device())


def pair_rewards(model: Any, pairs: list[Pair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(r_chosen (P,), r_rejected (P,)): each pair's shared prompt runs once and both responses
    continue from its key/value cache (`rlvr.rollout.prefix_then_tails`); the head is read at each
    response's last non-pad token. Rows that cannot share a prompt run as 2P right-padded rows."""
    from transformers.modeling_layers import GenericForSequenceClassification

    from rlvr.rollout import prefix_then_tails

    # decoder-only heads only (Llama, Qwen2, Mistral, ...): an encoder such as BERT attends both ways
    shareable = isinstance(model, GenericForSequenceClassification) and not model.is_activation_checkpointing
    packed = pack_pairs(pairs, pad_id, next(model.parameters()).device) if shareable else None
    if packed is not None:
        r = prefix_then_tails(model, packed, slice(0, len(packed)), 2)[1].logits[:, 0]  # (2P,) interleaved
        return r[0::2], r[1::2]
    batch = batch_to(
        pad_examples([p[0] for p in pairs] + [p[1] for p in pairs], pad_id), next(model.parameters()).device
    )
    # use_cache=False: a causal LM's config turns the KV cache on, and filling it costs a copy of every
    # layer's keys and values that a scoring pass never reads (same rewards either way).
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
    r = out.logits[:, 0]  # (2P,)
    return r[: len(pairs)], r[len(pairs) :]


@torch.no_grad()
def _rewards(
    models: list[Any], pairs: list[Pair], pad_id: int, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, P) chosen and rejected rewards of each member."""
    outs_c, outs_r = [], []
    for m in models:
        m.eval()
        parts = [pair_rewards(m, part, pad_id) for part in chunks(pairs, batch_size)]
        outs_c.append(torch.cat([c for c, _ in parts]).float().cpu())
        outs_r.append(torch.cat([r for _, r in parts]).float().cpu())
    return torch.stack(outs_c), torch.stack(outs_r)


def evaluate_pairs(
    models: list[Any], pairs: list[Pair], pad_id: int, margin: float = 0.0, batch_size: int = 32
) -> dict[str, float]:
    """Held-out pairwise accuracy and loss of the members' mean reward, and the members' disagreement."""
    if not pairs:
        return {}
    rc, rr = _rewards(models, pairs, pad_id, batch_size)  # (M, P)
    loss, m = bradley_terry_loss(rc.mean(0), rr.mean(0), margin + torch.tensor([p[2] for p in pairs]))
    out = {
        "eval/accuracy": m["accuracy"],
        "eval/loss": loss.item(),
        "eval/margin": (rc.mean(0) - rr.mean(0)).mean().item(),
    }
    if len(models) > 1:
        out["eval/disagreement"] = torch.cat([rc, rr], dim=1).std(0, unbiased=False).mean().item()
    return out


def _train_member(
    cfg: RewardConfig,
    k: int,
    path: Path,
    tokenizer: Any,
    train: list[Pair],
    held: list[Pair],
    run_dir: Path,
    logger: RunLogger,
) -> tuple[Any, dict[str, float], dict[str, float]]:
    member_cfg = dataclasses.replace(cfg, seed=cfg.seed + k)
    model = load_reward_model(path, tokenizer, seed=member_cfg.seed, cfg=member_cfg)
    model.train()
    pad_id = int(tokenizer.pad_token_id)

    def loss_fn(micro: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        part = [train[i] for i in micro]
        rc, rr = pair_rewards(model, part, pad_id)
        loss, metrics = bradley_terry_loss(
            rc, rr, cfg.margin + torch.tensor([p[2] for p in part], device=rc.device)
        )
        return loss, {"loss": loss.item(), **metrics}

    def eval_fn() -> dict[str, float]:
        return evaluate_pairs([model], held, pad_id, cfg.margin, cfg.optim.micro_batch_size)

    member_dir = run_dir if cfg.ensemble == 1 else run_dir / "members" / str(k)
    first, last = run_loop(
        member_cfg,
        model,
        tokenizer,
        member_dir,
        logger,
        n_train=len(train),
        loss_fn=loss_fn,
        eval_fn=eval_fn,
        desc=f"rm[{k}]" if cfg.ensemble > 1 else "rm",
    )
    return model, first, last


def train_reward_model(cfg: RewardConfig, quiet: bool = False) -> dict[str, Any]:
    """Train the reward model (or ensemble) as configured; returns the summary (also ``summary.json``)."""
    if cfg.prompt_template is not None:  # an unknown name is an error before anything runs
        from rlvr.templates import TemplateError, get_template

        try:
            get_template(cfg.prompt_template)
        except TemplateError as e:
            raise TemplateError(f"prompt_template: {e}") from None
    run_dir, logger = start_run(cfg, "rlvr rm", quiet)
    path = setup.model_path(cfg, run_dir)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    policy = None
    if cfg.from_verifier.enabled and cfg.from_verifier.model is None:
        from transformers import AutoModelForCausalLM

        policy = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(pick_device())
    train, held, stats = load_pair_data(cfg, tokenizer, policy)
    del policy
    recorded = stats.pop("template", None)  # the task template --from-verifier rendered prompts with
    template = cfg.prompt_template or recorded
    if stats:
        logger.metrics(0, stats)
    models, firsts, lasts = [], [], []
    for k in range(cfg.ensemble):
        member_logger = (
            logger if cfg.ensemble == 1 else RunLogger(run_dir / "members" / str(k), tensorboard=False)
        )
        model, first, last = _train_member(cfg, k, path, tokenizer, train, held, run_dir, member_logger)
        if member_logger is not logger:
            member_logger.close()
        models.append(model)
        firsts.append(first)
        lasts.append(last)
    pad_id = int(tokenizer.pad_token_id)
    final = evaluate_pairs(models, held, pad_id, cfg.margin, cfg.optim.micro_batch_size)
    if cfg.normalize:
        rc, _ = _rewards(models, train, pad_id, cfg.optim.micro_batch_size)  # (M, P)
        for m, row in zip(models, rc):
            m.config.rlvr_reward_mean, m.config.rlvr_reward_std = (
                row.mean().item(),
                row.std(unbiased=False).item(),
            )
    if cfg.model.lora.enabled:  # a plain sequence-classification model for the verifier and critic.path
        models = [m.merge_and_unload() for m in models]
    out = run_dir / "final"
    dirs = [out] if cfg.ensemble == 1 else [out / f"member-{k}" for k in range(cfg.ensemble)]
    for m, d in zip(models, dirs):
        if template is not None:
            m.config.rlvr_prompt_template = template
        m.config.rlvr_max_length = cfg.data.max_length  # the verifier cuts prompts at the same length
        d.mkdir(parents=True, exist_ok=True)
        m.save_pretrained(d, safe_serialization=True)
        tokenizer.save_pretrained(d)
    if cfg.ensemble > 1:
        (out / "ensemble.json").write_text(json.dumps({"members": [d.name for d in dirs]}, indent=1) + "\n")
    logger.metrics(cfg.steps, {f"final/{k.split('/', 1)[1]}": v for k, v in final.items()})
    summary = {
        "model": str(out),
        "train_pairs": len(train),
        "eval_pairs": len(held),
        "before": firsts,
        "after": lasts,
        "final": final,
        **stats,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    logger.close()
    return summary
