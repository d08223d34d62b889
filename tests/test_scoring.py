"""rlvr.scoring with real worker processes: order, timeouts, crashes, exceptions, threads, combine.

No mocks: every verifier below runs in forkserver workers. They are defined at module level, so
they pickle by reference and the workers import this module to find them. A verifier defined in a
script's ``__main__`` works the same way (workers re-import the script as ``__mp_main__``, so its
top level must sit under ``if __name__ == "__main__":``); one typed in a REPL or a notebook cannot
be found by the workers and `Scorer` says so up front (see test_unpicklable_verifier_...).

Deadlines are short (1 s) to keep the file fast, but not so short that a busy 2-core machine
times out a trivial item.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from rlvr.scoring import Scorer, ScoringError, score_batch
from rlvr.verifiers import Sample, Score, combine
from rlvr.verifiers.base import BatchVerifier, DeadlineAware, batched_components

DEADLINE = 1.0
PLUGIN_PATH = Path(__file__).resolve().parent / "fixtures" / "plugin_path"


def echo_index(completion: str, sample: Sample) -> Score:
    """Reward = the row's index, so order mistakes show."""
    i = sample.metadata["i"]
    return Score(reward=float(i), passed=completion == f"c{i}", info={"i": i})


def misbehave(completion: str, sample: Sample) -> Score:
    """Hangs, exits, is killed or raises when the completion says so; else passes."""
    if completion == "hang":
        while True:
            time.sleep(1)
    if completion == "exit":
        os._exit(1)
    if completion == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if completion == "raise":
        raise ValueError(f"bad row {sample.metadata['i']}")
    if completion == "nap":
        time.sleep(0.02)  # > the 5 ms flush interval: its result is sent before the next item starts
    if completion == "nan":
        return Score(float("nan"), False)
    if completion == "float":
        return 1.0  # not a Score: a bug, reported as an exception
    return Score(
        1.0, True, {"i": sample.metadata.get("i"), "pid": os.getpid()}
    )


class DiesWhenSent:
    """Pickling this kills the process: the worker dies after the item, while sending results."""

    def __reduce__(self):
        os._exit(7)


def poison_on_send(completion: str, sample: Sample) -> Score:
    return Score(1.0, True, {"payload": DiesWhenSent() if completion == "poison" else None})


class Budgeted:
    """A class verifier declaring its own time budget, told the deadline its caller enforces."""

    timeout_s = 0.2

    def __init__(self, deadline_s: float | None = None):
        self.deadline_s = deadline_s

    def under_deadline(self, deadline_s: float) -> Budgeted:
        return Budgeted(deadline_s)

    def __call__(self, completion: str, sample: Sample) -> Score:
        return Score(0.0, None, {"deadline_s": self.deadline_s})


class BreaksInWorker:
    """Pickles fine in the parent, fails to unpickle in a worker (like a missing dependency)."""

    def __init__(self):
        self.state = "something to restore"

    def __call__(self, completion: str, sample: Sample) -> Score:
        return Score(1.0, True)

    def __setstate__(self, state):
        raise RuntimeError("cannot load in worker")


def rows(completions: list[str]) -> list[Sample]:
    return [Sample(metadata={"i": i}) for i in range(len(completions))]


def test_input_order_is_preserved():
    n = 301
    completions = [f"c{i}" for i in range(n)]
    with Scorer(echo_index, workers=2, timeout_s=DEADLINE, chunk_size=7) as scorer:
        out = scorer.score(completions, rows(completions))
    assert [s.reward for s in out] == [float(i) for i in range(n)]
    assert all(s.passed for s in out) and out.report.n == n and out.report.passed == n
    again = score_batch(echo_index, completions[:50], [{"metadata": {"i": i}} for i in range(50)], workers=2)
    assert [s.info["i"] for s in again] == list(range(50))  # dict rows become Samples


