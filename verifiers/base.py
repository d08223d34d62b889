"""The verifier API: `Sample`, `Score`, the `Verifier` protocol, the registry and `combine`.

A verifier is any callable ``(completion: str, sample: Sample) -> Score``. Stateful verifiers are
classes whose instances are such callables. Verifiers are looked up by name with `get_verifier`;
built-in names resolve lazily (importing this module never imports sympy, docker or vLLM), and
third-party packages add names through the ``rlvr.verifiers`` entry-point group.

What this module does not do: run verifiers in parallel or enforce deadlines. That is
`rlvr.scoring`'s job, the only place that handles concurrency for verifiers.

Try it::

    >>> from rlvr.verifiers import Sample, Score, register_verifier, get_verifier
    >>> @register_verifier("doc_exact")
    ... def exact(completion: str, sample: Sample) -> Score:
    ...     ok = completion.strip() == str(sample.answer)
    ...     return Score(reward=float(ok), passed=ok)
    >>> get_verifier("doc_exact")("42", Sample(answer=42)).passed
    True
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "BatchVerifier",
    "Combined",
    "DeadlineAware",
    "Sample",
    "Score",
    "Verifier",
    "VerifierError",
    "batched_components",
    "combine",
    "declared_timeout",
    "get_verifier",
    "list_verifiers",
    "prefetch",
    "register_verifier",
    "resolve_verifier",
    "under_deadline",
]


class VerifierError(ValueError):
    """A verifier name or option that cannot be resolved."""


@dataclass(frozen=True)
class Sample:
    """One task instance, as verifiers see it.

    prompt: the text the policy was given.
    answer: the reference answer (a gold string or number for math; anything a verifier understands).
    tests: unit tests for code tasks (see `rlvr.verifiers.code`), or None.
    metadata: anything else the dataset row carried (id, difficulty, source, ...).
    """

    prompt: str = ""
    answer: Any = None
    tests: Any = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Sample:
        """Build a Sample from a dict row; keys other than the four fields go to metadata."""
        known = {"prompt", "answer", "tests", "metadata"}
        meta = dict(row.get("metadata") or {})
        meta.update({k: v for k, v in row.items() if k not in known})
        return cls(
            prompt=row.get("prompt") or "", answer=row.get("answer"), tests=row.get("tests"), metadata=meta
        )


@dataclass
class Score:
    """What a verifier says about one completion.

    reward: feeds advantages. passed: feeds pass@k and group filtering; None means "no opinion"
    (a pure shaping term such as a length penalty). suspicious: the verifier's reward-hacking flag
    (e.g. the code grader saw a program tamper with its harness); None means "this verifier does
    not check". The trainer logs its rate whatever the component is called. info: diagnostics,
    JSON-serialisable. Failures are data: a timeout or a crash is ``passed=False`` with
    ``info["error"]`` set.
    """

    reward: float
    passed: bool | None = None
    info: dict[str, Any] = field(default_factory=dict)
    suspicious: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"reward": float(self.reward), "passed": self.passed, "info": self.info}
        if self.suspicious is not None:  # only verifiers that check for hacking report it
            out["suspicious"] = self.suspicious
        return out


@runtime_checkable
class Verifier(Protocol):
    def __call__(self, completion: str, sample: Sample) -> Score: ...


@runtime_checkable
class BatchVerifier(Protocol):
    """A verifier that scores a whole batch at once, on this process's device (a learned reward model).

    `rlvr.scoring` scores such verifiers in the calling process (``workers=0``; the trainer picks
    that by itself) and calls ``prefetch`` once per batch before the per-item calls, which then
    return the batch's cached Scores. Implement both methods to be treated as one.
    """

    def prefetch(self, completions: Sequence[str], samples: Sequence[Sample]) -> None: ...

    def __call__(self, completion: str, sample: Sample) -> Score: ...


@runtime_checkable
class DeadlineAware(Protocol):
    """A verifier that guards itself against hangs (e.g. math's killable sympy helper process)
    unless its caller enforces the per-item deadline by killing the process that runs it.

    `rlvr.scoring`'s workers are such callers: each builds its verifier and runs
    ``verifier.under_deadline(deadline_s)`` instead, the form that may do the work in-process.
    """

    def under_deadline(self, deadline_s: float) -> Verifier: ...


def under_deadline(verifier: Verifier, deadline_s: float) -> Verifier:
    """The form of `verifier` to run where the caller kills an item after `deadline_s` seconds."""
    return verifier.under_deadline(deadline_s) if isinstance(verifier, DeadlineAware) else verifier


def batched_components(verifier: Verifier) -> list[BatchVerifier]:
    """The batch verifiers in `verifier`: itself, or those among a `combine`'s components (nested too)."""
    if isinstance(verifier, Combined):
        return [b for v in verifier._verifiers().values() for b in batched_components(v)]
    return [verifier] if isinstance(verifier, BatchVerifier) else []


def prefetch(verifier: Verifier, completions: Sequence[str], samples: Sequence[Sample]) -> None:
    """Let every batch verifier in `verifier` score the whole batch now (see `BatchVerifier`)."""
    for v in batched_components(verifier):
        v.prefetch(completions, samples)


# name -> factory. A factory is a class (called with **options) or a function verifier.
_REGISTRY: dict[str, Callable[..., Any]] = {}

# Built-in verifiers, imported on first use so that `import rlvr.verifiers` stays light.
_BUILTIN_MODULES: dict[str, str] = {
    "math": "rlvr.verifiers.math",
    "format": "rlvr.verifiers.format",
    "code": "rlvr.verifiers.code",
    "reward_model": "rlvr.verifiers.reward_model",
    "length": "rlvr.verifiers.format",
    "countdown": "rlvr.tasks.countdown",
}

_ENTRY_POINT_GROUP = "rlvr.verifiers"


def register_verifier(name: str) -> Callable[[Any], Any]:
    """Register a verifier function or class under `name` (a decorator).

    A function is used as is; `get_verifier(name, **options)` passes options as keyword
    arguments after ``(completion, sample)``. A class is instantiated with ``**options``.
    """

    def deco(obj: Any) -> Any:
        if not callable(obj):
            raise TypeError(f"register_verifier({name!r}): {obj!r} is not callable")
        _REGISTRY[name] = obj
        return obj

    return deco


def _load_entry_point(name: str) -> bool:
    for ep in entry_points(group=_ENTRY_POINT_GROUP):
        if ep.name == name:
            dist = getattr(getattr(ep, "dist", None), "name", "?")
            try:
                obj = ep.load()
            except Exception as e:
                raise VerifierError(
                    f"verifier {name!r}: entry point {ep.value!r} of distribution {dist!r} "
                    f"(group {_ENTRY_POINT_GROUP!r}) failed to load: {type(e).__name__}: {e}"
                ) from e
            if not callable(obj):
                raise VerifierError(
                    f"verifier {name!r}: entry point {ep.value!r} of {dist!r} is not callable"
                )
            _REGISTRY.setdefault(name, obj)
            return True
    return False


def _resolve(name: str) -> Callable[..., Any]:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name in _BUILTIN_MODULES:
        module = _BUILTIN_MODULES[name]
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise VerifierError(f"built-in verifier {name!r}: cannot import {module}: {e}") from e
        if name in _REGISTRY:
            return _REGISTRY[name]
        raise VerifierError(f"built-in verifier {name!r}: {module} was imported but registers no {name!r}")
    if _load_entry_point(name):
        return _REGISTRY[name]
    known = list_verifiers()
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise VerifierError(f"unknown verifier {name!r}{hint} (known: {', '.join(known)})")


class _BoundFunction:
    """A function verifier with fixed keyword options; picklable when the function is."""

    def __init__(self, fn: Callable[..., Score], options: Mapping[str, Any]):
        self.fn, self.options = fn, dict(options)

    def __call__(self, completion: str, sample: Sample) -> Score:
        return self.fn(completion, sample, **self.options)

    def __repr__(self) -> str:
        return f"{getattr(self.fn, '__name__', self.fn)}(**{self.options})"


def get_verifier(name: str, **options: Any) -> Verifier:
    """Return the verifier registered as `name`, configured with `options`.

    >>> v = get_verifier("format")  # the R1 <think>…</think><answer>…</answer> check
    """
    factory = _resolve(name)
    if inspect.isclass(factory):
        try:
            return factory(**options)
        except TypeError as e:
            raise VerifierError(f"verifier {name!r}: bad options {sorted(options)}: {e}") from e
    if options:
        params = inspect.signature(factory).parameters
        unknown = [k for k in options if k not in params]
        if unknown and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            raise VerifierError(f"verifier {name!r} takes no option(s) {unknown}")
        return _BoundFunction(factory, options)
    return factory


def list_verifiers() -> list[str]:
    """Every name `get_verifier` can resolve: registered, built-in and entry-point verifiers."""
    names = set(_REGISTRY) | set(_BUILTIN_MODULES)
    names |= {ep.name for ep in entry_points(group=_ENTRY_POINT_GROUP)}
    return sorted(names)


VerifierSpec = Any  # a registered name, a (name, options) pair, or a Verifier instance


def _split_spec(spec: VerifierSpec) -> tuple[str, dict[str, Any]] | None:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], str):
        return spec[0], dict(spec[1] or {})
    return None


