"""The async producer/queue logic of rlvr.async_rollout, with real threads and no engine.

`NoEngine` stands in for the inference engine (this file tests the queueing, versions, deadlines
and the staleness bound; tests/trainers/test_async.py runs the real thing with vLLM).
"""

from __future__ import annotations

import threading
import time

import pytest

from rlvr.async_rollout import AsyncRollouts, NoEngine, Snapshot
from rlvr.samplers.base import SamplerError, SamplerTimeout


class Recorder:
    """A producer that consumes 3 data positions per step and records the engine's version."""

    def __init__(self, rollouts_ref: list) -> None:
        self.calls: list[tuple[int, int, int]] = []
        self.ref = rollouts_ref

    def __call__(self, step: int, pos: int):
        self.calls.append((step, pos, self.ref[0].engine_version))
        return {"step": step, "positions": list(range(pos, pos + 3))}, pos + 3


def _run(k: int, steps: int, train_s: float = 0.0, cls=AsyncRollouts, first: int = 1, position: int = 0):
    ref: list = []
    engine = NoEngine()
    prod = Recorder(ref)
    r = cls(engine, prod, max_staleness=k, first_step=first, last_step=steps, position=position,
            version=first - 1, wait_s=5, poll_s=0.01)
    ref.append(r)
    r.start()
    got = []
    for step in range(first, steps + 1):
        b = r.get(step)
        got.append(b)
        time.sleep(train_s)
        r.publish(Snapshot(step, f"w{step}".encode(), [[0.0]]))
    r.close()
    return r, prod, engine, got


@pytest.mark.parametrize("k", [0, 1, 2])
def test_staleness_bound_and_contiguous_data(k):
    r, prod, engine, got = _run(k, steps=8, train_s=0.02)
    assert [b.step for b in got] == list(range(1, 9))
    assert all(0 <= b.staleness <= k for b in got)
    positions = [p for b in got for p in b.payload["positions"]]
    assert positions == list(range(24))  # no prompt twice, none skipped
    assert sum(r.staleness_hist.values()) == 8 and r.dropped == 0
    assert max(r.staleness_hist) <= k
    if k == 0:  # synchronous: every batch from the weights of the step before, each pushed once
        assert [b.version for b in got] == list(range(8))
        assert engine.pushed == [f"w{s}".encode() for s in range(1, 8)]


def test_k1_generates_the_next_batch_while_the_trainer_trains():
    started = threading.Event()
    seen = []

    def produce(step, pos):
        seen.append(step)
        if step == 2:
            started.set()
        return step, pos + 1

    r = AsyncRollouts(NoEngine(), produce, max_staleness=1, first_step=1, last_step=3, position=0, version=0,
                      wait_s=5, poll_s=0.01)
    r.start()
    assert r.get(1).version == 0
    # the trainer has not published version 1 yet: batch 2 is generated anyway (from version 0) ...
    assert started.wait(2)
    time.sleep(0.1)
    assert seen == [1, 2]  # ... but not batch 3, which needs version >= 1
    b2 = r.get(2)
    assert (b2.version, b2.staleness) == (0, 1)
    r.publish(Snapshot(1, b"w1", [[0.0]]))
    b3 = r.get(3)
    assert (b3.version, b3.staleness) == (1, 1)
    r.close()


class Broken(AsyncRollouts):
    """A producer whose version gate is off for its first run (the bug the trainer must survive)."""

    gate_off = True

    def _min_version(self, step):
        return -10**9 if self.gate_off else super()._min_version(step)

    def _drop(self, item):
        Broken.gate_off = False
        super()._drop(item)


def test_a_too_stale_batch_is_dropped_regenerated_and_counted():
    Broken.gate_off = True
    r, prod, _, got = _run(1, steps=6, train_s=0.05, cls=Broken)
    assert r.dropped >= 1
    assert all(b.staleness <= 1 for b in got)
    assert [p for b in got for p in b.payload["positions"]] == list(range(18))
    assert r.metrics()["async/dropped_stale"] == r.dropped


def test_resumed_producer_starts_at_the_checkpoint_position():
    r, prod, _, got = _run(2, steps=7, first=5, position=12)
    assert [b.step for b in got] == [5, 6, 7]
    assert got[0].version == 4 and got[0].staleness == 0
    assert [p for b in got for p in b.payload["positions"]] == list(range(12, 21))


class DyingEngine(NoEngine):
    def __init__(self, dies: threading.Event) -> None:
        super().__init__()
        self.dies = dies

    def dead_engine(self):
        return "vLLM engine process EngineCore (pid 4242) exited with code -9" if self.dies.is_set() else None


def test_a_dead_engine_is_an_error_naming_it_not_a_hang():
    dies, hang = threading.Event(), threading.Event()

    def produce(step, pos):
        if step == 2:
            dies.set()
            hang.wait(30)  # a generate call that never returns
        return step, pos + 1

    r = AsyncRollouts(DyingEngine(dies), produce, max_staleness=1, first_step=1, last_step=3, position=0,
                      version=0, wait_s=30, poll_s=0.05)
    r.start()
    r.get(1)
    t0 = time.monotonic()
    with pytest.raises(SamplerError, match=r"EngineCore \(pid 4242\) exited with code -9"):
        r.get(2)
    assert time.monotonic() - t0 < 2
    hang.set()
    r.close()


def test_every_wait_has_a_deadline_and_producer_errors_reach_the_trainer():
    hang = threading.Event()
    r = AsyncRollouts(NoEngine(), lambda s, p: (hang.wait(30), p + 1), max_staleness=0, first_step=1,
                      last_step=2, position=0, version=0, wait_s=0.3, poll_s=0.05)
    r.start()
    with pytest.raises(SamplerTimeout, match="no batch for step 1 within 0.3 s"):
        r.get(1)
    hang.set()
    r.close()

    def boom(step, pos):
        raise ValueError("verifier exploded")

    r = AsyncRollouts(NoEngine(), boom, max_staleness=1, first_step=1, last_step=2, position=0, version=0,
                      wait_s=5, poll_s=0.05)
    r.start()
    with pytest.raises(SamplerError, match="producer failed before step 1: ValueError: verifier exploded"):
        r.get(1)
    r.close()


def test_exclusive_brings_the_engine_to_the_newest_weights():
    engine = NoEngine()
    r = AsyncRollouts(engine, lambda s, p: (s, p + 1), max_staleness=0, first_step=1, last_step=1, position=0,
                      version=0, wait_s=5, poll_s=0.01)
    r.start()
    r.get(1)
    r.publish(Snapshot(1, b"w1", [[0.0]]))
    with r.exclusive():
        assert engine.pushed == [b"w1"] and r.engine_version == 1
    r.close()


class NeverFresh(AsyncRollouts):
    """A producer that always generates from too-old weights (an engine whose weights never advance)."""

    def _min_version(self, step):
        return -10**9


def test_a_step_that_stays_too_stale_is_an_error_not_a_livelock():
    r = NeverFresh(NoEngine(), lambda s, p: (s, p + 1), max_staleness=0, first_step=1, last_step=5, position=0,
                   version=0, wait_s=5, poll_s=0.01)
    r.engine_version = -3  # the engine holds weights three versions behind and never gets newer ones
    r.start()
    with pytest.raises(SamplerError, match="batch of step 1 was too stale 4 times"):
        r.get(1)
    assert r.dropped == 4
    r.close()
