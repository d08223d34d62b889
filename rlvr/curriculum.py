"""A curriculum prompt sampler: per-prompt pass rates, retirement of prompts that are always solved
or always failed, and draws from a difficulty band.

The trainer asks `Curriculum.next(count)` which prompt indices to sample next, and after scoring
reports each completion's primary-verifier ``passed`` with `update([(prompt_id, passed), ...])`.

How prompts are chosen:
- prompts are walked in the same seeded, epoch-by-epoch order as without a curriculum
  (``random.Random(f"{seed}:{epoch}")`` shuffles of ``range(n)``), from a cursor;
- a **visit** is one `update` call's results for one prompt (one GRPO group). A visit where every
  completion passed is *solved*, one where none passed is *failed*. After `k` solved visits in a
  row a prompt retires as solved; after `k` failed visits in a row, as failed (``k=0``: never);
- a prompt is **in band** when it is unseen or its pass rate (passes / completions, over all its
  visits) lies in ``[band_low, band_high]``. `next` takes active, in-band prompts in walk order and
  skips the others. When a whole epoch holds none, it takes active prompts regardless of band;
  when every prompt is retired, any prompt (``pool/exhausted`` reads 1) rather than stall.

With DAPO dynamic sampling, each sampling round calls `next` and the trainer reports every round's
groups (kept or dropped): retirement removes the always-tied prompts that dynamic sampling would
otherwise resample and drop. `pool_sizes()` gives the metrics (``curriculum/active``, ``/solved``,
``/failed``, ``/in_band``, ``/unseen``, ``/exhausted``). `state_dict()` is JSON-serialisable and
`load_state_dict` restores it exactly, so a resumed run draws the same prompts.

What it does not do: sample or score (the trainer does), or weight prompts by difficulty (it only
filters; the order stays the seeded walk).

Try it::

    >>> cur = Curriculum(n=4, seed=0, k=2)
    >>> first = cur.next(4)
    >>> cur.update([(first[0], True)] * 4); cur.update([(first[0], True)] * 4)
    >>> cur.pool_sizes()["curriculum/solved"]
    1.0
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Curriculum", "CurriculumConfig"]

ACTIVE, SOLVED, FAILED = 0, 1, 2


@dataclass
class CurriculumConfig:
    # Turn the curriculum sampler on (off: the plain seeded data order).
    enabled: bool = False
    # Retire a prompt after this many solved (every completion passed) or failed (none passed)
    # visits in a row; 0 = never retire.
    k: int = 3
    # Draw prompts whose pass rate so far is in [band_low, band_high]; unseen prompts are in band.
    band_low: float = 0.0
    band_high: float = 1.0

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ValueError(f"curriculum.k must be >= 0, got {self.k}")
        if not 0.0 <= self.band_low <= self.band_high <= 1.0:
            raise ValueError(f"curriculum.band_low/band_high must satisfy 0 <= low <= high <= 1, got {self.band_low}, {self.band_high}")


class Curriculum:
    """Which prompt indices to sample next, from per-prompt results; see the module docstring."""

    def __init__(self, n: int, seed: int = 0, k: int = 3, band_low: float = 0.0, band_high: float = 1.0):
        if n < 1:
            raise ValueError(f"Curriculum needs at least one prompt, got n={n}")
        CurriculumConfig(True, k, band_low, band_high)  # validates
        self.n, self.seed, self.k, self.band = n, seed, k, (float(band_low), float(band_high))
        self.cursor = 0
        self.attempts = [0] * n
        self.passes = [0] * n
        self.solved_streak = [0] * n
        self.failed_streak = [0] * n
        self.status = [ACTIVE] * n
        self._perm: tuple[int, list[int]] | None = None

    @classmethod
    def from_config(cls, cfg: CurriculumConfig, n: int, seed: int) -> Curriculum:
        return cls(n, seed=seed, k=cfg.k, band_low=cfg.band_low, band_high=cfg.band_high)

    # ------------------------------------------------------------------ drawing
    def _at(self, position: int) -> int:
        epoch = position // self.n
        if self._perm is None or self._perm[0] != epoch:
            perm = list(range(self.n))
            random.Random(f"{self.seed}:{epoch}").shuffle(perm)
            self._perm = (epoch, perm)
        return self._perm[1][position % self.n]

    def pass_rate(self, i: int) -> float | None:
        """Passes / completions of prompt `i` so far (None when never visited)."""
        return self.passes[i] / self.attempts[i] if self.attempts[i] else None

    def in_band(self, i: int) -> bool:
        rate = self.pass_rate(i)
        return rate is None or self.band[0] <= rate <= self.band[1]

    def next(self, count: int) -> list[int]:
        """The next `count` prompt indices (advances the cursor past every prompt it looked at)."""
        active = [self.status[i] == ACTIVE for i in range(self.n)]
        eligible = [a and self.in_band(i) for i, a in enumerate(active)]
        if not any(eligible):  # no active prompt in band: band ignored; nothing active: every prompt
            eligible = active if any(active) else [True] * self.n
        out: list[int] = []
        while len(out) < count:  # ends: every epoch holds each eligible prompt once
            i = self._at(self.cursor)
            self.cursor += 1
            if eligible[i]:
                out.append(i)
        return out

    # ------------------------------------------------------------------ results
    def update(self, results: Iterable[tuple[int, bool | None]]) -> None:
        """Record one round of results: (prompt index, passed) per completion; None is ignored."""
        visits: dict[int, list[bool]] = {}
        for i, passed in results:
            if not 0 <= i < self.n:
                raise IndexError(f"Curriculum.update: prompt index {i} is not in 0..{self.n - 1}")
            if passed is not None:
                visits.setdefault(int(i), []).append(bool(passed))
        for i, outcome in visits.items():
            self.attempts[i] += len(outcome)
            self.passes[i] += sum(outcome)
            solved, failed = all(outcome), not any(outcome)
            self.solved_streak[i] = self.solved_streak[i] + 1 if solved else 0
            self.failed_streak[i] = self.failed_streak[i] + 1 if failed else 0
            if self.k and self.status[i] == ACTIVE:
                if self.solved_streak[i] >= self.k:
                    self.status[i] = SOLVED
                elif self.failed_streak[i] >= self.k:
                    self.status[i] = FAILED

    def pool_sizes(self) -> dict[str, float]:
        """Metrics: prompts active, retired solved / failed, active and in band, never seen, exhausted."""
        active = [i for i in range(self.n) if self.status[i] == ACTIVE]
        return {
            "curriculum/active": float(len(active)),
            "curriculum/solved": float(self.status.count(SOLVED)),
            "curriculum/failed": float(self.status.count(FAILED)),
            "curriculum/in_band": float(sum(self.in_band(i) for i in active)),
            "curriculum/unseen": float(self.attempts.count(0)),
            "curriculum/exhausted": float(not active),
        }

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything `next` and `update` depend on, JSON-serialisable."""
        return {"n": self.n, "seed": self.seed, "k": self.k, "band": list(self.band), "cursor": self.cursor,
                "attempts": list(self.attempts), "passes": list(self.passes), "solved_streak": list(self.solved_streak),
                "failed_streak": list(self.failed_streak), "status": list(self.status)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `state_dict()`; the prompt count must match (the settings may change on resume)."""
        if int(state["n"]) != self.n:
            raise ValueError(f"curriculum state is for {state['n']} prompts, this task has {self.n}")
        self.seed, self.cursor = int(state["seed"]), int(state["cursor"])
        for name in ("attempts", "passes", "solved_streak", "failed_streak", "status"):
            values = [int(v) for v in state[name]]
            if len(values) != self.n:
                raise ValueError(f"curriculum state: {name} has {len(values)} entries, expected {self.n}")
            setattr(self, name, values)
        self._perm = None