def test_hung_item_times_out_others_kept_and_pool_keeps_working():
    completions = ["nap", "nap", "hang", "ok", "ok", "ok"]
    with Scorer(misbehave, workers=2, timeout_s=DEADLINE, chunk_size=6) as scorer:  # one chunk
        out = scorer.score(completions, rows(completions))
        assert out[2].to_dict() == {
            "reward": 0.0,
            "passed": False,
            "info": {"error": "timeout", "reason": "timeout", "deadline_s": DEADLINE},
        }
        assert [s.passed for i, s in enumerate(out) if i != 2] == [True] * 5
        assert [s.info["i"] for i, s in enumerate(out) if i != 2] == [0, 1, 3, 4, 5]
        # items reported before the hang were kept; the rest were re-run in another worker (items
        # that finished less than 5 ms before the hang, not yet reported, are re-run too)
        assert out[0].info["pid"] == out[1].info["pid"] != out[3].info["pid"]
        assert (out.report.timeouts, out.report.workers_replaced, out.report.errors["timeout"]) == (1, 1, 1)
        after = scorer.score(["ok"] * 20, rows(["ok"] * 20))
        assert all(s.passed for s in after) and after.report.timeouts == 0
        assert scorer.stats.n == 26 and scorer.stats.timeouts == 1


def test_worker_crashes_are_marked_and_replaced():
    completions = ["ok", "exit", "ok", "ok", "kill", "ok", "ok"]
    out = score_batch(misbehave, completions, rows(completions), workers=2, timeout_s=DEADLINE)
    assert out[1].info == {"error": "crash", "reason": "crash", "exitcode": 1}
    assert out[4].info == {"error": "crash", "reason": "crash", "exitcode": -signal.SIGKILL}
    assert (out[1].passed, out[1].reward, out[4].passed) == (False, 0.0, False)
    assert [out[i].passed for i in (0, 2, 3, 5, 6)] == [True] * 5
    assert (out.report.crashes, out.report.workers_replaced) == (2, 2)


def test_exceptions_are_counted_with_the_first_traceback(caplog):
    completions = ["ok", "ok", "ok", "raise", "ok", "ok", "float", "ok", "raise", "ok"]
    with caplog.at_level("WARNING", logger="rlvr.scoring"):
        out = score_batch(misbehave, completions, rows(completions), workers=2, timeout_s=DEADLINE)
    assert out[3].to_dict() == {
        "reward": 0.0,
        "passed": False,
        "info": {"error": "exception", "reason": "exception", "exception": "ValueError: bad row 3"},
    }
    assert out[6].info == {"error": "exception", "reason": "exception", "exception": "TypeError: verifier returned float, not Score"}
    r = out.report
    assert (r.exceptions, dict(r.exception_types), r.passed, r.failed) == (
        3,
        {"ValueError": 2, "TypeError": 1},
        7,
        3,
    )
    assert "in misbehave" in r.first_traceback and "ValueError: bad row" in r.first_traceback
    assert "first traceback" in caplog.text and "bad row" in caplog.text


def test_a_non_finite_reward_is_an_exception_not_a_poisoned_advantage():
    out = score_batch(misbehave, ["nan", "ok"], rows(["nan", "ok"]), workers=0, max_exception_fraction=None)
    assert out[0].info == {
        "error": "exception",
        "reason": "exception",
        "exception": "ValueError: verifier returned a non-finite reward nan",
    }
    assert out[0].reward == 0.0 and out[1].reward == 1.0


def test_a_mostly_raising_verifier_fails_the_batch_loudly():
    completions = ["raise"] * 3 + ["ok"]
    with pytest.raises(ScoringError, match=r"3/4 items raised \{'ValueError': 3\}") as err:
        score_batch(misbehave, completions, rows(completions), workers=1, timeout_s=DEADLINE)
    assert len(err.value.scores) == 4 and err.value.scores[3].passed is True
    assert err.value.report.exceptions == 3
    quiet = score_batch(misbehave, completions, rows(completions), workers=0, max_exception_fraction=None)
    assert [s.info.get("error") for s in quiet] == ["exception"] * 3 + [None]


def test_four_threads_share_one_scorer():
    results: dict[int, list[float]] = {}
    errors: list[BaseException] = []
    with Scorer(echo_index, workers=2, timeout_s=DEADLINE) as scorer:

        def work(t: int) -> None:
            try:
                completions = [f"c{i}" for i in range(40 + t)]
                samples = [Sample(metadata={"i": 1000 * t + i}) for i in range(40 + t)]
                futures = [scorer.submit(completions, samples) for _ in range(3)]
                outs = [f.result(timeout=60) for f in futures]
                assert outs[0] == outs[1] == outs[2]
                results[t] = [s.reward for s in outs[0]]
            except BaseException as e:  # reported below, in the main thread
                errors.append(e)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert not errors
    assert results == {t: [float(1000 * t + i) for i in range(40 + t)] for t in range(4)}


