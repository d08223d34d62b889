"""Run any verifier over a batch of (completion, sample) pairs in worker processes, with deadlines.

This is the only place in rlvr that handles concurrency for verifiers. Two entry points:

- `score_batch(verifier, completions, samples)` scores one batch and returns a `ScoredBatch` (a
  ``list[Score]`` in input order, with a `.report` attribute);
- `Scorer(verifier)`, a context manager that keeps its workers alive across calls. The trainer keeps
  one open and calls `submit(...)`, which returns a `Future[ScoredBatch]`, so scoring overlaps
  generation. Any thread may call `submit` at any time.

Failure semantics (failures are data, bugs are never silent):

- an item that overruns its deadline gets ``Score(0.0, False, {"error": "timeout", ...})``; its
  worker is killed and replaced, and the other items of its chunk are kept (those already reported)
  or re-run on a fresh worker (the rest);
- an item during which the worker dies (``os._exit``, SIGKILL, a segfault) gets
  ``info["error"] = "crash"`` with the exit code. A death between items (say, while sending
  results) has no single suspect: the unreported items are re-run one per chunk, and an item that
  kills 3 workers this way gets ``"crash"`` with ``"attributed": False``;
- an item whose verifier raises (or returns no `Score`, or a non-finite reward) gets
  ``info["error"] = "exception"`` and ``info["exception"]`` (the message). The report counts
  exceptions by type and keeps the first traceback, which is also logged (logger ``rlvr.scoring``).
  When more than ``max_exception_fraction`` of a batch raised (default 0.5), the future fails with
  `ScoringError`, whose ``.scores`` and ``.report`` still hold the results: a verifier that is
  broken is a bug to fix, not a reward of 0 to train on.

How it works: workers are started through the ``forkserver`` method, which is safe to use from any
thread (no ``fork`` of a threaded parent, no ``signal.alarm``). The fork server preloads modules
(``sympy``, rlvr's verifier modules, your main module's package), so replacing a worker is a fork,
not a fresh interpreter. Items travel in chunks to amortise IPC; each worker writes "item k of chunk
c started at t" into a shared array before each item, so the parent enforces a per-item deadline
that starts when the previous item finished, and knows exactly which item hung or crashed.
One dispatcher per Scorer (`rlvr._scoring_dispatch._Dispatcher`, which the Scorer holds) owns the
workers and all pipes on its own thread; `submit` only enqueues. The per-item deadline is set once
here (``timeout_s``) and handed to every worker, whose verifier is told it (`under_deadline`).

What it does not do: sandbox code (that is `rlvr.sandboxes`), or retry an item that timed out.
``workers=0`` scores in the calling thread: same API and reports, but no deadline can be enforced
there unless the verifier enforces its own (the math verifier does).

Verifiers must be picklable: a registered name (``"math"``, ``("math", {"timeout_s": 2})``), a
`combine(...)`, or a function or class instance defined at module level. A function defined in a
script run as ``python script.py`` is fine (workers re-import the script as ``__mp_main__``, so keep
its top level under ``if __name__ == "__main__":``); one typed in a REPL or notebook is not, so put
it in a module or use ``workers=0``.

Try it::

    >>> from rlvr.scoring import score_batch
    >>> from rlvr.verifiers import Sample
    >>> out = score_batch("format", ["<think>2+2</think><answer>4</answer>"], [Sample(answer="4")])
    >>> out[0].passed, out.report.rows_per_s > 0
    (True, True)
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from rlvr._scoring_dispatch import MAX_CHUNK as MAX_CHUNK  # re-exported: it was defined here
from rlvr._scoring_dispatch import _Dispatcher
from rlvr._scoring_worker import (
    ScoredBatch,
    ScoringError,
    ScoringReport,
    _Batch,
    _Progress,
    _run_item,
    _validate,
)
from rlvr.verifiers.base import declared_timeout, prefetch, resolve_verifier

__all__ = ["DEFAULT_TIMEOUT_S", "ScoredBatch", "Scorer", "ScoringError", "ScoringReport", "score_batch"]

log = logging.getLogger("rlvr.scoring")

DEFAULT_TIMEOUT_S = 10.0  # per item, when the verifier declares no `timeout_s`
DEADLINE_MARGIN_S = 0.5  # added to a verifier's own `timeout_s`


# ----------------------------------------------------------------------------- the pool
def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Scorer:
    """A pool of verifier worker processes, kept alive across batches.

    verifier: a registered name, a ``(name, options)`` pair, a `combine(...)`, or a picklable callable.
    workers: worker processes (default: the CPUs this process may use); 0 scores in the calling thread.
    timeout_s: per-item deadline; default the verifier's own ``timeout_s`` + 0.5 s, else 10 s.
    progress: False, True (tqdm, else rich), "tqdm" or "rich": a progress bar per batch.
    max_exception_fraction: fail a batch's future with `ScoringError` when more than this fraction
        of its items raised; None never fails (the report still counts them).
    chunk_size: items sent to a worker at once (default: a quarter of a batch per worker, <= 256).
    preload: extra modules for the fork server to import once (cheap worker replacement); only
        honoured by the first Scorer of a process, which starts the fork server.

    >>> from rlvr.verifiers import Sample
    >>> with Scorer("format", workers=1) as scorer:
    ...     fut = scorer.submit(["<think>x</think><answer>1</answer>", "1"], [Sample(), Sample()])
    ...     [s.passed for s in fut.result()]
    [True, False]
    """

    def __init__(
        self,
        verifier: Any,
        *,
        workers: int | None = None,
        timeout_s: float | None = None,
        progress: bool | str = False,
        max_exception_fraction: float | None = 0.5,
        chunk_size: int | None = None,
        preload: Sequence[str] = (),
    ):
        self.spec = verifier
        self.workers = _default_workers() if workers is None else int(workers)
        if self.workers < 0:
            raise ValueError(f"Scorer: workers must be >= 0, got {workers}")
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"Scorer: timeout_s must be > 0 seconds, got {timeout_s}")
        if chunk_size is not None and not 1 <= chunk_size < 1 << 20:
            raise ValueError(f"Scorer: chunk_size must be in [1, 2**20), got {chunk_size}")
        own = declared_timeout(verifier)
        default = own + DEADLINE_MARGIN_S if own else DEFAULT_TIMEOUT_S
        self.timeout_s = float(timeout_s) if timeout_s else default
        self.progress, self.chunk_size = progress, chunk_size
        self.max_exception_fraction = max_exception_fraction
        self.stats = ScoringReport()  # cumulative over all batches
        self._lock = threading.Lock()
        self._closed = False
        self._dispatch: _Dispatcher | None = None
        if self.workers == 0:
            self._local = resolve_verifier(verifier)
            self._serial = threading.Lock()  # a stateful verifier sees one call at a time
            return
        self._dispatch = _Dispatcher(verifier, workers=self.workers, timeout_s=self.timeout_s, chunk_size=chunk_size,
                                     preload=preload, finish=self._finish)
        _LIVE.add(self)

    # ------------------------------------------------------------------ public API
    def submit(self, completions: Sequence[str], samples: Sequence[Any]) -> Future[ScoredBatch]:
        """Queue a batch; the future's result is a `ScoredBatch` in input order. Thread-safe."""
        checked = _validate(completions, samples)
        if self._closed:
            raise RuntimeError("Scorer is closed")
        fut: Future = Future()
        fut.set_running_or_notify_cancel()
        batch = _Batch(fut, list(completions), checked, _Progress(self.progress, len(checked)))
        if self._dispatch is None:  # in the calling thread, one batch at a time: no deadline here
            with self._serial:
                # Batch verifiers (a learned reward model, alone or in a combine) score the whole
                # batch at once first; the per-item calls below then hit their cache.
                prefetch(self._local, batch.completions, batch.samples)
                for i, (c, s) in enumerate(zip(batch.completions, batch.samples)):
                    batch.put(i, *_run_item(self._local, c, s))
            self._finish(batch)
            return fut
        self._dispatch.submit(batch)
        return fut

    def score(self, completions: Sequence[str], samples: Sequence[Any]) -> ScoredBatch:
        """Score one batch and wait for it: ``submit(...).result()``."""
        return self.submit(completions, samples).result()

    def close(self, wait: bool = True) -> None:
        """Stop the workers. wait=True finishes queued batches first; wait=False fails them."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._dispatch is not None:
            self._dispatch.close(wait)
            _LIVE.discard(self)

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(wait=exc_type is None)

    def __repr__(self) -> str:
        return f"Scorer({self.spec!r}, workers={self.workers}, timeout_s={self.timeout_s})"

    # ------------------------------------------------------------------ a finished batch
    # (called on the dispatcher thread, or in the calling thread with workers=0)
    def _finish(self, batch: _Batch) -> None:
        result = batch.close()
        report = result.report
        with self._lock:
            first = self.stats.first_traceback
            self.stats.merge(report)
        if report.first_traceback and first is None:
            log.warning(
                "verifier raised on %d of %d item(s) %s; first traceback:\n%s",
                report.exceptions,
                report.n,
                dict(report.exception_types),
                report.first_traceback,
            )
        frac = self.max_exception_fraction
        if frac is not None and report.n and report.exceptions > frac * report.n:
            batch.future.set_exception(
                ScoringError(
                    f"{report.exceptions}/{report.n} items raised {dict(report.exception_types)} "
                    f"(max_exception_fraction={frac}); first traceback:\n{report.first_traceback}",
                    scores=result,
                    report=report,
                )
            )
        else:
            batch.future.set_result(result)


_LIVE: weakref.WeakSet[Scorer] = weakref.WeakSet()


@atexit.register
def _close_live() -> None:
    for scorer in list(_LIVE):
        try:
            scorer.close(wait=False)
        except Exception:
            pass


def score_batch(
    verifier: Any,
    completions: Sequence[str],
    samples: Sequence[Any],
    *,
    workers: int | None = None,
    timeout_s: float | None = None,
    progress: bool | str = False,
    max_exception_fraction: float | None = 0.5,
) -> ScoredBatch:
    """Score one batch in fresh worker processes; return Scores in input order (with ``.report``).

    ``samples`` holds `Sample`s or dict rows (see `Sample.from_row`). Arguments as for `Scorer`;
    for many batches keep a `Scorer` open instead, which keeps its workers.

    >>> from rlvr.verifiers import Sample
    >>> [s.reward for s in score_batch("format", ["<answer>3</answer>"], [Sample()], workers=0)]
    [0.0]
    """
    workers = _default_workers() if workers is None else workers
    workers = min(workers, max(len(samples), 1))
    with Scorer(
        verifier,
        workers=workers,
        timeout_s=timeout_s,
        progress=progress,
        max_exception_fraction=max_exception_fraction,
    ) as scorer:
        return scorer.submit(completions, samples).result()
