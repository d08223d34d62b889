"""Preference optimisation: DPO (sigmoid), IPO, label-smoothed cDPO, SimPO, ORPO and KTO.

    rlvr dpo data.train=pairs.jsonl                                   # DPO on the demo base model
    rlvr dpo loss=simpo data.train=pairs.jsonl
    rlvr dpo loss=kto data.train=labelled.jsonl                       # unpaired prompt/completion/label rows
    rlvr dpo --from-verifier from_verifier.task=arithmetic           # pairs from the task's verifiers
    rlvr dpo model.path=Qwen/Qwen2.5-0.5B-Instruct data.train=trl-lib/ultrafeedback_binarized

Config: `rlvr.trainers.dpo.DPOConfig`. Reference logprobs are computed once before training.
Reports implicit reward margins and accuracies (train and held-out); the model goes to
RUN_DIR/final. Guide: docs/dpo.md.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rlvr.config import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument(
        "--from-verifier",
        action="store_true",
        help="build pairs by sampling the task and checking with its verifiers (from_verifier.enabled=true)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest checkpoint in logging.run_dir"
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def run(args: argparse.Namespace) -> int:
    from rlvr.config import print_config, split_config_args
    from rlvr.trainers.dpo import load_dpo_config

    path, overrides = split_config_args(args.config or [])
    overrides += ["from_verifier.enabled=true"] * args.from_verifier + ["resume=true"] * args.resume
    cfg = load_dpo_config(path, overrides)
    if args.print_config:
        print_config(cfg)
        return 0
    from rlvr.trainers.dpo import train_dpo

    s = train_dpo(cfg)
    for key, label in (
        ("eval/reward_margin", "held-out reward margin"),
        ("eval/reward_accuracy", "held-out reward accuracy"),
        ("eval/reward_desirable", "held-out reward of desirable"),
        ("eval/reward_undesirable", "held-out reward of undesirable"),
        ("eval/accuracy", "held-out task accuracy"),
    ):
        if key in s["after"]:
            print(
                f"rlvr dpo: {label} {s['before'].get(key, float('nan')):.4f} -> {s['after'][key]:.4f}",
                file=sys.stderr,
            )
    print(f"rlvr dpo: model saved to {s['model']}", file=sys.stderr)
    return 0
