"""Evaluation statistics: pass@k (unbiased), maj@k, per-component rewards, format rate, lengths.

These are pure functions over scored samples, shared by `rlvr eval` and the trainers' held-out
evaluation, so that training and evaluation score with the very same verifiers and numbers.

- ``pass_at_k(n, c, k)``: the unbiased estimator 1 − C(n−c, k)/C(n, k) of Chen et al. (2021),
  for one problem with n samples of which c passed.
- ``maj_at_k``: majority vote over the first k samples' extracted answers (ties go to the answer
  seen first); the problem counts as solved when the winning answer's samples passed.
- Confidence intervals are 95% normal intervals over problems (mean ± 1.96·s/√N, with the sample
  standard deviation s), which is what the per-problem averages support; they are wide on small
  sets, and the report says N.

Try it::

    >>> round(pass_at_k(n=8, c=2, k=1), 4), round(pass_at_k(n=8, c=2, k=8), 4)
    (0.25, 1.0)
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ProblemResult", "maj_vote", "mean_ci", "pass_at_k", "summarize"]


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
    """(mean, low, high): a 95% normal interval over per-problem values."""
    if not values:
        return (float("nan"),) * 3
    m = statistics.fmean(values)
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


NO_ANSWER_REASONS = {"no_final_answer", "no_code", "no_answer"}


def problem_result(scores: Sequence[Any], lengths: Sequence[int], finish_reasons: Sequence[str]) -> ProblemResult:
    """Collect one problem's samples from their Scores (anything with reward, passed, info)."""
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
) -> tuple[list[dict[str, Any]], list[ProblemResult]]:
    """Generate `n` completions per sample with `sampler` and score them with `scorer` (a
    `rlvr.scoring.Scorer` running the task's verifier) through `rlvr.rollout.collect`, which
    overlaps scoring of one chunk of prompts with generation of the next. Returns one record per
    completion and one ProblemResult per sample.

    `progress`, when given, is called with the number of prompts finished after each chunk.
    """
    from rlvr.rollout import PromptBatch, RolloutPlan, collect

    batch = PromptBatch(list(samples), [task.render(s, tokenizer) for s in samples])
    plan = RolloutPlan(n=n, params=params, chunk_prompts=chunk_prompts)
    groups = collect(sampler, scorer, batch, plan, on_chunk=progress).groups
    records: list[dict[str, Any]] = []
    problems: list[ProblemResult] = []
    for g in groups:
        problems.append(problem_result(g.scores, g.lengths, g.finish_reasons))
        for k, (c, sc) in enumerate(zip(g.completions, g.scores)):
            records.append({"index": g.index, "sample": k, "prompt": g.sample.prompt, "answer": g.sample.answer,
                            "completion": c.text, "reward": float(sc.reward), "passed": sc.passed,
                            "rewards": dict((sc.info or {}).get("rewards") or {}), "finish_reason": c.finish_reason,
                            "length": len(c.token_ids), "info": sc.info})
    return records, problems
