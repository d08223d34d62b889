"""`rlvr.rollout`: packing, the trainer's logprobs against the sampler's, micro-batch weights."""

from __future__ import annotations

import warnings

import pytest
import torch

from rlvr.losses import aggregate
from rlvr.rollout import forward_logprobs, microbatch_weight, pack_groups, zero_variance
from rlvr.samplers import Completion, Group


def test_pack_groups_aligns_completions_after_left_padded_prompts():
    groups = [Group([5, 6, 7], [Completion("a", [8, 9], [-0.5, -0.25], "stop")]),
              Group([4], [Completion("b", [3], [-1.0], "length")])]
    b = pack_groups(groups, pad_id=0)
    # P = 3, T = 2: row 1's prompt is left-padded, its completion right-padded
    assert b.input_ids.tolist() == [[5, 6, 7, 8, 9], [0, 0, 4, 3, 0]]
    assert b.attention_mask.tolist() == [[1, 1, 1, 1, 1], [0, 0, 1, 1, 0]]
    assert b.position_ids.tolist() == [[0, 1, 2, 3, 4], [0, 0, 0, 1, 1]]
    assert b.mask.tolist() == [[1.0, 1.0], [1.0, 0.0]]
    assert b.sampler_logp.tolist() == [[-0.5, -0.25], [-1.0, 0.0]]
    assert b.truncated.tolist() == [False, True]
    b.mask_truncated()
    assert b.mask.tolist() == [[1.0, 1.0], [0.0, 0.0]]


def test_trainer_logprobs_match_the_samplers(tiny_model_dir):
    """Padding and position ids are right: the policy's logprobs equal what HFSampler sampled with."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.samplers import HFSampler, SamplingParams

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    groups = HFSampler(model, tok).generate(["What is 12 + 34?", "Hi"], n=3,
                                            params=SamplingParams(max_new_tokens=6, seed=1))
    batch = pack_groups(groups, tok.pad_token_id)
    with torch.no_grad():
        logp, ent = forward_logprobs(model, batch, slice(0, len(batch)), entropy="metric")
    assert logp.shape == batch.mask.shape == ent.shape
    torch.testing.assert_close(logp * batch.mask, batch.sampler_logp, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"])
def test_weighted_microbatches_sum_to_the_full_batch_loss(mode):
    torch.manual_seed(0)
    loss = torch.randn(5, 4)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.float)
    full = aggregate(loss, mask, mode, 4)
    parts = [slice(0, 2), slice(2, 4), slice(4, 5)]
    total = sum(microbatch_weight(mode, mask, s, 5) * aggregate(loss[s], mask[s], mode, 4) for s in parts)
    torch.testing.assert_close(total, full)


def test_microbatch_weight_by_hand():
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    assert microbatch_weight("token_mean", mask, slice(0, 1), 3) == pytest.approx(2 / 3)  # 2 of 3 tokens
    assert microbatch_weight("seq_mean_token_mean", mask, slice(2, 3), 3) == 0.0  # an empty row counts for nothing
    assert microbatch_weight("seq_mean_token_sum_norm", mask, slice(1, 3), 3) == pytest.approx(2 / 3)


def test_zero_variance_groups():
    assert zero_variance(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 0.5]])).tolist() == [True, False, True]


def test_shared_prefix_forward_gives_the_same_logprobs_and_gradients(tiny_model_dir):
    """Running each prompt once per group (its KV cache shared by G completions) changes nothing."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.samplers import HFSampler, SamplingParams

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    prompts = ["What is 12 + 34?", "Hi", "A conversation between User and Assistant."]  # different widths
    batch = pack_groups(HFSampler(model, tok).generate(prompts, n=4, params=SamplingParams(max_new_tokens=6, seed=2)),
                        tok.pad_token_id)
    model.train()
    grads = []
    for group in (1, 4):
        with warnings.catch_warnings():  # the KV cache goes in under the keyword this transformers wants
            warnings.simplefilter("error", FutureWarning)
            logp, _ = forward_logprobs(model, batch, slice(4, 12), group_size=group)  # groups 2 and 3
        (logp * batch.mask[4:12]).sum().backward()
        grads.append([p.grad.clone() for p in model.parameters()])
        model.zero_grad()
        if group == 1:
            full = logp.detach()
    torch.testing.assert_close(logp.detach() * batch.mask[4:12], full * batch.mask[4:12], atol=1e-5, rtol=1e-5)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="whole groups"):
        forward_logprobs(model, batch, slice(0, 6), group_size=4)
