"""Run a chain of training stages from one YAML file (SFT -> RM -> PPO, SFT -> DPO, RS-SFT -> GRPO, ...).

    rlvr pipeline rlvr/configs/pipelines/sft_dpo.yaml
    rlvr pipeline rlvr/configs/pipelines/rs_sft_grpo.yaml run_dir=runs/rs stages.grpo.config.steps=40
    rlvr pipeline my_pipeline.yaml --resume          # skip finished stages, continue the unfinished one
    rlvr pipeline my_pipeline.yaml --print-config    # check every stage and reference, print, exit

Each stage runs in RUN_DIR/<stage> through its own command (`rlvr sft`, `rlvr rm`, `rlvr dpo`,
`rlvr train`); references such as ``${stages.sft.model}`` pass one stage's output to the next. At the
end a table of each stage's held-out metric before -> after is printed and written to
RUN_DIR/pipeline_summary.md and pipeline_summary.json. Exit code 1 when ``require_improvement`` is
true and a stage's metric did not improve. Guide: docs/pipeline.md.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="+", metavar="PIPELINE.yaml | key=value",
                        help="a pipeline YAML file, then dotted overrides such as stages.sft.config.steps=5")
    parser.add_argument("--resume", action="store_true",
                        help="skip stages whose summary.json exists; resume the first unfinished one from its checkpoint")
    parser.add_argument("--print-config", action="store_true",
                        help="check the pipeline, print every stage's resolved config and exit")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE | FILE.py",
                        help="import a module or .py file first, so the verifiers, templates and tasks it "
                             "registers can be named in the stages (repeatable)")


def run(args: argparse.Namespace) -> int:
    from rlvr.config import ConfigError, print_config, split_config_args
    from rlvr.pipeline import load_pipeline, run_pipeline
    from rlvr.plugins import import_targets

    import_targets(args.imports)
    path, overrides = split_config_args(args.config)
    if path is None:
        raise ConfigError(["rlvr pipeline needs a pipeline YAML file (see rlvr/configs/pipelines/)"])
    p = load_pipeline(path, overrides)
    if args.print_config:
        for s in p.stages:
            print_config(s.config, title=f"stage {s.name} ({s.kind}) -> {s.dir}")
        return 0
    summary = run_pipeline(p, resume=args.resume)
    if summary["not_improved"]:
        verdict = "failed (require_improvement: true)" if p.require_improvement else "a warning"
        print(f"rlvr pipeline: held-out metric did not improve in stage(s) {', '.join(summary['not_improved'])}: "
              f"{verdict}", file=sys.stderr)
    print(f"rlvr pipeline: summary in {p.run_dir / 'pipeline_summary.md'}", file=sys.stderr)
    return 0 if summary["ok"] else 1
