"""Rollout-correction weights against hand-computed numbers (rlvr.correction)."""

from __future__ import annotations

import pytest
import torch

from rlvr.correction import CORRECTIONS, correction_weights, describe_correction

# pi_old = 1 everywhere (logp 0); mu chosen so the token ratios pi_old/mu are
# row 0: 2, 1, 0.25 (sequence ratio 0.5); row 1: 1, 1.25, padding (sequence ratio 1.25).
OLD = torch.zeros(2, 3)
MU = torch.log(torch.tensor([[0.5, 1.0, 4.0], [1.0, 0.8, 0.3]]))
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def _w(mode, **kw):
    return correction_weights(mode, OLD, MU, MASK, **kw)


def test_token_tis_caps_each_token():
    w, m = _w("token_tis", cap=1.5)
    torch.testing.assert_close(w, torch.tensor([[1.5, 1.0, 0.25], [1.0, 1.25, 0.0]]), atol=1e-6, rtol=0)
    assert m["is/capped_frac"] == pytest.approx(1 / 5)
    assert m["is/masked_frac"] == 0.0


def test_seq_tis_one_capped_weight_per_completion():
    w, m = _w("seq_tis", cap=1.0)
    torch.testing.assert_close(w, torch.tensor([[0.5, 0.5, 0.5], [1.0, 1.0, 0.0]]), atol=1e-6, rtol=0)
    assert m["is/capped_frac"] == pytest.approx(2 / 5)  # row 1's two tokens: 1.25 > 1


def test_seq_mask_drops_the_completion_outside_the_range():
    w, m = _w("seq_mask", lo=0.6, hi=2.0)  # row 0's ratio 0.5 < 0.6: dropped; row 1's 1.25 kept, unweighted
    torch.testing.assert_close(w, torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0]]), atol=0, rtol=0)
    assert m["is/masked_frac"] == pytest.approx(3 / 5)
    w2, _ = _w("seq_mask", lo=0.4, hi=1.2)  # now row 0 is in, row 1 (1.25) is out
    torch.testing.assert_close(w2, torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]]), atol=0, rtol=0)


def test_token_mask_is_icepop():
    w, m = _w("token_mask", lo=0.5, hi=1.5)  # 2 and 0.25 leave [0.5, 1.5]; the others keep their ratio
    torch.testing.assert_close(w, torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.25, 0.0]]), atol=1e-6, rtol=0)
    assert m["is/masked_frac"] == pytest.approx(2 / 5)


def test_ratio_statistics_and_none():
    w, m = _w("none")
    torch.testing.assert_close(w, MASK)
    assert m["is/token_ratio_mean"] == pytest.approx((2 + 1 + 0.25 + 1 + 1.25) / 5)
    assert m["is/token_ratio_max"] == pytest.approx(2.0)
    assert m["is/token_ratio_min"] == pytest.approx(0.25)
    assert m["is/seq_ratio_mean"] == pytest.approx((0.5 + 1.25) / 2)
    assert m["is/masked_frac"] == 0.0


def test_weights_carry_no_gradient_and_long_sequences_do_not_overflow():
    old = torch.zeros(1, 400, requires_grad=True)
    mu = torch.full((1, 400), -1.0)  # sequence ratio e^400: overflows float32 unless capped in log space
    w, _ = correction_weights("seq_tis", old, mu, torch.ones(1, 400), cap=3.0)
    assert not w.requires_grad
    torch.testing.assert_close(w, torch.full((1, 400), 3.0))


def test_unknown_mode_and_formulas():
    with pytest.raises(ValueError, match="unknown rollout correction 'bogus'"):
        _w("bogus")
    for mode in CORRECTIONS:
        assert describe_correction(mode, 2.0, 0.5, 2.0)
    assert "1[0.5 ≤" in describe_correction("token_mask", 2.0, 0.5, 2.0)
