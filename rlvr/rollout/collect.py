"""`collect`: sample G completions per prompt, score them, shape and filter them: one rollout.

Every caller that generates and then scores goes through `collect`: the GRPO/PPO trainer, the
trainer's held-out evaluation, ``rlvr eval``, rejection-sampling SFT and verifier-labelled
preference pairs (``rlvr sft``/``rlvr rm``/``rlvr dpo`` with ``from_verifier``/``rejection_sampling``).

What one call does, in order:
1. chunked sampling overlapped with scoring: each round's prompts are generated in chunks (chunk k
   with seed ``seed + k``); a chunk's completions go to the `rlvr.scoring.Scorer` (a future) while
   the next chunk generates;
2. reward shaping: DAPO's soft overlong penalty on the verifier's reward (`RolloutPlan.overlong_*`);
3. truncation handling: completions that hit ``max_new_tokens`` get an all-zero loss mask when
   the plan says so (``mask_truncated``);
4. dynamic sampling (DAPO): a group whose filter values all tie is set aside and more prompts are
   drawn, up to ``max_extra_rounds`` extra rounds; the filter is the primary verifier's ``passed``
   by default (``filter_on="passed"``; a group whose verdicts are all None is judged on its shaped
   rewards) or the shaped rewards (``filter_on="reward"``). Still short: tied groups fill the batch.
`evaluate` is the held-out form: greedy by default, no shaping or filtering, summary metrics.

Multi-turn episodes: a plan with ``episodes`` (an `rlvr.rollout.episodes.EpisodeSetup`) plays G
episodes per prompt (`rlvr.rollout.episodes.run_episodes`: model turns, tool calls run
concurrently, observations) instead of sampling G completions. Each completion is then the whole
episode after the prompt, observation tokens included with logprob 0 and loss mask 0;
``ScoredGroup.trajectories`` holds the turns, and the verifier scores ``env.verifier_text``
(the model's turns without observations, by default). Shaping and truncation read the episode's
token budget (``env.max_tokens``) where single turns read ``max_new_tokens``.

Inputs are explicit (sampler, scorer, prompts, plan, seed in the prompts, policy version), so a
producer thread can call it as well as the training loop.

What it does not do: tensors for the loss (`rlvr.rollout.batch.pack_groups`), advantages or losses.

Try it (a scorer in this thread and a stand-in sampler)::

    >>> from rlvr.samplers import Completion, Group, SamplingParams
    >>> from rlvr.scoring import Scorer
    >>> from rlvr.verifiers import Sample, Score
    >>> exact = lambda text, sample: Score(float(text == str(sample.answer)), text == str(sample.answer))
    >>> class Echo:
    ...     def generate(self, prompts, n, params):
    ...         return [Group([1], [Completion(p[-1], [2], [-0.5], "stop")] * n, p) for p in prompts]
    >>> batch = PromptBatch([Sample(answer=4), Sample(answer=5)], ["2+2=4", "2+3=6"], seed=0)
    >>> with Scorer(exact, workers=0) as scorer:
    ...     out = collect(Echo(), scorer, batch, RolloutPlan(n=2, params=SamplingParams()))
    >>> [g.passed for g in out.groups], out.stats.zero_var
    ([[True, True], [False, False]], 2)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from rlvr.rollout.episodes import EpisodeStats, episode_groups, episode_metrics
from rlvr.rollout.records import PromptBatch, RolloutStats, ScoredGroup
from rlvr.samplers.base import SamplingParams

__all__ = ["Rollout", "RolloutPlan", "collect", "evaluate", "overlong_shaping", "tied"]


@dataclass(frozen=True)
class RolloutPlan:
    """How to collect: G, sampling, chunks, shaping, truncation and dynamic sampling."""

    n: int  # completions per prompt (G)
    params: SamplingParams
    chunks: int = 1  # generate each round in this many calls (each scored while the next generates)
    chunk_prompts: int | None = None  # or: at most this many prompts per call (overrides chunks)
    overlong_buffer: float = 0.0  # DAPO's soft overlong penalty: buffer as a fraction of max_new_tokens
    overlong_penalty: float = 1.0
    mask_truncated: bool = False  # completions cut at max_new_tokens leave the loss
    dynamic_sampling: bool = False
    filter_on: Literal["passed", "reward"] = "passed"
    max_extra_rounds: int = 0
    quota: int | None = None  # groups wanted with dynamic sampling (default: the first round's prompts)
    episodes: Any = None  # rlvr.rollout.episodes.EpisodeSetup: multi-turn episodes instead of completions

    @classmethod
    def from_algo(cls, algo: Any, n: int, params: SamplingParams, chunks: int = 1, **kw: Any) -> RolloutPlan:
        """The plan an `rlvr.presets.AlgoConfig` asks for."""
        return cls(n=n, params=params, chunks=chunks, overlong_buffer=algo.overlong_buffer,
                   overlong_penalty=algo.overlong_penalty, mask_truncated=algo.overlong_mask,
                   dynamic_sampling=algo.dynamic_sampling, filter_on=algo.dynamic_sampling_filter,
                   max_extra_rounds=algo.dynamic_sampling_rounds, **kw)


@dataclass
class Rollout:
    """What `collect` returns: the kept groups (the batch), every group seen, and the stats."""

    groups: list[ScoredGroup]
    seen: list[ScoredGroup] = field(default_factory=list)
    stats: RolloutStats = field(default_factory=RolloutStats)


def overlong_shaping(rewards: torch.Tensor, lengths: torch.Tensor, max_new_tokens: int, buffer_frac: float,
                     penalty: float) -> torch.Tensor:
    """(G,) rewards plus DAPO's soft overlong penalty with a buffer of ``buffer_frac * max_new_tokens``.

    >>> overlong_shaping(torch.tensor([1., 1., 0.]), torch.tensor([16, 18, 20]), 20, 0.2, 1.0)
    tensor([ 1.0000,  0.5000, -1.0000])
    """
    if buffer_frac <= 0:
        return rewards
    from rlvr.advantages import overlong_penalty

    buffer = max(1, round(buffer_frac * max_new_tokens))
    return rewards + overlong_penalty(lengths, max_new_tokens, buffer, penalty).to(rewards.dtype)


def tied(group: ScoredGroup, on: str = "reward") -> bool:
    """Whether the group's filter values all agree: its ``passed`` verdicts ("passed"; all None falls
    back to the shaped rewards) or its shaped rewards ("reward")."""
    if on == "passed" and any(p is not None for p in group.passed):
        return len({bool(p) for p in group.passed}) == 1
    return bool(group.shaped.max() == group.shaped.min())


def _round(sampler: Any, scorer: Any, batch: PromptBatch, plan: RolloutPlan, version: int,
           on_chunk: Callable[[int], None] | None, stats: EpisodeStats | None) -> list[ScoredGroup]:
    """One round: generate in chunks, each scored while the next generates; shape; mask."""
    n, count = plan.n, len(batch)
    size = plan.chunk_prompts or -(-count // max(1, min(plan.chunks, count)))
    pending = []
    for k, lo in enumerate(range(0, count, max(size, 1))):
        hi = min(lo + size, count)
        params = plan.params if batch.seed is None else dataclasses.replace(plan.params, seed=batch.seed + k)
        prompts, samples = list(batch.prompts[lo:hi]), list(batch.samples[lo:hi])
        if plan.episodes is None:
            groups, trajs = sampler.generate(prompts, n=n, params=params), [[] for _ in prompts]
            texts = [c.text for g in groups for c in g.completions]
        else:
            groups, trajs = episode_groups(sampler, plan.episodes, prompts, samples, n, params, stats)
            texts = [plan.episodes.env.verifier_text(t) for ts in trajs for t in ts]
        pending.append((lo, groups, trajs, scorer.submit(texts, [s for s in samples for _ in range(n)])))
        if on_chunk is not None:
            on_chunk(hi - lo)
    out = []
    limit = plan.params.max_new_tokens if plan.episodes is None else plan.episodes.env.max_tokens
    for lo, groups, trajs, future in pending:  # verifier work for earlier chunks ran during generation
        scores = list(future.result())
        for b, g in enumerate(groups):
            sg = ScoredGroup(batch.samples[lo + b], batch.prompts[lo + b], list(g.prompt_token_ids), list(g.completions),
                             scores[b * n:(b + 1) * n], index=batch.index(lo + b), policy_version=version,
                             trajectories=trajs[b])
            lengths = torch.tensor(sg.lengths)
            sg.shaped = overlong_shaping(sg.rewards, lengths, limit, plan.overlong_buffer, plan.overlong_penalty)
            if plan.mask_truncated:
                sg.mask_truncated()
            out.append(sg)
    return out


def collect(
    sampler: Any,
    scorer: Any,
    prompts: PromptBatch | Callable[[int], PromptBatch],
    plan: RolloutPlan,
    *,
    policy_version: int = 0,
    agree: Callable[[int], int] | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> Rollout:
    """Sample, score, shape and (with dynamic sampling) filter one batch of groups.

    prompts: a `PromptBatch`, or ``round -> PromptBatch`` (round 0, 1, ...) when dynamic sampling
    may need more prompts. agree: ``missing -> missing summed over processes`` (multi-process runs
    stop drawing together); None for one process. on_chunk: called with each chunk's prompt count.
    """
    draw = prompts if callable(prompts) else (lambda r: prompts)
    stats = RolloutStats(episodes=EpisodeStats() if plan.episodes is not None else None)
    kept: list[ScoredGroup] = []
    spare: list[ScoredGroup] = []
    seen: list[ScoredGroup] = []
    quota = plan.quota
    while True:
        batch = draw(stats.rounds)
        groups = _round(sampler, scorer, batch, plan, policy_version, on_chunk, stats.episodes)
        quota = len(batch) if quota is None else quota
        seen += groups
        stats.rounds += 1
        if not plan.dynamic_sampling:
            kept = groups
            break
        for g in groups:
            (spare if tied(g, plan.filter_on) or len(kept) >= quota else kept).append(g)
        missing = quota - len(kept)
        if (agree(missing) if agree is not None else missing) == 0 or stats.rounds > plan.max_extra_rounds:
            break
    filler = max(0, quota - len(kept)) if plan.dynamic_sampling else 0
    kept += spare[:filler]  # still short after the extra rounds: tied groups fill the batch
    stats.seen, stats.kept = len(seen), len(kept)
    stats.zero_var = sum(tied(g, "reward") for g in seen)
    if plan.dynamic_sampling:
        stats.dropped = sum(tied(g, plan.filter_on) for g in seen) - filler
    return Rollout(kept, seen, stats)


def evaluate(
    sampler: Any,
    scorer: Any,
    batch: PromptBatch,
    params: SamplingParams,
    *,
    n: int = 1,
    chunk_prompts: int | None = None,
    on_chunk: Callable[[int], None] | None = None,
    episodes: Any = None,
) -> tuple[list[ScoredGroup], dict[str, float]]:
    """Held-out evaluation: the groups and {eval/accuracy, eval/reward, eval/reward/<component>}.

    accuracy is the fraction of completions the primary verifier passes (greedy, n=1: of prompts).
    episodes: an `rlvr.rollout.episodes.EpisodeSetup` to evaluate multi-turn episodes; the metrics
    then also hold the episodes' tool and turn metrics (`episode_metrics`) under ``eval/``.
    """
    plan = RolloutPlan(n=n, params=params, chunk_prompts=chunk_prompts, episodes=episodes)
    groups = collect(sampler, scorer, batch, plan, on_chunk=on_chunk).groups
    out = eval_metrics(groups)
    if episodes is not None:
        out.update(episode_metrics([t for g in groups for t in g.trajectories], prefix="eval/"))
    return groups, out


def eval_metrics(groups: Sequence[ScoredGroup], prefix: str = "eval/") -> dict[str, float]:
    """Accuracy (primary ``passed``), mean reward and mean reward per component over every completion."""
    scores = [s for g in groups for s in g.scores]
    total = max(len(scores), 1)
    out = {f"{prefix}accuracy": sum(bool(s.passed) for s in scores) / total,
           f"{prefix}reward": sum(float(s.reward) for s in scores) / total}
    comps = [c for g in groups for c in g.component_rewards]
    for name in sorted({k for c in comps for k in c}):
        out[f"{prefix}reward/{name}"] = sum(c.get(name, 0.0) for c in comps) / total
    return out
