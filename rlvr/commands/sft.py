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

from rlvr.commands import add_stage_arguments, load_stage_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser, "--rejection-sampling", "rejection_sampling.enabled", "sample the task, keep verified completions, train on them")


def run(args: argparse.Namespace) -> int:
    from rlvr.trainers.sft import load_sft_config

    cfg = load_stage_config(args, "rejection_sampling", "rejection_sampling.enabled", load_sft_config)
    if cfg is None:
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
