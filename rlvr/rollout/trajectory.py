"""Multi-turn episodes as typed records: `Turn`, `Trajectory`, and the `Environment` contract.

An episode alternates model turns and environment turns. The environment reads the whole
trajectory after each model turn and answers with one of:
- `Done()`: the episode ends (the model gave its final answer);
- `Observation(text)`: text the model reads next (feedback, an error message, a game state);
- `ToolCalls(calls)`: tool calls to run; the episode loop runs them concurrently with every other
  episode's calls and generation, then asks the environment to turn the results into text
  (`Environment.observe`).
Observation tokens sit in the sequence (the model conditions on them) but carry loss mask 0: they
are out of the policy loss, the KL and the entropy.

The verifier scores the finished trajectory: by default the model's text (every model turn, joined,
without observations) goes to the task's verifier like a single-turn completion.

What this module does not do: run episodes (`rlvr.rollout.episodes`) or tools (`rlvr.tools`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from rlvr.tools.base import ToolCall, ToolResult

__all__ = ["Done", "Environment", "EpisodeEnd", "Observation", "ToolCalls", "Trajectory", "Turn"]

EpisodeEnd = Literal["done", "max_turns", "max_tokens", "length"]


@dataclass
class Turn:
    """One turn. role "model": sampled tokens with the sampler's logprobs; role "env": observation
    tokens (no logprobs, out of the loss), with the calls and results that produced them."""

    role: Literal["model", "env"]
    text: str
    token_ids: list[int]
    logprobs: list[float] | None = None  # model turns only
    finish_reason: str | None = None  # model turns: the sampler's ("stop" or "length")
    tool_calls: list[ToolCall] = field(default_factory=list)  # env turns
    tool_results: list[ToolResult] = field(default_factory=list)  # env turns
    truncated: bool = False  # env turns: observation cut by the episode's token budget


@dataclass
class Trajectory:
    """A finished (or running) episode after the prompt."""

    prompt_token_ids: list[int]
    turns: list[Turn] = field(default_factory=list)
    end: EpisodeEnd | None = None  # why it ended (None while running)
    tool_wait_s: float = 0.0  # seconds this episode spent waiting on tools

    @property
    def model_turns(self) -> list[Turn]:
        return [t for t in self.turns if t.role == "model"]

    @property
    def model_text(self) -> str:
        """What the verifier reads by default: the model's turns joined, without observations."""
        return "".join(t.text for t in self.model_turns)

    @property
    def text(self) -> str:
        """Everything after the prompt, observations included."""
        return "".join(t.text for t in self.turns)

    @property
    def token_ids(self) -> list[int]:
        return [i for t in self.turns for i in t.token_ids]

    @property
    def loss_mask(self) -> list[float]:
        return [1.0 if t.role == "model" else 0.0 for t in self.turns for _ in t.token_ids]

    @property
    def logprobs(self) -> list[float]:
        """The sampler's logprobs of model tokens; 0.0 at observation tokens (masked anyway)."""
        return [x for t in self.turns for x in (t.logprobs if t.role == "model" else [0.0] * len(t.token_ids))]

    @property
    def truncated(self) -> bool:
        """Cut by the token budget or the sampler's per-turn limit rather than ended by the model."""
        return self.end in ("max_tokens", "length")

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [c for t in self.turns for c in t.tool_calls]

    @property
    def tool_results(self) -> list[ToolResult]:
        return [r for t in self.turns for r in t.tool_results]

    def to_dict(self) -> dict[str, Any]:
        return {"end": self.end, "tool_wait_s": self.tool_wait_s,
                "turns": [{"role": t.role, "text": t.text, "tokens": len(t.token_ids),
                           "calls": [c.to_dict() for c in t.tool_calls],
                           "results": [r.to_dict() for r in t.tool_results], "truncated": t.truncated}
                          for t in self.turns]}


@dataclass(frozen=True)
class Done:
    """The episode is over."""


@dataclass(frozen=True)
class Observation:
    """Text for the model to read next (it is tokenized and appended, masked out of the loss)."""

    text: str


@dataclass(frozen=True)
class ToolCalls:
    """Calls for the episode loop to run (concurrently); `Environment.observe` formats the results."""

    calls: tuple[ToolCall, ...]


class Environment:
    """Base class of environments. Subclasses implement `respond`; tool environments also `observe`.

    ``stop``: strings that end a model turn (e.g. ``"</tool_call>"``), added to the sampler's.
    ``max_turns``: model turns per episode. ``max_tokens``: the episode's budget of tokens after
    the prompt, model and observation tokens together. ``tools``: the tools its calls may name
    (names or specs for `rlvr.tools.runner.ToolRunner`; the trainer builds the runner with them).
    """

    stop: tuple[str, ...] = ()
    max_turns: int = 4
    max_tokens: int = 512
    tools: tuple[Any, ...] = ()

    def respond(self, trajectory: Trajectory, sample: Any) -> Done | Observation | ToolCalls:
        """The environment's answer to the trajectory's last model turn."""
        raise NotImplementedError

    def observe(self, calls: list[ToolCall], results: list[ToolResult], sample: Any) -> str:
        """The observation text for finished tool calls (default: each result's output, in order)."""
        return "".join(r.output for r in results)

    def verifier_text(self, trajectory: Trajectory) -> str:
        """What the task's verifier scores (default: the model's turns, without observations)."""
        return trajectory.model_text
