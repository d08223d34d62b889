"""Direct preference optimisation behind ``rlvr dpo``: DPO, IPO, cDPO, SimPO, ORPO and KTO.

The recipe (`train_dpo`):
  1. data: preference pairs from ``data.train`` (a local file or hub dataset, `rlvr.preference`
     formats), or, with ``from_verifier.enabled``, sample N completions per task prompt and pair
     verified-correct ones with verified-wrong ones. KTO takes unpaired rows
     (``prompt``/``completion``/``label``) or splits pairs into desirable and undesirable examples;
  2. reference logprobs: for the variants that have a reference (sigmoid, ipo, cdpo, kto) the
     reference model (``reference``, default the starting policy) scores every train and held-out
     sequence ONCE before training, then is freed; no step runs the reference;
  3. `rlvr.trainers.common.run_loop` with the variant's loss from `rlvr.losses` (`LOSSES` below maps
     each name to the call): summed response logprobs for DPO/IPO/cDPO/KTO (IPO: the paper's sums,
     not TRL's length averages), mean token logprobs for SimPO and ORPO;
  4. metrics: implicit rewards of chosen/rejected, their margin and accuracy (train and held-out);
     with verifier-made pairs, greedy task accuracy before and after.

What it does not do: any loss math of its own (every formula is in `rlvr.losses`).

Try it::

    rlvr dpo model.path=tiny data.train=pairs.jsonl steps=20 logging.run_dir=/tmp/dpo
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from rlvr.config import load_config
from rlvr.io import InputError
from rlvr.losses import dpo_loss, kto_loss, orpo_loss, sft_loss, simpo_loss
from rlvr.preference import Example, load_table, pack_pairs, pad_examples, split_heldout
from rlvr.trainers import setup
from rlvr.trainers.common import (
    SamplingSourceConfig,
    batch_to,
    chunks,
    greedy_accuracy,
    mean_metrics,
    pick_device,
    run_loop,
    save_final,
    start_run,
    token_logps,
)
from rlvr.trainers.config import CheckpointConfig, LoggingConfig, ModelConfig, OptimConfig
from rlvr.trainers.reward import PairDataConfig, load_pair_data

__all__ = ["DPOConfig", "DPODataConfig", "LOSSES", "load_dpo_config", "sequence_logps", "train_dpo"]

LossName = Literal["sigmoid", "ipo", "cdpo", "simpo", "orpo", "kto"]


@dataclass
class DPODataConfig(PairDataConfig):
    # KTO only: unpaired rows use these columns (label true = desirable); paired rows are split instead.
    completion_field: str = "completion"
    label_field: str = "label"


@dataclass
class DPOConfig:
    seed: int = 0
    # Optimizer steps, and pairs (KTO: examples) per step.
    steps: int = 200
    batch_size: int = 16
    resume: bool = False
    # The variant: sigmoid (DPO), ipo, cdpo (label-smoothed DPO), simpo, orpo, kto.
    loss: LossName = "sigmoid"
    # Inverse temperature: DPO/IPO/cDPO/KTO beta (0.1 is usual); SimPO uses simpo_beta.
    beta: float = 0.1
    # cDPO (loss=cdpo only; the other variants ignore it): the probability that a pair's label is flipped.
    label_smoothing: float = 0.1
    # SimPO: beta and the target reward margin gamma, in reward units as in the paper and TRL's CPO
    # (the SimPO repository's gamma_beta_ratio is gamma / beta).
    simpo_beta: float = 2.0
    simpo_gamma: float = 0.5
    # ORPO: weight of the odds-ratio term next to the chosen responses' NLL.
    orpo_lambda: float = 0.1
    # KTO: weights of desirable and undesirable examples.
    kto_desirable_weight: float = 1.0
    kto_undesirable_weight: float = 1.0
    # Reference model (a directory or hub name); null = the starting policy. Unused by simpo/orpo.
    reference: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DPODataConfig = field(default_factory=DPODataConfig)
    # Verifier-made pairs: sample the policy on a task, pair passed completions with failed ones.
    from_verifier: SamplingSourceConfig = field(default_factory=SamplingSourceConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=5e-6, micro_batch_size=8))
    logging: LoggingConfig = field(default_factory=lambda: LoggingConfig(run_dir="runs/dpo", eval_every=50))
    checkpoint: CheckpointConfig = field(default_factory=lambda: CheckpointConfig(every=0))

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if not self.from_verifier.enabled and not self.data.train:
            raise ValueError("set data.train (a file or hub dataset) or from_verifier.enabled=true")
        if self.beta <= 0 or not 0 <= self.label_smoothing < 0.5:
            raise ValueError("beta must be > 0 and label_smoothing in [0, 0.5)")

    @property
    def uses_reference(self) -> bool:
        return self.loss in ("sigmoid", "ipo", "cdpo", "kto")


def load_dpo_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> DPOConfig:
    return load_config(DPOConfig, path, overrides)


# ------------------------------------------------------------------------- sequences and data
def sequence_logps(model: Any, examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """sum (N,), n (N,) and the per-token logp/mask (N, L-1) of the response tokens of `examples`."""
    logp, mask = token_logps(model, batch_to(pad_examples(examples, pad_id), next(model.parameters()).device))
    return {"sum": (logp * mask).sum(-1), "n": mask.sum(-1).clamp(min=1.0), "logp": logp, "mask": mask}


def pair_logps(model: Any, pairs: list[tuple[Example, Example]], pad_id: int) -> tuple[dict, dict] | None:
    """`sequence_logps` of the chosen and the rejected sides, running each pair's shared prompt once
    (`rlvr.rollout.forward_logprobs` with groups of 2: the same numbers, fewer tokens through the
    model). None when a pair's prompts differ or a row is not prompt-then-response."""
    from rlvr.rollout import forward_logprobs

    packed = pack_pairs(pairs, pad_id, next(model.parameters()).device)
    if packed is None:
        return None
    logp, _ = forward_logprobs(model, packed, slice(0, len(packed)), group_size=2)
    mask = packed.mask
    both = {"sum": (logp * mask).sum(-1), "n": mask.sum(-1).clamp(min=1.0), "logp": logp, "mask": mask}
    return {k: v[0::2] for k, v in both.items()}, {k: v[1::2] for k, v in both.items()}


