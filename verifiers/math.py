"""`get_verifier("math")`: exact, bounded-time checking of a completion's final answer.

Two verbs and one verifier:

- `extract_answer(completion) -> str | None`: the final answer (last `\\boxed{}`, `<answer>` tags
  that beat `<think>` drafts, GSM8K `####`, "Final Answer: …", "The answer is …"); None when the
  completion has no final answer (we never fall back to an intermediate number).
- `is_equivalent(pred, gold, timeout_s=1.0) -> bool`: exact mathematical equality of two answer
  strings, with the gold in its dataset's own style (plain GSM8K numbers, MATH LaTeX).
- `MathVerifier` (registered as "math"): ``Score(reward 1.0/0.0, passed, info={"extracted",
  "reason", …})`` with reason one of match, no_final_answer, mismatch, parse_error, timeout.

How time stays bounded: cleaning and parsing are linear-ish with length caps; numbers, fractions
and decimals are compared as exact rationals in-process (no sympy, no IPC: most GSM8K rows);
power towers and huge factorials are refused by size estimates; anything left goes to sympy in a
killable helper process (`_math_pool`), or in-process in the `under_deadline` form a scoring
worker runs (its parent already kills us on overrun). No `signal.alarm`: safe from any thread.
See docs/math_verifier.md for the rules and decisions.

Try it::

    >>> from rlvr.verifiers import Sample, get_verifier
    >>> v = get_verifier("math")
    >>> v("So the total is \\\\boxed{1,000}.", Sample(answer="1000")).passed
    True
    >>> is_equivalent("0.5", "\\\\frac{1}{2}"), is_equivalent("0.333", "\\\\frac13")
    (True, False)
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from rlvr.verifiers._math_clean import clean, small_cache
from rlvr.verifiers._math_compare import FastBackend, NeedSympy, equal
from rlvr.verifiers._math_extract import extract_answer, find_boxed
from rlvr.verifiers._math_normalize import structure
from rlvr.verifiers._math_parse import TooLarge
from rlvr.verifiers.base import Sample, Score, register_verifier

__all__ = ["MathVerifier", "compare", "extract_answer", "gold_answer", "is_equivalent", "warmup"]

REASONS = ("match", "no_final_answer", "mismatch", "parse_error", "timeout")
_FAST = FastBackend()
_NEED_SYMPY = "need_sympy"
_SYMPY_CACHE: dict[tuple[str, str], tuple[bool, str, str]] = {}
_SYMPY_CACHE_MAX = 50_000
_CACHE_LOCK = threading.Lock()
_WARM = threading.Event()


def gold_answer(answer: Any) -> str:
    """The gold answer as a string: numbers as written, a GSM8K solution's `####` tail, or a MATH
    solution's last `\\boxed{}`; anything else is used as is."""
    if isinstance(answer, bool):
        return str(answer)
    if isinstance(answer, int):
        return str(answer)
    if isinstance(answer, float):
        return str(Fraction(repr(answer))) if math.isfinite(answer) else repr(answer)
    if isinstance(answer, (list, tuple, set)):
        return ", ".join(gold_answer(a) for a in answer)
    s = str(answer).strip()
    if "####" in s:
        return s.rsplit("####", 1)[1].strip()
    if "\\boxed" in s or "\\fbox" in s:
        return find_boxed(s) or s
    return s


def _has_raw(t: Any) -> bool:
    if not isinstance(t, tuple) or not t:
        return False
    if t[0] in ("raw", "bad"):
        return True
    return any(_has_raw(x) for x in t[1:] if isinstance(x, tuple))


@small_cache(maxsize=32_768)
def _fast(pc: str, gc: str) -> tuple[bool, str, str] | str:
    """(ok, reason, detail) decided without sympy, or _NEED_SYMPY."""
    if pc == gc:
        return True, "match", ""
    pt, gt = structure(pc), structure(gc)
    if gt[0] == "bad":
        return False, "parse_error", f"gold: {gt[1]}"
    if pt[0] == "bad":
        return False, "parse_error", str(pt[1])
    try:
        ok = equal(pt, gt, _FAST)
    except NeedSympy:
        return _NEED_SYMPY
    except TooLarge as e:
        return False, "parse_error", f"too_large: {e}"
    return ok, ("match" if ok else "parse_error" if _has_raw(pt) else "mismatch"), ""


_WARM_LOCK = threading.Lock()
_INLINE_READY = threading.Event()


def warmup(in_process: bool | None = None) -> None:
    """Get sympy ready before the first call needs it (idempotent; ~1 s once per process).

    In the helper-pool mode this starts the pool and waits for one worker; in-process (inside a
    scoring worker) it imports and primes sympy here. `MathVerifier(warmup=True)` calls it, so no
    later call pays the start-up inside its time budget.
    """
    in_process = bool(in_process)
    with _WARM_LOCK:
        if in_process and not _INLINE_READY.is_set():
            from rlvr.verifiers._math_sympy import SympyBackend
            from rlvr.verifiers._math_worker import prime

            prime(SympyBackend())
            _INLINE_READY.set()
        elif not in_process and not _WARM.is_set():
            from rlvr.verifiers._math_pool import get_pool

            if get_pool().warmup():
                _WARM.set()


