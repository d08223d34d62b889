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
    # the learned component was scored as one batch, whose scores (only) stay cached until the next one
    assert sorted(mixed._verifiers()["rm"]._cache) == sorted((s.prompt, t) for t, s in zip(TEXTS, SAMPLES))


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


def test_repeated_completions_score_identically_and_once(rms, monkeypatch):
    """A GRPO group of identical completions must tie exactly (a 1e-7 difference from a batch of one
    would become a non-zero advantage): each distinct (prompt, completion) is scored once, and after
    a prefetch every repeat of an item hits the cache, not only the first."""
    from rlvr.scoring import score_batch
    from rlvr.verifiers.reward_model import RewardModelVerifier

    rows_seen: list[int] = []
    real = RewardModelVerifier.raw_rewards
    monkeypatch.setattr(RewardModelVerifier, "raw_rewards",
                        lambda self, c, s: rows_seen.append(len(c)) or real(self, c, s))
    texts = [TEXTS[0]] * 4 + [TEXTS[2]] * 3
    samples = [SAMPLES[0]] * 7
    v = combine({"math": 1.0, "rm": 0.5}, {"rm": ("reward_model", {"path": str(rms[0]), "batch_size": 3})})
    scores = list(score_batch(v, texts, samples, workers=0))
    assert len({s.reward for s in scores[:4]}) == 1 and len({s.reward for s in scores[4:]}) == 1  # exact ties
    assert rows_seen == [2]  # one forward pass over the two distinct rows; no batch-of-one rescoring
    rm = get_verifier("reward_model", path=str(rms[0]))
    assert [s.reward for s in rm.score_many(texts, samples)] == [s.info["rewards"]["rm"] for s in scores]


def test_max_length_defaults_to_what_rlvr_rm_recorded(rms, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    src = tmp_path / "rm"
    model = AutoModelForSequenceClassification.from_pretrained(rms[0])
    model.config.rlvr_max_length = 6
    model.save_pretrained(src)
    AutoTokenizer.from_pretrained(rms[0]).save_pretrained(src)
    v = get_verifier("reward_model", path=str(src))
    v._load()
    assert v.max_length == 6 and len(v._ids(TEXTS[0], SAMPLES[0])) == 6
    assert get_verifier("reward_model", path=str(rms[0]), max_length=9).max_length == 9


def test_train_warns_when_a_learned_reward_is_the_accuracy(caplog):
    from rlvr.tasks import get_task
    from rlvr.trainers.config import TaskConfig
    from rlvr.trainers.setup import task_verifier

    task = get_task("arithmetic", level=1, n=10, n_test=10)
    opts = {"reward_model": {"path": "never/loaded"}}  # built lazily: nothing is read here
    with caplog.at_level("WARNING", logger="rlvr.train"):
        task_verifier(task, TaskConfig(verifiers={"reward_model": 1.0, "math": 0.0}, verifier_options=opts))
    assert "accuracy will read 0" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="rlvr.train"):
        task_verifier(task, TaskConfig(verifiers={"reward_model": 1.0, "math": 0.0}, verifier_options=opts, primary="math"))
    assert caplog.text == ""
