"""Internals of `rlvr.scoring`: the worker process, per-batch bookkeeping and the `ScoringReport`.

Import the public names from `rlvr.scoring`; this module exists only to keep that one readable.
What lives here: `ScoringReport`/`ScoredBatch`/`ScoringError` (results), `_Batch`/`_Chunk` (what
the dispatcher tracks), `_worker_main` (the loop each worker process runs) and `_mp_context` (the
forkserver context with its preload list). What does not: the dispatcher and every decision about
deadlines, kills and retries (`rlvr._scoring_dispatch`, inherited by `rlvr.scoring.Scorer`).

Try it::

    >>> from rlvr._scoring_worker import ScoringReport
    >>> ScoringReport(n=4, passed=3, elapsed_s=2.0).summary()
    '4 rows, pass rate 75.0%, mean reward 0.000, errors: none, 2.0 rows/s'
"""

from __future__ import annotations

import importlib.util
import math
import multiprocessing
import pickle
import sys
import time
import traceback
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from rlvr.verifiers.base import (
    _BUILTIN_MODULES,
    Combined,
    Sample,
    Score,
    _split_spec,
    resolve_verifier,
    under_deadline,
)

__all__ = ["DEFAULT_PRELOAD", "ScoredBatch", "ScoringError", "ScoringReport"]

DEFAULT_PRELOAD = ("rlvr.verifiers.base", "rlvr.scoring", "sympy")
_FLUSH_NS = 5_000_000  # a worker sends finished results at least every 5 ms (and at chunk end)


# ----------------------------------------------------------------------------- results and reports
@dataclass
class ScoringReport:
    """What happened in one batch (or, in `Scorer.stats`, all batches so far).

    errors counts ``info["error"]`` over all scores (scorer failures ``timeout``, ``crash``,
    ``exception`` and a verifier's own, such as math's ``timeout``); reasons counts ``info["reason"]``.
    exception_types counts exceptions raised by verifier code by class name; first_traceback is the
    traceback (as the worker formatted it) of the first item in input order that raised.
    """

    n: int = 0
    passed: int = 0
    failed: int = 0
    no_opinion: int = 0  # passed is None
    reward_sum: float = 0.0
    timeouts: int = 0
    crashes: int = 0
    exceptions: int = 0
    exception_types: Counter = field(default_factory=Counter)
    first_traceback: str | None = None
    errors: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    workers_replaced: int = 0
    elapsed_s: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return self.n / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def pass_rate(self) -> float:
        return self.passed / self.n if self.n else 0.0

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.n if self.n else 0.0

    def merge(self, other: ScoringReport) -> None:
        for name in (
            "n",
            "passed",
            "failed",
            "no_opinion",
            "reward_sum",
            "timeouts",
            "crashes",
            "exceptions",
            "workers_replaced",
            "elapsed_s",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("exception_types", "errors", "reasons"):
            getattr(self, name).update(getattr(other, name))
        self.first_traceback = self.first_traceback or other.first_traceback

    def summary(self) -> str:
        """One line: rows, pass rate, mean reward, errors, rows/s."""
        errs = ", ".join(f"{k}={v}" for k, v in self.errors.most_common()) or "none"
        return (
            f"{self.n} rows, pass rate {self.pass_rate:.1%}, mean reward {self.mean_reward:.3f}, "
            f"errors: {errs}, {self.rows_per_s:.1f} rows/s"
        )


class ScoredBatch(list):
    """A ``list[Score]`` in input order, with the batch's `ScoringReport` as ``.report``."""

    report: ScoringReport

    def __init__(self, scores: Sequence[Score] = (), report: ScoringReport | None = None):
        super().__init__(scores)
        self.report = report or ScoringReport()


class ScoringError(RuntimeError):
    """Scoring could not be done properly; ``.scores`` and ``.report`` hold what was scored."""

    def __init__(self, message: str, scores: ScoredBatch | None = None, report: ScoringReport | None = None):
        super().__init__(message)
        self.scores, self.report = scores, report


def _validate(completions: Sequence[str], samples: Sequence[Any]) -> list[Sample]:
    if len(completions) != len(samples):
        raise ValueError(f"{len(completions)} completions but {len(samples)} samples")
    out = []
    for i, (c, s) in enumerate(zip(completions, samples)):
        if not isinstance(c, str):
            raise TypeError(f"completions[{i}] is {type(c).__name__}, not str")
        if isinstance(s, Mapping):
            s = Sample.from_row(s)
        elif not isinstance(s, Sample):
            raise TypeError(f"samples[{i}] is {type(s).__name__}, not Sample or dict")
        out.append(s)
    return out


def _run_item(verifier: Any, completion: str, sample: Sample) -> tuple[str, Any]:
    """("ok", Score) or ("exception", (type name, message, traceback))."""
    try:
        score = verifier(completion, sample)
        if not isinstance(score, Score):
            raise TypeError(f"verifier returned {type(score).__name__}, not Score")
        reward = float(score.reward)  # numpy and torch scalars become floats; a string raises
        if not math.isfinite(reward):
            raise ValueError(f"verifier returned a non-finite reward {score.reward!r}")
        passed = None if score.passed is None else bool(score.passed)
        suspicious = None if score.suspicious is None else bool(score.suspicious)
        if reward is not score.reward or passed is not score.passed or suspicious is not score.suspicious:
            score = Score(reward, passed, score.info, suspicious)
        return "ok", score
    except BaseException as e:  # SystemExit in verifier code is a bug too; SIGINT is ignored in workers
        return "exception", (type(e).__name__, str(e)[:500], traceback.format_exc())


class _Progress:
    def __init__(self, kind: bool | str, total: int):
        self.bar: Any = None
        self.rich: Any = None
        if kind in (True, "tqdm"):
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc="scoring", unit="row", dynamic_ncols=True)
                return
            except ImportError:
                if kind == "tqdm":
                    raise
        if kind in (True, "rich"):
            from rich.progress import Progress

            self.rich = Progress()
            self.task = self.rich.add_task("scoring", total=total)
            self.rich.start()
        elif kind not in (False, None, True, "tqdm"):
            raise ValueError(f"progress must be False, True, 'tqdm' or 'rich', got {kind!r}")

    def update(self, k: int) -> None:
        if self.bar is not None:
            self.bar.update(k)
        elif self.rich is not None:
            self.rich.update(self.task, advance=k)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.rich is not None:
            self.rich.stop()


