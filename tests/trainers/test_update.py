"""`rlvr.trainers.update.run_updates`: exact accumulation weights, on one process and under DDP.

The DDP test runs 2 real processes (gloo on CPU, `torch.multiprocessing`) whose ranks hold
different token counts, and checks the gradient of the trainer's own objective
(`rlvr.rollout.policy_loss`) against hand-computed numbers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from rlvr.losses import AGGREGATIONS
from rlvr.presets import with_overrides
from rlvr.rollout import policy_loss
from rlvr.trainers.update import UpdatePlan, run_updates

# Per rank: the loss mask (rows x 3 tokens) and which parameter each token's logprob depends on.
# logp_t = theta_a * a_t + theta_b * b_t, old logp = 0, A = 1, so at theta = 0 the per-token
# gradient of ppo_clip is -x_t and the aggregate's gradient is -(sum of x over its units) / units.
RANKS = {
    0: {"mask": [[1, 0, 0], [0, 0, 0]], "a": [[1, 0, 0], [0, 0, 0]], "b": [[0, 0, 0], [0, 0, 0]]},  # 1 token
    1: {"mask": [[1, 1, 1], [1, 1, 0]], "a": [[0, 0, 0], [0, 0, 0]], "b": [[1, 1, 1], [1, 1, 0]]},  # 5 tokens
}


class _Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.theta = torch.nn.Parameter(torch.zeros(2))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.theta[0] * a + self.theta[1] * b


def _rank_grads(rank: int, aggregation: str, world: int, model: torch.nn.Module, ddp: bool) -> list[float]:
    import contextlib

    import torch.distributed as dist

    data = {k: torch.tensor(v, dtype=torch.float32) for k, v in RANKS[rank].items()}
    algo = with_overrides("dapo", aggregation=aggregation)
    grads: list[float] = []

    def micro_step(idx: torch.Tensor, rows: slice, weight: float, last: bool) -> dict[str, float]:
        sel = idx[rows]
        sync = contextlib.nullcontext() if last or not ddp else model.no_sync()
        with sync:
            logp = model(data["a"][sel], data["b"][sel])
            loss, _ = policy_loss(algo, logp, torch.zeros_like(logp), torch.ones(len(sel)), data["mask"][sel], max_len=3)
            (loss * weight).backward()
        return {}

    def optimizer_step() -> dict[str, float]:
        params = model.module.theta if ddp else model.theta
        grads.extend(params.grad.tolist())
        params.grad = None
        return {}

    def sum_across(t: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(t)
        return t

    run_updates(2, UpdatePlan(micro_batch_size=1), AGGREGATIONS[aggregation].units(data["mask"]), micro_step,
                optimizer_step, sum_across=sum_across if ddp else None, world=world)
    return grads


def _worker(rank: int, store: str, out: str, aggregation: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        model = torch.nn.parallel.DistributedDataParallel(_Linear())
        grads = _rank_grads(rank, aggregation, 2, model, ddp=True)
        Path(out, f"rank{rank}.json").write_text(json.dumps(grads))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize(("aggregation", "expected"), [
    # 6 tokens in all: rank 0's single token weighs 1/6 (a mean of per-rank means would give 1/2)
    ("token_mean", [-1 / 6, -5 / 6]),
    # 3 non-empty completions in all: rank 0's weighs 1/3; rank 1's two (each a mean of 1) 2/3
    ("seq_mean_token_mean", [-1 / 3, -2 / 3]),
])
def test_ddp_aggregation_divides_by_the_global_count(tmp_path, aggregation, expected):
    import torch.multiprocessing as mp

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path), aggregation), nprocs=2, join=True)
    for rank in (0, 1):  # DDP averaged the ranks' gradients: both hold the global batch's gradient
        grads = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert grads == pytest.approx(expected, abs=1e-6), (rank, grads)


def test_one_process_micro_batches_add_up_to_the_full_batch():
    """Micro-batches of 1 row, weighted by run_updates, give the gradient of the whole batch at once."""
    for aggregation in AGGREGATIONS:
        model = _Linear()
        got = _rank_grads(1, aggregation, 1, model, ddp=False)
        data = {k: torch.tensor(v, dtype=torch.float32) for k, v in RANKS[1].items()}
        whole = _Linear()
        logp = whole(data["a"], data["b"])
        algo = with_overrides("dapo", aggregation=aggregation)
        policy_loss(algo, logp, torch.zeros_like(logp), torch.ones(2), data["mask"], max_len=3)[0].backward()
        assert got == pytest.approx(whole.theta.grad.tolist(), abs=1e-7), aggregation


def test_epochs_and_minibatches_step_the_optimizer_and_weigh_each_minibatch_on_its_own():
    calls: list[tuple[list[int], float]] = []
    steps = []
    units = torch.tensor([1.0, 2.0, 3.0, 4.0])
    run_updates(4, UpdatePlan(epochs=2, minibatches=2, micro_batch_size=1, seed=0), units,
                lambda idx, rows, w, last: calls.append((idx[rows].tolist(), w)) or {},
                lambda: steps.append(1) or {})
    assert len(steps) == 4 and len(calls) == 8
    for k in range(0, 8, 2):  # each minibatch's two weights are its rows' shares of its own units
        (i,), wi = calls[k]
        (j,), wj = calls[k + 1]
        assert wi == pytest.approx(units[i] / (units[i] + units[j])) and wi + wj == pytest.approx(1.0)
