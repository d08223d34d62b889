"""Train the tool demo's base model from scratch: a 1.1M-parameter Qwen2 that rarely calls Python.

What it does:
- the same tokenizer, model shape and training loop as the arithmetic demo (`rlvr.demo.pretrain`),
  on the tool corpus (`rlvr.demo.tool_corpus`: products of a three-digit and a two-digit number,
  8% of the conversations solved with a ```python call and its output block);
- a plain-generation check on held-out products with the demo prompt (no tools run): greedy
  accuracy of the direct answer (`<answer>` tags), how often a reply opens a python call (greedy
  and sampled), how often a sampled call is exactly `print(a * b)`, and whether the model copies
  the number from a given output block into the tags. Printed and saved as `eval.json` next to
  the weights, with the exact command in `pretrain.json`.

What it does not do: RL or run tools (that is `rlvr train --preset tool_demo`). The result is
shipped in `rlvr/data/tiny-tool/`; `ensure_tool_model()` returns it, or rebuilds it into a cache
directory.

Try it (the shipped model: 908 s of training and 937 s in all with one torch thread, on 2 cores
shared with other jobs at load average 4-6; an earlier run at load 1-2 trained in 446 s):
    python -m rlvr.demo.tool_pretrain --out /tmp/tiny-tool --threads 1
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from rlvr.demo import tool_corpus as tc
from rlvr.demo.pretrain import _generate, build_and_save, cli, ensure_model

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "data" / "tiny-tool"


@dataclasses.dataclass(frozen=True)
class ToolPretrainConfig:
    # Seeds the corpus stream, the initial weights and the evaluation samples.
    seed: int = 0
    # Optimiser steps; each sees `batch_size` rows of `seq_len` tokens.
    steps: int = 1000
    batch_size: int = 32
    seq_len: int = 128
    # Size of the packed corpus in tokens (the run reads steps*batch*seq_len of them, once).
    corpus_tokens: int = 4_200_000
    tokenizer_docs: int = 20_000
    vocab_size: int = 1024
    # AdamW with linear warmup then cosine decay to `min_lr_ratio * lr` (as rlvr.demo.pretrain).
    lr: float = 3e-3
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    # Evaluation: held-out products, `eval_samples` sampled replies each at temperature 1.
    eval_problems: int = 200
    eval_samples: int = 8
    max_new_tokens: int = 24


def _first_turn(text: str) -> str:
    """The reply up to the end of its first call (closing fence) or its answer tag."""
    call_end = text.find("```\n", text.find("```python") + 3) if "```python" in text else -1
    if call_end >= 0:
        return text[: call_end + 4]
    end = text.find("</answer>")
    return text[: end + len("</answer>")] if end >= 0 else text


@torch.no_grad()
def evaluate(model: Any, tokenizer: Any, cfg: ToolPretrainConfig, batch: int = 50) -> dict[str, Any]:
    """The plain-generation check of the module docstring (no tool runs: the copy check is given
    the true output block)."""
    pairs = tc.eval_pairs(cfg.eval_problems)
    prompts = [tc.demo_prompt(a, b) for a, b in pairs]
    calls = [tc.tool_episode(a, b) for a, b in pairs]
    with_output = [p + c + o for p, (c, o, _) in zip(prompts, calls)]
    torch.manual_seed(cfg.seed)
    greedy, sampled, copied, idx = [], [], [], []  # idx: the problem of each sampled reply
    for i in range(0, len(pairs), batch):
        chunk = list(range(i, min(i + batch, len(pairs))))
        greedy += _generate(model, tokenizer, prompts[i : i + batch], False, cfg.max_new_tokens)
        for _ in range(cfg.eval_samples):
            sampled += _generate(model, tokenizer, prompts[i : i + batch], True, cfg.max_new_tokens)
            idx += chunk
        copied += _generate(model, tokenizer, with_output[i : i + batch], False, 12)
    products = [a * b for a, b in pairs]
    sampled_products = [products[k] for k in idx]
    first = [_first_turn(t) for t in sampled]
    is_call = ["```python" in t for t in first]
    right_code = [c and t == calls[k][0] for c, t, k in zip(is_call, first, idx)]
    n, m = len(pairs), len(sampled)
    return {
        "held_out_problems": n,
        "greedy_accuracy": sum(tc.parse_tagged_answer(_first_turn(g)) == p for g, p in zip(greedy, products)) / n,
        "greedy_tool_call_rate": sum("```python" in _first_turn(g) for g in greedy) / n,
        "greedy_tag_rate": sum(tc.parse_tagged_answer(_first_turn(g)) is not None for g in greedy) / n,
        "sampled_direct_accuracy": sum(
            not c and tc.parse_tagged_answer(t) == p for c, t, p in zip(is_call, first, sampled_products)
        ) / m,
        "sampled_tool_call_rate": sum(is_call) / m,
        "sampled_calls_exactly_right": sum(right_code) / max(1, sum(is_call)),
        "copies_output_when_given": sum(tc.parse_tagged_answer(c) == p for c, p in zip(copied, products)) / n,
        "samples_per_problem": cfg.eval_samples,
        "examples": [{"problem": f"{a} * {b}", "greedy": g, "sampled": s}
                     for (a, b), g, s in list(zip(pairs, greedy, sampled))[:5]],
    }


def pretrain(out_dir: str | Path, cfg: ToolPretrainConfig = ToolPretrainConfig(), progress: bool = True) -> dict:
    """Build tokenizer + model, train on the tool corpus, check, save into `out_dir`; returns the check."""
    return build_and_save(out_dir, cfg, tc.sample_documents(cfg.tokenizer_docs, cfg.seed), tc.documents(cfg.seed),
                          evaluate, "rlvr.demo.tool_pretrain",
                          "rlvr.tasks.arithmetic.is_heldout('a * b'): md5 of the canonical problem % 10 == 0", progress)


def ensure_tool_model(path: str | Path | None = None) -> Path:
    """The tool demo's base model: `path` if given and complete, else the shipped copy, else a
    cached rebuild (`$RLVR_CACHE` or `~/.cache/rlvr`, about 8 minutes, done once).

    >>> (ensure_tool_model() / "config.json").is_file()
    True
    """
    return ensure_model(path, SHIPPED_DIR, "tiny-tool", pretrain, "the tool demo base model (about 8 minutes, once)")


def main(argv: list[str] | None = None) -> int:
    return cli(argv, __doc__, SHIPPED_DIR, ToolPretrainConfig, pretrain, evaluate)


if __name__ == "__main__":
    raise SystemExit(main())
