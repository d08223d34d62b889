"""`rlvr eval`'s generate-and-score loop on the vLLM sampler (the shared test engine): the same
records and statistics as with transformers, every completion scored by the task's verifier."""

from __future__ import annotations

import pytest

from rlvr.evaluation import evaluate_task, summarize
from rlvr.samplers import SamplingParams
from rlvr.scoring import Scorer
from rlvr.tasks import get_task

pytestmark = pytest.mark.vllm


def test_evaluate_task_on_vllm(engine, tokenizer):
    task = get_task("arithmetic", n_test=6, verifiers={"math": 1.0, "format": 0.0})
    samples = task.samples("test")
    params = SamplingParams(temperature=1.0, max_new_tokens=8, seed=3)
    with Scorer(task.verifier(), workers=0) as scorer:
        records, problems = evaluate_task(task, engine, samples, n=3, params=params, scorer=scorer,
                                          tokenizer=tokenizer, chunk_prompts=4)
    assert len(records) == 18 and len(problems) == 6
    assert sorted((r["index"], r["sample"]) for r in records) == [(i, g) for i in range(6) for g in range(3)]
    assert all(set(r["rewards"]) == {"math", "format"} and 1 <= r["length"] <= 8 for r in records)
    summary = summarize(problems, ks=[1, 3])
    assert summary["pass@1"][0] == pytest.approx(sum(bool(r["passed"]) for r in records) / 18)