def test_score_batch_from_two_threads_at_once():
    out: dict[int, list[bool]] = {}

    def work(t: int) -> None:
        completions = ["ok", "raise" if t else "ok", "ok"]
        got = score_batch(misbehave, completions, rows(completions), workers=1, timeout_s=DEADLINE)
        out[t] = [s.passed for s in got]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert out == {0: [True, True, True], 1: [True, False, True]}


def test_combine_runs_in_workers():
    good = "<think>6*7</think><answer>42</answer>"  # 37 characters
    verifier = combine({"format": 1.0, "length": 0.0})
    out = score_batch(verifier, [good, good + " junk"], [Sample(), Sample()], workers=2, timeout_s=DEADLINE)
    assert [s.reward for s in out] == [1.0, 0.0]
    assert out[0].info["rewards"] == {"format": 1.0, "length": 37.0}
    assert out[1].info["format"]["reason"] == "trailing_text" and out[1].passed is False


def test_names_options_and_entry_point_plugins_resolve_in_workers(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGIN_PATH))  # workers inherit sys.path
    fmt = score_batch(("format", {"partial_credit": True}), ["<answer>1</answer>"], [Sample()], workers=1)
    assert fmt[0].reward == 0.5
    out = score_batch("demo_shout", ["LOUD", "quiet"], [Sample(), Sample()], workers=1)
    assert [s.passed for s in out] == [True, False] and out[0].info == {"plugin": "rlvr_demo_plugin"}


def test_deadline_defaults_to_the_verifiers_budget_and_workers_know_it_is_enforced():
    assert isinstance(Budgeted(), DeadlineAware)
    with Scorer(Budgeted(), workers=1) as scorer:  # the one deadline, set here, reaches the worker
        assert scorer.timeout_s == pytest.approx(0.2 + 0.5)
        assert scorer.score(["x"], [Sample()])[0].info == {"deadline_s": pytest.approx(0.7)}
    with Scorer(combine({"b": 1.0}, {"b": Budgeted()}), workers=1, timeout_s=3.0) as scorer:  # inside a combine too
        assert scorer.score(["x"], [Sample()])[0].info["b"] == {"deadline_s": 3.0}
    assert Scorer(misbehave, workers=0).timeout_s == 10.0
    in_process = score_batch(Budgeted(), ["x"], [Sample()], workers=0)
    assert in_process[0].info == {"deadline_s": None}  # nobody can kill the calling thread


def test_workers_zero_scores_in_process_with_the_same_report():
    completions = ["ok", "raise", "ok"]
    out = score_batch(misbehave, completions, rows(completions), workers=0)
    assert [s.passed for s in out] == [True, False, True]
    assert out[0].info["pid"] == os.getpid()
    assert out.report.exceptions == 1 and "bad row 1" in out.report.first_traceback


def test_a_verifier_that_cannot_be_built_in_a_worker_fails_clearly():
    with pytest.raises(ScoringError, match="(?s)could not be built in a worker.*cannot load in worker"):
        score_batch(BreaksInWorker(), ["x"], [Sample()], workers=1)


def test_unpicklable_verifier_is_rejected_up_front():
    with pytest.raises(TypeError, match="cannot be sent to worker processes.*module level"):
        Scorer(lambda c, s: Score(1.0), workers=1)


def test_bad_inputs_name_the_position():
    with pytest.raises(ValueError, match="2 completions but 1 samples"):
        score_batch(misbehave, ["a", "b"], [Sample()], workers=0)
    with pytest.raises(TypeError, match=r"completions\[1\] is int, not str"):
        score_batch(misbehave, ["a", 3], [Sample(), Sample()], workers=0)
    with pytest.raises(TypeError, match=r"samples\[0\] is str, not Sample or dict"):
        score_batch(misbehave, ["a"], ["row"], workers=0)
    assert score_batch(misbehave, [], [], workers=2) == []
    with pytest.raises(ValueError, match="timeout_s must be > 0 seconds, got -1"):
        Scorer(misbehave, workers=0, timeout_s=-1)
    with pytest.raises(ValueError, match="workers must be >= 0, got -2"):
        Scorer(misbehave, workers=-2)


def test_close_without_waiting_fails_pending_batches():
    scorer = Scorer(misbehave, workers=1, timeout_s=30)
    fut = scorer.submit(["hang"], [Sample()])
    time.sleep(0.2)
    scorer.close(wait=False)
    with pytest.raises(ScoringError, match="closed"):
        fut.result(timeout=10)
    with pytest.raises(RuntimeError, match="closed"):
        scorer.submit(["ok"], [Sample()])


