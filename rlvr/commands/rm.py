"""Train a Bradley-Terry reward model (scalar head at the last token) on chosen/rejected pairs.

    rlvr rm data.train=pairs.jsonl                                  # pairs from a local file
    rlvr rm model.path=Qwen/Qwen2.5-0.5B data.train=trl-lib/ultrafeedback_binarized data.chosen_field=chosen
    rlvr rm --from-verifier from_verifier.task=arithmetic            # pairs from the task's verifiers
    rlvr rm rm.yaml ensemble=4 margin=0.5

Config: `rlvr.trainers.reward.RewardConfig`. Reports held-out pairwise accuracy before and after;
the model (or ensemble, with ensemble.json) goes to RUN_DIR/final, ready for the ``reward_model``
verifier. Guide: docs/reward_models.md.
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
    from rlvr.trainers.reward import load_reward_config

    path, overrides = split_config_args(args.config or [])
    overrides += ["from_verifier.enabled=true"] * args.from_verifier + ["resume=true"] * args.resume
    cfg = load_reward_config(path, overrides)
    if args.print_config:
        print_config(cfg)
        return 0
    from rlvr.trainers.reward import train_reward_model

    s = train_reward_model(cfg)
    before = s["before"][0].get("eval/accuracy") if s["before"] and s["before"][0] else None
    after = s["final"].get("eval/accuracy")
    if after is not None:
        start = f"{before:.1%} -> " if before is not None else ""
        extra = (
            f", disagreement {s['final']['eval/disagreement']:.3f}"
            if "eval/disagreement" in s["final"]
            else ""
        )
        print(
            f"rlvr rm: held-out pairwise accuracy {start}{after:.1%} on {s['eval_pairs']} pairs{extra}",
            file=sys.stderr,
        )
    print(f"rlvr rm: reward model saved to {s['model']}", file=sys.stderr)
    return 0
