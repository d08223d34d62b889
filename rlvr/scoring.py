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
One dispatcher thread per Scorer owns all pipes; `submit` only enqueues.

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
import pickle
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from multiprocessing.connection import wait as _wait
from typing import Any

from rlvr._scoring_worker import (
    ScoredBatch,
    ScoringError,
    ScoringReport,
    _Batch,
    _Chunk,
    _mp_context,
    _Progress,
    _run_item,
    _validate,
    _worker_main,
)
from rlvr.verifiers.base import declared_timeout, resolve_verifier

__all__ = ["DEFAULT_TIMEOUT_S", "ScoredBatch", "Scorer", "ScoringError", "ScoringReport", "score_batch"]

log = logging.getLogger("rlvr.scoring")

DEFAULT_TIMEOUT_S = 10.0  # per item, when the verifier declares no `timeout_s`
DEADLINE_MARGIN_S = 0.5  # added to a verifier's own `timeout_s`
MAX_CHUNK = 256  # items per chunk, at most
_STARTUP_TIMEOUT_S = 120.0  # a worker not ready by then counts as failing to start
_MAX_RETRIES = 2  # re-runs of an item after crashes that cannot be attributed to one item


# ----------------------------------------------------------------------------- the pool
def _default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _Worker:
    def __init__(self, proc: Any, conn: Any, slot: int):
        self.proc, self.conn, self.slot = proc, conn, slot
        self.ready = False
        self.chunk: _Chunk | None = None
        self.born = time.monotonic_ns()


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
        self._closed = self._cancel = False
        self._broken: str | None = None
        if self.workers == 0:
            self._local = resolve_verifier(verifier)
            self._serial = threading.Lock()  # a stateful verifier sees one call at a time
            return
        self._ctx, self._spec_blob = _mp_context(verifier, preload)
        self._slots = self._ctx.RawArray("q", 2 * self.workers)  # per worker: (seq<<20|pos)*2+done, t0 ns
        self._inbox: deque[_Batch] = deque()
        self._pool: list[_Worker | None] = [None] * self.workers
        self._queue: deque[_Chunk] = deque()
        self._active: set[_Batch] = set()
        self._start_failures = self._seq = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="rlvr-scorer", daemon=True)
        self._thread.start()
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
        if self.workers == 0:  # in the calling thread, one batch at a time: no deadline here
            with self._serial:
                for i, (c, s) in enumerate(zip(batch.completions, batch.samples)):
                    batch.put(i, *_run_item(self._local, c, s))
            self._finish(batch)
            return fut
        with self._lock:
            if self._closed or self._broken:
                batch.progress.close()
                if self._closed:
                    raise RuntimeError("Scorer is closed")
                raise ScoringError(self._broken)
            self._inbox.append(batch)
        self._wake()
        return fut

    def score(self, completions: Sequence[str], samples: Sequence[Any]) -> ScoredBatch:
        """Score one batch and wait for it: ``submit(...).result()``."""
        return self.submit(completions, samples).result()

    def close(self, wait: bool = True) -> None:
        """Stop the workers. wait=True finishes queued batches first; wait=False fails them."""
        with self._lock:
            if self._closed:
                return
            self._closed, self._cancel = True, not wait
        if self.workers == 0:
            return
        self._wake()
        self._thread.join()
        with self._lock:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_w = -1
        _LIVE.discard(self)

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.close(wait=exc_type is None)

    def __repr__(self) -> str:
        return f"Scorer({self.spec!r}, workers={self.workers}, timeout_s={self.timeout_s})"

    # ------------------------------------------------------------------ dispatcher thread
    def _wake(self) -> None:
        with self._lock:
            if self._wake_w < 0:
                return
            try:
                os.write(self._wake_w, b"x")
            except OSError:  # the pipe is full: the dispatcher is awake anyway
                pass

    def _run(self) -> None:
        try:
            while True:
                self._take_inbox()
                if self._closed and (self._cancel or not (self._queue or self._active)):
                    break
                self._fill()
                waitables: list[Any] = [self._wake_r]
                for w in self._live():
                    waitables += [w.conn, w.proc.sentinel]
                for obj in _wait(waitables, timeout=self._next_timeout()):
                    if obj == self._wake_r:
                        try:
                            os.read(self._wake_r, 65536)
                        except BlockingIOError:
                            pass
                    else:
                        self._on_ready(obj)
                self._check_deadlines()
        except BaseException as e:  # a bug here must not leave callers waiting forever
            log.exception("rlvr.scoring dispatcher failed")
            self._broken = f"rlvr.scoring dispatcher failed: {e!r}"
        finally:
            self._shutdown()

    def _take_inbox(self) -> None:
        with self._lock:
            batches, self._inbox = list(self._inbox), deque()
        for batch in batches:
            n = len(batch.samples)
            if n == 0:
                self._finish(batch)
                continue
            self._active.add(batch)
            size = self.chunk_size or max(1, min(MAX_CHUNK, -(-n // (4 * self.workers))))
            for lo in range(0, n, size):
                self._queue.append(_Chunk(batch, list(range(lo, min(n, lo + size)))))

    def _live(self) -> list[_Worker]:
        return [w for w in self._pool if w is not None]

    def _fill(self) -> None:
        for i, w in enumerate(self._pool):
            if w is None and not self._broken and (not self._closed or self._queue or self._active):
                self._pool[i] = self._spawn(i)
        for w in self._live():
            while w.ready and w.chunk is None and self._queue:
                chunk = self._queue.popleft()
                if chunk.batch.future.done():
                    continue
                self._seq += 1
                chunk.seq, w.chunk = self._seq, chunk
                try:
                    w.conn.send((chunk.seq, chunk.items()))
                except OSError:
                    pass  # the worker died: its sentinel will say so
                except Exception:  # an unpicklable sample: nothing was sent
                    w.chunk = None
                    self._unpicklable(chunk)

    def _unpicklable(self, chunk: _Chunk) -> None:
        """Score the items that cannot be sent to a worker as exceptions; requeue the others."""
        ok = []
        for i, item in zip(chunk.idxs, chunk.items()):
            try:
                pickle.dumps(item)
                ok.append(i)
            except Exception as e:
                why = f"cannot send this sample to a worker: {e}"
                chunk.batch.put(i, "exception", (type(e).__name__, why, traceback.format_exc()))
        if ok:
            self._queue.appendleft(_Chunk(chunk.batch, ok))
        self._maybe_finish(chunk.batch)

    def _spawn(self, slot: int) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        self._slots[2 * slot] = -1
        proc = self._ctx.Process(
            target=_worker_main,
            args=(child, self._slots, slot, self._spec_blob),
            daemon=True,
            name=f"rlvr-verifier-{slot}",
        )
        proc.start()
        child.close()
        return _Worker(proc, parent, slot)

    def _running(self, w: _Worker) -> tuple[int | None, int]:
        """(position in w's chunk of the item running now, its start in ns), or (None, 0)."""
        key = self._slots[2 * w.slot]  # read the key before the time: the worker writes them reversed
        started = self._slots[2 * w.slot + 1]
        chunk = w.chunk
        if chunk is None or key < 0 or key % 2 or (key >> 21) != chunk.seq:
            return None, 0
        pos = (key >> 1) & 0xFFFFF
        return (None, 0) if pos in chunk.done else (pos, started)

    def _next_timeout(self) -> float | None:
        now, best = time.monotonic_ns(), None
        for w in self._live():
            if w.chunk is None and w.ready:
                continue
            pos, started = self._running(w)
            left = 0.05 if pos is None else max(0.0, (started - now) / 1e9 + self.timeout_s) + 0.001
            best = left if best is None else min(best, left)
        return best

    def _on_ready(self, obj: Any) -> None:
        for w in self._live():
            if obj is w.conn:
                try:
                    self._handle(w, w.conn.recv())
                except (EOFError, OSError):
                    self._lost(w, timed_out=False)
                return
            if obj == w.proc.sentinel:
                self._lost(w, timed_out=False)
                return

    def _drain(self, w: _Worker) -> None:
        try:
            while w.conn.poll(0):
                self._handle(w, w.conn.recv())
        except (EOFError, OSError):
            pass

    def _handle(self, w: _Worker, msg: Any) -> None:
        if msg[0] == "ready":
            w.ready, self._start_failures = True, 0
        elif msg[0] == "init_error":
            self._fail_all(f"the verifier could not be built in a worker process:\n{msg[1]}")
        else:
            seq, records = msg
            chunk = w.chunk
            if chunk is None or chunk.seq != seq:
                return
            for pos, kind, payload in records:
                chunk.done.add(pos)
                chunk.batch.put(chunk.idxs[pos], kind, payload)
            if len(chunk.done) == len(chunk.idxs):
                w.chunk = None
            self._maybe_finish(chunk.batch)

    def _check_deadlines(self) -> None:
        now = time.monotonic_ns()
        for w in self._live():
            if not w.ready and now - w.born > _STARTUP_TIMEOUT_S * 1e9:
                self._lost(w, timed_out=False)
                continue
            pos, started = self._running(w)
            if pos is not None and now - started > self.timeout_s * 1e9:
                self._drain(w)  # results flushed just before the hang are kept
                if self._running(w) == (pos, started):
                    self._lost(w, timed_out=True)

    def _lost(self, w: _Worker, *, timed_out: bool) -> None:
        """Kill `w` if alive, blame the item it was running, requeue the rest of its chunk."""
        culprit = self._running(w)[0]
        w.proc.kill()
        w.proc.join(5)
        self._drain(w)  # anything it sent before dying
        culprit = self._running(w)[0] if culprit is not None else None
        exitcode = w.proc.exitcode
        w.conn.close()
        self._pool[w.slot] = None
        if not w.ready:
            self._start_failures += 1
            if self._start_failures >= 3:
                self._fail_all(f"verifier workers keep dying at startup (exit code {exitcode})")
        chunk, w.chunk = w.chunk, None
        if chunk is None or chunk.batch.future.done():
            return
        batch = chunk.batch
        batch.report.workers_replaced += 1
        if culprit is not None:
            extra = {"deadline_s": self.timeout_s} if timed_out else {"exitcode": exitcode}
            batch.put(chunk.idxs[culprit], "timeout" if timed_out else "crash", extra)
        retry = []
        for p in range(len(chunk.idxs)):
            i = chunk.idxs[p]
            if p in chunk.done or p == culprit:
                continue
            if culprit is None:  # died between items: nobody to blame, re-run a bounded number of times
                batch.retries[i] = batch.retries.get(i, 0) + 1
                if batch.retries[i] > _MAX_RETRIES:
                    batch.put(i, "crash", {"exitcode": exitcode, "attributed": False})
                    continue
            retry.append(i)
        if retry and culprit is None:  # one item per chunk, so that the next death has one suspect
            self._queue.extendleft(_Chunk(batch, [i]) for i in reversed(retry))
        elif retry:
            self._queue.appendleft(_Chunk(batch, retry))
        self._maybe_finish(batch)

    def _maybe_finish(self, batch: _Batch) -> None:
        if batch.remaining == 0 and batch in self._active:
            self._active.discard(batch)
            self._finish(batch)

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

    def _fail_all(self, why: str) -> None:
        self._broken = why
        for batch in list(self._active):
            if not batch.future.done():
                batch.progress.close()
                batch.future.set_exception(ScoringError(why))
        self._active.clear()
        self._queue.clear()

    def _shutdown(self) -> None:
        for w in self._live():
            try:
                if self._cancel and w.chunk is not None:
                    w.proc.kill()  # busy on a batch nobody will wait for
                else:
                    w.conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 2.0
        for w in self._live():
            w.proc.join(max(0.0, deadline - time.monotonic()))
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(5)
            w.conn.close()
        self._pool = [None] * self.workers
        with self._lock:
            self._broken = self._broken or "Scorer closed before the batch finished"
        self._take_inbox()
        self._fail_all(self._broken)


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
