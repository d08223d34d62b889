"""Held-out pairwise accuracy of a Bradley-Terry reward model on verifier-labelled demo pairs.

The issue's target: "the reward model's held-out pairwise accuracy above 90% on verifier-labelled
pairs from the demo task". This runs exactly what `rlvr rm --from-verifier` runs
(`rlvr.trainers.reward.train_reward_model` with ``from_verifier.enabled``):

1. the shipped demo base model (``model.path=demo``, rlvr/data/tiny-arith) samples
   ``--samples`` completions for each of ``--prompts`` arithmetic train prompts and
   ``--eval-prompts`` test prompts (the task's test split: problems that never occur in train);
2. the task's ``math`` verifier labels them; every passed completion is paired with a failed one
   (at most ``--per-prompt`` pairs a prompt, `rlvr.preference.pairs_from_scores`);
3. a scalar head on the demo model is trained with the Bradley-Terry loss.

It then checks that no held-out prompt occurs among the train prompts (it stops with an error if
one does) and re-scores the held-out pairs with the untrained model (same seeded head: the "before"
numbers) and the trained one, broken down by what separates the two completions:

- ``no final answer``: the rejected completion has no final answer the verifier can extract (e.g.
  " 71" or " 23 + 48 = 71." against " <answer>71</answer>"); the format alone tells them apart;
- ``wrong answer``: the rejected completion states a wrong final answer (" <answer>72</answer>",
  " The answer is 72."); telling these apart needs the sum, i.e. what the base model learnt.

    .venv/bin/python bench/reward_model_accuracy.py                    # the documented setting
    .venv/bin/python bench/reward_model_accuracy.py --json /tmp/rm.json
    .venv/bin/python bench/reward_model_accuracy.py --prompts 256 --eval-prompts 64 --steps 100  # quicker

Prints a table (pairs train/held-out, accuracy before -> after per kind, seconds). What it does not
measure: speed against TRL (bench/pipeline_vs_trl.py) or how the reward model does as a PPO reward.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

KINDS = ("no final answer", "wrong answer")


def pair_kind(row: dict) -> str:
    """What separates the pair: the rejected side has no final answer, or a wrong one."""
    from rlvr.verifiers.math import extract_answer

    return KINDS[0] if extract_answer(row["rejected"]) is None else KINDS[1]


def overrides(args: argparse.Namespace, run_dir: Path) -> list[str]:
    """The `rlvr rm --from-verifier` overrides of this benchmark (also printed as the CLI recipe)."""
    return [
        "model.path=demo",
        "from_verifier.task=arithmetic",
        f"from_verifier.task_options.level={args.level}",
        f"from_verifier.task_options.n_test={max(200, args.eval_prompts)}",
        f"from_verifier.prompts={args.prompts}",
        f"from_verifier.eval_prompts={args.eval_prompts}",
        f"from_verifier.samples_per_prompt={args.samples}",
        f"from_verifier.per_prompt={args.per_prompt}",
        f"steps={args.steps}",
        f"batch_size={args.batch_size}",
        f"optim.lr={args.lr}",
        f"seed={args.seed}",
        "logging.eval_every=0",
        f"logging.run_dir={run_dir}",
    ]


def accuracy_by_kind(model_path: str | Path, tokenizer, rows: list[dict], seed: int) -> dict[str, float]:
    """Pairwise accuracy (r_chosen > r_rejected) of the model at `model_path` per pair kind and overall."""
    from rlvr.trainers.reward import PairDataConfig, _encode_pairs, _rewards, load_reward_model

    pairs = _encode_pairs(rows, lambda i: f"held-out pair {i + 1}", tokenizer, PairDataConfig())
    model = load_reward_model(model_path, tokenizer, seed=seed)
    rc, rr = _rewards([model], pairs, int(tokenizer.pad_token_id), 64)
    ok = (rc[0] > rr[0]).tolist()
    out = {"all": sum(ok) / len(ok)}
    for kind in KINDS:
        hits = [o for o, r in zip(ok, rows) if pair_kind(r) == kind]
        out[kind] = sum(hits) / len(hits) if hits else float("nan")
    return out


def run(args: argparse.Namespace) -> dict:
    import transformers

    from rlvr.trainers.reward import load_reward_config, train_reward_model
    from rlvr.trainers.setup import model_path

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    own_tmp = args.run_dir is None
    run_dir = Path(tempfile.mkdtemp(prefix="rm-acc-")) if own_tmp else Path(args.run_dir)
    try:
        cfg = load_reward_config(
            None,
            [
                "from_verifier.enabled=true",
                *overrides(args, run_dir),
                "logging.progress=none",
                "logging.tensorboard=false",
            ],
        )
        t0 = time.perf_counter()
        summary = train_reward_model(cfg, quiet=True)
        total_s = time.perf_counter() - t0
        metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        train_s = sum(m.get("time/step", 0.0) for m in metrics)
        train_rows = [json.loads(x) for x in (run_dir / "pairs_train.jsonl").read_text().splitlines()]
        held_rows = [json.loads(x) for x in (run_dir / "pairs_eval.jsonl").read_text().splitlines()]
        shared = {r["prompt"] for r in held_rows} & {r["prompt"] for r in train_rows}
        if shared:
            raise SystemExit(
                f"{len(shared)} held-out prompts also occur in train, e.g. {sorted(shared)[0]!r}"
            )
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(summary["model"])
        before = accuracy_by_kind(model_path(cfg, run_dir), tokenizer, held_rows, cfg.seed)
        after = accuracy_by_kind(summary["model"], tokenizer, held_rows, cfg.seed)
        counts = {k: sum(pair_kind(r) == k for r in held_rows) for k in KINDS}
        sampled = next((m for m in metrics if "sampled/train_pass_rate" in m), {})
        return {
            "settings": vars(args),
            "command": "rlvr rm --from-verifier "
            + " ".join(o for o in overrides(args, Path("runs/rm-demo"))),
            "train_pairs": summary["train_pairs"],
            "eval_pairs": summary["eval_pairs"],
            "train_prompts_with_pairs": len({r["prompt"] for r in train_rows}),
            "eval_prompts_with_pairs": len({r["prompt"] for r in held_rows}),
            "shared_prompts": 0,
            "eval_pairs_by_kind": counts,
            "train_pass_rate": sampled.get("sampled/train_pass_rate"),
            "eval_pass_rate": sampled.get("sampled/test_pass_rate"),
            "before": before,
            "after": after,
            "trainer_before": summary["before"][0].get("eval/accuracy"),
            "trainer_after": summary["final"].get("eval/accuracy"),
            "seconds_total": total_s,
            "seconds_train_steps": train_s,
        }
    finally:
        if own_tmp:
            shutil.rmtree(run_dir, ignore_errors=True)


def table(res: dict) -> str:
    b, a, n = res["before"], res["after"], res["eval_pairs_by_kind"]
    lines = [
        "| held-out pairs | count | accuracy before | accuracy after |",
        "|---|---:|---:|---:|",
        f"| all | {res['eval_pairs']} | {b['all']:.1%} | **{a['all']:.1%}** |",
    ]
    for k in KINDS:
        lines.append(f"| rejected has {k} | {n[k]} | {b[k]:.1%} | {a[k]:.1%} |")
    lines += [
        "",
        f"train pairs {res['train_pairs']} from {res['train_prompts_with_pairs']} prompts, held-out pairs "
        f"{res['eval_pairs']} from {res['eval_prompts_with_pairs']} test-split prompts (0 shared); "
        f"demo pass rate {res['train_pass_rate']:.1%} (train) / {res['eval_pass_rate']:.1%} (held-out); "
        f"{res['seconds_total']:.0f} s in all ({res['seconds_train_steps']:.0f} s in {res['settings']['steps']} "
        "optimizer steps).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=512, help="train prompts sampled (task train split)")
    ap.add_argument("--eval-prompts", type=int, default=400, help="held-out prompts (task test split)")
    ap.add_argument("--samples", type=int, default=8, help="completions per prompt")
    ap.add_argument("--per-prompt", type=int, default=2, help="at most this many pairs per prompt")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--level", type=int, default=1, help="arithmetic level (the demo model knows level 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--run-dir", help="keep the run here (default: a temporary directory, removed)")
    ap.add_argument("--json", help="also write all numbers here")
    args = ap.parse_args(argv)
    res = run(args)
    print(table(res))
    print(f"\ncommand: {res['command']}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
