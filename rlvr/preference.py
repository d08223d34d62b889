"""Data formats of the pipeline stages: SFT examples, preference pairs, unpaired (KTO) examples.

One set of row formats for `rlvr sft`, `rlvr rm` and `rlvr dpo` (local JSONL/JSON/Parquet/CSV or a
hub dataset, read through `rlvr.tasks.base.load_rows`):

- prompt/completion: ``{"prompt": "What is 2 + 3?", "completion": " 5"}``; the loss sees the
  completion tokens only (the prompt is masked).
- chat: ``{"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}``
  rendered with the tokenizer's chat template; only assistant turns are trained on.
- preference: ``{"prompt": ..., "chosen": ..., "rejected": ...}``; chosen/rejected may be strings or
  message lists (a conversation's last assistant turn; with no "prompt" the shared leading turns
  are the prompt, as in TRL's implicit-prompt format). An optional ``margin`` column feeds the
  Bradley-Terry margin.
- unpaired (KTO): ``{"prompt": ..., "completion": ..., "label": true}``.

Also here: `pack` (several examples per row, with position ids restarting per example so the model
attends within each example only), `pairs_from_scores` (verifier-made preference pairs: every
passed completion of a prompt against a failed one), and `sample_and_score` (sample N completions
per prompt with `rlvr.samplers.HFSampler` and score them with a task's verifier).

Bad rows raise `rlvr.io.InputError` naming the file, the line and the field.
What this module does not do: compute losses (see `rlvr.losses`) or run a training loop.

Try it::

    >>> pairs_from_scores(["p"], [["a", "b", "c"]], [[True, False, True]], per_prompt=4)
    [{'prompt': 'p', 'chosen': 'a', 'rejected': 'b'}, {'prompt': 'p', 'chosen': 'c', 'rejected': 'b'}]
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rlvr.io import InputError

__all__ = [
    "Example",
    "encode_pair",
    "encode_sft_row",
    "load_table",
    "pack",
    "pad_examples",
    "pairs_from_scores",
    "sample_and_score",
    "split_heldout",
]


@dataclass
class Example:
    """One tokenized sequence: ``ids`` with ``mask`` 1 on the tokens the loss sees."""

    ids: list[int]
    mask: list[int]


def load_table(
    source: str, split: str = "train", limit: int | None = None
) -> tuple[list[dict], Callable[[int], str]]:
    """Rows and a ``where(i)`` naming row i ("file.jsonl:17"); bad files raise InputError."""
    from rlvr.tasks.base import TaskDataError, load_rows

    try:
        return load_rows(source, split=split, limit=limit)
    except TaskDataError as e:
        raise InputError(str(e)) from None


def split_heldout(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded (train, held-out) index lists; at least one held-out row when fraction > 0 and n > 1.

    >>> split_heldout(10, 0.2, 0)[1]
    [7, 8]
    """
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = 0 if fraction <= 0 or n < 2 else max(1, round(n * fraction))
    return sorted(order[k:]), sorted(order[:k])


def _text(row: dict, field: str, where: str, *, allow_messages: bool = False) -> Any:
    if field not in row or row[field] is None:
        present = sorted(k for k, v in row.items() if v is not None)  # a table fills absent fields with None
        raise InputError(f"{where}: field {field!r} is missing (this row has: {', '.join(present) or 'nothing'})")
    value = row[field]
    if isinstance(value, str):
        return value
    if allow_messages and isinstance(value, list):
        _check_messages(value, where, field)
        return value
    kind = "a string or a list of messages" if allow_messages else "a string"
    raise InputError(f"{where}: field {field!r} must be {kind}, got {type(value).__name__}")


def _check_messages(messages: Any, where: str, field: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise InputError(f"{where}: field {field!r} must be a non-empty list of messages")
    for k, m in enumerate(messages):
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("role"), str)
            or not isinstance(m.get("content"), str)
        ):
            raise InputError(
                f"{where}: field {field!r}[{k}] must be {{'role': str, 'content': str}}, got {m!r}"
            )


