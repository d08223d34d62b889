"""HFSampler on the tiny model: structure, logprob convention, finish reasons, stops, seeds."""

from __future__ import annotations

import pytest
import torch

from rlvr.samplers import HFSampler, SamplerTimeout, SamplingParams
from rlvr.samplers.hf import finish

PROMPTS = ["Q: What is 12 + 34? A:", "The river city", "<answer>"]


def test_groups_have_n_completions_with_aligned_tokens_and_logprobs(model, tokenizer):
    groups = HFSampler(model, tokenizer, batch_size=4).generate(
        PROMPTS, n=3, params=SamplingParams(max_new_tokens=12, seed=0))
    assert len(groups) == 3
    for g, p in zip(groups, PROMPTS):
        assert g.prompt == p
        assert g.prompt_token_ids == tokenizer(p)["input_ids"]
        assert len(g.completions) == 3
        for c in g.completions:
            assert 1 <= len(c.token_ids) <= 12
            assert len(c.logprobs) == len(c.token_ids)
            assert c.finish_reason in ("stop", "length")
            assert c.text == tokenizer.decode(c.token_ids, skip_special_tokens=True)
            assert all(lp <= 0 for lp in c.logprobs)
            if c.finish_reason == "length":
                assert len(c.token_ids) == 12


def test_token_id_prompts_are_used_as_given(model, tokenizer):
    groups = HFSampler(model, tokenizer).generate([[7, 8, 9]], n=2, params=SamplingParams(max_new_tokens=4, seed=0))
    assert groups[0].prompt_token_ids == [7, 8, 9] and groups[0].prompt is None


@pytest.mark.parametrize("temperature,top_k", [(1.0, 0), (0.7, 0), (1.3, 5)])
def test_logprobs_are_the_models_log_softmax_of_the_sampling_distribution(
        model, tokenizer, teacher_logprobs, temperature, top_k):
    # Left padding (prompts of different lengths in one batch) must not change the numbers.
    params = SamplingParams(temperature=temperature, top_k=top_k, max_new_tokens=10, seed=3)
    groups = HFSampler(model, tokenizer, batch_size=6).generate(PROMPTS, n=2, params=params)
    for g in groups:
        for c in g.completions:
            want = teacher_logprobs(model, g.prompt_token_ids, c.token_ids, temperature, top_k)
            torch.testing.assert_close(torch.tensor(c.logprobs), want, atol=2e-5, rtol=0)


def test_greedy_picks_the_argmax_and_reports_plain_log_softmax(model, tokenizer, teacher_logprobs):
    g = HFSampler(model, tokenizer).generate(["The river"], n=1, params=SamplingParams(temperature=0, max_new_tokens=8))[0]
    c = g.completions[0]
    ids = torch.tensor([g.prompt_token_ids + c.token_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, len(g.prompt_token_ids) - 1:-1], -1)
    torch.testing.assert_close(torch.tensor(c.logprobs), logp.max(-1).values, atol=2e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(c.logprobs), teacher_logprobs(model, g.prompt_token_ids, c.token_ids),
                               atol=2e-5, rtol=0)


def test_eos_ends_a_completion_with_reason_stop(model, tokenizer):
    # Make half the vocabulary end-of-sequence (generation config eos ids count, as in vLLM):
    # completions must end at their first such token, which is kept.
    eos = set(range(256))
    model.generation_config.eos_token_id = sorted(eos)
    groups = HFSampler(model, tokenizer).generate(PROMPTS, n=4, params=SamplingParams(max_new_tokens=16, seed=1))
    reasons = [c.finish_reason for g in groups for c in g.completions]
    assert "stop" in reasons
    for g in groups:
        for c in g.completions:
            assert not eos.intersection(c.token_ids[:-1])
            assert (c.token_ids[-1] in eos) == (c.finish_reason == "stop")


def test_stop_string_ends_the_completion_at_the_token_that_completes_it(model, tokenizer):
    params = SamplingParams(max_new_tokens=24, stop=("e",), seed=2)
    groups = HFSampler(model, tokenizer).generate(PROMPTS, n=4, params=params)
    stopped = 0
    for g in groups:
        for c in g.completions:
            if c.finish_reason == "stop" and c.token_ids[-1] != tokenizer.eos_token_id:
                stopped += 1
                assert "e" in c.text
                assert "e" not in tokenizer.decode(c.token_ids[:-1], skip_special_tokens=True)
            elif c.finish_reason == "length":
                assert "e" not in c.text
    assert stopped > 0


def test_same_seed_same_samples_and_callers_rng_untouched(model, tokenizer):
    s = HFSampler(model, tokenizer)
    params = SamplingParams(max_new_tokens=8, seed=11)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = s.generate(PROMPTS, n=2, params=params)
    after = torch.rand(1)
    b = s.generate(PROMPTS, n=2, params=params)
    assert [c.token_ids for g in a for c in g.completions] == [c.token_ids for g in b for c in g.completions]
    assert torch.equal(before, after)


def test_update_weights_shares_or_copies(model, tokenizer, perturb):
    s = HFSampler(model, tokenizer)
    s.update_weights(model)  # same object: nothing to do
    other = perturb(model)
    s.update_weights(other)
    for (name, p), q in zip(model.named_parameters(), other.parameters()):
        assert torch.equal(p, q), name


def test_deadline_raises(model, tokenizer):
    with pytest.raises(SamplerTimeout):
        HFSampler(model, tokenizer, timeout_s=0.0).generate(PROMPTS, n=1, params=SamplingParams(max_new_tokens=4))


def test_finish_rules_by_hand(tokenizer):
    # EOS (id 2 here) is kept and ends the row; padding after it is dropped.
    assert finish([5, 6, 2, 0, 0], {2}, tokenizer, ()) == (3, "stop")
    assert finish([5, 6, 7], {2}, tokenizer, ()) == (3, "length")
    # A stop string ends the row at the first token whose text completes it.
    ids = tokenizer("ab cd ef")["input_ids"]
    n, why = finish(ids, set(), tokenizer, ("cd",))
    assert why == "stop" and "cd" in tokenizer.decode(ids[:n]) and "cd" not in tokenizer.decode(ids[:n - 1])


def test_bad_arguments(model, tokenizer):
    with pytest.raises(ValueError):
        HFSampler(model, tokenizer, batch_size=0)
    with pytest.raises(ValueError):
        HFSampler(model, tokenizer).generate(PROMPTS, n=0, params=SamplingParams())
    with pytest.raises(TypeError):
        HFSampler(model, tokenizer).generate("one string", n=1, params=SamplingParams())


def test_text_ends_at_the_stop_string_even_when_the_last_token_decodes_further():
    from rlvr.samplers.base import cut_at_stop

    assert cut_at_stop("<answer>71</answer>.", ["</answer>"]) == "<answer>71</answer>"
    assert cut_at_stop("a STOP b stop", ["stop", "STOP"]) == "a STOP"
    assert cut_at_stop("no stop here", ["</answer>"]) == "no stop here"


def test_on_batch_reports_each_batch_as_it_finishes(model, tokenizer):
    # 3 prompts x 3 samples = 9 sequences in batches of 4: 4, 4, 1, reported in that order.
    seen = []
    s = HFSampler(model, tokenizer, batch_size=4, on_batch=seen.append)
    s.generate(PROMPTS, n=3, params=SamplingParams(max_new_tokens=2, seed=0))
    assert seen == [4, 4, 1]
