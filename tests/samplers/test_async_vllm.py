"""Async training on the vLLM sampler (the session's shared engine), in the test process:

- K = 0 through the producer thread reproduces the synchronous run: every metric and the final
  weights, bit for bit;
- a curriculum run with ``max_staleness > 0`` trains synchronously and says so (the curriculum
  draws each step's prompts from what the last step learnt, so the producer thread, which
  generates a step ahead, must not run).

The runs go through `rlvr.trainers.grpo.train` with ``sampler=`` the shared engine, so no second
engine starts; each run begins from the original weights, pushed into the engine. What needs its own
engine process (killing it mid-run, kill -9 of the trainer then --resume) is in
tests/trainers/test_async.py.
"""

from __future__ import annotations

import pytest
import yaml

from rlvr.metrics import read_jsonl_metrics
from rlvr.trainers.config import load_train_config

pytestmark = [pytest.mark.vllm]


def _train(engine, model, tmp_path, name: str, steps: int, **sections) -> tuple[dict, dict[int, dict]]:
    """`rlvr train` in-process on the shared engine, from the original weights: (summary, step -> metrics)."""
    from rlvr.trainers.grpo import train
    from tests.trainers.conftest import small_config

    run_dir = tmp_path / name
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(small_config(run_dir, engine.model_path, steps=steps, **sections)))
    engine.update_weights(model)  # the engine starts every run from the model's own weights
    summary = train(load_train_config(path), sampler=engine)
    metrics: dict[int, dict] = {}
    for r in read_jsonl_metrics(run_dir / "metrics.jsonl"):
        metrics.setdefault(int(r["step"]), {}).update(r)
    return summary, metrics


def test_k0_through_the_producer_reproduces_the_synchronous_run(engine, model, tmp_path):
    s_sync, sync = _train(engine, model, tmp_path, "sync", 4, rollout={"backend": "vllm"})
    s_async, asyn = _train(engine, model, tmp_path, "async", 4,
                           rollout={"backend": "vllm", "max_staleness": 0, "async_producer": True})
    assert sorted(sync) == sorted(asyn) == [0, 1, 2, 3, 4]
    for step in range(1, 5):
        assert asyn[step]["async/staleness"] == 0.0  # the async path really ran ...
        assert asyn[step]["async/dropped_stale"] == 0.0  # ... and never generated a batch too early
        same = {k: v for k, v in sync[step].items() if not k.startswith("time/")}
        assert {k: asyn[step][k] for k in same} == same, step  # exact, not approx
    assert "eval/accuracy" in asyn[3] and "eval/accuracy" in asyn[4]
    assert sync[4]["reward/mean"] != sync[1]["reward/mean"]  # it learnt: not two frozen models
    assert s_sync["weight_fingerprints"] == s_async["weight_fingerprints"]


def test_a_curriculum_run_trains_synchronously_and_says_so(engine, model, tmp_path, capfd):
    summary, metrics = _train(engine, model, tmp_path, "curriculum", 2,
                              rollout={"backend": "vllm", "max_staleness": 1}, curriculum={"enabled": True, "k": 2})
    assert summary["finished"]
    assert "the curriculum draws from what the last step learnt; training synchronously" in capfd.readouterr().err
    assert sorted(metrics) == [0, 1, 2]
    for step in (1, 2):
        assert not any(k.startswith("async/") for k in metrics[step]), metrics[step]  # no producer ran
        assert "curriculum/active" in metrics[step]  # ... and the curriculum did