def test_close_waits_for_queued_batches():
    scorer = Scorer(misbehave, workers=1, timeout_s=DEADLINE)
    futures = [scorer.submit(["nap", "ok"], rows(["nap", "ok"])) for _ in range(3)]
    scorer.close()  # wait=True: queued batches are scored before the workers stop
    assert [[s.passed for s in f.result(timeout=0)] for f in futures] == [[True, True]] * 3


@pytest.mark.parametrize("kind", ["tqdm", "rich"])
def test_progress_bars(kind, capsys):
    out = score_batch(misbehave, ["ok"] * 5, rows(["ok"] * 5), workers=0, progress=kind)
    assert out.report.passed == 5
    with pytest.raises(ValueError, match="progress must be"):
        score_batch(misbehave, ["ok"], [Sample()], workers=0, progress="bar")


def test_verifiers_defined_in_main_work_from_a_script_not_from_a_repl(tmp_path):
    import subprocess
    import sys

    body = (
        "from rlvr.scoring import score_batch\n"
        "from rlvr.verifiers import Sample, Score\n"
        "def mine(c, s):\n"
        "    return Score(1.0, True, {'module': __name__})\n"
    )
    script = tmp_path / "user_script.py"
    script.write_text(
        body
        + "if __name__ == '__main__':\n    print(score_batch(mine, ['a'], [Sample()], workers=1)[0].info)\n"
    )
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert run.stdout.strip() == "{'module': '__mp_main__'}", run.stderr  # re-imported in the worker
    repl = (
        body
        + "try:\n    score_batch(mine, ['a'], [Sample()], workers=1)\nexcept TypeError as e:\n    print(e)\n"
    )
    run = subprocess.run([sys.executable, "-c", repl], capture_output=True, text=True, timeout=120)
    assert "interactive __main__" in run.stdout, run.stderr


def test_a_sample_that_cannot_be_sent_to_a_worker_is_an_exception_not_a_hang():
    samples = [
        Sample(metadata={"i": 0}),
        Sample(metadata={"i": 1, "handle": threading.Lock()}),
        Sample(metadata={"i": 2}),
    ]
    out = score_batch(
        misbehave, ["ok"] * 3, samples, workers=1, timeout_s=DEADLINE, max_exception_fraction=None
    )
    assert [s.passed for s in out] == [True, False, True]
    assert out[1].info["error"] == "exception" and "cannot send this sample" in out[1].info["exception"]


def test_a_death_between_items_is_isolated_by_retrying_items_one_by_one():
    completions = ["ok", "poison", "ok", "ok"]
    out = score_batch(poison_on_send, completions, rows(completions), workers=1, timeout_s=DEADLINE)
    assert [s.passed for s in out] == [True, False, True, True]
    assert out[1].info == {"error": "crash", "reason": "crash", "exitcode": 7, "attributed": False}
    # the first death has no suspect (all four results were unsent); each item is then re-run alone,
    # and the poisoned one kills two more workers before it is given up on (2 retries)
    assert (out.report.crashes, out.report.workers_replaced) == (1, 3)


class BatchedLength:
    """A verifier that scores whole batches in `prefetch` (like a learned reward model)."""

    def __init__(self):
        self.batches: list[int] = []
        self.cache: dict[str, float] = {}

    def prefetch(self, completions, samples):
        self.batches.append(len(completions))
        self.cache.update({c: float(len(c)) for c in completions})

    def __call__(self, completion, sample):
        return Score(self.cache.pop(completion), None)


def test_in_process_scorer_lets_batched_verifiers_prefetch_the_whole_batch():
    verifier = BatchedLength()
    assert isinstance(verifier, BatchVerifier)
    with Scorer(verifier, workers=0) as scorer:
        out = scorer.score(["a", "bbb", "cc"], rows(["a", "bbb", "cc"]))
    assert [s.reward for s in out] == [1.0, 3.0, 2.0]
    assert verifier.batches == [3]
    # inside a combine inside a combine, the batch verifier is found and prefetched once per batch
    inner = BatchedLength()
    nested = combine({"outer": 1.0, "fmt": 0.0}, {"outer": combine({"len": 1.0}, {"len": inner}), "fmt": "format"})
    assert batched_components(nested) == [inner] and batched_components(combine({"fmt": 1.0}, {"fmt": "format"})) == []
    with Scorer(nested, workers=0) as scorer:
        assert [s.reward for s in scorer.score(["a", "bb"], rows(["a", "bb"]))] == [1.0, 2.0]
    assert inner.batches == [2]