@torch.no_grad()
def _reference_sums(model: Any, examples: list[Example], pad_id: int, batch_size: int) -> torch.Tensor:
    model.eval()
    return torch.cat(
        [sequence_logps(model, part, pad_id)["sum"].cpu() for part in chunks(examples, batch_size)]
    )


def _mismatch(examples: list[Example], seed: int = 0) -> list[Example]:
    """One fixed mismatched row per example, for the KTO reference point z (a KL estimate): example
    i's prompt with the response of another example whose prompt differs (the next one in a seeded
    shuffle, skipping up to 64 examples with the same prompt, such as the two halves of a split pair).

    Built once per split, so the policy's and the reference's log-probabilities of row i are of the
    same sequence; z is 0 while the policy equals the reference.
    """

    def split(e: Example) -> tuple[list[int], list[int]]:
        k = e.mask.index(1) if 1 in e.mask else len(e.ids)
        return e.ids[:k], e.ids[k:]

    parts = [split(e) for e in examples]
    order = torch.randperm(len(parts), generator=torch.Generator().manual_seed(seed)).tolist()
    out: list[Example] = [Example([], [])] * len(parts)
    n = len(order)
    for k, i in enumerate(order):
        later = (order[(k + d) % n] for d in range(1, min(n, 65)))  # look at most 64 ahead
        j = next((j for j in later if parts[j][0] != parts[i][0]), order[(k + 1) % n])
        out[i] = Example(parts[i][0] + parts[j][1], [0] * len(parts[i][0]) + [1] * len(parts[j][1]))
    return out


