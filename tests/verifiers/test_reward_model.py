"""The reward_model verifier: batched scoring equals item-by-item scoring, combine with rule-based
verifiers adds up by hand, ensembles report disagreement, normalisation, thresholds, pickling."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from rlvr.tiny import build_tiny_model, default_texts
from rlvr.verifiers import Sample, combine, get_verifier
from rlvr.verifiers.reward_model import score_many

SHAPE = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, intermediate_size=64
)


def _save_rm(src: Path, out: Path, seed: int, mean: float | None = None) -> Path:
    """A reward model with a seeded random head over the tiny LM, saved like `rlvr rm` does."""
    from transformers import AutoTokenizer

    from rlvr.trainers.reward import load_reward_model

    tok = AutoTokenizer.from_pretrained(src)
    model = load_reward_model(src, tok, seed=seed)
    if mean is not None:
        model.config.rlvr_reward_mean = mean
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def rms(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("rm")
    lm = build_tiny_model(root / "lm", texts=default_texts(400), vocab_size=400, **SHAPE)
    return _save_rm(lm, root / "a", seed=1), _save_rm(lm, root / "b", seed=2, mean=0.25)


TEXTS = [
    " <answer>71</answer>",
    " The answer is 71.",
    " 23 + 48 = 71 and then a much longer tail of words",
    "",
]
SAMPLES = [Sample(prompt="What is 23 + 48?", answer="71")] * 3 + [Sample(prompt="What is 1 + 2?", answer="3")]


def test_batched_equals_one_at_a_time(rms):
    v = get_verifier("reward_model", path=str(rms[0]), batch_size=3)
    batched = [s.reward for s in v.score_many(TEXTS, SAMPLES)]
    single = [v(t, s).reward for t, s in zip(TEXTS, SAMPLES)]
    assert batched == pytest.approx(single, abs=1e-5)  # right padding changes nothing
    assert len(set(round(r, 6) for r in batched)) == 4
    assert all(s.passed is None for s in v.score_many(TEXTS, SAMPLES))  # no opinion without a threshold


def test_normalisation_scale_and_threshold(rms):
    raw = get_verifier("reward_model", path=str(rms[1]), normalize=False).score_many(TEXTS, SAMPLES)
    centred = get_verifier("reward_model", path=str(rms[1]), scale=2.0, threshold=0.0).score_many(
        TEXTS, SAMPLES
    )
    for r, c in zip(raw, centred):
        assert c.reward == pytest.approx(2.0 * (r.reward - 0.25), abs=1e-5)  # rlvr_reward_mean = 0.25
        assert c.passed == (c.reward > 0.0)


def test_ensemble_mean_and_disagreement(rms):
    a = get_verifier("reward_model", path=str(rms[0])).score_many(TEXTS, SAMPLES)
    b = get_verifier("reward_model", path=str(rms[1])).score_many(TEXTS, SAMPLES)
    both = get_verifier("reward_model", path=[str(rms[0]), str(rms[1])]).score_many(TEXTS, SAMPLES)
    for x, y, e in zip(a, b, both):
        assert e.reward == pytest.approx((x.reward + y.reward) / 2, abs=1e-5)
        assert e.info["disagreement"] == pytest.approx(
            abs(x.reward - y.reward) / 2, abs=1e-5
        )  # population std of 2


def test_combined_with_a_rule_based_verifier(rms):
    rm_alone = get_verifier("reward_model", path=str(rms[0])).score_many(TEXTS, SAMPLES)
    mixed = combine({"math": 1.0, "rm": 0.5}, {"rm": ("reward_model", {"path": str(rms[0])})})
    out = score_many(mixed, TEXTS, SAMPLES)
    math_ok = [True, True, False, False]  # "23 + 48 = 71" has no final-answer marker; "" has nothing
    for s, r, ok in zip(out, rm_alone, math_ok):
        assert s.reward == pytest.approx(float(ok) + 0.5 * r.reward, abs=1e-5)
        assert s.passed is ok and s.info["passed"]["rm"] is None
    # the learned component was scored as one batch: the cache is drained by the per-item calls
    assert mixed._verifiers()["rm"]._cache == {}


def test_pickles_without_the_model(rms):
    v = get_verifier("reward_model", path=str(rms[0]))
    first = v.score_many(TEXTS[:1], SAMPLES[:1])[0].reward
    clone = pickle.loads(pickle.dumps(v))
    assert clone._models is None and clone(TEXTS[0], SAMPLES[0]).reward == pytest.approx(first, abs=1e-6)


def test_rejects_a_multi_label_classifier(tmp_path, rms):
    from transformers import AutoModelForSequenceClassification

    m = AutoModelForSequenceClassification.from_pretrained(rms[0], num_labels=3, ignore_mismatched_sizes=True)
    m.save_pretrained(tmp_path / "cls3")
    (tmp_path / "cls3").joinpath("tokenizer.json").write_bytes((rms[0] / "tokenizer.json").read_bytes())
    (tmp_path / "cls3").joinpath("tokenizer_config.json").write_bytes(
        (rms[0] / "tokenizer_config.json").read_bytes()
    )
    with pytest.raises(ValueError, match="has 3 labels"):
        get_verifier("reward_model", path=str(tmp_path / "cls3")).score_many(TEXTS[:1], SAMPLES[:1])
    assert torch.is_tensor(get_verifier("reward_model", path=str(rms[0])).raw_rewards(TEXTS, SAMPLES))
