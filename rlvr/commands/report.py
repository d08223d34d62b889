"""Summarise a training run: PNG plots of reward, accuracy, KL, entropy, length, clipping and alarms.

    rlvr report runs/demo          # writes runs/demo/report/{overview.png, reward.png, ..., report.md}

Reads metrics.jsonl and alarms.jsonl of the run directory (`rlvr.report.write_report`), prints the
path of report.md and the held-out accuracy before and after when the run evaluated.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by `rlvr train`")


def run(args: argparse.Namespace) -> int:
    from rlvr.metrics import read_jsonl_metrics
    from rlvr.report import write_report

    run_dir = Path(args.run_dir)
    report = write_report(run_dir)
    evals = [(r["step"], r["eval/accuracy"]) for r in read_jsonl_metrics(run_dir / "metrics.jsonl") if "eval/accuracy" in r]
    if evals:
        (s0, a0), (s1, a1) = evals[0], evals[-1]
        print(f"held-out accuracy: {a0:.1%} at step {s0} -> {a1:.1%} at step {s1}", file=sys.stderr)
    pngs = sorted(p.name for p in report.parent.glob("*.png"))
    print(f"wrote {report} and {len(pngs)} plots ({', '.join(pngs)})", file=sys.stderr)
    print(report)
    return 0
