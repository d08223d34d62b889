"""The typed records of the rollout layer: prompts in, scored groups of completions out.

- `PromptBatch`: what one generation round samples (task samples, their rendered prompts, their
  data-stream indices and the round's seed).
- `ScoredGroup`: the G scored completions of one prompt, with everything training, logging and
  evaluation read from them: the sampler's completions (text, token ids, logprobs, finish reason),
  the policy version that produced them, a per-token loss mask, the verifier's `Score`s (reward,
  ``passed``, rewards per component, the typed hacking flag) and the shaped rewards. For
  multi-turn episodes (`rlvr.rollout.episodes`) each completion is a whole episode after the
  prompt (observation tokens included, logprob 0 and loss mask 0 there) and ``trajectories``
  holds the episodes' turns.
- `RolloutStats`: what `rlvr.rollout.collect` reports about a collection (dropped groups, rounds).

What it does not do: sample, score or shape (see `rlvr.rollout.collect`), or build tensors for the
loss (see `rlvr.rollout.batch.pack_groups`, which takes `ScoredGroup`s).

Try it::

    >>> from rlvr.samplers import Completion
    >>> from rlvr.verifiers import Sample, Score
    >>> g = ScoredGroup(Sample(prompt="1+1", answer=2), "1+1=", [5, 6],
    ...                 [Completion("2", [7], [-0.1], "stop"), Completion("3", [8, 9], [-1.0, -2.0], "length")],
    ...                 [Score(1.0, True), Score(0.0, False)])
    >>> g.passed, g.finish_reasons, g.loss_masks
    ([True, False], ['stop', 'length'], [[1.0], [1.0, 1.0]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from rlvr.rollout.trajectory import Trajectory
from rlvr.samplers.base import Completion
from rlvr.verifiers.base import Sample, Score

__all__ = ["PromptBatch", "RolloutStats", "ScoredGroup"]


@dataclass(frozen=True)
class PromptBatch:
    """One round of prompts: samples[i] rendered as prompts[i], at position indices[i] of the data."""

    samples: Sequence[Sample]
    prompts: Sequence[str]
    indices: Sequence[int] = ()
    seed: int | None = None  # chunk k samples with seed + k (None: fresh randomness)

    def __post_init__(self) -> None:
        if len(self.samples) != len(self.prompts):
            raise ValueError(f"PromptBatch: {len(self.samples)} samples but {len(self.prompts)} prompts")
        if self.indices and len(self.indices) != len(self.samples):
            raise ValueError(f"PromptBatch: {len(self.samples)} samples but {len(self.indices)} indices")

    def __len__(self) -> int:
        return len(self.samples)

    def index(self, i: int) -> int:
        return int(self.indices[i]) if self.indices else i


@dataclass
class ScoredGroup:
    """The G scored completions of one prompt (G = len(completions))."""

    sample: Sample
    prompt: str  # the rendered prompt text
    prompt_token_ids: list[int]
    completions: list[Completion]  # text, token ids, sampler logprobs, finish reason
    scores: list[Score]
    index: int = 0  # position of the prompt in the data stream (or in the evaluated list)
    policy_version: int = 0  # optimizer steps the sampling policy had taken
    # (G,) verifier rewards plus shaping (DAPO's overlong penalty); the verifier's when unshaped
    shaped: torch.Tensor | None = None
    # per completion, one weight per completion token: 1 trains on it, 0 leaves it out of the loss
    # (all ones for single turns; 0 on observation tokens of episodes; truncated completions are
    # zeroed when the preset masks them)
    loss_masks: list[list[float]] = field(default_factory=list)
    # multi-turn episodes: the trajectory behind each completion (empty for single-turn groups)
    trajectories: list[Trajectory] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.scores) != len(self.completions):
            raise ValueError(f"ScoredGroup: {len(self.completions)} completions but {len(self.scores)} scores")
        if self.trajectories and len(self.trajectories) != len(self.completions):
            raise ValueError(f"ScoredGroup: {len(self.completions)} completions but {len(self.trajectories)} trajectories")
        if not self.loss_masks:
            self.loss_masks = ([t.loss_mask for t in self.trajectories] if self.trajectories else
                               [[1.0] * len(c.token_ids) for c in self.completions])
        if self.shaped is None:
            self.shaped = self.rewards

    def __len__(self) -> int:
        return len(self.completions)

    @property
    def texts(self) -> list[str]:
        return [c.text for c in self.completions]

    @property
    def token_ids(self) -> list[list[int]]:
        return [c.token_ids for c in self.completions]

    @property
    def sampler_logprobs(self) -> list[list[float]]:
        return [c.logprobs for c in self.completions]

    @property
    def finish_reasons(self) -> list[str]:
        return [c.finish_reason for c in self.completions]

    @property
    def lengths(self) -> list[int]:
        return [len(c.token_ids) for c in self.completions]

    @property
    def truncated(self) -> list[bool]:
        """Completions cut at the token limit (finish reason "length")."""
        return [c.finish_reason == "length" for c in self.completions]

    @property
    def rewards(self) -> torch.Tensor:
        """(G,) the verifier's rewards, before shaping."""
        return torch.tensor([float(s.reward) for s in self.scores])

    @property
    def passed(self) -> list[bool | None]:
        """The primary verifier's verdict per completion (None: no opinion)."""
        return [s.passed for s in self.scores]

    @property
    def component_rewards(self) -> list[dict[str, float]]:
        """Per completion, each verifier component's raw reward (empty for a single verifier)."""
        return [dict((s.info or {}).get("rewards") or {}) for s in self.scores]

    @property
    def suspicious(self) -> list[bool | None]:
        """Per completion, the typed hacking flag of its score (None: the verifier does not check)."""
        return [s.suspicious for s in self.scores]

    def mask_truncated(self) -> None:
        """Leave completions cut at the token limit out of the loss (their loss masks become 0)."""
        self.loss_masks = [[0.0] * len(m) if t else m for m, t in zip(self.loss_masks, self.truncated)]

    def records(self) -> list[dict[str, Any]]:
        """One JSON-ready row per completion (what rollouts.jsonl holds); an episode's row also
        carries its turns (``episode``: end, tool wait, each turn's text, calls and results)."""
        out = []
        for i, (c, s, r) in enumerate(zip(self.completions, self.scores, self.shaped.tolist())):
            info = dict(s.info or {})
            out.append({"index": self.index, "prompt": self.prompt, "completion": c.text, "answer": self.sample.answer,
                        "reward": r, "rewards": info.pop("rewards", {}), "passed": s.passed,
                        "finish_reason": c.finish_reason, "length": len(c.token_ids),
                        "policy_version": self.policy_version, "info": info})
            if self.trajectories:
                out[-1]["episode"] = self.trajectories[i].to_dict()
        return out


@dataclass
class RolloutStats:
    """What one `collect` did: groups seen and kept, groups without signal, dropped groups, rounds."""

    seen: int = 0
    kept: int = 0
    zero_var: int = 0  # seen groups whose shaped rewards all tie (advantage 0: no learning signal)
    dropped: int = 0  # groups dynamic sampling left out because their filter values all tie
    rounds: int = 0  # generation rounds (1 without dynamic sampling)
    episodes: Any = None  # rlvr.rollout.episodes.EpisodeStats when the plan ran episodes

    def metrics(self) -> dict[str, float]:
        out = {"groups/zero_var_frac": self.zero_var / max(self.seen, 1), "groups/dropped": float(self.dropped),
               "groups/sampling_rounds": float(self.rounds)}
        if self.episodes is not None:  # seconds generation stood still because every episode waited on tools
            out["tools/blocked_s"] = self.episodes.blocked_s
        return out
