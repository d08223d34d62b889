"""The curriculum sampler on hand-made histories: retirement, the band, fallbacks, exact resume."""

from __future__ import annotations

import json
import random

import pytest

from rlvr.curriculum import Curriculum, CurriculumConfig


def walk(n: int, seed: int, epochs: int = 3) -> list[int]:
    """The plain seeded order (the trainer's data order without a curriculum)."""
    out = []
    for e in range(epochs):
        perm = list(range(n))
        random.Random(f"{seed}:{e}").shuffle(perm)
        out += perm
    return out


def visit(cur: Curriculum, i: int, passed: list[bool]) -> None:
    cur.update([(i, p) for p in passed])


def test_without_results_it_is_the_plain_seeded_order():
    cur = Curriculum(n=5, seed=7)
    assert cur.next(3) + cur.next(4) + cur.next(8) == walk(5, 7)[:15]


def test_k_solved_or_failed_visits_in_a_row_retire_a_prompt():
    cur = Curriculum(n=6, seed=0, k=2)
    visit(cur, 0, [True, True])
    visit(cur, 1, [False, False])
    visit(cur, 2, [True, False])  # mixed: neither streak grows
    assert cur.status[:3] == [0, 0, 0]
    visit(cur, 0, [True, True, True])
    visit(cur, 1, [False])
    visit(cur, 2, [True, True])
    assert cur.status[:3] == [1, 2, 0]  # 0 solved twice in a row, 1 failed twice, 2 only once solved
    visit(cur, 2, [False, False])  # breaks 2's solved streak
    visit(cur, 2, [True, True])
    assert cur.status[2] == 0 and cur.solved_streak[2] == 1 and cur.failed_streak[2] == 0
    assert cur.pool_sizes() == {"curriculum/active": 4.0, "curriculum/solved": 1.0, "curriculum/failed": 1.0,
                                "curriculum/in_band": 4.0, "curriculum/unseen": 3.0, "curriculum/exhausted": 0.0}
    # retired prompts are skipped in the walk
    drawn = cur.next(8)
    assert 0 not in drawn and 1 not in drawn
    assert drawn == [i for i in walk(6, 0) if i not in (0, 1)][:8]


def test_one_update_call_is_one_visit_per_prompt_and_none_is_ignored():
    cur = Curriculum(n=3, seed=0, k=2)
    cur.update([(1, True), (2, False), (1, True), (2, None), (1, None)])  # prompt 1: 2/2, prompt 2: 0/1
    assert (cur.attempts, cur.passes, cur.solved_streak, cur.failed_streak) == ([0, 2, 1], [0, 2, 0], [0, 1, 0], [0, 0, 1])
    cur.update([(0, None)])  # no opinion at all: not a visit
    assert cur.attempts[0] == 0 and cur.pass_rate(0) is None
    with pytest.raises(IndexError, match="prompt index 3"):
        cur.update([(3, True)])


def test_k_zero_never_retires():
    cur = Curriculum(n=2, seed=0, k=0)
    for _ in range(5):
        visit(cur, 0, [True, True])
    assert cur.status == [0, 0] and cur.solved_streak[0] == 5


def test_the_band_keeps_prompts_of_middling_difficulty():
    cur = Curriculum(n=5, seed=1, k=0, band_low=0.25, band_high=0.75)
    visit(cur, 0, [True, True, True, True])     # 1.00: too easy
    visit(cur, 1, [True, False, False, False])  # 0.25: in (the edge counts)
    visit(cur, 2, [False, False, False, False])  # 0.00: too hard
    visit(cur, 3, [True, True, True, False])    # 0.75: in
    # 4 unseen: in band
    assert [cur.in_band(i) for i in range(5)] == [False, True, False, True, True]
    assert cur.pool_sizes()["curriculum/in_band"] == 3.0
    drawn = cur.next(6)
    assert drawn == [i for i in walk(5, 1) if i in (1, 3, 4)][:6]
    # a later visit moves a prompt out of the band: 1 is now 1/8 passes
    visit(cur, 1, [False, False, False, False])
    assert cur.pass_rate(1) == 0.125 and not cur.in_band(1)


def test_fallbacks_when_the_band_or_the_pool_is_empty():
    cur = Curriculum(n=3, seed=2, k=1, band_low=0.4, band_high=0.6)
    visit(cur, 0, [True, True])  # solved: retired (k=1)
    visit(cur, 1, [True, True, False, False, False])  # 0.4 would be in band...
    visit(cur, 1, [False, False, False])  # ...now 2/8 = 0.25 and a failed visit: retired (k=1)
    visit(cur, 2, [True, True, True, False])  # 0.75: active but out of band
    assert cur.status == [1, 2, 0]
    assert cur.next(3) == [2, 2, 2]  # no active prompt in band: the active ones, band ignored
    visit(cur, 2, [True, True])  # retires 2 as solved: nothing active
    assert cur.pool_sizes()["curriculum/exhausted"] == 1.0
    before = cur.cursor
    assert cur.next(3) == walk(3, 2, epochs=10)[before:before + 3]  # then any prompt, in walk order


def test_state_round_trips_through_json_and_resumes_exactly():
    rng = random.Random(0)
    a = Curriculum(n=20, seed=5, k=2, band_low=0.1, band_high=0.9)
    b = None
    drawn_a, drawn_b = [], []
    for step in range(30):
        idx = a.next(4)
        results = [(i, rng.random() < (i / 20)) for i in idx for _ in range(4)]
        a.update(results)
        drawn_a.append(idx)
        if step == 11:
            b = Curriculum(n=20, seed=0, k=2, band_low=0.1, band_high=0.9)
            b.load_state_dict(json.loads(json.dumps(a.state_dict())))
            replay = random.Random(0)
            for idx_seen in drawn_a:  # the same outcome stream, replayed to where b takes over
                [replay.random() for _ in range(4 * len(idx_seen))]
            rng_b = replay
        elif b is not None:
            idx_b = b.next(4)
            b.update([(i, rng_b.random() < (i / 20)) for i in idx_b for _ in range(4)])
            drawn_b.append(idx_b)
    assert drawn_b == drawn_a[12:]
    assert b.state_dict() == a.state_dict()
    assert a.pool_sizes()["curriculum/solved"] + a.pool_sizes()["curriculum/failed"] > 0  # the history retired some


def test_bad_settings_and_mismatched_state_are_errors():
    with pytest.raises(ValueError, match="curriculum.k must be >= 0"):
        CurriculumConfig(k=-1)
    with pytest.raises(ValueError, match="band_low/band_high"):
        CurriculumConfig(band_low=0.8, band_high=0.2)
    with pytest.raises(ValueError, match="state is for 4 prompts, this task has 5"):
        Curriculum(n=5).load_state_dict(Curriculum(n=4).state_dict())