def _tok(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _opening_header(tokenizer: Any, role: str, where: str) -> str:
    """What the chat template writes before the content of a conversation's first turn (transformers
    renders no empty conversation, so a marker stands in for the content)."""
    marker = "\x00rlvr-content\x00"
    text = tokenizer.apply_chat_template([{"role": role, "content": marker}], tokenize=False)
    if marker not in text:
        raise InputError(f"{where}: the conversation opens with an {role} turn and this chat template does not "
                         f"show where that turn's header ends; start it with a system or user turn")
    return text[: text.index(marker)]


def _chat_segments(tokenizer: Any, messages: list[dict], where: str) -> Example:
    """Tokens of a conversation through the chat template; mask 1 on assistant turns only.

    Each turn's text is the difference between the template rendered through that turn and
    rendered before it (with the generation prompt when the turn is the assistant's), so the
    trained tokens are exactly what the model writes after the template's assistant header.
    """
    if getattr(tokenizer, "chat_template", None) is None:
        raise InputError(f"{where}: chat rows need a tokenizer with a chat template (this one has none)")
    ids: list[int] = []
    mask: list[int] = []
    done = ""
    for i, m in enumerate(messages):
        is_reply = m["role"] == "assistant"
        if is_reply:
            # the template's assistant header (and anything it puts first, e.g. a default system
            # prompt) is context, never a target, also when the conversation opens with the reply
            head = (
                tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
                if i
                else _opening_header(tokenizer, m["role"], where)
            )
            if not head.startswith(done):
                raise InputError(
                    f"{where}: the chat template does not render turns as a prefix of each other"
                )
            ids += _tok(tokenizer, head[len(done) :])
            mask += [0] * (len(ids) - len(mask))
            done = head
        full = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not full.startswith(done):
            raise InputError(f"{where}: the chat template does not render turns as a prefix of each other")
        part = _tok(tokenizer, full[len(done) :])
        ids += part
        mask += [int(is_reply)] * len(part)
        done = full
    return Example(ids, mask)


def _completion_ids(tokenizer: Any, text: str, add_eos: bool) -> list[int]:
    ids = _tok(tokenizer, text)
    if add_eos and tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    return ids


def encode_sft_row(
    row: dict,
    where: str,
    tokenizer: Any,
    *,
    prompt_field: str = "prompt",
    completion_field: str = "completion",
    messages_field: str = "messages",
    max_length: int = 512,
    add_eos: bool = True,
) -> Example:
    """One SFT row (chat or prompt/completion) as an `Example` truncated to `max_length` tokens."""
    if messages_field in row and row[messages_field] is not None:
        _check_messages(row[messages_field], where, messages_field)
        ex = _chat_segments(tokenizer, row[messages_field], where)
    else:
        prompt = _text(row, prompt_field, where)
        completion = _text(row, completion_field, where)
        p, c = _tok(tokenizer, prompt), _completion_ids(tokenizer, completion, add_eos)
        ex = Example(p + c, [0] * len(p) + [1] * len(c))
    if not any(ex.mask):
        raise InputError(f"{where}: nothing to train on (empty completion / no assistant turn)")
    ex.ids, ex.mask = ex.ids[:max_length], ex.mask[:max_length]
    if not any(ex.mask):
        raise InputError(f"{where}: the prompt alone is longer than max_length={max_length} tokens")
    return ex


def _prompt_and_reply(
    row: dict, field: str, where: str, tokenizer: Any, prompt_field: str
) -> tuple[list[int], list[int]]:
    """(prompt ids, reply ids) for one side of a preference row (see the module docstring)."""
    reply = _text(row, field, where, allow_messages=True)
    prompt = row.get(prompt_field)
    if prompt is not None and not isinstance(prompt, (str, list)):
        raise InputError(f"{where}: field {prompt_field!r} must be a string or a list of messages, "
                         f"got {type(prompt).__name__}")
    if isinstance(prompt, list):
        _check_messages(prompt, where, prompt_field)
    if isinstance(reply, list):  # a conversation: its last turn is the reply
        if reply[-1]["role"] != "assistant":
            raise InputError(f"{where}: field {field!r}: the last message is the reply and must have role "
                             f"'assistant', got {reply[-1]['role']!r}")
        history = (prompt if isinstance(prompt, list) else []) + reply[:-1]
        if isinstance(prompt, str):
            history = [{"role": "user", "content": prompt}] + history
        ex = _chat_segments(tokenizer, history + [reply[-1]], where)
        cut = max(i for i, m in enumerate(ex.mask) if m == 0) + 1 if 0 in ex.mask else 0
        return ex.ids[:cut], ex.ids[cut:]
    if prompt is None:
        raise InputError(f"{where}: field {prompt_field!r} is missing (needed when {field!r} is a string)")
    if isinstance(prompt, list):
        p = _tok(tokenizer, tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True))
    elif isinstance(prompt, str):
        p = _tok(tokenizer, prompt)
    return p, _completion_ids(tokenizer, reply, add_eos=True)