def resolve_verifier(spec: VerifierSpec) -> Verifier:
    """Turn a spec (``"math"``, ``("math", {"timeout_s": 2})`` or a callable) into a verifier.

    >>> resolve_verifier(("format", {"partial_credit": True})).partial_credit
    True
    """
    named = _split_spec(spec)
    if named is not None:
        return get_verifier(named[0], **named[1])
    if callable(spec):
        return spec
    raise VerifierError(f"not a verifier: {spec!r} (expected a name, a (name, options) pair or a callable)")


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, numbers.Real) and not isinstance(x, bool) and x > 0 else None


def declared_timeout(spec: VerifierSpec) -> float | None:
    """The time budget a verifier declares for one call (its ``timeout_s``), without building it.

    Looks at the options, then the instance or class attribute, then the default of a
    ``timeout_s`` parameter. `rlvr.scoring` adds a margin to it for its per-item deadline.

    >>> declared_timeout(("format", {})) is None
    True
    """
    named = _split_spec(spec)
    if named is None:
        return _number(getattr(spec, "timeout_s", None))
    name, options = named
    if "timeout_s" in options:
        return _number(options["timeout_s"])
    factory = _resolve(name)
    own = _number(getattr(factory, "timeout_s", None))
    if own is not None:
        return own
    try:
        param = inspect.signature(factory).parameters.get("timeout_s")
    except (TypeError, ValueError):
        return None
    return _number(param.default) if param is not None else None