class _Batch:
    def __init__(self, future: Future, completions: list[str], samples: list[Sample], progress: _Progress):
        self.future, self.completions, self.samples, self.progress = future, completions, samples, progress
        self.scores: list[Score | None] = [None] * len(samples)
        self.remaining = len(samples)
        self.retries: dict[int, int] = {}
        self.first_tb_index = len(samples)
        self.report = ScoringReport()
        self.t0 = time.perf_counter()

    def put(self, i: int, kind: str, payload: Any) -> None:
        if self.scores[i] is not None:
            return
        r = self.report
        if kind == "ok":
            score = payload
        elif kind == "exception":
            name, msg, tb = payload
            r.exceptions += 1
            r.exception_types[name] += 1
            if i < self.first_tb_index:  # "first" in input order, whichever worker finished first
                r.first_traceback, self.first_tb_index = tb, i
            score = Score(
                0.0, False, {"error": "exception", "reason": "exception", "exception": f"{name}: {msg}"}
            )
        else:  # "timeout" or "crash", payload: extra info
            r.timeouts += kind == "timeout"
            r.crashes += kind == "crash"
            # `reason` matches what verifiers that time out on their own report.
            score = Score(0.0, False, {"error": kind, "reason": kind, **payload})
        self.scores[i] = score
        self.remaining -= 1
        self.progress.update(1)

    def close(self) -> ScoredBatch:
        r = self.report
        for s in self.scores:
            r.n += 1
            r.reward_sum += float(s.reward)
            r.passed += s.passed is True
            r.failed += s.passed is False
            r.no_opinion += s.passed is None
            info = s.info if isinstance(s.info, dict) else {}
            if info.get("error"):
                r.errors[str(info["error"])] += 1
            if info.get("reason"):
                r.reasons[str(info["reason"])] += 1
        r.elapsed_s = time.perf_counter() - self.t0
        self.progress.close()
        return ScoredBatch(self.scores, r)


class _Chunk:
    def __init__(self, batch: _Batch, idxs: list[int]):
        self.batch, self.idxs = batch, idxs
        self.done: set[int] = set()  # positions in idxs whose result arrived
        self.seq = 0

    def items(self) -> list[tuple[str, Sample]]:
        return [(self.batch.completions[i], self.batch.samples[i]) for i in self.idxs]


