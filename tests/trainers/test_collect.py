"""`rlvr.rollout.collect`: one rollout layer for training, evaluation and the pipeline's sampling.

Generation is the real `HFSampler` on the tiny random model (seeded); the verifiers are small
functions written here, so each test controls what passes and what each completion earns.
"""

from __future__ import annotations

import pytest
import torch

from rlvr.rollout import PromptBatch, RolloutPlan, collect, evaluate
from rlvr.samplers import SamplingParams
from rlvr.scoring import Scorer
from rlvr.verifiers import Sample, Score


def _length_reward(text: str, sample: Sample) -> Score:
    """Passes as the sample says (or None: no opinion); the reward is the completion's length in chars."""
    return Score(reward=float(len(text)), passed=sample.metadata.get("pass"))


@pytest.fixture(scope="module")
def sampler(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.samplers import HFSampler

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    return HFSampler(model, tok)


def _stream(samples: list[Sample]):
    drawn = []

    def draw(round_: int) -> PromptBatch:
        drawn.append(round_)
        return PromptBatch(samples, [f"Q{i} {round_}:" for i in range(len(samples))], [10 * round_ + i for i in range(len(samples))],
                           seed=100 + round_)

    return draw, drawn


def _plan(**kw) -> RolloutPlan:
    return RolloutPlan(n=4, params=SamplingParams(max_new_tokens=8), chunks=2, dynamic_sampling=True, max_extra_rounds=1, **kw)


def test_dynamic_sampling_drops_groups_whose_primary_verdicts_tie_by_default(sampler):
    # Every completion passes, but their rewards (lengths) differ: DAPO's filter (passed) sees no
    # signal and samples again; filtering on shaped rewards (asked for) keeps them.
    samples = [Sample(prompt="a", metadata={"pass": True}), Sample(prompt="b", metadata={"pass": True})]
    with Scorer(_length_reward, workers=0) as scorer:
        draw, drawn = _stream(samples)
        out = collect(sampler, scorer, draw, _plan(), policy_version=3)
        assert all(len(set(g.shaped.tolist())) > 1 for g in out.seen)  # the rewards do differ
        assert drawn == [0, 1] and out.stats.rounds == 2
        assert (out.stats.seen, out.stats.kept, out.stats.dropped) == (4, 2, 2)  # still short: 2 tied groups fill
        assert [g.index for g in out.groups] == [0, 1] and {g.policy_version for g in out.seen} == {3}

        draw, drawn = _stream(samples)
        out = collect(sampler, scorer, draw, _plan(filter_on="reward"))
        assert drawn == [0] and (out.stats.rounds, out.stats.kept, out.stats.dropped) == (1, 2, 0)


def test_a_group_without_verdicts_is_judged_on_its_shaped_rewards(sampler):
    samples = [Sample(prompt="a"), Sample(prompt="b")]  # passed None: no opinion
    with Scorer(_length_reward, workers=0) as scorer:
        draw, drawn = _stream(samples)
        out = collect(sampler, scorer, draw, _plan())
    assert drawn == [0] and out.stats.dropped == 0


def test_shaping_masks_records_and_evaluation(sampler):
    # Every completion hits max_new_tokens=3 (a random model rarely says EOS that early):
    # DAPO's penalty with a buffer of the whole length is -1 at the limit; the loss masks are 0.
    samples = [Sample(prompt="a", answer="x", metadata={"pass": False})]
    plan = RolloutPlan(n=3, params=SamplingParams(max_new_tokens=3, seed=0), overlong_buffer=1.0, mask_truncated=True)
    with Scorer(_length_reward, workers=0) as scorer:
        g = collect(sampler, scorer, PromptBatch(samples, ["Hello"], [7]), plan).groups[0]
        assert g.truncated == [True, True, True]
        torch.testing.assert_close(g.shaped, g.rewards - 1.0)
        assert g.loss_masks == [[0.0] * 3] * 3 and g.token_ids and len(g.sampler_logprobs[0]) == 3
        rec = g.records()[0]
        assert (rec["index"], rec["answer"], rec["passed"], rec["finish_reason"], rec["length"]) == (7, "x", False, "length", 3)
        groups, metrics = evaluate(sampler, scorer, PromptBatch(samples * 2, ["Hello", "Hi"]),
                                   SamplingParams(temperature=0.0, max_new_tokens=3))
    assert metrics["eval/accuracy"] == 0.0
    assert metrics["eval/reward"] == pytest.approx(sum(g.rewards.sum().item() for g in groups) / 2)


def test_suspicious_flag_is_read_from_the_typed_field_whatever_the_component_is_called():
    from rlvr.rollout import ScoredGroup
    from rlvr.samplers import Completion
    from rlvr.trainers.grpo import _step_metrics
    from rlvr.verifiers import combine

    def grader(text: str, sample: Sample) -> Score:
        return Score(1.0, True, {}, suspicious=text == "hack")

    v = combine({"unit_tests": 1.0}, {"unit_tests": grader})  # not called "code"
    scores = [v("hack", Sample()), v("ok", Sample())]
    assert [s.suspicious for s in scores] == [True, False]
    g = ScoredGroup(Sample(), "p", [1], [Completion("hack", [2], [0.0], "stop"), Completion("ok", [3], [0.0], "stop")], scores)
    assert _step_metrics([g], {})["code/suspicious_rate"] == 0.5
