"""`reasoning_gym`: any reasoning-gym generator (about 100 of them) as an rlvr task, with its own
`score_answer` as the verifier.

One generator::

    task:
      name: reasoning_gym
      options: {dataset: chain_sum, size: 1000, seed: 0, config: {min_terms: 2, max_terms: 4}}

Several, mixed with weights (each with its own config)::

    task:
      name: reasoning_gym
      options:
        size: 1000
        datasets:
          chain_sum: {weight: 2, config: {max_terms: 3}}
          products: 1                       # weight only, default config

Your own generators (subclasses of reasoning-gym's `ProceduralDataset` registered with
`reasoning_gym.register_dataset`) work too: name the module that registers them in
``modules: [mypkg.my_gyms]``; the task and every scoring worker import it.

What it does:
- draws `size` training problems (and `size_test` held-out ones, generated with another seed and
  never equal to a training question) from reasoning-gym's seeded generators; with several
  generators the counts follow the weights (largest remainders) and the problems are interleaved
  in a seeded order;
- renders them with `template` (default ``r1_zero``: the answer goes in ``<answer>`` tags);
- scores with the ``reasoning_gym`` verifier: the last ``<answer>…</answer>`` of the completion
  goes to the generator's `score_answer` with the problem's entry, and the verifier runs through
  `rlvr.scoring` like any other (a per-item deadline of `timeout_s`, a hang or crash is failure as
  data, and so is a `score_answer` that raises on a malformed answer); ``passed`` is
  ``score >= pass_threshold`` (default 1.0: full marks only), the reward is the
  generator's score (some give partial credit).

What it does not do: install reasoning-gym. It is an optional extra (``pip install 'rlvr[gym]'``);
without it building the task or the verifier raises an error that says so.

Try it::

    >>> from rlvr.tasks import get_task
    >>> task = get_task("reasoning_gym", dataset="chain_sum", size=4, seed=0)   # doctest: +SKIP
    >>> s = task.samples()[0]; task.verifier()(f"<answer>{s.answer}</answer>", s).passed  # doctest: +SKIP
    True
"""

from __future__ import annotations

import difflib
import importlib
import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rlvr.tasks.base import Task, TaskDataError, register_task
from rlvr.verifiers.base import Sample, Score, register_verifier

try:  # imported here when installed, so rlvr.scoring's fork server preloads it and a new worker scores at once
    import reasoning_gym as _preloaded  # noqa: F401
except ImportError:
    pass

__all__ = ["GymSpec", "ReasoningGymTask", "allocate", "load_gym", "reasoning_gym_verifier"]

INSTALL_HINT = "reasoning-gym is not installed: pip install 'rlvr[gym]' (or pip install reasoning-gym)"
TEST_SEED_OFFSET = 1_000_003  # the held-out split's generator seed is seed + this
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def load_gym() -> Any:
    """The `reasoning_gym` module, or a TaskDataError saying how to install it."""
    try:
        import reasoning_gym
    except ImportError as e:
        raise TaskDataError(f"{INSTALL_HINT} ({e})") from None
    return reasoning_gym


@dataclass(frozen=True)
class GymSpec:
    """One generator of a mix: its reasoning-gym name, its weight and its config options."""

    name: str
    weight: float = 1.0
    config: Mapping[str, Any] = field(default_factory=dict)
    modules: tuple[str, ...] = ()  # modules that register custom generators


def _specs(dataset: str | None, config: Mapping[str, Any] | None, datasets: Mapping[str, Any] | None) -> list[GymSpec]:
    if (dataset is None) == (datasets is None):
        raise TaskDataError("reasoning_gym: give exactly one of dataset= (one generator) or datasets= (a weighted mix)")
    if dataset is not None:
        return [GymSpec(dataset, 1.0, dict(config or {}))]
    if config:
        raise TaskDataError("reasoning_gym: config= goes with dataset=; with datasets=, give each its own config")
    if not isinstance(datasets, Mapping) or not datasets:
        raise TaskDataError(f"reasoning_gym: datasets must map generator names to a weight or {{weight, config}}, got {datasets!r}")
    out = []
    for name, value in datasets.items():
        if isinstance(value, Mapping):
            extra = set(value) - {"weight", "config"}
            if extra:
                raise TaskDataError(f"reasoning_gym: datasets.{name}: unknown key(s) {sorted(extra)} (use weight, config)")
            weight, cfg = value.get("weight", 1.0), dict(value.get("config") or {})
        else:
            weight, cfg = value, {}
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight > 0:
            raise TaskDataError(f"reasoning_gym: datasets.{name}.weight must be a positive number, got {weight!r}")
        out.append(GymSpec(str(name), float(weight), cfg))
    return out


