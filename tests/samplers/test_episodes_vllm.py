"""Multi-turn tool episodes on the vLLM sampler (the session's shared engine): GRPO synchronously and
async with ``max_staleness=1``.

The engine's tiny model learns three tool-call episodes first (tests/trainers/episode_model.py:
a good calculator call, an unknown tool, a malformed call); its weights are pushed into the
shared engine, and `rlvr.trainers.grpo.train` runs on that engine (``sampler=``) so no second
engine starts. Each turn's context goes back to vLLM as token ids (prompt + every turn), so the
engine's prefix cache serves the earlier turns.
"""

from __future__ import annotations

import pytest
import torch
import yaml

from rlvr.metrics import read_jsonl_metrics
from rlvr.trainers.config import load_train_config

pytestmark = [pytest.mark.vllm]


@pytest.fixture(scope="module")
def taught(tiny_dir, tmp_path_factory):
    from transformers import AutoModelForCausalLM

    from tests.trainers.episode_model import teach_tool_calls

    path = teach_tool_calls(tiny_dir, tmp_path_factory.mktemp("taught-vllm"))
    return path, AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def _config(tmp_path, model, **rollout):
    from tests.trainers.conftest import small_config

    cfg = small_config(tmp_path / "run", model, steps=3, env={
        "tools": ["calculator"], "formats": ["hermes"], "max_turns": 3, "max_tokens": 200})
    cfg["task"]["verifier_options"] = {"length": {"max_chars": 64}}
    cfg["rollout"].update({"backend": "vllm", "prompts_per_step": 3, "max_new_tokens": 100, "chunks": 1, **rollout})
    cfg["logging"]["eval_every"] = 3
    cfg["optim"]["lr"] = 1e-4  # small steps: the taught tool calls must survive the length reward
    cfg["checkpoint"]["every"] = 0
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_train_config(path)


def _task():
    from rlvr.api import InMemoryTask
    from rlvr.verifiers import Sample

    rows = [Sample(prompt=p, answer=42) for p in ("A:", "B:", "C:")]
    return InMemoryTask(train=rows, test=rows, template="none")


@pytest.mark.parametrize("staleness", [0, 1])
def test_grpo_on_tool_episodes_with_vllm(vllm_engine, taught, tmp_path, staleness):
    from rlvr.trainers.grpo import train

    path, model = taught
    vllm_engine.update_weights(model)  # the run starts from the taught weights, in the engine too
    cfg = _config(tmp_path, path, max_staleness=staleness)
    summary = train(cfg, task=_task(), sampler=vllm_engine)
    assert summary["finished"]
    rows = [r for r in read_jsonl_metrics(tmp_path / "run" / "metrics.jsonl") if "tools/calls_per_episode" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert r["tools/calls_per_episode"] > 0.5 and r["episode/obs_tokens"] > 0 and r["tools/malformed"] >= 1
        assert r.get("async/staleness", 0.0) <= staleness
    if staleness:
        assert any("async/staleness" in r for r in rows)  # the producer thread ran the episodes
    evals = [r for r in read_jsonl_metrics(tmp_path / "run" / "metrics.jsonl") if "eval/accuracy" in r]
    assert evals and all(r["eval/tools/calls_per_episode"] == 1.0 for r in evals)  # greedy: each prompt calls once
    assert vllm_engine._llm.llm_engine.vllm_config.cache_config.enable_prefix_caching