_RESERVED_INFO_KEYS = frozenset({"rewards", "passed", "weights", "primary", "error"})


class Combined:
    """A weighted sum of verifiers, built by `combine`.

    reward = sum_i weight_i * reward_i. A weight of 0 logs a component without rewarding it.
    ``passed`` is the primary component's (by default the one with the largest weight, the first
    on ties). ``info["rewards"]`` holds each component's raw reward, ``info["passed"]`` each one's
    passed, and ``info[name]`` each one's own info; ``info["error"]`` is the first component error.
    A component that raises propagates the exception (so `rlvr.scoring` counts it and keeps its
    traceback): a bug in verifier code is never a silent 0. ``timeout_s`` is the sum of the
    components' declared budgets, since they run one after the other.
    """

    def __init__(self, components: Mapping[str, tuple[float, VerifierSpec]], primary: str | None = None):
        if not components:
            raise VerifierError("combine() needs at least one component")
        self.components = dict(components)
        weights = {k: float(w) for k, (w, _) in self.components.items()}
        self.primary = primary or max(weights, key=lambda k: (weights[k], -list(weights).index(k)))
        if self.primary not in self.components:
            raise VerifierError(f"combine(): primary {self.primary!r} is not a component")
        self._built: dict[str, Verifier] | None = None

    @property
    def weights(self) -> dict[str, float]:
        return {k: float(w) for k, (w, _) in self.components.items()}

    @property
    def timeout_s(self) -> float | None:
        budgets = [declared_timeout(spec) for _, spec in self.components.values()]
        return sum(b for b in budgets if b) or None

    def _verifiers(self) -> dict[str, Verifier]:
        if self._built is None:
            self._built = {key: resolve_verifier(spec) for key, (_, spec) in self.components.items()}
        return self._built

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_built"] = None  # rebuild in the worker process
        return state

    def under_deadline(self, deadline_s: float) -> Combined:
        """This combination with every component in its `under_deadline` form (see `DeadlineAware`)."""
        out = Combined(self.components, primary=self.primary)
        out._built = {k: under_deadline(v, deadline_s) for k, v in self._verifiers().items()}
        return out

    def __call__(self, completion: str, sample: Sample) -> Score:
        rewards: dict[str, float] = {}
        passed: dict[str, bool | None] = {}
        info: dict[str, Any] = {}
        suspicious: list[bool | None] = []
        for key, verifier in self._verifiers().items():
            s = verifier(completion, sample)
            rewards[key], passed[key] = float(s.reward), s.passed
            info[key] = s.info
            suspicious.append(s.suspicious)
        total = sum(self.weights[k] * r for k, r in rewards.items())
        info.update(rewards=rewards, passed=passed, weights=self.weights, primary=self.primary)
        errors = [info[k]["error"] for k in rewards if isinstance(info[k], dict) and info[k].get("error")]
        if errors:
            info["error"] = errors[0]
        flags = [s for s in suspicious if s is not None]
        return Score(reward=total, passed=passed[self.primary], info=info, suspicious=any(flags) if flags else None)

    def __repr__(self) -> str:
        return f"combine({self.weights}, primary={self.primary!r})"


