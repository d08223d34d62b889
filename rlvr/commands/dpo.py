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

from rlvr.commands import add_stage_arguments, load_stage_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser, "--from-verifier", "from_verifier.enabled", "build pairs by sampling the task and checking with its verifiers")


def run(args: argparse.Namespace) -> int:
    from rlvr.trainers.dpo import load_dpo_config

    cfg = load_stage_config(args, "from_verifier", "from_verifier.enabled", load_dpo_config)
    if cfg is None:
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
            fmt = "{:.1%}" if "accuracy" in key else "{:.4f}"  # accuracies as sft and rm print them
            before, after = fmt.format(s["before"].get(key, float("nan"))), fmt.format(s["after"][key])
            print(f"rlvr dpo: {label} {before} -> {after}", file=sys.stderr)
    print(f"rlvr dpo: model saved to {s['model']}", file=sys.stderr)
    return 0
