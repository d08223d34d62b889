"""Evaluation statistics: pass@k (unbiased), maj@k, per-component rewards, format rate, lengths.

These are pure functions over scored samples, shared by `rlvr eval` and the trainers' held-out
evaluation, so that training and evaluation score with the very same verifiers and numbers.
`evaluate_task` generates and scores (through `rlvr.rollout.collect`); with an environment (the
task's own, or an ``env:`` section built by `rlvr.rollout.environments.build_episodes`) it plays
multi-turn episodes with tools, and `summarize` adds their numbers (`episode_summary`).

- ``pass_at_k(n, c, k)``: the unbiased estimator 1 − C(n−c, k)/C(n, k) of Chen et al. (2021),
  for one problem with n samples of which c passed.
- ``maj_at_k``: majority vote over the first k samples' extracted answers (ties go to the answer
  seen first); the problem counts as solved when the winning answer's samples passed.
- Confidence intervals are 95% over problems: for values in [0, 1] (pass@k, maj@k, format rate,
  0/1 rewards) the Wilson score interval, which stays inside [0, 1]; otherwise normal (mean ±
  1.96·s/√N). They are wide on small sets, and the report says N.

Try it::

    >>> round(pass_at_k(n=8, c=2, k=1), 4), round(pass_at_k(n=8, c=2, k=8), 4)
    (0.25, 1.0)
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ProblemResult", "episode_summary", "evaluate_task", "maj_vote", "mean_ci", "pass_at_k", "summarize"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem: 1 − C(n−c, k) / C(n, k). Needs k ≤ n."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    # Product form avoids huge binomials: C(n-c, k)/C(n, k) = prod_{i=n-c+1}^{n} (1 - k/i)
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def maj_vote(answers: Sequence[str | None], passed: Sequence[bool | None]) -> bool:
    """Majority vote: the most common non-empty answer (first seen wins ties) and whether it passed."""
    votes = Counter(a for a in answers if a)
    if not votes:
        return False
    top = max(votes.values())
    winner = next(a for a in answers if a and votes[a] == top)
    return any(bool(p) for a, p in zip(answers, passed) if a == winner)


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): a 95% interval over per-problem values; for values in [0, 1] (rates,
    pass@k, 0/1 rewards) the Wilson score interval (`rlvr.metrics.wilson_interval`), inside [0, 1]."""
    if not values:
        return (float("nan"),) * 3
    m = statistics.fmean(values)
    if all(0.0 <= v <= 1.0 for v in values):
        from rlvr.metrics import wilson_interval

        return (m, *wilson_interval(m, len(values)))
    if len(values) < 2:
        return m, m, m
    half = 1.96 * statistics.stdev(values) / math.sqrt(len(values))
    return m, m - half, m + half


def _normalise_answer(answer: Any) -> str | None:
    if answer is None:
        return None
    text = " ".join(str(answer).split())
    return text or None


@dataclass
class ProblemResult:
    """All samples of one problem, as scored by the task's verifier."""

    rewards: list[float]
    passed: list[bool | None]
    answers: list[str | None]
    lengths: list[int]
    truncated: list[bool]
    components: list[Mapping[str, float]]
    found_answer: list[bool]
    trajectories: list[Any] = field(default_factory=list)  # multi-turn: each sample's rlvr.rollout.Trajectory


NO_ANSWER_REASONS = {"no_final_answer", "no_code", "no_answer"}


def problem_result(scores: Sequence[Any], lengths: Sequence[int], finish_reasons: Sequence[str],
                   trajectories: Sequence[Any] = ()) -> ProblemResult:
    """Collect one problem's samples from their Scores (anything with reward, passed, info), and
    their episodes' trajectories when they were multi-turn."""
    answers, comps, found = [], [], []
    for s in scores:
        info = s.info or {}
        primary = info.get("primary")
        inner = info.get(primary, info) if primary else info
        answers.append(_normalise_answer(inner.get("extracted")))
        comps.append(dict(info.get("rewards") or {}))
        found.append(inner.get("reason") not in NO_ANSWER_REASONS and info.get("error") is None)
    return ProblemResult(
        rewards=[float(s.reward) for s in scores],
        passed=[s.passed for s in scores],
        answers=answers,
        lengths=list(lengths),
        truncated=[r == "length" for r in finish_reasons],
        components=comps,
        found_answer=found,
        trajectories=list(trajectories),
    )


