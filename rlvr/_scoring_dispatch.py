"""Internals of `rlvr.scoring`: the dispatcher thread that owns a `Scorer`'s worker processes.

`_Dispatcher` owns a `rlvr.scoring.Scorer`'s worker processes and runs its dispatcher thread
(`_run`): it cuts batches into chunks, starts workers (`_spawn`, each told the per-item deadline
the Scorer set), sends chunks, collects results, enforces that deadline from the shared
start-time array (`_running`, `_check_deadlines`), and on a timeout or a death kills the worker,
blames the item it was running and requeues the rest (`_lost`). The `Scorer` holds one and gives
it a ``finish`` callback (turning a finished batch into a result or a `ScoringError`). The
failure semantics are documented in `rlvr.scoring`.

What it does not do: run verifiers (the worker loop is `rlvr._scoring_worker._worker_main`) or
offer any public name: import from `rlvr.scoring`.

Try it: through `rlvr.scoring.Scorer`::

    >>> from rlvr.scoring import Scorer
    >>> from rlvr.verifiers import Sample
    >>> with Scorer("format", workers=1) as scorer:
    ...     [s.passed for s in scorer.score(["<think>x</think><answer>1</answer>"], [Sample()])]
    [True]
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait as _wait
from typing import Any

from rlvr._scoring_worker import ScoringError, _Batch, _Chunk, _mp_context, _worker_main

log = logging.getLogger("rlvr.scoring")

MAX_CHUNK = 256  # items per chunk, at most
_STARTUP_TIMEOUT_S = 120.0  # a worker not ready by then counts as failing to start
_MAX_RETRIES = 2  # re-runs of an item after crashes that cannot be attributed to one item


class _Worker:
    def __init__(self, proc: Any, conn: Any, slot: int):
        self.proc, self.conn, self.slot = proc, conn, slot
        self.ready = False
        self.chunk: _Chunk | None = None
        self.born = time.monotonic_ns()


class _Dispatcher:
    """A `Scorer`'s worker processes and the thread that owns them (a `Scorer` holds one).

    Any thread may call `submit` and `close`; everything else runs on the dispatcher thread, which
    owns all pipes. A finished batch goes to ``finish(batch)`` (the Scorer turns it into a result
    or a `ScoringError`), called on the dispatcher thread.
    """

    def __init__(self, spec: Any, *, workers: int, timeout_s: float, chunk_size: int | None,
                 preload: Sequence[str], finish: Callable[[_Batch], None]):
        self.workers, self.timeout_s, self.chunk_size = workers, timeout_s, chunk_size
        self._finish = finish
        self._ctx, self._spec_blob = _mp_context(spec, preload)
        self._slots = self._ctx.RawArray("q", 2 * workers)  # per worker: (seq<<20|pos)*2+done, t0 ns
        self._lock = threading.Lock()
        self._closed = self._cancel = False
        self._broken: str | None = None
        self._inbox: deque[_Batch] = deque()
        self._pool: list[_Worker | None] = [None] * workers
        self._queue: deque[_Chunk] = deque()
        self._active: set[_Batch] = set()
        self._start_failures = self._seq = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name="rlvr-scorer", daemon=True)
        self._thread.start()

    def submit(self, batch: _Batch) -> None:
        """Queue `batch` (any thread); raises when closed or broken."""
        with self._lock:
            if self._closed or self._broken:
                batch.progress.close()
                if self._closed:
                    raise RuntimeError("Scorer is closed")
                raise ScoringError(self._broken)
            self._inbox.append(batch)
        self._wake()

    def close(self, wait: bool = True) -> None:
        """Stop the workers: wait=True finishes queued batches first; wait=False fails them."""
        with self._lock:
            if self._closed:
                return
            self._closed, self._cancel = True, not wait
        self._wake()
        self._thread.join()
        with self._lock:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_w = -1

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
            args=(child, self._slots, slot, self._spec_blob, self.timeout_s),
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
