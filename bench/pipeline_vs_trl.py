"""Seconds per DPO and reward-model step and peak memory: rlvr's trainers against TRL's, same work per step.

Both sides train the same weights on the same pairs with the same settings:
- model: a random-init 3.4M-parameter Qwen2 (hidden 256, 4 layers, intermediate 768, vocab 1024,
  tied embeddings; the shape of bench/grpo_vs_trl.py), built once by `rlvr.tiny`. The reward
  model is that model with a 1-output sequence-classification head, initialised once (seed 0)
  and saved, so both reward trainers load identical weights, head included;
- pairs: `--pairs` fixed synthetic preference pairs (arithmetic prompts of the `arithmetic`
  task; chosen = a short worked answer with the right sum, rejected = the same text with a wrong
  sum), written as prompt/chosen/rejected JSONL into a temporary directory this script creates
  and removes (by its exact path). rlvr reads the file (`data.train`); TRL gets the same rows as
  a `datasets.Dataset`. No held-out split on either side (`data.eval_fraction=0`);
- per step: `--batch` pairs in one forward/backward (rlvr `optim.micro_batch_size` = batch; TRL
  `per_device_train_batch_size` = batch, no gradient accumulation), max length 128, torch AdamW
  (TRL `optim="adamw_torch"`, betas 0.9/0.999, eps 1e-8, no weight decay), constant lr without
  warmup (DPO 1e-5, RM 5e-5), grad-norm clipping at 1.0, fp32 on the CPU, no gradient
  checkpointing, no TensorBoard/W&B, sigmoid DPO loss with beta 0.1, plain Bradley-Terry loss.

Rows:
- ``rlvr-dpo``: `rlvr.trainers.dpo.train_dpo`; the reference scores every sequence once before
  training (not timed), so a step is one policy forward/backward over the batch's pairs, each
  pair's shared prompt run once (`rlvr.rollout.prefix_then_tails`);
- ``trl-dpo``: `trl.DPOTrainer` with ``precompute_ref_log_probs=True`` (the same work per step:
  the like-for-like row);
- ``trl-dpo-ref``: TRL's default (``precompute_ref_log_probs=False``): a reference forward every
  step; shown because it is what a TRL user gets unless they ask;
- ``rlvr-rm`` / ``trl-rm``: `rlvr.trainers.reward.train_reward_model` / `trl.RewardTrainer`.

What remains different (cannot be made equal from the outside):
- padding: rlvr left-pads prompts and right-pads responses and runs each pair's prompt once
  (DPO, and the RM for decoder-only models); TRL's DPO collator left-pads prompts and right-pads
  completions separately, so its rows can be a few tokens wider. Tokenisation: rlvr tokenises
  prompt and reply separately, TRL prompt+reply together (the same tokens on these pairs);
- TRL computes log-probs through its chunked fused LM head (`add_fused_lm_head`); rlvr takes the
  model's logits and a row-wise log-softmax (`rlvr.losses.token_logprobs`);
- data order: each side shuffles with its own seeded sampler (same pairs, different batches);
- TRL (transformers `Trainer`) runs accelerate and its callback/logging machinery per step.

The clock: every side runs alone in its own process (`--runs` times, sides alternating) with
`--threads` torch threads. A step's time is the wall time from the end of the previous step to
the end of this one (batch assembly, forward, backward, clipping, optimizer step and the step's
logging; TRL: between `on_step_end` callbacks; rlvr: between its per-step metrics rows, timed by
wrapping `RunLogger.metrics` in the worker process, which still writes every row), so the
first step has no time; the next `--warmup` steps are not counted, nor the last step on either
side (rlvr runs its final evaluation in it). The table shows the median over runs of each run's
median, and the peak RSS of the process (max over runs; rlvr-dpo loads a separate reference model
for its one-off pass and then frees it, trl-dpo precomputes with the policy itself, trl-dpo-ref
keeps a reference copy for the whole run).

    python bench/pipeline_vs_trl.py                       # 3 runs x 15 steps (11 timed) of every row
    python bench/pipeline_vs_trl.py --only rlvr-dpo trl-dpo --runs 5 --json out.json
    python bench/pipeline_vs_trl.py --runs 1 --steps 6 --warmup 2   # a quick look

Needs `pip install trl==1.16.0` (bench extra). What it does not measure: learning quality, or
the one-off costs before the first step (loading, tokenising, the reference pass).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPE = dict(
    hidden_size=256,
    num_hidden_layers=4,
    intermediate_size=768,
    num_attention_heads=4,
    num_key_value_heads=2,
    tie_word_embeddings=True,
)
MAX_LENGTH, BETA, DPO_LR, RM_LR = 128, 0.1, 1e-5, 5e-5
WORKERS = ["rlvr-dpo", "trl-dpo", "trl-dpo-ref", "rlvr-rm", "trl-rm"]
BASELINE = {"rlvr-dpo": "trl-dpo", "rlvr-rm": "trl-rm"}


def make_pairs(n: int, seed: int = 0) -> list[dict]:
    """`n` fixed prompt/chosen/rejected rows: an arithmetic prompt, a worked right and wrong answer.

    >>> row = make_pairs(1)[0]
    >>> sorted(row), row["chosen"] != row["rejected"]
    (['chosen', 'prompt', 'rejected'], True)
    """
    from rlvr.tasks import get_task

    task = get_task("arithmetic", level=1, n=n)
    rng = random.Random(seed)
    rows = []
    for s in task.samples("train")[:n]:
        a, b = (int(x) for x in s.metadata["expression"].split(" + "))
        wrong = a + b + rng.choice([-10, -2, -1, 1, 2, 10])
        work = f" {a} plus {b}: the ones give {a % 10 + b % 10}, the tens give {a // 10 + b // 10}0, so the sum is"
        rows.append(
            {
                "prompt": task.render(s),
                "chosen": f"{work} {a + b}. <answer>{a + b}</answer>",
                "rejected": f"{work} {wrong}. <answer>{wrong}</answer>",
            }
        )
    return rows


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _intervals(ends: list[float]) -> list[float]:
    return [b - a for a, b in zip(ends, ends[1:])]


def run_trl(which: str, model_dir: str, pairs: str, steps: int, batch: int, out_dir: str) -> dict:
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        TrainerCallback,
    )

    ends: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            ends.append(time.perf_counter())

    rows = [json.loads(line) for line in Path(pairs).read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(model_dir)
    common = dict(
        output_dir=out_dir,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        max_steps=steps,
        logging_steps=1,
        report_to=[],
        gradient_checkpointing=False,
        bf16=False,
        save_strategy="no",
        use_cpu=True,
        seed=0,
        lr_scheduler_type="constant",
        warmup_steps=0,
        optim="adamw_torch",
        weight_decay=0.0,
        max_grad_norm=1.0,
        max_length=MAX_LENGTH,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    if which.startswith("trl-dpo"):
        from trl import DPOConfig, DPOTrainer

        args = DPOConfig(
            learning_rate=DPO_LR,
            beta=BETA,
            loss_type=["sigmoid"],
            precompute_ref_log_probs=which == "trl-dpo",
            precompute_ref_batch_size=batch,
            **common,
        )
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        trainer = DPOTrainer(
            model=model,
            args=args,
            processing_class=tok,
            train_dataset=Dataset.from_list(rows),
            callbacks=[Clock()],
        )
    else:
        from trl import RewardConfig, RewardTrainer

        args = RewardConfig(learning_rate=RM_LR, **common)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
        trainer = RewardTrainer(
            model=model,
            args=args,
            processing_class=tok,
            train_dataset=Dataset.from_list(rows),
            callbacks=[Clock()],
        )
    trainer.train()
    return {"step_s": _intervals(ends)[:-1], "peak_rss_mb": _peak_rss_mb()}  # drop the last step, as for rlvr


def run_rlvr(which: str, model_dir: str, pairs: str, steps: int, batch: int, out_dir: str) -> dict:
    from rlvr.metrics import RunLogger

    ends: dict[int, float] = {}
    log_row = RunLogger.metrics

    def timed(self: RunLogger, step: int, values: dict) -> None:
        """The real write, then a timestamp for the first row of each step (`rlvr rm` logs `final/` later)."""
        log_row(self, step, values)
        if step > 0 and step not in ends:
            ends[step] = time.perf_counter()

    RunLogger.metrics = timed  # type: ignore[method-assign]
    common = [
        f"model.path={model_dir}",
        f"data.train={pairs}",
        "data.eval_fraction=0",
        f"data.max_length={MAX_LENGTH}",
        f"steps={steps}",
        f"batch_size={batch}",
        f"optim.micro_batch_size={batch}",
        "optim.schedule=constant",
        "optim.warmup_steps=0",
        "optim.weight_decay=0.0",
        "optim.max_grad_norm=1.0",
        "model.dtype=float32",
        f"logging.run_dir={out_dir}",
        "logging.eval_every=0",
        "logging.progress=none",
        "logging.tensorboard=false",
        "checkpoint.every=0",
    ]
    if which == "rlvr-dpo":
        from rlvr.trainers.dpo import load_dpo_config, train_dpo

        train_dpo(
            load_dpo_config(None, common + ["loss=sigmoid", f"beta={BETA}", f"optim.lr={DPO_LR}"]), quiet=True
        )
    else:
        from rlvr.trainers.reward import load_reward_config, train_reward_model

        train_reward_model(load_reward_config(None, common + [f"optim.lr={RM_LR}", "margin=0.0"]), quiet=True)
    times = [ends[k] for k in sorted(ends)]
    # the last step runs the final evaluation
    return {"step_s": _intervals(times)[:-1], "peak_rss_mb": _peak_rss_mb()}


def _child(which: str, model_dir: str, pairs: str, steps: int, batch: int, threads: int) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
    }
    with tempfile.TemporaryDirectory(prefix=f"bench-{which}-") as out:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            which,
            "--model",
            model_dir,
            "--pairs-file",
            pairs,
            "--steps",
            str(steps),
            "--batch",
            str(batch),
            "--threads",
            str(threads),
            "--out",
            out,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"{which} run failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def _build_models(root: Path) -> tuple[Path, Path, int]:
    """(causal LM dir, reward-model dir, parameter count): the RM head is initialised once, seed 0."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from rlvr.tiny import build_tiny_model, count_parameters

    lm_dir, rm_dir = root / "lm", root / "rm"
    transformers.logging.set_verbosity_error()  # the new head's "MISSING score.weight" report is expected
    transformers.logging.disable_progress_bar()
    build_tiny_model(lm_dir, seed=0, **SHAPE)
    tok = AutoTokenizer.from_pretrained(lm_dir)
    torch.manual_seed(0)
    rm = AutoModelForSequenceClassification.from_pretrained(lm_dir, num_labels=1)
    rm.config.pad_token_id = tok.pad_token_id
    rm.save_pretrained(rm_dir)
    tok.save_pretrained(rm_dir)
    return lm_dir, rm_dir, count_parameters(AutoModelForCausalLM.from_pretrained(lm_dir))