def summarize(problems: Sequence[ProblemResult], ks: Iterable[int]) -> dict[str, Any]:
    """Every headline number with its 95% interval: pass@k, maj@k, rewards, format rate, lengths."""
    if not problems:
        raise ValueError("no problems to summarize")
    n = min(len(p.rewards) for p in problems)
    out: dict[str, Any] = {"problems": len(problems), "samples_per_problem": n}
    for k in ks:
        if k > n:
            raise ValueError(f"pass@{k} needs at least {k} samples per problem; run with --n {k} or more")
        out[f"pass@{k}"] = mean_ci([pass_at_k(n, sum(bool(x) for x in p.passed[:n]), k) for p in problems])
        out[f"maj@{k}"] = mean_ci([float(maj_vote(p.answers[:k], p.passed[:k])) for p in problems])
    out["reward"] = mean_ci([statistics.fmean(p.rewards) for p in problems])
    names = sorted({c for p in problems for comp in p.components for c in comp})
    for name in names:
        out[f"reward/{name}"] = mean_ci([statistics.fmean(comp.get(name, 0.0) for comp in p.components) for p in problems])
    out["format_rate"] = mean_ci([statistics.fmean(float(f) for f in p.found_answer) for p in problems])
    lengths = [x for p in problems for x in p.lengths]
    out["length"] = {
        "mean": statistics.fmean(lengths),
        "median": statistics.median(lengths),
        "p90": sorted(lengths)[int(0.9 * (len(lengths) - 1))],
        "max": max(lengths),
        "truncated_frac": statistics.fmean(float(t) for p in problems for t in p.truncated),
    }
    trajectories = [t for p in problems for t in p.trajectories]
    if trajectories:
        out["episodes"] = episode_summary(trajectories)
    return out


def episode_summary(trajectories: Sequence[Any]) -> dict[str, float]:
    """Multi-turn episodes in numbers: `rlvr.rollout.episodes.episode_metrics` (tool calls per episode,
    errors, timeouts, turns, model and observation tokens, truncations), ``tools/call_rate`` (the
    share of episodes with at least one call) and ``end/<reason>`` (the share that ended each way:
    done, max_turns, max_tokens, length)."""
    from rlvr.rollout.episodes import episode_metrics

    n = len(trajectories)
    out = {"episodes": float(n), **episode_metrics(trajectories),
           "tools/call_rate": sum(bool(t.tool_calls) for t in trajectories) / n}
    for end, count in sorted(Counter(str(t.end) for t in trajectories).items()):
        out[f"end/{end}"] = count / n
    return out


def evaluate_task(
    task: Any,
    sampler: Any,
    samples: Sequence[Any],
    *,
    n: int,
    params: Any,
    scorer: Any,
    tokenizer: Any = None,
    chunk_prompts: int = 16,
    progress: Any = None,
    episodes: Any = "task",
) -> tuple[list[dict[str, Any]], list[ProblemResult]]:
    """Generate `n` completions per sample with `sampler` and score them with `scorer` (a
    `rlvr.scoring.Scorer` running the task's verifier) through `rlvr.rollout.collect`, which
    overlaps scoring of one chunk of prompts with generation of the next. Returns one record per
    completion and one ProblemResult per sample.

    episodes: multi-turn episodes instead of single completions: an `rlvr.rollout.EpisodeSetup`
    (e.g. `rlvr.rollout.environments.build_episodes(env_config, task, tokenizer)`; the caller
    closes it), "task" (the default: the task's own environment, ``Task.environment()``, when it
    has one, with a tool runner built and closed here) or None (single turns). Each record then
    carries its ``episode`` (how it ended, each turn's text, tool calls and results), and
    `summarize` adds the episode metrics. `tokenizer` tokenizes the observations (default: the
    sampler's).

    `progress`, when given, is called with the number of prompts finished after each chunk.
    """
    import contextlib

    from rlvr.rollout import PromptBatch, RolloutPlan, collect

    owned, observations = None, tokenizer if tokenizer is not None else getattr(sampler, "tokenizer", None)
    if isinstance(episodes, str):
        if episodes != "task":
            raise ValueError(f"evaluate_task: episodes={episodes!r}: give an EpisodeSetup, 'task' or None")
        from rlvr.rollout.environments import build_episodes
        from rlvr.trainers.config import EnvConfig

        episodes = owned = build_episodes(EnvConfig(), task, observations)
    if episodes is not None and episodes.tokenizer is None:
        raise ValueError("evaluate_task: multi-turn episodes need the tokenizer (tokenizer=...)")
    batch = PromptBatch(list(samples), [task.render(s, tokenizer) for s in samples])
    plan = RolloutPlan(n=n, params=params, chunk_prompts=chunk_prompts, episodes=episodes)
    with owned if owned is not None else contextlib.nullcontext():
        groups = collect(sampler, scorer, batch, plan, on_chunk=progress).groups
    records: list[dict[str, Any]] = []
    problems: list[ProblemResult] = []
    for g in groups:
        problems.append(problem_result(g.scores, g.lengths, g.finish_reasons, g.trajectories))
        for k, (c, sc) in enumerate(zip(g.completions, g.scores)):
            records.append({"index": g.index, "sample": k, "prompt": g.sample.prompt, "answer": g.sample.answer,
                            "completion": c.text, "reward": float(sc.reward), "passed": sc.passed,
                            "rewards": dict((sc.info or {}).get("rewards") or {}), "finish_reason": c.finish_reason,
                            "length": len(c.token_ids), "info": sc.info})
            if g.trajectories:
                records[-1]["episode"] = g.trajectories[k].to_dict()
    return records, problems