def allocate(total: int, weights: list[float]) -> list[int]:
    """Split `total` items by `weights` with largest remainders (ties to the earlier entry).

    >>> allocate(10, [2.0, 1.0])
    [7, 3]
    """
    s = sum(weights)
    exact = [total * w / s for w in weights]
    counts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _make_dataset(spec: GymSpec, size: int, seed: int) -> Any:
    rg = load_gym()
    from reasoning_gym.factory import DATASETS

    for module in spec.modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise TaskDataError(f"reasoning_gym: modules: cannot import {module!r}: {e}") from None

    if spec.name not in DATASETS:
        close = difflib.get_close_matches(spec.name, list(DATASETS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TaskDataError(f"reasoning_gym: unknown generator {spec.name!r}{hint} ({len(DATASETS)} known)")
    try:
        return rg.create_dataset(spec.name, **{**dict(spec.config), "size": size, "seed": seed})
    except (TypeError, ValueError, AssertionError) as e:
        raise TaskDataError(f"reasoning_gym: generator {spec.name!r} config {dict(spec.config)}: {e}") from None


def _entries(spec: GymSpec, n: int, seed: int, exclude: set[str]) -> list[dict[str, Any]]:
    """`n` entries of one generator whose questions are not in `exclude` (nor repeated)."""
    ds = _make_dataset(spec, max(4 * n + 100, 1), seed)
    out: list[dict[str, Any]] = []
    seen = set(exclude)
    for i in range(len(ds)):
        if len(out) == n:
            break
        entry = ds[i]
        if entry["question"] in seen:
            continue
        seen.add(entry["question"])
        out.append(entry)
    if len(out) < n:
        raise TaskDataError(f"reasoning_gym: {spec.name!r} gave only {len(out)} held-out problems distinct from training; asked for {n}")
    return out


def _sample(spec: GymSpec, entry: dict[str, Any]) -> Sample:
    meta = {"rg_dataset": spec.name, "rg_config": dict(spec.config), "rg_entry": entry, "rg_modules": list(spec.modules)}
    return Sample(prompt=entry["question"], answer=entry["answer"], metadata=meta)


@register_task("reasoning_gym")
@dataclass
class ReasoningGymTask(Task):
    """reasoning-gym generators as a task; see the module docstring for the options."""

    dataset: str | None = None
    size: int = 1000
    seed: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, Any] | None = None
    size_test: int = 200
    modules: list[str] = field(default_factory=list)
    template: str = "r1_zero"
    verifiers: dict[str, float] = field(default_factory=lambda: {"reasoning_gym": 1.0})
    name: str = "reasoning_gym"

    def __post_init__(self) -> None:
        mods = tuple(self.modules)
        self.specs = [GymSpec(s.name, s.weight, s.config, mods) for s in _specs(self.dataset, self.config, self.datasets)]
        if self.size < 1 or self.size_test < 0:
            raise TaskDataError(f"reasoning_gym: size must be >= 1 and size_test >= 0, got {self.size}, {self.size_test}")
        for spec in self.specs:  # fail now (unknown name, bad config, package missing), not at the first step
            _make_dataset(spec, 1, self.seed)
        self._cache: dict[str, list[Sample]] = {}

    def _split(self, split: str) -> list[Sample]:
        if split not in ("train", "test"):
            raise TaskDataError(f"reasoning_gym: split must be 'train' or 'test', got {split!r}")
        if split not in self._cache:
            counts = allocate(self.size if split == "train" else self.size_test, [s.weight for s in self.specs])
            rows: list[Sample] = []
            for k, (spec, n) in enumerate(zip(self.specs, counts)):
                if n == 0:  # a light weight in a small split
                    continue
                if split == "train":
                    ds = _make_dataset(spec, n, self.seed + k)
                    rows += [_sample(spec, ds[i]) for i in range(n)]
                else:
                    train = {s.prompt for s in self._split("train") if s.metadata["rg_dataset"] == spec.name}
                    rows += [_sample(spec, e) for e in _entries(spec, n, self.seed + k + TEST_SEED_OFFSET, train)]
            if len(self.specs) > 1:
                random.Random(f"reasoning_gym:{self.seed}:{split}").shuffle(rows)
            self._cache[split] = rows
        return self._cache[split]

    def samples(self, split: str = "train", limit: int | None = None) -> list[Sample]:
        rows = self._split(split)
        return list(rows[:limit] if limit else rows)


# ------------------------------------------------------------------------------------ the verifier

_SCORERS: dict[str, Any] = {}  # (name, config) -> a dataset instance, per process


def _scorer(name: str, config: Mapping[str, Any], modules: tuple[str, ...]) -> Any:
    key = json.dumps([name, dict(config), modules], sort_keys=True, default=str)
    if key not in _SCORERS:
        _SCORERS[key] = _make_dataset(GymSpec(name, 1.0, config, modules), 1, 0)
    return _SCORERS[key]


@register_verifier("reasoning_gym")
def reasoning_gym_verifier(completion: str, sample: Sample, pass_threshold: float = 1.0, timeout_s: float = 5.0) -> Score:
    """The generator's `score_answer` on the last ``<answer>…</answer>``; reward = its score.

    `timeout_s` is the budget `rlvr.scoring` enforces per item. A completion with no answer tag
    scores 0 with ``info["reason"] = "no_final_answer"`` (score_answer is not called). A
    `score_answer` that raises on the answer (several do on malformed text) gives 0 with
    ``info["error"] = "score_answer_raised"`` and the exception's message: the policy's answer, not a
    bug of ours, so it is data (counted in ``verifier/error_rate``), not a failed batch.
    """
    meta = sample.metadata
    if "rg_dataset" not in meta or "rg_entry" not in meta:
        raise ValueError("reasoning_gym verifier: the sample has no reasoning-gym entry (use the reasoning_gym task)")
    found = _ANSWER.findall(completion)
    if not found:
        return Score(0.0, False, {"reason": "no_final_answer", "extracted": None, "dataset": meta["rg_dataset"]})
    answer = found[-1].strip()
    scorer = _scorer(meta["rg_dataset"], meta.get("rg_config") or {}, tuple(meta.get("rg_modules") or ()))
    try:
        score = float(scorer.score_answer(answer, meta["rg_entry"]))
    except Exception as e:  # some generators' score_answer raise on malformed answers (e.g. "139.0" as a factor)
        return Score(0.0, False, {"error": "score_answer_raised", "exception": f"{type(e).__name__}: {e}"[:300],
                                  "extracted": answer[:200], "dataset": meta["rg_dataset"]})
    return Score(score, score >= pass_threshold, {"score": score, "extracted": answer[:200], "dataset": meta["rg_dataset"]})
