"""Train a policy with GRPO-family RL from a YAML config; with no config, run the embedded demo.

    rlvr train                                  # the demo: tiny arithmetic base model learns <answer> tags
    rlvr train run.yaml preset=dapo algo.clip_high=0.3
    rlvr train --preset ppo                     # the PPO demo (configs/ppo_demo.yaml): critic, GAE, adaptive KL
    rlvr train --preset tool_demo               # the tool demo (configs/tool_demo.yaml): learns to call python
    rlvr train run.yaml --resume                # continue from the newest checkpoint of logging.run_dir
    rlvr train run.yaml --import my_rewards.py  # a module or file whose @register_verifier names run.yaml uses
    rlvr train --overwrite                      # run the demo again in runs/demo
    accelerate launch --config_file rlvr/configs/accelerate/ddp.yaml -m rlvr train run.yaml

The config is checked before any model loads (`rlvr.preflight`: task, template, verifier names and
``file.py:name`` references, held-out split, model path). The resolved config is printed at the
start and saved as RUN_DIR/config.yaml; the trained model goes to RUN_DIR/final/ (LoRA runs: merged,
with the adapter in final/adapter/). SIGTERM saves a checkpoint after the current step. With no config file
the shipped `rlvr/configs/demo.yaml` is used (overrides still apply: ``rlvr train steps=50``), or
`rlvr/configs/NAME_demo.yaml` for ``--preset NAME`` when one is shipped (``ppo``). ``--preset
tool_demo`` names a shipped demo config itself (`rlvr/configs/tool_demo.yaml`, which sets its own
preset).
Guide: docs/training.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


def shipped_demo(name: str | None) -> Path | None:
    """The shipped demo config `name` names (``--preset tool_demo`` -> configs/tool_demo.yaml), or None
    when `name` is an algorithm preset (``--preset ppo``) or nothing is shipped under that name.

    >>> shipped_demo("tool_demo").name, shipped_demo("ppo"), shipped_demo(None)
    ('tool_demo.yaml', None, None)
    """
    from rlvr.presets import PRESETS

    if not name or name in PRESETS or not name.endswith("_demo"):
        return None
    path = DEMO_CONFIG.with_name(f"{name}.yaml")
    return path if path.is_file() else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rlvr.config import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("--preset", metavar="NAME",
                        help="algorithm preset, the same as preset=NAME (`rlvr presets list`); "
                             "algo.* overrides still apply on top of it. tool_demo: the shipped tool demo config")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in logging.run_dir (metrics after it are replaced)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over in a run directory that already holds a run (its checkpoints and logs are replaced)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE | FILE.py",
                        help="import a module or .py file first, so the verifiers, templates and tasks it "
                             "registers can be named in the config (repeatable)")


def run(args: argparse.Namespace) -> int:
    import os

    from rlvr.config import print_config, split_config_args
    from rlvr.plugins import import_targets
    from rlvr.trainers.config import load_train_config

    import_targets(args.imports)
    path, overrides = split_config_args(args.config or [])
    demo = shipped_demo(args.preset)
    if args.preset and demo is None:
        overrides.insert(0, f"preset={args.preset}")
    if demo is not None and path is not None:
        from rlvr.config import ConfigError

        raise ConfigError([f"--preset {args.preset} is the shipped config {demo}; give it or {path}, not both"])
    if demo is not None:
        path = str(demo)  # tool_demo.yaml (its own preset inside)
    elif path is None and args.preset and DEMO_CONFIG.with_name(f"{args.preset}_demo.yaml").exists():
        path = str(DEMO_CONFIG.with_name(f"{args.preset}_demo.yaml"))  # e.g. ppo_demo.yaml, its KL on
    cfg = load_train_config(path if path is not None else DEMO_CONFIG, overrides)
    if args.print_config:
        print_config(cfg)
        return 0
    from rlvr.api import GRPOTrainer  # the CLI is a thin layer over the Python API

    trainer = GRPOTrainer(config=cfg)
    trainer.check()  # names, user code, splits, model path: before any model loads
    run_dir = trainer.run_dir
    if os.environ.get("RANK", "0") == "0":
        print(f"rlvr train: config {path or DEMO_CONFIG} -> run directory {run_dir}", file=sys.stderr)
    from rlvr.models import set_torch_threads

    set_torch_threads(reserved=1 if cfg.rollout.backend == "vllm" else 0)
    summary = trainer.train(resume=args.resume, overwrite=args.overwrite)
    if os.environ.get("RANK", "0") == "0":
        first, last = summary["eval_first"], summary["eval_last"]
        if first is not None and last is not None:
            print(f"rlvr train: held-out accuracy {first:.1%} -> {last:.1%} "
                  f"({last - first:+.1%}) in {summary['wall_seconds']:.0f} s", file=sys.stderr)
        if summary.get("stopped_by") is None:
            print(f"rlvr train: final model in {run_dir / 'final'} (try `rlvr generate --model {run_dir / 'final'}`)",
                  file=sys.stderr)
        print(f"rlvr train: done, {summary['steps']} steps; see `rlvr report {run_dir}`", file=sys.stderr)
    return 0