# ----------------------------------------------------------------------------- worker process
def _die_with_parent() -> None:
    try:  # Linux: SIGKILL this worker when the fork server (hence the parent) goes away
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _send(conn: Any, seq: int, records: list[tuple[int, str, Any]]) -> None:
    try:
        conn.send((seq, records))
    except (pickle.PicklingError, TypeError, AttributeError):
        fixed = []
        for pos, kind, payload in records:
            try:
                pickle.dumps(payload)
            except Exception as e:
                why = f"Score is not picklable: {e}"
                kind, payload = "exception", (type(e).__name__, why, traceback.format_exc())
            fixed.append((pos, kind, payload))
        conn.send((seq, fixed))


def _worker_main(conn: Any, slots: Any, slot: int, spec_blob: bytes, deadline_s: float) -> None:
    """Build the verifier (in its `under_deadline` form: the parent kills an item after
    `deadline_s`), then score chunks until told to stop (None) or the pipe closes.

    Before each item it writes (chunk seq, position) and the start time into ``slots`` so that the
    parent can enforce the deadline and blame the right item; after it, the "done" mark (odd key).
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _die_with_parent()
    try:
        verifier = under_deadline(resolve_verifier(pickle.loads(spec_blob)), deadline_s)
    except BaseException:
        conn.send(("init_error", traceback.format_exc()))
        return
    conn.send(("ready",))
    k, t = 2 * slot, 2 * slot + 1
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        seq, items = msg
        out: list[tuple[int, str, Any]] = []
        flushed, last = time.monotonic_ns(), len(items) - 1
        for pos, (completion, sample) in enumerate(items):
            key = ((seq << 20) | pos) * 2
            slots[t] = time.monotonic_ns()
            slots[k] = key
            out.append((pos, *_run_item(verifier, completion, sample)))
            slots[k] = key + 1
            now = time.monotonic_ns()
            if pos == last or now - flushed > _FLUSH_NS:
                _send(conn, seq, out)
                out, flushed = [], now


def _modules_of(spec: Any) -> list[str]:
    named = _split_spec(spec)
    if named is not None:
        return [m for m in [_BUILTIN_MODULES.get(named[0])] if m]
    if isinstance(spec, Combined):
        return [m for _, sub in spec.components.values() for m in _modules_of(sub)]
    mod = getattr(spec, "__module__", None) or type(spec).__module__
    return [mod] if mod and mod not in ("__main__", "builtins") else []


def _modules_of_callables(spec: Any) -> set[str]:
    """Modules that define the callables in `spec` (to spot ones a worker cannot import)."""
    if _split_spec(spec) is not None:
        return set()
    if isinstance(spec, Combined):
        return {m for _, sub in spec.components.values() for m in _modules_of_callables(sub)}
    fn = getattr(spec, "fn", spec)  # a bound function verifier keeps its function in .fn
    return {getattr(fn, "__module__", None) or type(fn).__module__}


def _mp_context(spec: Any, preload: Sequence[str]) -> tuple[Any, bytes]:
    try:
        blob = pickle.dumps(spec)
    except Exception as e:
        raise TypeError(
            f"verifier {spec!r} cannot be sent to worker processes ({type(e).__name__}: {e}). Define it at "
            "module level (not a lambda or closure; not in a REPL or notebook), pass a registered name, or "
            "use workers=0."
        ) from e
    main = sys.modules.get("__main__")
    if "__main__" in _modules_of_callables(spec) and not getattr(main, "__file__", None):
        raise TypeError(
            f"verifier {spec!r} is defined in an interactive __main__ (a REPL or notebook), which worker "
            "processes cannot import. Put it in a module, or use workers=0."
        )
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn"), blob
    from multiprocessing import forkserver

    if getattr(forkserver._forkserver, "_forkserver_pid", None) is None:  # not started yet
        mods = ["__main__"]
        main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        if main_spec is not None and main_spec.name:
            mods.append(main_spec.name.split(".")[0])  # e.g. "pytest" for `python -m pytest`
        for m in [*DEFAULT_PRELOAD, *_modules_of(spec), *preload]:
            if m not in mods and importlib.util.find_spec(m.split(".")[0]) is not None:
                mods.append(m)
        forkserver.set_forkserver_preload(mods)
    return multiprocessing.get_context("forkserver"), blob