def encode_pair(
    row: dict,
    where: str,
    tokenizer: Any,
    *,
    prompt_field: str = "prompt",
    chosen_field: str = "chosen",
    rejected_field: str = "rejected",
    max_length: int = 512,
) -> tuple[Example, Example]:
    """(chosen, rejected) Examples of one preference row; the prompt is masked in both."""
    out = []
    for field in (chosen_field, rejected_field):
        p, c = _prompt_and_reply(row, field, where, tokenizer, prompt_field)
        if not c:
            raise InputError(f"{where}: field {field!r} is empty")
        keep_prompt = max(0, min(len(p), max_length - len(c)))  # keep the reply; cut the prompt's start
        p = p[len(p) - keep_prompt :]
        ids, mask = (p + c)[:max_length], ([0] * len(p) + [1] * len(c))[:max_length]
        out.append(Example(ids, mask))
    return out[0], out[1]


def pad_examples(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest: input_ids, attention_mask (N, L) and the loss mask (N, L)."""
    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(examples), width), dtype=torch.long)
    mask = torch.zeros((len(examples), width))
    for i, e in enumerate(examples):
        ids[i, : len(e.ids)] = torch.tensor(e.ids, dtype=torch.long)
        attn[i, : len(e.ids)] = 1
        mask[i, : len(e.ids)] = torch.tensor(e.mask, dtype=torch.float)
    return {"input_ids": ids, "attention_mask": attn, "mask": mask}


def split_prompt(e: Example) -> tuple[list[int], list[int]] | None:
    """(prompt ids, response ids) when the loss mask is 0s then 1s (a plain prompt/response row)."""
    k = e.mask.index(1) if 1 in e.mask else len(e.ids)
    return (e.ids[:k], e.ids[k:]) if k and all(e.mask[k:]) else None


def pack_pairs(pairs: Sequence[tuple[Example, ...]], pad_id: int, device: Any = None) -> Any:
    """Preference pairs as an `rlvr.rollout.RolloutBatch` of groups of 2 (chosen, rejected rows
    interleaved) for the shared-prompt forward, or None when a pair's two prompts differ, a row
    is not prompt-then-response, or a response is all pad tokens (the caller then runs the full
    sequences). The last case is an empty reply when pad == EOS: a sequence-classification head
    then reads the prompt's last token in the full row, which the response-only pass cannot see."""
    from rlvr.rollout import pack_groups
    from rlvr.samplers import Completion, Group

    groups = []
    for pair in pairs:
        c, r = split_prompt(pair[0]), split_prompt(pair[1])
        if c is None or r is None or c[0] != r[0] or not c[1] or not r[1]:
            return None
        if all(t == pad_id for t in c[1]) or all(t == pad_id for t in r[1]):
            return None
        groups.append(Group(c[0], [Completion("", ids, [0.0] * len(ids), "stop") for ids in (c[1], r[1])]))
    packed = pack_groups(groups, pad_id)
    for name in ("input_ids", "attention_mask", "position_ids", "completion_ids", "mask"):
        setattr(packed, name, getattr(packed, name).to(device))
    return packed


def pack(examples: Sequence[Example], seq_len: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Pack examples greedily (first fit, in order) into rows of `seq_len` tokens.

    Returns input_ids, position_ids and mask (R, seq_len) and no attention mask: position ids that
    restart at 0 for each example make transformers build a block-diagonal causal mask, so an
    example never attends to its neighbours. The padded tail of a row is its own block, masked.
    The first token of each example is never a target (its logits would come from the previous
    example's last token), as unpacked, where position 0 is never predicted.

    >>> out = pack([Example([1, 2], [0, 1]), Example([3, 4], [1, 1])], seq_len=5, pad_id=0)
    >>> out["input_ids"].tolist(), out["position_ids"].tolist(), out["mask"].tolist()
    ([[1, 2, 3, 4, 0]], [[0, 1, 0, 1, 0]], [[0.0, 1.0, 0.0, 1.0, 0.0]])
    """
    rows: list[list[Example]] = []
    used: list[int] = []
    for e in examples:
        if len(e.ids) > seq_len:
            e = Example(e.ids[:seq_len], e.mask[:seq_len])
        slot = next((r for r, u in enumerate(used) if u + len(e.ids) <= seq_len), None)
        if slot is None:
            rows.append([]), used.append(0)
            slot = len(rows) - 1
        rows[slot].append(e)
        used[slot] += len(e.ids)
    ids = torch.full((len(rows), seq_len), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), seq_len), dtype=torch.long)
    mask = torch.zeros((len(rows), seq_len))
    for r, row in enumerate(rows):
        at = 0
        for e in row:
            n = len(e.ids)
            ids[r, at : at + n] = torch.tensor(e.ids, dtype=torch.long)
            pos[r, at : at + n] = torch.arange(n)
            mask[r, at : at + n] = torch.tensor(e.mask, dtype=torch.float)
            mask[r, at] = 0.0
            at += n
    return {"input_ids": ids, "position_ids": pos, "mask": mask}


def pairs_from_scores(
    prompts: Sequence[str],
    completions: Sequence[Sequence[str]],
    passed: Sequence[Sequence[bool | None]],
    per_prompt: int = 4,
) -> list[dict[str, str]]:
    """Preference rows from verified samples: each passed completion against a failed one.

    Distinct texts only; pairs cycle through the failed completions; at most `per_prompt` pairs
    per prompt. Prompts whose completions all pass or all fail give no pair.
    """
    rows: list[dict[str, str]] = []
    for prompt, texts, ok in zip(prompts, completions, passed):
        good = list(dict.fromkeys(t for t, p in zip(texts, ok) if p))
        bad = list(dict.fromkeys(t for t, p in zip(texts, ok) if p is False))
        if not good or not bad:
            continue
        for k, chosen in enumerate(good[:per_prompt]):
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": bad[k % len(bad)]})
        for k in range(len(good), min(per_prompt, len(bad))):  # fewer good than bad: reuse good ones
            rows.append({"prompt": prompt, "chosen": good[k % len(good)], "rejected": bad[k]})
    return rows


def sample_and_score(
    model: Any,
    tokenizer: Any,
    task: Any,
    samples: Sequence[Any],
    *,
    n: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
    workers: int = 0,
    progress: bool = False,
) -> list[Any]:
    """Sample `n` completions per sample with `HFSampler` and score them with the task's verifier.

    Returns one `rlvr.rollout.ScoredGroup` per sample (rendered prompt, completions, Scores), from
    `rlvr.rollout.collect`: chunks of ``batch_size // n`` prompts, each scored while the next
    generates (``workers=0`` scores in this process, which a learned verifier needs; rule-based
    verifiers may use worker processes).
    """
    from rlvr.rollout import PromptBatch, RolloutPlan, collect
    from rlvr.samplers import HFSampler, SamplingParams
    from rlvr.scoring import Scorer

    batch = PromptBatch(list(samples), [task.render(s, tokenizer) for s in samples], seed=seed)
    params = SamplingParams(temperature=temperature, max_new_tokens=max_new_tokens)
    plan = RolloutPlan(n=n, params=params, chunk_prompts=max(1, batch_size // n))
    bar = _progress(None, progress, "sampling", total=len(samples))
    with Scorer(task.verifier(), workers=workers) as scorer:
        groups = collect(HFSampler(model, tokenizer, batch_size=batch_size), scorer, batch, plan,
                         on_chunk=bar.update if bar is not None else None).groups
    if bar is not None:
        bar.close()
    return groups


def _progress(it: Any, on: bool, desc: str, total: int | None = None) -> Any:
    if not on:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc, leave=False, total=total)
