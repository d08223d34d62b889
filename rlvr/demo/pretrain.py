"""Train the demo base model from scratch: a 1.1M-parameter Qwen2 that adds two-digit numbers.

What it does:
- a byte-level BPE tokenizer (vocab 1024, digits split) trained on the start of the corpus;
- a random-init Qwen2 (hidden 128, 4 layers, 4 heads, 2 KV heads, intermediate 512, tied);
- ~4.7M tokens from `rlvr.demo.corpus` packed into 128-token rows (documents end with eos);
- 1000 steps of 32 rows, AdamW lr 3e-3 (2e-3 stalled here) with linear warmup and
  cosine decay, fixed seed;
- an evaluation on held-out problems with the demo prompt: greedy free-text accuracy (last integer
  on the reply's first line equals a+b), greedy and sampled use of `<answer>` tags; printed and saved as
  `eval.json` next to the weights, with the exact command in `pretrain.json`.

What it does not do: RL (that is `rlvr train` on the shipped demo config). The result is shipped in
`rlvr/data/tiny-arith/`; `ensure_base_model()` returns it, or rebuilds it into a cache directory.

Try it (~4.5 min on 2 quiet cores; one run took 55 min on a 2-core machine shared
with ~8 other jobs, ~7 CPU-minutes):
    python -m rlvr.demo.pretrain --out /tmp/tiny-arith
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from rlvr.demo import corpus
from rlvr.tiny import build_model, count_parameters, train_tokenizer

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "data" / "tiny-arith"
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


@dataclasses.dataclass(frozen=True)
class PretrainConfig:
    # Seeds the corpus stream, the initial weights and the evaluation samples.
    seed: int = 0
    # Optimiser steps; each sees `batch_size` rows of `seq_len` tokens.
    steps: int = 1000
    batch_size: int = 32
    seq_len: int = 128
    # Size of the packed corpus in tokens (the run reads steps*batch*seq_len of them, once).
    corpus_tokens: int = 4_700_000
    # Corpus shape (rlvr.demo.corpus.documents): additions per arithmetic document, sentences per
    # English document.
    max_problems: int = corpus.MAX_PROBLEMS
    max_sentences: int = corpus.MAX_SENTENCES
    # Documents used to train the tokenizer (the start of the same stream).
    tokenizer_docs: int = 20_000
    vocab_size: int = 1024
    # AdamW with linear warmup then cosine decay to `min_lr_ratio * lr`.
    lr: float = 3e-3  # with this corpus 2e-3 stalled at ~10% held-out accuracy
    warmup_steps: int = 50
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    # Evaluation: this many held-out problems, `eval_samples` sampled replies each at temperature 1.
    eval_problems: int = 200
    eval_samples: int = 4
    max_new_tokens: int = 24


def pack_corpus(tokenizer: Any, cfg: Any, stream: Iterator[str] | None = None) -> torch.Tensor:
    """Tokenize the document stream (each followed by eos) until `cfg.corpus_tokens`; returns (N,).
    `stream`: the documents (default: the addition corpus, `rlvr.demo.corpus.documents`)."""
    eos = tokenizer.eos_token_id
    if stream is None:
        stream = corpus.documents(cfg.seed, cfg.max_problems, cfg.max_sentences)
    chunks: list[torch.Tensor] = []
    total = 0
    while total < cfg.corpus_tokens:
        docs = [next(stream) for _ in range(4096)]
        ids = tokenizer(docs, add_special_tokens=False)["input_ids"]
        flat = [t for doc in ids for t in (*doc, eos)]
        chunks.append(torch.tensor(flat, dtype=torch.long))
        total += len(flat)
    return torch.cat(chunks)[: cfg.corpus_tokens]


def lr_at(step: int, cfg: Any) -> float:
    """Linear warmup to `lr` over `warmup_steps`, then cosine to `min_lr_ratio * lr` at `steps`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    floor = cfg.min_lr_ratio * cfg.lr
    return floor + (cfg.lr - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def train(model: Any, tokens: torch.Tensor, cfg: Any, progress: bool = True) -> list[float]:
    """Plain causal-LM training over consecutive rows of `tokens`; returns the loss per step."""
    from tqdm.auto import tqdm

    rows_needed = cfg.steps * cfg.batch_size
    rows = tokens[: (tokens.numel() // cfg.seq_len) * cfg.seq_len].view(-1, cfg.seq_len)  # (R, T)
    if rows.shape[0] < rows_needed:
        raise ValueError(f"corpus has {rows.shape[0]} rows of {cfg.seq_len}, the run needs {rows_needed}")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.95),
    )
    model.train()
    losses: list[float] = []
    bar = tqdm(range(cfg.steps), desc="pretrain", disable=not progress, mininterval=1.0)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        batch = rows[step * cfg.batch_size : (step + 1) * cfg.batch_size]  # (B, T)
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr_at(step, cfg):.1e}")
    model.eval()
    return losses


