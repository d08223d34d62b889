"""The rollout layer: prompts in, scored groups of completions out, then tensors and one loss.

- `rlvr.rollout.records`: `PromptBatch`, `ScoredGroup` (a typed group of scored completions) and
  `RolloutStats`;
- `rlvr.rollout.collect`: `collect(...)` (chunked sampling overlapped with scoring, reward shaping,
  truncation handling, dynamic sampling) and `evaluate(...)` (held-out accuracy), used by every
  caller that generates and then scores;
- `rlvr.rollout.batch`: `pack_groups` (groups -> padded tensors), `forward_logprobs`,
  `prefix_then_tails`, `microbatch_weight` and `policy_loss` (the one objective the trainer runs);
- `rlvr.rollout.trajectory` and `rlvr.rollout.episodes`: multi-turn episodes (`Trajectory`,
  `Environment`, `run_episodes`, `ToolEnvironment`, `EpisodeSetup`), which `collect` plays
  instead of single completions when the plan has an `EpisodeSetup`.

Try it::

    >>> from rlvr.rollout import RolloutPlan, collect, pack_groups  # doctest: +SKIP
"""

from rlvr.rollout.batch import (
    RolloutBatch,
    forward_logprobs,
    microbatch_weight,
    pack_groups,
    policy_loss,
    prefix_then_tails,
    zero_variance,
)
from rlvr.rollout.collect import Rollout, RolloutPlan, collect, eval_metrics, evaluate, overlong_shaping, tied
from rlvr.rollout.episodes import EpisodeSetup, ToolEnvironment, episode_metrics, run_episodes
from rlvr.rollout.records import PromptBatch, RolloutStats, ScoredGroup

__all__ = ["EpisodeSetup", "PromptBatch", "Rollout", "RolloutBatch", "RolloutPlan", "RolloutStats", "ScoredGroup", "collect",
           "eval_metrics", "evaluate", "forward_logprobs", "microbatch_weight", "overlong_shaping", "pack_groups",
           "policy_loss", "prefix_then_tails", "run_episodes", "tied", "ToolEnvironment", "episode_metrics", "zero_variance"]
