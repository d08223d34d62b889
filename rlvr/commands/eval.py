"""`rlvr eval`: sample a model on a task and report pass@k, maj@k, rewards, format rate and lengths.

Scores with the task's own verifiers (the very ones training uses), writes every sample with its
scores to JSONL, and prints a table with 95% intervals. Example::

    rlvr eval --model demo --task arithmetic --n 8 --k 1,8 --limit 100
    rlvr eval --model Qwen/Qwen2.5-Math-1.5B --task math --sampler vllm --n 16 --k 1,4,16
    rlvr eval --model runs/lora/checkpoints/step-000050 --task arithmetic     # a LoRA checkpoint, merged
    rlvr eval --model runs/x/final --task dataset --task-option source=my.jsonl \
        --task-option template=prompts.py:mine --import my_rewards.py          # your own code by file
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rlvr.io import InputError


def _kv(items: list[str], flag: str) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise InputError(f"{flag} {item!r}: expected key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="'demo', a save_pretrained directory, a hub name, a run "
                        "directory (its final/), a checkpoint, or a LoRA adapter directory (merged into its base)")
    parser.add_argument("--task", required=True, help="task name (rlvr.tasks.list_tasks())")
    parser.add_argument("--task-option", action="append", default=[], metavar="K=V", help="task option, e.g. source=data.jsonl")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N problems")
    parser.add_argument("--n", type=int, default=8, help="samples per problem")
    parser.add_argument("--k", default="1", help="comma-separated k values for pass@k and maj@k (each <= n)")
    parser.add_argument("--sampler", choices=("hf", "vllm"), default="hf")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1, help="verifier worker processes (0 = in-process)")
    parser.add_argument("--batch-size", type=int, default=64, help="HF sampler batch size (sequences)")
    parser.add_argument("--verifier", default=None, metavar="NAME[=W,NAME=W...]",
                        help="score with these verifiers instead of the task's: registered names or "
                             "file.py:name references, with weights as in `rlvr verify`")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE | FILE.py",
                        help="import a module or .py file first, so the tasks, templates and verifiers it "
                             "registers can be named (repeatable)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: free cores, from the load average; OMP_NUM_THREADS wins)")
    parser.add_argument("--output", default=None, help="samples JSONL (default: runs/eval/<task>-<time>.jsonl)")


def _sampler(args: argparse.Namespace) -> tuple[Any, Any]:
    """The sampler for --model: a model directory or hub name, "demo", a run directory (final/), a
    checkpoint, or a LoRA adapter (merged into its base; for vLLM written merged to a temp dir)."""
    from rlvr.checkpoint import load_trained, model_dir

    if args.sampler == "vllm":
        import tempfile

        from transformers import AutoTokenizer

        from rlvr.models import resolve_model_path
        from rlvr.samplers import VLLMSampler

        where = model_dir(args.model) if args.model != "demo" else None
        if where is not None and (where / "adapter_config.json").exists():
            model, tokenizer = load_trained(where)
            path = Path(tempfile.mkdtemp(prefix="rlvr-merged-"))
            model.save_pretrained(path)
            tokenizer.save_pretrained(path)
        else:
            path = resolve_model_path(where if where is not None and where.exists() else args.model)
        return VLLMSampler(str(path), seed=args.seed), AutoTokenizer.from_pretrained(path)
    from rlvr.samplers import HFSampler

    model, tokenizer = load_trained(args.model)
    model.eval()
    return HFSampler(model, tokenizer, batch_size=args.batch_size), tokenizer


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table
    from rich.text import Text

    from rlvr.evaluation import evaluate_task, summarize
    from rlvr.io import write_jsonl
    from rlvr.plugins import import_targets
    from rlvr.samplers import SamplingParams
    from rlvr.scoring import Scorer
    from rlvr.tasks import get_task

    import_targets(args.imports)
    console = Console(stderr=True, emoji=False)
    ks = [int(x) for x in str(args.k).split(",") if x.strip()]
    if not ks or min(ks) < 1 or max(ks) > args.n:
        raise InputError(f"--k {args.k}: each k must be between 1 and --n ({args.n})")
    task = get_task(args.task, **_kv(args.task_option, "--task-option"))
    from rlvr.commands.verify import parse_verifier
    from rlvr.templates import get_template

    if isinstance(task.template, str):
        get_template(task.template)  # an unknown template or file.py:name fails before the model loads
    verifier = parse_verifier(args.verifier) if args.verifier else task.verifier()
    samples = task.samples(args.split, limit=args.limit)
    if not samples:
        raise InputError(f"task {args.task!r} split {args.split!r} has no samples")
    params = SamplingParams(
        temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens, stop=tuple(args.stop), seed=args.seed
    )
    import torch

    from rlvr.models import set_torch_threads

    set_torch_threads(args.threads, reserved=1 if args.sampler == "vllm" else 0)
    torch.manual_seed(args.seed)
    sampler, tokenizer = _sampler(args)
    t0 = time.perf_counter()
    with sampler, Scorer(verifier, workers=args.workers) as scorer, Progress(console=console) as bar:
        job = bar.add_task(f"eval {args.task} ({len(samples)} × n={args.n} samples)", total=len(samples) * args.n)
        sampler.on_batch = lambda k: bar.advance(job, k)  # per generated batch, not per chunk of prompts
        records, problems = evaluate_task(
            task, sampler, samples, n=args.n, params=params, scorer=scorer, tokenizer=tokenizer,
        )
    elapsed = time.perf_counter() - t0
    summary = summarize(problems, ks)
    summary.update(model=str(args.model), task=args.task, split=args.split, seconds=round(elapsed, 2))
    out = Path(args.output or f"runs/eval/{args.task}-{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    write_jsonl(out, records)
    out.with_suffix(".summary.json").write_text(json.dumps(summary, indent=1) + "\n")

    table = Table(title=f"{args.task} · {len(problems)} problems × {args.n} samples · {elapsed:.1f} s")
    table.add_column("metric")
    table.add_column("mean", justify="right")
    table.add_column("95% CI", justify="right")
    for key, value in summary.items():
        if isinstance(value, tuple):
            table.add_row(Text(key), f"{value[0]:.3f}", Text(f"[{value[1]:.3f}, {value[2]:.3f}]"))
    length = summary["length"]
    table.add_row("length mean / median / p90 / max", f"{length['mean']:.1f}", f"{length['median']} / {length['p90']} / {length['max']}")
    table.add_row("truncated", f"{length['truncated_frac']:.3f}", "")
    Console(emoji=False).print(table)
    console.print(f"samples: {out}\nsummary: {out.with_suffix('.summary.json')}")
    return 0
