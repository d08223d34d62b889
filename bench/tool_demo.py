"""The tool demo, measured: a tiny model learns with GRPO to call the python tool for products.

Runs ``rlvr train --preset tool_demo`` (rlvr/configs/tool_demo.yaml: the shipped 1.1M-parameter
base model `demo-tool`, the `products` task in its python ToolEnvironment, GRPO, 16 prompts x 8
episodes) in a subprocess, then reads its metrics.jsonl. Held-out numbers are greedy episodes on
the task's 100 test problems (never in the pretraining corpus), evaluated at step 0 and every
``logging.eval_every`` steps:

- accuracy: the right product inside `<answer>` tags of the model's own text;
- tool calls per episode;
- mean tokens per episode after the prompt (model and observation tokens).

Training time is the sum of the step times (sampling, tools, scoring, updates), without the
held-out evaluations. The table shows every evaluation; the last line is exactly

    tool demo: held-out accuracy A.AA -> B.BB, tool calls/episode C.CC -> D.DD, mean tokens E -> F, training S s

Try it (a few minutes on 2 cores)::

    python bench/tool_demo.py
    python bench/tool_demo.py steps=20 logging.eval_every=10   # overrides go to `rlvr train`

What it does not do: pretrain the base model (`python -m rlvr.demo.tool_pretrain`) or compare
samplers (the HF sampler is the config's default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def run_demo(run_dir: Path, overrides: list[str]) -> float:
    """`rlvr train --preset tool_demo` into `run_dir`; returns its wall seconds (raises on failure)."""
    cmd = [sys.executable, "-m", "rlvr", "train", "--preset", "tool_demo", f"logging.run_dir={run_dir}",
           "logging.progress=none", "logging.tensorboard=false", *overrides]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"tool_demo: `{' '.join(cmd)}` failed with exit status {proc.returncode}")
    return time.perf_counter() - t0


def curves(run_dir: Path) -> tuple[list[dict], float]:
    """The evaluation rows (step, accuracy, calls, tokens, training seconds so far) and the total
    training seconds."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    trained, out = 0.0, []
    for r in sorted(rows, key=lambda r: r["step"]):
        trained += r.get("time/step", 0.0)
        if "eval/accuracy" in r:
            tokens = r.get("eval/episode/model_tokens", 0.0) + r.get("eval/episode/obs_tokens", 0.0)
            out.append({"step": r["step"], "accuracy": r["eval/accuracy"],
                        "calls": r.get("eval/tools/calls_per_episode", 0.0), "tokens": tokens, "trained_s": trained})
    return out, trained


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="key=value overrides for `rlvr train`")
    parser.add_argument("--run-dir", default=None, help="where the run goes (default: a new temporary directory)")
    parser.add_argument("--json", default=None, help="also write the curves and the summary here")
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="rlvr-tool-demo-"))
    load_before = _load()
    wall = run_demo(run_dir, args.overrides)
    evals, trained = curves(run_dir)
    if len(evals) < 2:
        raise SystemExit(f"tool_demo: {run_dir}/metrics.jsonl has {len(evals)} held-out evaluations; need 2")
    print(f"run directory {run_dir}; load average {load_before} before, {_load()} after; wall {wall:.0f} s")
    print(f"{'step':>5} {'accuracy':>9} {'calls/ep':>9} {'tokens':>7} {'trained s':>10}")
    for e in evals:
        print(f"{e['step']:>5} {e['accuracy']:>9.2f} {e['calls']:>9.2f} {e['tokens']:>7.1f} {e['trained_s']:>10.1f}")
    first, last = evals[0], evals[-1]
    if args.json:
        Path(args.json).write_text(json.dumps({"evals": evals, "training_s": trained, "wall_s": wall,
                                               "load_before": load_before, "load_after": _load()}, indent=2) + "\n")
    print(f"tool demo: held-out accuracy {first['accuracy']:.2f} -> {last['accuracy']:.2f}, "
          f"tool calls/episode {first['calls']:.2f} -> {last['calls']:.2f}, "
          f"mean tokens {first['tokens']:.0f} -> {last['tokens']:.0f}, training {trained:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
