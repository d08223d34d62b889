"""The sampler interface: prompts in, groups of completions (with token logprobs) out.

Every sampler (`HFSampler`, `VLLMSampler`, `VLLMServerSampler`) returns the same structures, so the
trainer never cares which one produced a batch:

    groups = sampler.generate(prompts, n=8, params=SamplingParams(max_new_tokens=128))
    groups[b].completions[g].token_ids / .logprobs / .text / .finish_reason   # B prompts, G = n

Conventions, the same in every sampler (tests pin them):
- **Logprobs** are those of the distribution each token was actually sampled from: the
  log-softmax of ``logits / temperature`` after top-k/top-p truncation (renormalised over the kept
  tokens), which is vLLM's ``logprobs_mode="processed_logprobs"`` and the log of transformers'
  processed ``scores``. With ``temperature == 0`` (greedy) they are the plain log-softmax. So with
  top_p=1 and top_k=0 (the RL defaults) a trainer that computes ``log_softmax(logits / T)`` gets
  the same numbers up to float error, and the ratio of the two is a true importance weight (TIS).
- **Token ids** of a completion include the token that ended it: the EOS token, or the token that
  completed a stop string. Nothing after it, no padding.
- **Text** is ``tokenizer.decode(token_ids, skip_special_tokens=True)``: a stop string, when one
  ended the completion, is part of the text (and of the token ids), and the text ends right after
  it, even when the last token decodes to more (``</answer>.``: the ``.`` is cut from the text,
  never from the token ids), so verifiers never see characters past the stop string.
- **finish_reason** is ``"stop"`` (EOS or a stop string) or ``"length"`` (max_new_tokens reached).
- Prompts are strings (tokenized with the model's tokenizer, special tokens as the tokenizer adds
  them) or lists of token ids, used as given.

What this module does not do: run a model. It holds the data types, the errors and the protocol.

Try it:
    >>> SamplingParams(temperature=0.7, max_new_tokens=16).greedy
    False
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Completion",
    "Group",
    "Prompts",
    "Sampler",
    "SamplerClosedError",
    "SamplerError",
    "SamplerTimeout",
    "SamplingParams",
    "WeightSyncError",
    "cut_at_stop",
    "tokenize_prompts",
]

FinishReason = Literal["stop", "length"]
Prompts = Sequence[str] | Sequence[Sequence[int]]


class SamplerError(RuntimeError):
    """A sampler failed (engine died, server answered with an error, bad response)."""


class SamplerTimeout(SamplerError, TimeoutError):
    """An engine call passed its deadline. The sampler is unusable afterwards: close it."""


class SamplerClosedError(SamplerError):
    """The sampler was closed, or broken by an earlier timeout."""


class WeightSyncError(SamplerError):
    """After a weight push, the engine's logprobs on the probe batch drift from the trainer's."""


@dataclass(frozen=True)
class SamplingParams:
    """How to sample. ``top_k=0`` and ``top_p=1.0`` switch truncation off (the RL default).

    temperature: 0 means greedy decoding.
    stop: strings that end a completion (searched in the completion's text, not the prompt's).
    seed: makes a ``generate`` call reproducible within one sampler; None draws fresh randomness.
    """

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 128
    stop: tuple[str, ...] = ()
    seed: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if not self.temperature >= 0:
            raise ValueError(f"SamplingParams.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"SamplingParams.top_k must be >= 0 (0 = off), got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"SamplingParams.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError(f"SamplingParams.stop must hold non-empty strings, got {self.stop!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class Completion:
    """One sampled continuation. ``len(token_ids) == len(logprobs)``."""

    text: str
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: FinishReason


@dataclass
class Group:
    """The n completions of one prompt (G = n), with the prompt's token ids."""

    prompt_token_ids: list[int]
    completions: list[Completion] = field(default_factory=list)
    prompt: str | None = None


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """`text` up to the end of its first stop string (unchanged when it holds none).

    >>> cut_at_stop("<answer>71</answer>.", ["</answer>"])
    '<answer>71</answer>'
    """
    ends = [text.find(s) + len(s) for s in stops if s in text]
    return text[: min(ends)] if ends else text


def tokenize_prompts(prompts: Prompts, tokenizer: Any) -> tuple[list[list[int]], list[str | None]]:
    """Token ids and (when given as text) the text of each prompt.

    >>> tokenize_prompts([[1, 2], [3]], tokenizer=None)
    ([[1, 2], [3]], [None, None])
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings or of token-id lists, not one string")
    ids: list[list[int]] = []
    texts: list[str | None] = []
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            if tokenizer is None:
                raise TypeError(f"prompt {i} is text but this sampler has no tokenizer")
            ids.append(list(tokenizer(p)["input_ids"]))
            texts.append(p)
        else:
            row = [int(t) for t in p]
            if not row:
                raise ValueError(f"prompt {i} is an empty token list")
            ids.append(row)
            texts.append(None)
    if not ids:
        raise ValueError("generate() needs at least one prompt")
    return ids, texts


class Sampler:
    """Base class of the samplers. Subclasses implement `generate` and `update_weights`.

    ``sleep()``/``wake()`` free and restore accelerator memory between the generation and training
    phases where the backend supports it; elsewhere they are no-ops (each subclass says which).
    Samplers are context managers: ``with VLLMSampler(path) as s: ...`` closes the engine.
    """

    def generate(self, prompts: Prompts, n: int, params: SamplingParams) -> list[Group]:
        raise NotImplementedError

    def update_weights(self, weights: Any) -> Any:
        """Load new policy weights (an ``nn.Module`` or a state dict) into the engine."""
        raise NotImplementedError

    def sleep(self) -> None:
        """Free engine memory until `wake` (no-op unless the subclass says otherwise)."""

    def wake(self) -> None:
        """Undo `sleep` (no-op unless the subclass says otherwise)."""

    def dead_engine(self) -> str | None:
        """A sentence naming the engine process that died, or None while it runs (or has none)."""
        return None

    def engine_name(self) -> str:
        """What to call the engine in an error message (a server's URL, an engine's pids)."""
        return type(self).__name__

    def close(self) -> None:
        """Release the engine. Idempotent."""

    def __enter__(self) -> Sampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_n(n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n (completions per prompt) must be a positive int, got {n!r}")