def _table(results: dict[str, list[dict]], warmup: int) -> tuple[list[str], dict[str, dict]]:
    lines = [
        "| trainer | s/step (median) | runs' medians | ratio rlvr/TRL | peak RSS (MB) |",
        "|---|---|---|---|---|",
    ]
    summary: dict[str, dict] = {}
    for which in WORKERS:
        if which not in results:
            continue
        per_run = [statistics.median(r["step_s"][warmup:]) for r in results[which]]
        summary[which] = {
            "median_s": statistics.median(per_run),
            "runs": per_run,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results[which]),
        }
    for which, s in summary.items():
        base = BASELINE.get(which)
        ratio = f"{s['median_s'] / summary[base]['median_s']:.2f}x" if base in summary else ""
        if which == "trl-dpo-ref" and "rlvr-dpo" in summary:
            ratio = f"({summary['rlvr-dpo']['median_s'] / s['median_s']:.2f}x)"
        lines.append(
            f"| {which} | {s['median_s']:.3f} | {', '.join(f'{x:.3f}' for x in s['runs'])} | {ratio} | "
            f"{s['peak_rss_mb']:.0f} |"
        )
    return lines, summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=15, help="steps per run, warm-up included")
    ap.add_argument("--warmup", type=int, default=2, help="leading steps not counted")
    ap.add_argument("--batch", type=int, default=16, help="preference pairs per step")
    ap.add_argument("--pairs", type=int, default=256, help="synthetic pairs in the data set")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in every worker")
    ap.add_argument("--only", nargs="+", choices=WORKERS, default=None)
    ap.add_argument("--json", help="also write the per-step times and the summary here")
    ap.add_argument("--worker", choices=WORKERS, help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--pairs-file", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.steps < args.warmup + 3:
        ap.error("--steps must be at least --warmup + 3 (rlvr's first and last steps are not timed)")
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        run = run_trl if args.worker.startswith("trl") else run_rlvr
        print(json.dumps(run(args.worker, args.model, args.pairs_file, args.steps, args.batch, args.out)))
        return 0
    order = args.only or WORKERS
    results: dict[str, list[dict]] = {}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as root:
        lm_dir, rm_dir, params = _build_models(Path(root))
        pairs = Path(root) / "pairs.jsonl"
        pairs.write_text("".join(json.dumps(r) + "\n" for r in make_pairs(args.pairs)))
        for r in range(args.runs):  # alternate, one process at a time
            for which in order:
                model = rm_dir if which.endswith("-rm") else lm_dir
                res = _child(which, str(model), str(pairs), args.steps, args.batch, args.threads)
                results.setdefault(which, []).append(res)
                load.append(os.getloadavg()[0])
                print(
                    f"run {r + 1}/{args.runs} {which}: median {statistics.median(res['step_s'][args.warmup :]):.3f} "
                    f"s/step over {len(res['step_s'][args.warmup :])} steps, peak RSS {res['peak_rss_mb']:.0f} MB",
                    file=sys.stderr,
                )
    lines, summary = _table(results, args.warmup)
    head = (
        f"DPO (sigmoid, beta {BETA}) and reward-model steps on {args.threads} CPU threads: {params / 1e6:.1f}M-param "
        f"Qwen2, {args.batch} pairs/step, max length {MAX_LENGTH}, fp32, AdamW; median of {args.runs} runs x "
        f"{args.steps - args.warmup - 2} timed steps; 1-min load average {min(load):.1f}-{max(load):.1f} "
        f"(at the start and after each run; {os.cpu_count()} cores)"
    )
    print("\n" + head + "\n\n" + "\n".join(lines))
    print(
        "\nratio: rlvr s/step / TRL s/step on the like-for-like row (trl-dpo precomputes reference logprobs, as "
        "rlvr does); in brackets: rlvr-dpo against TRL's default (reference forward every step)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"settings": vars(args), "load": load, "summary": summary, "runs": results}, indent=1)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
