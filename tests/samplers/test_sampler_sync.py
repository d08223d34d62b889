"""The pieces of the weight-sync check, without an engine: params, probe, comparison, packing,
deadlines."""

from __future__ import annotations

import threading

import pytest
import torch

from rlvr.samplers import SamplerTimeout, SamplingParams, WeightSyncError
from rlvr.samplers.sync import (
    SyncTolerance,
    call_with_deadline,
    check_sync,
    checked_push,
    default_tolerance,
    make_probe,
    pack_weights,
    reference_logprobs,
    unpack_weights,
)


def test_sampling_params_validate_and_normalise():
    assert SamplingParams(stop="x").stop == ("x",)
    assert SamplingParams(stop=["a", "b"]).stop == ("a", "b")
    assert SamplingParams(temperature=0).greedy
    for bad in (dict(temperature=-1), dict(top_p=0), dict(top_p=1.5), dict(top_k=-1),
                dict(max_new_tokens=0), dict(stop=("",))):
        with pytest.raises(ValueError):
            SamplingParams(**bad)


def test_probe_is_deterministic_and_in_range():
    a = make_probe(50, rows=3, length=7, seed=5)
    assert a == make_probe(50, rows=3, length=7, seed=5)
    assert a != make_probe(50, rows=3, length=7, seed=6)
    assert [len(r) for r in a] == [7, 7, 7] and all(0 <= t < 50 for r in a for t in r)


def test_check_sync_by_hand():
    # |-1.0 - -1.00005| = 5e-5 and |-2.0 - -2.0| = 0: max 5e-5, mean 2.5e-5, both under 1e-4.
    r = check_sync([[-1.0, -2.0]], [[-1.00005, -2.0]], 1e-4)
    assert r.ok and r.tokens == 2
    assert r.max_abs_diff == pytest.approx(5e-5, abs=1e-12)
    assert r.mean_abs_diff == pytest.approx(2.5e-5, abs=1e-12)
    # 0.25 off at row 1, position 2 (the second compared token): named in the error.
    with pytest.raises(WeightSyncError, match=r"row 1, token 2: engine -3\.250000, trainer -3\.000000"):
        check_sync([[-1.0, -1.0], [-1.0, -3.25]], [[-1.0, -1.0], [-1.0, -3.0]], 1e-4)
    with pytest.raises(WeightSyncError):
        check_sync([[float("nan")]], [[-1.0]], 1.0)
    with pytest.raises(WeightSyncError, match="rows"):
        check_sync([[-1.0]], [[-1.0], [-2.0]], 1.0)


def test_default_tolerance_by_dtype():
    assert default_tolerance("float32") == SyncTolerance(mean=1e-3, atol=1e-2, rtol=1e-3)
    assert default_tolerance("bfloat16") == SyncTolerance(mean=0.2, atol=2.0, rtol=0.2)
    assert default_tolerance("torch.bfloat16") == default_tolerance("bfloat16")
    assert default_tolerance("bfloat16").mean > default_tolerance("float32").mean


def test_tolerance_scales_with_the_logprob_and_the_mean_catches_small_shifts():
    tol = SyncTolerance(mean=1e-3, atol=1e-2, rtol=1e-3)
    # A tail token at -22.3 off by 0.03: its tolerance is 0.01 + 0.001*22.3 = 0.0323, so it passes,
    # while the same 0.03 at -1.0 (tolerance 0.011) fails. Means: 0.03/4 = 0.0075 > 1e-3 fails too,
    # so pad with exact tokens: 0.03 / 40 = 7.5e-4 <= 1e-3.
    exact = [[-1.0] * 39]
    r = check_sync([[-22.33] + exact[0]], [[-22.3] + exact[0]], tol)
    assert r.ok and r.worst_ratio == pytest.approx(0.03 / 0.0323, rel=1e-6)
    assert r.mean_abs_diff == pytest.approx(0.03 / 40, rel=1e-6)
    with pytest.raises(WeightSyncError, match=r"over its tolerance 0\.011"):
        check_sync([[-1.03] + exact[0]], [[-1.0] + exact[0]], tol)
    # Every token 2e-3 off (a stale layer shifts everything a little): each is within its own
    # tolerance (0.011) but the mean 2e-3 > 1e-3 fails.
    with pytest.raises(WeightSyncError, match=r"mean \|engine - trainer\| logprob = 0\.002 > 0\.001"):
        check_sync([[-1.002] * 10], [[-1.0] * 10], tol)


def test_pack_weights_sends_tied_tensors_once_under_the_embedding_name(model):
    sd = unpack_weights(pack_weights(model))
    assert "model.embed_tokens.weight" in sd and "lm_head.weight" not in sd
    for name, p in model.state_dict().items():
        if name != "lm_head.weight":
            assert torch.equal(sd[name], p), name


def test_reference_logprobs_are_teacher_forced_and_restore_train_mode(model):
    probe = make_probe(model.config.vocab_size, rows=2, length=5)
    model.train()
    lp = reference_logprobs(model, probe)
    assert model.training
    assert [len(r) for r in lp] == [4, 4]
    ids = torch.tensor(probe)
    with torch.no_grad():
        want = torch.log_softmax(model(input_ids=ids).logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
    torch.testing.assert_close(torch.tensor(lp), want, atol=1e-6, rtol=0)


def test_call_with_deadline_turns_a_hang_into_an_error():
    release = threading.Event()  # the call would block for 30 s; the deadline must cut it at 0.2 s
    with pytest.raises(SamplerTimeout, match="stuck call"):
        call_with_deadline(lambda: release.wait(30), 0.2, "stuck call")
    release.set()
    assert call_with_deadline(lambda: 5, 1.0, "quick") == 5
    with pytest.raises(KeyError):
        call_with_deadline(lambda: {}["x"], 1.0, "raises")


def test_checked_push_runs_the_push_and_compares_after_it(model, perturb):
    # The "engine" here is a second transformers model: the push copies weights into it.
    probe = make_probe(model.config.vocab_size, rows=2, length=8)
    engine = perturb(model, scale=0.05)
    pushed = []

    def push():
        engine.load_state_dict(model.state_dict())
        pushed.append(True)

    report = checked_push(push, lambda: reference_logprobs(engine, probe), model, probe, 1e-5)
    assert pushed and report.ok and report.tokens == 14 and report.max_abs_diff <= 1e-5
    stale = perturb(model, scale=0.05, seed=1)
    with pytest.raises(WeightSyncError):
        checked_push(lambda: None, lambda: reference_logprobs(stale, probe), model, probe, 1e-5)