def _sympy_compare(pc: str, gc: str, deadline: float, in_process: bool) -> tuple[bool, str, str]:
    pt, gt = structure(pc), structure(gc)
    if in_process:
        from rlvr.verifiers._math_sympy import SympyBackend

        try:
            ok = equal(pt, gt, SympyBackend())
        except Exception as e:  # noqa: BLE001 -- as in the helper pool: sympy's failures on odd input are data
            return False, "parse_error", f"error: {type(e).__name__}: {e}"[:200]
    else:
        from rlvr.verifiers._math_pool import get_pool

        pool = get_pool()
        if not _WARM.is_set():  # the one-time pool start is not charged to this call
            warmup(in_process=False)
            deadline = max(deadline, time.monotonic() + 0.5)
        margin = min(0.05, 0.05 * (deadline - time.monotonic()))  # for the kill and the return path
        value, status = pool.run(pt, gt, max(0.0, deadline - time.monotonic() - margin))
        if status == "timeout":
            return False, "timeout", "sympy comparison exceeded the time budget; helper killed"
        if value is None:
            return False, "parse_error", status
        ok = value
    return ok, ("match" if ok else "parse_error" if _has_raw(pt) else "mismatch"), "sympy"


def compare(
    pred: str, gold: Any, timeout_s: float = 1.0, in_process: bool | None = None, use_cache: bool = True
) -> tuple[bool, str, str]:
    """(equal, reason, detail) for an extracted answer `pred` and a gold answer.

    reason is "match", "mismatch", "parse_error" or "timeout". `in_process`: run sympy in this
    process (True) or in the killable helper pool (False or None).
    Sympy results (never timeouts) are cached per (pred, gold) unless `use_cache` is False.
    """
    deadline = time.monotonic() + timeout_s
    pc, gc = clean(pred), clean(gold_answer(gold))
    fast = _fast(pc, gc)
    if fast != _NEED_SYMPY:
        return fast  # type: ignore[return-value]
    key = (pc, gc)
    with _CACHE_LOCK:
        hit = _SYMPY_CACHE.get(key) if use_cache else None
    if hit is not None:
        return hit
    result = _sympy_compare(pc, gc, deadline, bool(in_process))
    if result[1] != "timeout" and use_cache:
        with _CACHE_LOCK:
            if len(_SYMPY_CACHE) >= _SYMPY_CACHE_MAX:
                _SYMPY_CACHE.clear()
            _SYMPY_CACHE[key] = result
    return result


def is_equivalent(pred: str, gold: Any, timeout_s: float = 1.0) -> bool:
    """True when answer `pred` equals `gold` exactly (see docs/math_verifier.md for the rules).

    >>> is_equivalent("x = 2", "2"), is_equivalent("1000001", "1,000,000")
    (True, False)
    """
    return compare(pred, gold, timeout_s)[0]


@register_verifier("math")
@dataclass(frozen=True)
class MathVerifier:
    """Reward 1.0 when the completion's final answer equals the sample's gold answer, else 0.0.

    timeout_s: bound on one call (default 1 s; sympy work beyond it is killed -> "timeout").
    extract: "auto" (the rules of `extract_answer`), "boxed" (only the last \\boxed{}, outside
        <think> first), "answer_tag" (only the last closed <answer>…</answer>: a reward that
        teaches the tags, as in the R1-Zero demo, must not pay for "The answer is 71."), or
        "none" (the whole completion is the answer, e.g. already-extracted answers).
    in_process: run sympy in this process (True), in the killable helper pool (False), or (None,
        the default) in the pool unless the caller enforces the deadline itself: `rlvr.scoring`'s
        workers run `under_deadline(...)`, which turns None into True (`DeadlineAware`).
    wrong_reward: reward for a wrong or missing answer (0.0; some recipes use -1.0 or 0.1 shaping).
    warmup: get sympy ready at construction (`warmup()`, ~1 s once per process) so that no call
        pays the start-up; False defers it to the first call that needs sympy (not charged). With
        in_process=None the place is not decided yet, so the start-up waits for that first call too
        (the helper pool's start is not charged; a scoring worker warms its in-process form).
    """

    timeout_s: float = 1.0
    extract: str = "auto"
    in_process: bool | None = None
    wrong_reward: float = 0.0
    warmup: bool = True

    def __post_init__(self) -> None:
        if self.extract not in ("auto", "boxed", "answer_tag", "none"):
            raise ValueError(
                f"MathVerifier: extract must be 'auto', 'boxed', 'answer_tag' or 'none', got {self.extract!r}"
            )
        if not self.timeout_s > 0:
            raise ValueError(f"MathVerifier: timeout_s must be > 0, got {self.timeout_s!r}")
        if self.warmup and self.in_process is not None:  # None: warmed where it is decided
            warmup(self.in_process)

    def under_deadline(self, deadline_s: float) -> MathVerifier:
        """Where the caller kills an overrunning item (a scoring worker), sympy may run in-process."""
        return dataclasses.replace(self, in_process=True) if self.in_process is None else self

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Unpickling (e.g. in a scoring worker) warms up too, so the first call is not the slow one."""
        for key, value in state.items():
            object.__setattr__(self, key, value)
        if self.warmup and self.in_process is not None:
            warmup(self.in_process)

    def _extract(self, completion: str) -> str | None:
        if self.extract == "none":
            return completion.strip() or None
        if self.extract == "boxed":
            return extract_answer(completion, boxed_only=True)
        if self.extract == "answer_tag":
            return extract_answer(completion, tag_only=True)
        return extract_answer(completion)

    def __call__(self, completion: str, sample: Sample) -> Score:
        if sample.answer is None:
            raise ValueError("MathVerifier: sample.answer is None (no gold answer to compare with)")
        extracted = self._extract(completion if isinstance(completion, str) else str(completion))
        if extracted is None:
            return Score(self.wrong_reward, False, {"extracted": None, "reason": "no_final_answer"})
        ok, reason, detail = compare(extracted, sample.answer, self.timeout_s, self.in_process)
        info: dict[str, Any] = {"extracted": extracted[:500], "reason": reason}
        if detail:
            info["detail"] = detail
        if reason == "timeout":
            info["error"] = "timeout"
        return Score(1.0 if ok else self.wrong_reward, ok, info)
