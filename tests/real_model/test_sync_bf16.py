"""The weight-sync check on SmolLM2-135M, bfloat16 engine against the fp32 trainer: unchanged
weights pass (the old max-0.1 rule failed them; faults as small as one step hide in bf16 noise, see
docs/generation.md). Its own module, so its engine never runs beside the float32 one."""

from __future__ import annotations


def test_unchanged_weights_pass_the_bf16_check(smol_engine_bf16, smol_model):
    assert smol_engine_bf16.dtype == "bfloat16"
    report = smol_engine_bf16.check_weights(smol_model)
    assert report.ok, report