@torch.no_grad()
def _generate(model: Any, tokenizer: Any, prompts: list[str], sample: bool, max_new: int) -> list[str]:
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(
        **enc,
        max_new_tokens=max_new,
        do_sample=sample,
        temperature=1.0 if sample else None,
        top_p=1.0 if sample else None,
        top_k=0 if sample else None,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def evaluate(model: Any, tokenizer: Any, cfg: PretrainConfig, batch: int = 50) -> dict[str, Any]:
    """Held-out accuracy and tag usage with the demo prompt (see the module docstring)."""
    pairs = corpus.eval_pairs(cfg.eval_problems)
    greedy: list[str] = []
    sampled: list[str] = []
    torch.manual_seed(cfg.seed)
    for i in range(0, len(pairs), batch):
        chunk = pairs[i : i + batch]
        prompts = [corpus.demo_prompt(a, b) for a, b in chunk]
        greedy += _generate(model, tokenizer, prompts, False, cfg.max_new_tokens)
        sampled += _generate(model, tokenizer, prompts * cfg.eval_samples, True, cfg.max_new_tokens)
    sums = [a + b for a, b in pairs]
    sampled_sums = _regroup(pairs, batch, cfg.eval_samples)
    n, m = len(pairs), len(sampled)
    return {
        "held_out_problems": n,
        "greedy_free_text_accuracy": sum(corpus.parse_free_answer(c) == s for c, s in zip(greedy, sums)) / n,
        "greedy_tag_usage": sum(corpus.parse_tagged_answer(c) is not None for c in greedy) / n,
        "sampled_free_text_accuracy": sum(
            corpus.parse_free_answer(c) == s for c, s in zip(sampled, sampled_sums)
        )
        / m,
        "sampled_tag_usage": sum(corpus.parse_tagged_answer(c) is not None for c in sampled) / m,
        "sampled_tagged_correct": sum(
            corpus.parse_tagged_answer(c) == s for c, s in zip(sampled, sampled_sums)
        )
        / m,
        "samples_per_problem": cfg.eval_samples,
        "examples": [{"prompt_sum": f"{a}+{b}", "greedy": g} for (a, b), g in list(zip(pairs, greedy))[:5]],
    }


def _regroup(pairs: list[tuple[int, int]], batch: int, k: int) -> list[int]:
    """The true sums in the order `evaluate` generated samples (each chunk repeated k times)."""
    out: list[int] = []
    for i in range(0, len(pairs), batch):
        chunk = [a + b for a, b in pairs[i : i + batch]]
        out += chunk * k
    return out


def pretrain(out_dir: str | Path, cfg: PretrainConfig = PretrainConfig(), progress: bool = True) -> dict:
    """Build tokenizer + model, train, evaluate, save everything into `out_dir`; returns eval dict."""
    docs = corpus.sample_documents(cfg.tokenizer_docs, cfg.seed, max_problems=cfg.max_problems,
                                   max_sentences=cfg.max_sentences)
    return build_and_save(out_dir, cfg, docs, None, evaluate, "rlvr.demo.pretrain",
                          "md5('min+max') % 10 == 0 over operands in [10, 99] (rlvr.demo.corpus.is_held_out)",
                          progress)


def build_and_save(out_dir: str | Path, cfg: Any, tokenizer_docs: list[str], documents: Iterator[str] | None,
                   check: Callable[[Any, Any, Any], dict], module: str, held_out_rule: str,
                   progress: bool = True) -> dict:
    """Train a tokenizer on `tokenizer_docs`, a tiny model on `documents` (`pack_corpus`), run
    `check(model, tokenizer, cfg)`, and save the model, tokenizer, ``eval.json`` (the check and
    training facts) and ``pretrain.json`` (the command that reproduces it, `module`'s) into `out_dir`.
    Shared by the demos' base models (`pretrain` here, `rlvr.demo.tool_pretrain.pretrain`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    tokenizer = train_tokenizer(tokenizer_docs, vocab_size=cfg.vocab_size)
    model = build_model(tokenizer, seed=cfg.seed)
    tokens = pack_corpus(tokenizer, cfg, documents)
    torch.manual_seed(cfg.seed)
    t1 = time.time()
    losses = train(model, tokens, cfg, progress=progress)
    t2 = time.time()
    result = check(model, tokenizer, cfg)
    result.update(
        parameters=count_parameters(model),
        corpus_tokens=int(tokens.numel()),
        final_loss=sum(losses[-20:]) / len(losses[-20:]),
        train_seconds=round(t2 - t1, 1),
        total_seconds=round(time.time() - t0, 1),
        torch_threads=torch.get_num_threads(),
    )
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    (out / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    meta = {
        "command": _command(out, cfg, module),
        "config": dataclasses.asdict(cfg),
        "held_out_rule": held_out_rule,
        "loss_every_50_steps": [round(x, 4) for x in losses[::50]],
    }
    (out / "pretrain.json").write_text(json.dumps(meta, indent=2) + "\n")
    return result


def reevaluate(out_dir: str | Path, cfg: Any = PretrainConfig(),
               check: Callable[[Any, Any, Any], dict] | None = None) -> dict:
    """Evaluate the saved model in `out_dir` again (`check`, default this demo's `evaluate`) and
    update its eval.json (training facts kept)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    old = json.loads((out / "eval.json").read_text()) if (out / "eval.json").is_file() else {}
    result = {**old, **(check or evaluate)(model, tokenizer, cfg)}
    (out / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _command(out: Path, cfg: Any, module: str = "rlvr.demo.pretrain") -> str:
    """The command line that reproduces this run (non-default fields only)."""
    args = [f"--out {out}", f"--threads {torch.get_num_threads()}"]
    for f in dataclasses.fields(cfg):
        if getattr(cfg, f.name) != f.default:
            args.append(f"--{f.name.replace('_', '-')} {getattr(cfg, f.name)}")
    return f"python -m {module} " + " ".join(args)


def _complete(path: Path) -> bool:
    return all((path / f).is_file() for f in _REQUIRED_FILES)


def ensure_model(path: str | Path | None, shipped: Path, cache_name: str, build: Callable[[Path], Any],
                 what: str) -> Path:
    """`path` if given and complete, else the `shipped` copy, else a cached rebuild by `build`
    (`$RLVR_CACHE` or `~/.cache/rlvr`, under `cache_name`; `what` is said on stderr, once)."""
    if path is not None and _complete(Path(path)):
        return Path(path)
    if path is None and _complete(shipped):
        return shipped
    target = Path(path) if path is not None else \
        Path(os.environ.get("RLVR_CACHE", Path.home() / ".cache" / "rlvr")) / cache_name
    if not _complete(target):
        print(f"rlvr: building {what} into {target}", file=sys.stderr)
        build(target)
    return target


def ensure_base_model(path: str | Path | None = None) -> Path:
    """The demo base model directory: `path` if given and complete, else the shipped copy, else a
    cached rebuild (`$RLVR_CACHE` or `~/.cache/rlvr`, about 5 minutes, done once).

    >>> (ensure_base_model() / "config.json").is_file()
    True
    """
    return ensure_model(path, SHIPPED_DIR, "tiny-arith", pretrain, "the demo base model (about 5 minutes, once)")


def cli(argv: list[str] | None, doc: str, shipped: Path, cfg_cls: type, build: Callable[..., dict],
        check: Callable[[Any, Any, Any], dict]) -> int:
    """The command line of a demo's pretraining script: --out, one flag per config field, --threads,
    --no-progress, --eval-only (re-check the model in --out)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--out", default=str(shipped), help="output directory")
    for f in dataclasses.fields(cfg_cls):
        parser.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--eval-only", action="store_true", help="re-evaluate the model in --out, no training")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = cfg_cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cfg_cls)})
    result = reevaluate(args.out, cfg, check) if args.eval_only else build(args.out, cfg, progress=not args.no_progress)
    print(json.dumps({k: v for k, v in result.items() if k != "examples"}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli(argv, __doc__, SHIPPED_DIR, PretrainConfig, pretrain, evaluate)


if __name__ == "__main__":
    raise SystemExit(main())
