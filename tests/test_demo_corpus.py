"""rlvr.demo: the synthetic pretraining corpus, the held-out rule, and the shipped base model."""

from __future__ import annotations

import json
import re

import pytest

from rlvr.demo import corpus
from rlvr.demo.pretrain import SHIPPED_DIR, PretrainConfig, ensure_base_model, lr_at

N_DOCS = 20_000
_SUM = re.compile(r"(\d+) ?(?:\+|plus|and) ?(\d+)|Adding (\d+) to (\d+)")


@pytest.fixture(scope="module")
def docs():
    return corpus.sample_documents(N_DOCS, seed=0)


def _is_arith(doc: str) -> bool:
    return bool(_SUM.search(doc))


def test_mix_and_rare_answer_tags(docs):
    arith = [d for d in docs if _is_arith(d)]
    share = len(arith) / len(docs)
    assert 0.67 < share < 0.73  # 70% arithmetic, 30% English
    tagged = sum(corpus.parse_tagged_answer(d) is not None for d in arith) / len(arith)
    assert 0.02 < tagged < 0.04  # ~3% of arithmetic documents
    assert not any("<think>" in d for d in docs)
    assert all("<answer>" not in d for d in docs if not _is_arith(d))
    # the demo's instruction (which mentions the tags) appears, but is mostly answered without them
    assert 0.02 < sum(corpus.TAG_INSTRUCTION in d for d in arith) / len(arith) < 0.08


def test_answers_are_right(docs):
    for d in docs[:2000]:
        m = _SUM.search(d)
        if not m:
            continue
        a, b = (int(x) for x in (m.group(1, 2) if m.group(1) else m.group(4, 3)))
        assert str(a + b) in d[m.end() :], d


def test_held_out_pairs_never_appear(docs):
    held = set(corpus.held_out_pairs())
    assert 0.08 < len(held) / 90**2 < 0.12
    assert all(corpus.is_held_out(b, a) for a, b in held)  # unordered rule
    for d in docs:
        for m in _SUM.finditer(d):
            a, b = (int(x) for x in (m.group(1, 2) if m.group(1) else m.group(4, 3)))
            if 10 <= a <= 99 and 10 <= b <= 99:
                assert (a, b) not in held, d
    assert set(corpus.train_pairs()).isdisjoint(held)


def test_stream_is_deterministic(docs):
    assert corpus.sample_documents(50, seed=0) == docs[:50]
    assert corpus.sample_documents(50, seed=1) != docs[:50]


def test_parsers():
    assert corpus.parse_free_answer(" 71") == 71
    assert corpus.parse_free_answer(" 23 + 48 = 71.\nUser: What is 1 + 2?") == 71
    assert corpus.parse_free_answer(" <answer>71</answer>") == 71
    assert corpus.parse_free_answer(" seventy-one") is None
    assert corpus.parse_tagged_answer(" The answer is <answer> 71 </answer>") == 71
    assert corpus.parse_tagged_answer(" 71") is None
    assert corpus.demo_prompt(23, 48).endswith("User: What is 23 + 48?\nAssistant:")


def test_lr_schedule():
    cfg = PretrainConfig(lr=1e-3, warmup_steps=10, steps=110, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-4)  # (0 + 1) / 10 of the peak
    assert lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(1e-4 + 0.9e-3 * 0.5)  # half-way through the cosine
    assert lr_at(110, cfg) == pytest.approx(1e-4)


def _greedy_accuracy(path, pairs) -> tuple[float, list[str]]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    enc = tok([corpus.demo_prompt(a, b) for a, b in pairs], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    replies = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    right = sum(corpus.parse_free_answer(r) == a + b for r, (a, b) in zip(replies, pairs))
    return right / len(pairs), replies


def test_shipped_base_model_loads_and_matches_its_eval():
    """The shipped weights load through transformers and reproduce their recorded greedy accuracy."""
    path = ensure_base_model()
    assert path == SHIPPED_DIR
    meta = json.loads((path / "eval.json").read_text())
    acc, replies = _greedy_accuracy(path, corpus.eval_pairs(200)[:40])
    assert all(r.strip() for r in replies)  # it answers something
    assert abs(acc - meta["greedy_free_text_accuracy"]) <= 0.2, (acc, meta)


@pytest.mark.xfail(strict=True, reason="the shipped base model is below the 85% held-out bar (see eval.json)")
def test_shipped_base_model_answers_held_out_sums():
    """NOTES.md: the RL demo needs a base model that adds (>= 85% greedy on held-out sums)."""
    acc, replies = _greedy_accuracy(ensure_base_model(), corpus.eval_pairs(200)[:40])
    assert acc >= 0.85, replies
