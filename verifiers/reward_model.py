"""The ``reward_model`` verifier: a learned reward (a transformers sequence-classification model) behind
the verifier API, batched on the trainer's device.

    >>> v = get_verifier("reward_model", path="runs/rm/final")            # doctest: +SKIP
    >>> v.score_many(["<answer>71</answer>", "<answer>9</answer>"], [Sample(prompt="What is 23 + 48?")] * 2)

What it does:
- loads a reward model trained by ``rlvr rm`` (a directory, or an ensemble directory with
  ``ensemble.json``), a list of such directories, or any ``AutoModelForSequenceClassification``
  checkpoint with one label; the text scored is the sample's prompt rendered with ``template``
  (default: the template ``rlvr rm`` recorded, else ``"none"``), then the completion, then EOS,
  exactly as ``rlvr rm`` tokenized its training pairs; rows longer than ``max_length`` (default:
  the ``data.max_length`` ``rlvr rm`` recorded, else 1024) lose the prompt's start;
- reward = ``scale`` * mean over members of (head output - ``rlvr_reward_mean``), the mean that
  ``rlvr rm`` stored so demonstrations average 0 (``normalize=False`` uses the raw output);
  for an ensemble, ``info`` holds ``disagreement`` (the population std of the members' scaled
  rewards) and ``members`` (each member's scaled reward);
- ``passed`` is None (a learned reward has no opinion on correctness) unless ``threshold`` is set,
  then ``reward > threshold``;
- `score_many(completions, samples)` scores a whole batch in forward passes of ``batch_size`` rows
  on ``device`` (``"auto"``: ``cuda:$LOCAL_RANK`` when CUDA is present, else the CPU); calling the
  verifier on one item runs a batch of one, unless `prefetch` scored it already.

With rule-based verifiers in `combine` (``combine({"math": 1.0, "rm": 0.5}, {"rm": ("reward_model",
{"path": ...})})``): `rlvr.scoring`'s in-process scorer calls `prefetch` on every
`rlvr.verifiers.base.BatchVerifier` (this one, also inside a `Combined`) before the per-item calls, and `score_many` here scores a batch that way.
Score with ``workers=0`` (`rlvr.scoring.Scorer(v, workers=0)`, ``scoring.workers: 0`` in a
trainer config): a worker process would load its own copy of the model and score item by item.
The model is loaded lazily on first use and is not pickled (a copy sent to a process reloads it).

What it does not do: train reward models (``rlvr rm``, `rlvr.trainers.reward`), or enforce a
deadline (the forward pass is not interruptible; `timeout_s` is a budget for the scorer).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlvr.verifiers.base import BatchVerifier, Sample, Score, register_verifier
from rlvr.verifiers.base import prefetch as base_prefetch

__all__ = ["RewardModelVerifier", "prefetch", "score_many"]


def _device(name: str) -> Any:
    import torch

    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    return torch.device("cpu")


def _member_dirs(path: str | Path | Sequence[str | Path]) -> list[Path]:
    if isinstance(path, (list, tuple)):
        return [d for p in path for d in _member_dirs(p)]
    p = Path(path)
    manifest = p / "ensemble.json"
    if manifest.is_file():
        return [p / m for m in json.loads(manifest.read_text())["members"]]
    return [p]


@register_verifier("reward_model")
class RewardModelVerifier(BatchVerifier):
    """A learned reward as a verifier (a `BatchVerifier`); see the module docstring for the options."""

    timeout_s = 60.0  # per item when (unwisely) run in a worker process

    def __init__(
        self,
        path: str | list[str],
        *,
        device: str = "auto",
        batch_size: int = 32,
        max_length: int | None = None,
        template: str | None = None,
        normalize: bool = True,
        scale: float = 1.0,
        threshold: float | None = None,
    ):
        if not path:
            raise ValueError("reward_model: give path= (a reward model directory or a list of them)")
        self.path, self.device_name, self.batch_size, self.max_length = (
            path,
            device,
            int(batch_size),
            None if max_length is None else int(max_length),
        )
        self.template, self.normalize, self.scale, self.threshold = (
            template,
            normalize,
            float(scale),
            threshold,
        )
        self._models: list[Any] | None = None
        self._tokenizer: Any = None
        self._cache: dict[tuple[str, str], Score] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_models=None, _tokenizer=None, _cache={})
        return state

    def _load(self) -> list[Any]:
        if self._models is None:
            import torch
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            dirs = _member_dirs(self.path)
            self._tokenizer = AutoTokenizer.from_pretrained(dirs[0])
            if self._tokenizer.pad_token_id is None:
                self._tokenizer.pad_token = self._tokenizer.eos_token
            device = _device(self.device_name)
            models = []
            for d in dirs:
                m = (
                    AutoModelForSequenceClassification.from_pretrained(d, dtype=torch.float32)
                    .to(device)
                    .eval()
                )
                if m.config.num_labels != 1:
                    raise ValueError(
                        f"reward_model: {d} has {m.config.num_labels} labels; a reward model has 1"
                    )
                if m.config.pad_token_id is None:
                    m.config.pad_token_id = self._tokenizer.pad_token_id
                models.append(m)
            if self.template is None:
                self.template = getattr(models[0].config, "rlvr_prompt_template", None) or "none"
            if self.max_length is None:  # the length rlvr rm trained at, so the prompt is cut the same way
                self.max_length = int(getattr(models[0].config, "rlvr_max_length", None) or 1024)
            self._models = models
        return self._models

    def _ids(self, completion: str, sample: Sample) -> list[int]:
        from rlvr.templates import render

        tok = self._tokenizer
        prompt = tok(render(self.template, sample.prompt, tok), add_special_tokens=False)["input_ids"]
        reply = list(tok(completion, add_special_tokens=False)["input_ids"])
        if tok.eos_token_id is not None:
            reply.append(int(tok.eos_token_id))
        reply = reply[: self.max_length]
        return list(prompt[max(0, len(prompt) - (self.max_length - len(reply))) :]) + reply

    def raw_rewards(self, completions: Sequence[str], samples: Sequence[Any]) -> Any:
        """(M, N) tensor: each member's normalised head output for each completion (before `scale`)."""
        import torch

        models = self._load()
        samples = [s if isinstance(s, Sample) else Sample.from_row(s) for s in samples]
        rows = [self._ids(c, s) for c, s in zip(completions, samples)]
        pad = int(self._tokenizer.pad_token_id)
        device = next(models[0].parameters()).device
        out = torch.zeros(len(models), len(rows))
        with torch.no_grad():
            for lo in range(0, len(rows), self.batch_size):
                part = rows[lo : lo + self.batch_size]
                width = max(len(r) for r in part)
                ids = torch.full((len(part), width), pad, dtype=torch.long)
                attn = torch.zeros((len(part), width), dtype=torch.long)
                for i, r in enumerate(part):
                    ids[i, : len(r)] = torch.tensor(r)
                    attn[i, : len(r)] = 1
                ids, attn = ids.to(device), attn.to(device)
                for k, m in enumerate(models):
                    out[k, lo : lo + len(part)] = (
                        m(input_ids=ids, attention_mask=attn).logits[:, 0].float().cpu()
                    )
        if self.normalize:
            offsets = torch.tensor([float(getattr(m.config, "rlvr_reward_mean", 0.0) or 0.0) for m in models])
            out = out - offsets[:, None]
        return out

    def score_many(self, completions: Sequence[str], samples: Sequence[Any]) -> list[Score]:
        """Score a batch in forward passes of `batch_size` rows; one `Score` per completion, in order.

        Each distinct (prompt, completion) is scored once, so repeats (a GRPO group of identical
        completions) get bit-identical rewards and count as tied.
        """
        if len(completions) != len(samples):
            raise ValueError(f"reward_model: {len(completions)} completions but {len(samples)} samples")
        if not completions:
            return []
        samples = [s if isinstance(s, Sample) else Sample.from_row(s) for s in samples]
        distinct: dict[tuple[str, str], int] = {}  # (prompt, completion) -> its row among the distinct ones
        rows_c, rows_s = [], []
        for c, s in zip(completions, samples):
            if distinct.setdefault((s.prompt, c), len(rows_c)) == len(rows_c):
                rows_c.append(c)
                rows_s.append(s)
        where = [distinct[(s.prompt, c)] for c, s in zip(completions, samples)]
        r = self.raw_rewards(rows_c, rows_s)[:, where]  # (M, N)
        mean = r.mean(0) * self.scale
        spread = r.std(0, unbiased=False) * abs(self.scale) if r.shape[0] > 1 else None
        scores = []
        for i in range(r.shape[1]):
            reward = float(mean[i])
            info: dict[str, Any] = {}
            if spread is not None:
                info.update(disagreement=float(spread[i]), members=[float(x) * self.scale for x in r[:, i]])
            passed = None if self.threshold is None else reward > self.threshold
            scores.append(Score(reward=reward, passed=passed, info=info))
        return scores

    def prefetch(self, completions: Sequence[str], samples: Sequence[Any]) -> None:
        """Score a batch now; the following per-item calls for these items return the cached Scores."""
        self._cache = {}  # only this batch's scores are kept
        scores = self.score_many(completions, samples)
        for c, s, score in zip(completions, samples, scores):
            prompt = s.prompt if isinstance(s, Sample) else (s.get("prompt") or "")
            self._cache[(prompt, c)] = score

    def __call__(self, completion: str, sample: Sample) -> Score:
        hit = self._cache.get((sample.prompt, completion))  # every repeat of an item hits, not only the first
        return hit if hit is not None else self.score_many([completion], [sample])[0]

    def __repr__(self) -> str:
        return f"RewardModelVerifier(path={self.path!r}, device={self.device_name!r})"


def prefetch(verifier: Any, completions: Sequence[str], samples: Sequence[Any]) -> None:
    """Batch-score every learned component of `verifier` (itself, or inside a `combine`) ahead of scoring
    (`rlvr.verifiers.base.prefetch`: every `BatchVerifier` in it)."""
    base_prefetch(verifier, completions, samples)


def score_many(verifier: Any, completions: Sequence[str], samples: Sequence[Any]) -> list[Score]:
    """Score a batch in this process with every learned component batched (see the module docstring).

    >>> score_many(combine({"math": 1.0, "rm": 0.5}, {"rm": ("reward_model", {"path": d})}), texts, samples)  # doctest: +SKIP
    """
    from rlvr.scoring import score_batch
    from rlvr.verifiers.base import resolve_verifier

    verifier = resolve_verifier(verifier)
    if isinstance(verifier, RewardModelVerifier):
        return verifier.score_many(completions, samples)
    return list(score_batch(verifier, completions, samples, workers=0))  # the in-process scorer prefetches
