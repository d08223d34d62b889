"""`rlvr eval`: sample a model on a task and report pass@k, maj@k, rewards, format rate and lengths.

Scores with the task's own verifiers (the very ones training uses), writes every sample with its
scores to JSONL, and prints a table with 95% intervals.

Multi-turn episodes with tools: a model trained with an ``env:`` section (a run directory, its
``final/`` or a checkpoint, whose ``config.yaml`` holds the section) is evaluated with the same
environment, tools, call formats and limits; so is any model on a task that brings its own
environment (``Task.environment()``). ``--env KEY=VALUE`` (keys of the ``env:`` section) or
``--env FILE.yaml`` (its ``env:`` section) gives any model tools, laid over the training
config's; ``--no-env`` plays single turns. The summary then adds tool calls per episode, errors,
turns and tokens, and each sample row its turns (``episode``). Example::

    rlvr eval --model demo --task arithmetic --n 8 --k 1,8 --limit 100
    rlvr eval --model Qwen/Qwen2.5-Math-1.5B --task math --sampler vllm --n 16 --k 1,4,16
    rlvr eval --model runs/lora/checkpoints/step-000050 --task arithmetic     # a LoRA checkpoint, merged
    rlvr eval --model runs/x/final --task dataset --task-option source=my.jsonl \
        --task-option template=prompts.py:mine --import my_rewards.py          # your own code by file
    rlvr eval --model runs/tools --task arithmetic                             # with the run's env: tools
    rlvr eval --model demo --task arithmetic --env tools=[calculator] --env formats=[hermes] --env max_turns=3
"""

from __future__ import annotations

import argparse
import contextlib
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
    add_env_arguments(parser)
    parser.add_argument("--output", default=None, help="samples JSONL (default: runs/eval/<task>-<time>.jsonl)")


def add_env_arguments(parser: argparse.ArgumentParser) -> None:
    """``--env`` and ``--no-env`` (``rlvr eval`` and ``rlvr generate``)."""
    parser.add_argument("--env", action="append", default=[], metavar="K=V | FILE.yaml",
                        help="multi-turn episodes with tools: a key of the env: section (tools=[python,calculator], "
                             "formats=[hermes], max_turns=4, max_tokens=512, timeout_s=10, environment=my_env.py:Env, "
                             "...) or a YAML file with an env: section; laid over the model's training config "
                             "(repeatable)")
    parser.add_argument("--no-env", action="store_true",
                        help="single-turn completions, even when the model was trained with tools or the task "
                             "brings an environment")


def env_config(args: argparse.Namespace) -> tuple[Any, str]:
    """The ``env:`` section to evaluate with (an `EnvConfig`): the model's training config's, then
    each ``--env`` in order; checked (tools, formats, environment class) before any model loads.
    None with ``--no-env``. Also says where the section came from."""
    import yaml

    from rlvr.commands.generate import _training_config
    from rlvr.config import ConfigError, from_dict
    from rlvr.preflight import check_env
    from rlvr.trainers.config import EnvConfig

    if args.no_env:
        if args.env:
            raise InputError("--no-env and --env: give one or the other")
        return None, "--no-env"
    data: dict[str, Any] = dict(_training_config(args.model).get("env") or {})
    where = "the model's training config.yaml" if data else "--env"
    for item in args.env:
        if "=" in item:
            data.update(_kv([item], "--env"))
            continue
        path = Path(item)
        if not path.is_file():
            raise InputError(f"--env {item!r}: expected KEY=VALUE or a YAML file with an env: section (no such file)")
        doc = yaml.safe_load(path.read_text()) or {}
        section = doc.get("env", doc) if isinstance(doc, dict) else None
        if not isinstance(section, dict):
            raise InputError(f"--env {item}: expected a mapping (an env: section), got {type(section).__name__}")
        data.update(section)
        where = str(path)
    ecfg = from_dict(EnvConfig, data, where=where)
    problems: list[str] = []
    check_env(ecfg, lambda key, text: problems.append(f"{where}: env.{key}: {text}"))
    if problems:
        raise ConfigError(problems)
    source = " and ".join(x for x in ("the training config" if _training_config(args.model).get("env") else "",
                                       "--env" if args.env else "") if x) or "the task"
    return ecfg, source


def describe_env(env: Any) -> dict[str, Any]:
    """What the summary records about the environment the episodes ran in."""
    return {"environment": type(env).__name__, "tools": [str(t) for t in getattr(env, "tools", ())],
            "formats": list(getattr(env, "formats", ())), "max_turns": env.max_turns, "max_tokens": env.max_tokens}


def env_line(env: Any, source: str) -> str:
    """One line saying which environment plays the episodes, where it came from, and its limits."""
    d = describe_env(env)
    return (f"multi-turn episodes ({d['environment']} from {source}): tools {', '.join(d['tools']) or '-'}, "
            f"formats {', '.join(d['formats']) or '-'}, max_turns {d['max_turns']}, max_tokens {d['max_tokens']}")


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
    from rlvr.rollout.environments import build_environment, build_episodes

    ecfg, source = env_config(args)  # a bad env: section fails here, before the model loads
    env = build_environment(ecfg, task) if ecfg is not None else None
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
    episodes = build_episodes(ecfg, task, tokenizer, env=env) if env is not None else None
    if episodes is not None:
        console.print(f"rlvr eval: {env_line(env, source)}")
    t0 = time.perf_counter()
    with (sampler, episodes or contextlib.nullcontext(), Scorer(verifier, workers=args.workers) as scorer,
          Progress(console=console) as bar):
        unit = "episodes" if episodes is not None else "samples"
        job = bar.add_task(f"eval {args.task} ({len(samples)} × n={args.n} {unit})", total=len(samples) * args.n)
        if episodes is None:  # per generated batch, not per chunk of prompts (an episode takes several)
            sampler.on_batch = lambda k: bar.advance(job, k)
        records, problems = evaluate_task(
            task, sampler, samples, n=args.n, params=params, scorer=scorer, tokenizer=tokenizer, episodes=episodes,
            progress=(lambda k: bar.advance(job, k * args.n)) if episodes is not None else None,
        )
    elapsed = time.perf_counter() - t0
    summary = summarize(problems, ks)
    summary.update(model=str(args.model), task=args.task, split=args.split, seconds=round(elapsed, 2))
    if episodes is not None:
        summary["env"] = describe_env(env)
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
    ep = summary.get("episodes")
    if ep:
        table.add_row("tool calls / episode", f"{ep['tools/calls_per_episode']:.2f}",
                      f"{ep['tools/call_rate']:.0%} of episodes call")
        table.add_row("tool errors / timeouts", f"{ep['tools/errors']:.0f}", f"{ep['tools/timeouts']:.0f} timeouts")
        table.add_row("turns / episode", f"{ep['episode/turns']:.2f}", "")
        table.add_row("tokens / episode: model + tools", f"{ep['episode/model_tokens']:.1f}",
                      f"+ {ep['episode/obs_tokens']:.1f}")
    Console(emoji=False).print(table)
    console.print(f"samples: {out}\nsummary: {out.with_suffix('.summary.json')}")
    return 0
