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

from rlvr.commands import add_stage_arguments, load_stage_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser, "--from-verifier", "from_verifier.enabled", "build pairs by sampling the task and checking with its verifiers")


def run(args: argparse.Namespace) -> int:
    from rlvr.trainers.reward import load_reward_config

    cfg = load_stage_config(args, "from_verifier", "from_verifier.enabled", load_reward_config)
    if cfg is None:
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
