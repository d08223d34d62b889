"""Train a policy with GRPO-family RL from a YAML config; with no config, run the embedded demo.

    rlvr train                                  # the demo: tiny arithmetic base model learns <answer> tags
    rlvr train run.yaml preset=dapo algo.clip_high=0.3
    rlvr train --preset ppo                     # the PPO demo (configs/ppo_demo.yaml): critic, GAE, adaptive KL
    rlvr train run.yaml --resume                # continue from the newest checkpoint of logging.run_dir
    rlvr train --overwrite                      # run the demo again in runs/demo
    accelerate launch --config_file rlvr/configs/accelerate/ddp.yaml -m rlvr train run.yaml

The resolved config is printed at the start and saved as RUN_DIR/config.yaml. With no config file
the shipped `rlvr/configs/demo.yaml` is used (overrides still apply: ``rlvr train steps=50``), or
`rlvr/configs/NAME_demo.yaml` for ``--preset NAME`` when one is shipped (``ppo``).
Guide: docs/training.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rlvr.config import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("--preset", metavar="NAME",
                        help="algorithm preset, the same as preset=NAME (`rlvr presets list`); "
                             "algo.* overrides still apply on top of it")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in logging.run_dir (metrics after it are replaced)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over in a run directory that already holds a run (its checkpoints and logs are replaced)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def run(args: argparse.Namespace) -> int:
    from rlvr.config import dump_yaml, print_config, save_resolved, split_config_args
    from rlvr.io import InputError
    from rlvr.trainers.config import load_train_config

    path, overrides = split_config_args(args.config or [])
    if args.preset:
        overrides.insert(0, f"preset={args.preset}")
    if path is None and args.preset and DEMO_CONFIG.with_name(f"{args.preset}_demo.yaml").exists():
        path = str(DEMO_CONFIG.with_name(f"{args.preset}_demo.yaml"))  # e.g. ppo_demo.yaml, its KL on
    cfg = load_train_config(path if path is not None else DEMO_CONFIG, overrides)
    if args.print_config:
        print_config(cfg)
        return 0
    import os

    main = os.environ.get("RANK", "0") == "0"
    run_dir = Path(cfg.logging.run_dir)
    previous = [run_dir / n for n in ("checkpoints", "metrics.jsonl", "rollouts.jsonl", "alarms.jsonl", "summary.json")]
    if not args.resume and any(p.exists() for p in previous):
        if not args.overwrite:
            raise InputError(f"{run_dir} already holds a run; pass --resume to continue it, --overwrite to start "
                             f"over there, or choose another directory with logging.run_dir=...")
        if main:
            print(f"rlvr train: --overwrite: replacing the run in {run_dir}", file=sys.stderr)
            for p in previous + [run_dir / "tb", run_dir / "report"]:  # only what a run (and its report) writes
                if p.is_dir():
                    shutil.rmtree(p)
                elif p.exists():
                    p.unlink()
    if main:
        print(f"rlvr train: config {path or DEMO_CONFIG} -> run directory {run_dir}", file=sys.stderr)
        print_config(cfg)
        run_dir.mkdir(parents=True, exist_ok=True)
        save_resolved(cfg, run_dir)
    from rlvr.models import set_torch_threads
    from rlvr.trainers.grpo import train

    set_torch_threads(reserved=1 if cfg.rollout.backend == "vllm" else 0)
    summary = train(cfg, resume=args.resume, config_yaml=dump_yaml(cfg))
    if main:
        first, last = summary["eval_first"], summary["eval_last"]
        if first is not None and last is not None:
            print(f"rlvr train: held-out accuracy {first:.1%} -> {last:.1%} "
                  f"({last - first:+.1%}) in {summary['wall_seconds']:.0f} s", file=sys.stderr)
        print(f"rlvr train: done, {summary['steps']} steps; see `rlvr report {run_dir}`", file=sys.stderr)
        (run_dir / "summary.json").write_text(json.dumps({k: v for k, v in summary.items()}, indent=1, default=str) + "\n")
    return 0
