"""The one optimisation loop of the RL trainer: epochs × minibatches × micro-batches.

`run_updates` is what the policy (`rlvr.trainers.grpo`) and PPO's critic (`rlvr.trainers.critic`)
both run over a batch of N rollout rows:
- each epoch shuffles the rows (seeded; no shuffle with one minibatch) and splits them into
  ``minibatches`` minibatches, one optimizer step each;
- a minibatch is processed in micro-batches of ``micro_batch_size`` rows whose gradients accumulate;
  micro-batch k's loss is multiplied by its exact weight

      w_k = units(mb_k) · W / Σ_{processes} units(minibatch)

  where units are the aggregation's (`rlvr.losses.Aggregation.units`: tokens for token_mean, ...)
  and W the number of processes. DDP averages gradients over the W processes, so the step's
  gradient is that of the aggregated loss over the GLOBAL minibatch (DAPO/verl/TRL's token_mean
  divides by the global token count, not a mean of per-process means).

What it does not do: forward passes, losses or optimizer steps itself (the `micro_step` and
`optimizer_step` callbacks do), or DDP synchronisation (``last`` tells `micro_step` when to sync).

Try it (one process, 3 rows of 2, 1 and 0 tokens, micro-batches of 2 rows)::

    >>> seen = []
    >>> out = run_updates(3, UpdatePlan(micro_batch_size=2), torch.tensor([2., 1., 0.]),
    ...                   lambda idx, rows, w, last: seen.append(round(w, 4)) or {}, lambda: {})
    >>> seen
    [1.0, 0.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["UpdatePlan", "distributed", "run_updates"]


@dataclass(frozen=True)
class UpdatePlan:
    epochs: int = 1
    minibatches: int = 1
    micro_batch_size: int = 64
    seed: int = 0  # seeds the per-epoch shuffle


def run_updates(
    n: int,
    plan: UpdatePlan,
    units: torch.Tensor,
    micro_step: Callable[[torch.Tensor, slice, float, bool], dict[str, float]],
    optimizer_step: Callable[[], dict[str, float]],
    *,
    sum_across: Callable[[torch.Tensor], torch.Tensor] | None = None,
    world: int = 1,
) -> dict[str, float]:
    """Run ``epochs × minibatches`` optimizer steps over N rows; returns the mean metrics.

    units: (N,) each row's share of the loss's denominator (``AGGREGATIONS[mode].units(mask)``).
    micro_step(idx, rows, weight, last): forward/backward of rows ``idx[rows]`` with its loss times
    `weight`; ``last`` is the minibatch's final micro-batch (the one whose backward syncs DDP).
    optimizer_step(): clip, step, zero the gradients; its metrics count once per micro-batch.
    sum_across: sums a scalar tensor over every process (None: one process); world: their number.
    """
    sums: dict[str, float] = {}
    count = 0
    gen = torch.Generator().manual_seed(plan.seed)
    size = math.ceil(n / plan.minibatches)
    for _ in range(plan.epochs):
        order = torch.randperm(n, generator=gen) if plan.minibatches > 1 else torch.arange(n)
        for m in range(plan.minibatches):
            idx = order[m * size:(m + 1) * size]
            mb_units = units[idx].double()
            total = mb_units.sum()
            if sum_across is not None:
                total = sum_across(total.clone())
            total_f = float(total)
            starts = list(range(0, len(idx), plan.micro_batch_size))
            for s in starts:
                rows = slice(s, s + plan.micro_batch_size)
                weight = float(mb_units[rows].sum()) * world / total_f if total_f > 0 else 0.0
                for k, v in micro_step(idx, rows, weight, s == starts[-1]).items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
            for k, v in optimizer_step().items():
                sums[k] = sums.get(k, 0.0) + v * len(starts)
    return {k: v / max(count, 1) for k, v in sums.items()}


def distributed(acc: Any) -> dict[str, Any]:
    """`run_updates`'s keyword arguments for an accelerate ``Accelerator``: the sum over its processes
    (device tensors, as NCCL needs) and their number; nothing for one process."""
    if acc.num_processes == 1:
        return {}
    return {"sum_across": lambda t: acc.reduce(t.to(acc.device), "sum").cpu(), "world": acc.num_processes}