def combine(
    weights: Mapping[str, float],
    verifiers: Mapping[str, VerifierSpec] | None = None,
    *,
    primary: str | None = None,
) -> Combined:
    """Weighted sum of verifiers.

    `weights` maps a component name to its weight. The component's verifier is
    ``verifiers[name]`` (a name, a ``(name, options)`` pair or an instance) or, by default, the
    registered verifier of that name::

        >>> v = combine({"math": 1.0, "format": 0.1, "length": 0.0},
        ...             verifiers={"length": my_length_logger})  # doctest: +SKIP

    A weight of 0 still runs and logs the component (its reward is in ``info["rewards"]``) but
    adds nothing to the reward. Negative weights are penalties.
    """
    verifiers = dict(verifiers or {})
    unknown = set(verifiers) - set(weights)
    if unknown:
        raise VerifierError(f"combine(): verifiers given for {sorted(unknown)} but no weight")
    for key, w in weights.items():
        if key in _RESERVED_INFO_KEYS:
            raise VerifierError(f"combine(): component name {key!r} is reserved (it is an info key)")
        if not isinstance(w, numbers.Real) or isinstance(w, bool) or w != w:
            raise VerifierError(f"combine(): weight of {key!r} must be a number, got {w!r}")
        spec = verifiers.get(key, key)
        named = _split_spec(spec)
        if named is not None:
            _resolve(named[0])  # an unknown name fails now, naming the closest valid one
        elif not callable(spec):
            raise VerifierError(f"combine(): verifier for {key!r} is not a name or a callable: {spec!r}")
    return Combined({k: (float(w), verifiers.get(k, k)) for k, w in weights.items()}, primary=primary)