def _unpaired(
    cfg: DPOConfig, tokenizer: Any, policy: Any
) -> tuple[list[tuple[Example, bool]], list[tuple[Example, bool]]]:
    """KTO examples: unpaired rows when the file has the label column, else pairs split in two."""
    from rlvr.preference import encode_sft_row

    d = cfg.data

    def labelled(rows: list[dict], where: Callable[[int], str]) -> list[tuple[Example, bool]]:
        out = []
        for i, row in enumerate(rows):
            label = row.get(d.label_field)
            if not isinstance(label, bool):
                raise InputError(f"{where(i)}: field {d.label_field!r} must be true or false, got {label!r}")
            ex = encode_sft_row(row, where(i), tokenizer, prompt_field=d.prompt_field,
                                completion_field=d.completion_field, max_length=d.max_length)
            out.append((ex, label))
        return out

    if not cfg.from_verifier.enabled:
        rows, where = load_table(d.train, d.split, d.limit)
        if rows and d.label_field in rows[0]:
            out = labelled(rows, where)
            if d.eval:  # a held-out file of its own, as for pairs
                return out, labelled(*load_table(d.eval, d.eval_split, d.limit))
            train_idx, eval_idx = split_heldout(len(out), d.eval_fraction, cfg.seed)
            return [out[i] for i in train_idx], [out[i] for i in eval_idx]
    train, held, _ = load_pair_data(cfg, tokenizer, policy)
    unpair = lambda pairs: [x for c, r, _ in pairs for x in ((c, True), (r, False))]  # noqa: E731
    return unpair(train), unpair(held)


# ------------------------------------------------------------------------- the variants
Batch = dict[str, Any]


def _ref(cfg: DPOConfig, b: Batch, side: str) -> torch.Tensor:
    return b[f"ref_{side}"].to(b[side]["sum"].device)


