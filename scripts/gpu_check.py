"""GPU readiness check: bf16 GRPO steps on a SmolLM2-135M-shaped model (random weights) with the HF
sampler, gradient checkpointing and LoRA, then full fine-tuning; prints a table.

    bash scripts/gpu_check.sh              # on one CUDA GPU (about 5 minutes)
    bash scripts/gpu_check.sh --cpu        # the same code path, tiny, on CPU (a dry run, ~1 minute)

Needs only torch, transformers, accelerate and peft (plus this repository): no vLLM, no network.
The model is built from SmolLM2-135M-Instruct's config.json (below; Llama, 30 layers, hidden 576,
9 heads / 3 KV heads, vocab 49,152, tied embeddings) with seeded random weights and a small BPE
tokenizer trained on the fly, so nothing is downloaded and nothing large travels with the tree.
A random model's rewards carry no meaning: this checks that the GPU paths run (bf16 autocast,
checkpointing, LoRA, memory), not that they learn.

Each row is one `rlvr.trainers.grpo.train` run in this process: seconds per step (median after
the first), peak CUDA memory, the last gradient norm and whether every loss and norm was finite.
What it does not check: vLLM, sleep mode, tensor parallel, FSDP/ZeRO (they need more than this).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

SMOLLM2_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
    "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64,
    "hidden_act": "silu", "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "vocab_size": 49152,
    "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2,
    "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}, "attention_bias": False, "mlp_bias": False,
}
CPU_SHRINK = {"num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2,
              "num_key_value_heads": 1, "head_dim": 32, "vocab_size": 1024}


def build_model(out: Path, cpu: bool) -> Path:
    """A SmolLM2-shaped random model (shrunk for --cpu) with a small trained tokenizer, in `out`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlvr.tiny import default_texts, train_tokenizer

    tok = train_tokenizer(default_texts(400), out, vocab_size=1024)
    cfg = dict(SMOLLM2_CONFIG, **(CPU_SHRINK if cpu else {}))
    cfg.update(bos_token_id=tok.bos_token_id or 1, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "model_type")}))
    model.save_pretrained(out)
    return out


def run(model_dir: Path, work: Path, name: str, overrides: list[str], steps: int) -> dict:
    import torch

    from rlvr.metrics import read_jsonl_metrics
    from rlvr.trainers.config import load_train_config
    from rlvr.trainers.grpo import train

    run_dir = work / name
    cfg = load_train_config(None, [
        f"model.path={model_dir}", f"steps={steps}", "preset=grpo", "task.name=arithmetic",
        "task.verifiers={length: 1.0}", "task.verifier_options={length: {max_chars: 64}}",
        "scoring.workers=0", f"logging.run_dir={run_dir}", "logging.eval_every=0", "logging.progress=none",
        "logging.tensorboard=false", "checkpoint.every=0", "rollout.backend=hf", *overrides,
    ])
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        train(cfg)
    except Exception as e:  # noqa: BLE001 - a row that fails is reported, the others still run
        return {"name": name, "error": f"{type(e).__name__}: {e}"[:300]}
    rows = [r for r in read_jsonl_metrics(run_dir / "metrics.jsonl") if r["step"] > 0]
    times = [r["time/step"] for r in rows]
    losses = [r["loss/policy"] for r in rows] + [r["grad_norm"] for r in rows]
    return {"name": name, "steps": len(rows), "s_per_step": statistics.median(times[1:] or times),
            "wall_s": time.perf_counter() - start, "last_grad_norm": rows[-1]["grad_norm"] if rows else float("nan"),
            "finite": all(x == x and abs(x) != float("inf") for x in losses),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu", action="store_true", help="dry run: the same code path, shrunk, on CPU")
    ap.add_argument("--steps", type=int, default=None, help="GRPO steps per row (default 4 on GPU, 2 on CPU)")
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    import torch

    if not args.cpu and not torch.cuda.is_available():
        print("gpu_check: no CUDA device (use --cpu for the dry run)", file=sys.stderr)
        return 2
    steps = args.steps or (2 if args.cpu else 4)
    batch = (["rollout.prompts_per_step=2", "rollout.group_size=2", "rollout.max_new_tokens=8", "optim.micro_batch_size=4"]
             if args.cpu else
             ["rollout.prompts_per_step=8", "rollout.group_size=8", "rollout.max_new_tokens=128", "optim.micro_batch_size=16",
              "rollout.batch_size=64"])
    dtype = ["model.dtype=bfloat16"]
    rows_spec = [
        ("bf16 + grad ckpt + LoRA r16", dtype + ["model.gradient_checkpointing=true", "model.lora.enabled=true", "optim.lr=1e-4"]),
        ("bf16 + grad ckpt (full)", dtype + ["model.gradient_checkpointing=true", "optim.lr=1e-6"]),
        ("bf16 (full, no ckpt)", dtype + ["optim.lr=1e-6"]),
    ]
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.cpu else "CPU (dry run)"
    with tempfile.TemporaryDirectory(prefix="rlvr-gpu-check-") as tmp:
        model_dir = build_model(Path(tmp) / "model", args.cpu)
        results = [run(model_dir, Path(tmp), f"row{i}", spec + batch, steps) for i, (_, spec) in enumerate(rows_spec)]
    print(f"\ngpu_check on {device}; torch {torch.__version__}; SmolLM2-135M shape{' (shrunk)' if args.cpu else ''}, "
          f"random weights; {steps} GRPO steps per row; batch {' '.join(b.split('.')[-1] for b in batch)}\n")
    print("| configuration | s/step (median) | peak CUDA GiB | last grad norm | losses finite | note |")
    print("|---|---|---|---|---|---|")
    ok = True
    for (label, _), r in zip(rows_spec, results):
        if "error" in r:
            ok = False
            print(f"| {label} | - | - | - | - | FAILED: {r['error']} |")
        else:
            ok &= r["finite"]
            print(f"| {label} | {r['s_per_step']:.2f} | {r['peak_gib']:.2f} | {r['last_grad_norm']:.4f} | {r['finite']} | "
                  f"{r['steps']} steps in {r['wall_s']:.0f} s |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"\ngpu_check: {'OK' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
