"""Supervised fine-tuning on response tokens only (chat or prompt/completion data, packing, eval loss).

    rlvr sft data.train=rows.jsonl                                 # the demo base model, rows from a file
    rlvr sft sft.yaml model.path=Qwen/Qwen2.5-0.5B data.train=trl-lib/Capybara
    rlvr sft --rejection-sampling rejection_sampling.task=arithmetic   # keep what the verifiers pass
    rlvr sft sft.yaml --resume

Config: `rlvr.trainers.sft.SFTConfig` (YAML file + dotted overrides). The resolved config is printed
and saved as RUN_DIR/config.yaml; metrics go to RUN_DIR/metrics.jsonl and TensorBoard, the trained
model to RUN_DIR/final, the before/after numbers to RUN_DIR/summary.json. Guide: docs/sft.md.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rlvr.config import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument(
        "--rejection-sampling",
        action="store_true",
        help="sample the task, keep verified completions, train on them (rejection_sampling.enabled=true)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in logging.run_dir"
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def run(args: argparse.Namespace) -> int:
    from rlvr.config import print_config, split_config_args
    from rlvr.trainers.sft import load_sft_config

    path, overrides = split_config_args(args.config or [])
    overrides += ["rejection_sampling.enabled=true"] * args.rejection_sampling + ["resume=true"] * args.resume
    cfg = load_sft_config(path, overrides)
    if args.print_config:
        print_config(cfg)
        return 0
    from rlvr.trainers.sft import train_sft

    s = train_sft(cfg)
    before, after = s["before"].get("eval/loss"), s["after"].get("eval/loss")
    if before is not None and after is not None:
        print(f"rlvr sft: held-out loss {before:.4f} -> {after:.4f}", file=sys.stderr)
    if "eval/accuracy" in s["after"]:
        print(
            f"rlvr sft: held-out accuracy {s['before'].get('eval/accuracy', float('nan')):.1%} -> "
            f"{s['after']['eval/accuracy']:.1%}",
            file=sys.stderr,
        )
    print(f"rlvr sft: model saved to {s['model']}", file=sys.stderr)
    return 0