def _dpo(loss_type: str, smoothed: bool = False) -> Callable[[DPOConfig, Batch], tuple[torch.Tensor, dict[str, float]]]:
    """DPO-family loss on summed sequence logprobs against the precomputed reference."""

    def loss(c: DPOConfig, b: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        return dpo_loss(
            b["chosen"]["sum"],
            b["rejected"]["sum"],
            _ref(c, b, "chosen"),
            _ref(c, b, "rejected"),
            beta=c.beta,
            loss_type=loss_type,
            label_smoothing=c.label_smoothing if smoothed else 0.0,
        )

    return loss


LOSSES: dict[str, Callable[[DPOConfig, Batch], tuple[torch.Tensor, dict[str, float]]]] = {
    "sigmoid": _dpo("sigmoid"),
    "cdpo": _dpo("sigmoid", smoothed=True),
    "ipo": _dpo("ipo"),
    "simpo": lambda c, b: simpo_loss(
        b["chosen"]["sum"] / b["chosen"]["n"],
        b["rejected"]["sum"] / b["rejected"]["n"],
        beta=c.simpo_beta,
        gamma=c.simpo_gamma,
    ),
    "orpo": lambda c, b: orpo_loss(
        b["chosen"]["sum"] / b["chosen"]["n"],
        b["rejected"]["sum"] / b["rejected"]["n"],
        sft_loss(b["chosen"]["logp"], b["chosen"]["mask"])[0],
        lam=c.orpo_lambda,
    ),
    "kto": lambda c, b: kto_loss(
        b["example"]["sum"],
        _ref(c, b, "example"),
        b["desirable"],
        b["kl_ref"],
        beta=c.beta,
        weight_desirable=c.kto_desirable_weight,
        weight_undesirable=c.kto_undesirable_weight,
    ),
}


class _Data:
    """Train/held-out sequences with their precomputed reference sums, and batch assembly."""

    def __init__(self, cfg: DPOConfig, policy: Any, tokenizer: Any, path: Path, ref_path: Path):
        self.cfg, self.pad = cfg, int(tokenizer.pad_token_id)
        self.kto = cfg.loss == "kto"
        self.stats: dict[str, Any] = {}
        if self.kto:
            self.train, self.held = _unpaired(cfg, tokenizer, policy)
        else:
            train, held, self.stats = load_pair_data(cfg, tokenizer, policy)
            self.train, self.held = [(c, r) for c, r, _ in train], [(c, r) for c, r, _ in held]
        self.stats.pop("template", None)
        if not self.train:
            raise InputError("no training data")
        self.ref: dict[str, torch.Tensor] = {}
        self.mismatch = (
            {name: _mismatch([it[0] for it in items], cfg.seed)
             for name, items in (("train", self.train), ("held", self.held))}
            if self.kto
            else {}
        )
        if cfg.uses_reference:
            from rlvr.trainers.setup import load_reference

            ref_model = load_reference(ref_path).to(pick_device())
            for split, items in (("train", self.train), ("held", self.held)):
                for k, name in enumerate(self._sides()):
                    seqs = [it[k] for it in items] if not self.kto or k == 0 else self.mismatch[split]
                    self.ref[f"{split}/{name}"] = (
                        _reference_sums(ref_model, seqs, self.pad, cfg.optim.micro_batch_size)
                        if items
                        else torch.zeros(0)
                    )
            del ref_model  # reference logprobs are computed once; the model is not needed again

    def _sides(self) -> tuple[str, str]:
        return ("example", "mismatch") if self.kto else ("chosen", "rejected")

    def batch(self, model: Any, split: str, idx: list[int]) -> Batch:
        items = [(self.train if split == "train" else self.held)[i] for i in idx]
        b: Batch = {}
        if self.kto:
            b["example"] = sequence_logps(model, [it[0] for it in items], self.pad)
            b["desirable"] = torch.tensor([it[1] for it in items], device=b["example"]["sum"].device)
            b["ref_example"] = self.ref[f"{split}/example"][idx]
            with torch.no_grad():  # z: KL(policy || ref) on mismatched rows, a detached batch estimate
                mism = sequence_logps(model, [self.mismatch[split][i] for i in idx], self.pad)["sum"].cpu()
            b["kl_ref"] = (mism - self.ref[f"{split}/mismatch"][idx]).mean().to(b["example"]["sum"].device)
            return b
        shared = None if self.cfg.model.gradient_checkpointing else pair_logps(model, items, self.pad)
        if shared is not None:
            b["chosen"], b["rejected"] = shared
        else:
            both = sequence_logps(model, [it[0] for it in items] + [it[1] for it in items], self.pad)
            n = len(items)
            b["chosen"] = {k: v[:n] for k, v in both.items()}
            b["rejected"] = {k: v[n:] for k, v in both.items()}
        for side in ("chosen", "rejected"):
            if f"{split}/{side}" in self.ref:
                b[f"ref_{side}"] = self.ref[f"{split}/{side}"][idx]
        return b


def train_dpo(cfg: DPOConfig, quiet: bool = False) -> dict[str, Any]:
    """Run the configured preference optimisation; returns the summary (also ``summary.json``)."""
    run_dir, logger = start_run(cfg, f"rlvr dpo ({cfg.loss})", quiet)
    path = setup.model_path(cfg, run_dir)
    model, tokenizer = setup.load_policy(path, cfg)
    setup.disable_dropout(model).to(pick_device())  # as TRL: the policy is compared with a dropout-free reference
    data = _Data(cfg, model, tokenizer, path, Path(cfg.reference) if cfg.reference else path)
    if data.stats:
        logger.metrics(0, data.stats)
    loss_of = LOSSES[cfg.loss]
    task = eval_samples = None
    if cfg.from_verifier.enabled:
        from rlvr.tasks import get_task

        src = cfg.from_verifier
        task = get_task(src.task, **src.task_options)
        eval_samples = task.samples("test", limit=src.eval_prompts) if src.eval_prompts > 0 else []

    def loss_fn(micro: list[int]) -> tuple[torch.Tensor, dict[str, float]]:
        loss, metrics = loss_of(cfg, data.batch(model, "train", micro))
        return loss, {"loss": loss.item(), **metrics}

    @torch.no_grad()
    def eval_fn() -> dict[str, float]:
        model.eval()
        out: dict[str, float] = {}
        if data.held:
            rows, sizes = [], []
            for part in chunks(list(range(len(data.held))), cfg.optim.micro_batch_size):
                loss, metrics = loss_of(cfg, data.batch(model, "held", part))
                rows.append({"loss": loss.item(), **metrics})
                sizes.append(len(part))
            out = {f"eval/{k}": v for k, v in mean_metrics(rows, sizes).items()}
        if task is not None and eval_samples:
            out.update(
                greedy_accuracy(model, tokenizer, task, eval_samples, cfg.from_verifier.max_new_tokens)
            )
        return out

    first, last = run_loop(
        cfg,
        model,
        tokenizer,
        run_dir,
        logger,
        n_train=len(data.train),
        loss_fn=loss_fn,
        eval_fn=eval_fn,
        desc=f"dpo[{cfg.loss}]",
    )
    final = save_final(model, tokenizer, run_dir / "final")
    summary = {
        "model": str(final),
        "loss": cfg.loss,
        "train_items": len(data.train),
        "eval_items": len(data.held),
        "before": first,
        "after": last,
        **data.stats,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    logger.close()
    return summary
