"""`rlvr report RUN_DIR`: PNG plots and a Markdown summary of a training run.

Reads ``metrics.jsonl`` and ``alarms.jsonl`` from the run directory and writes ``report/``:
one PNG per panel (reward, accuracy, KL, entropy, length, learning rate, gradient norm, clip
fraction, zero-variance groups, verifier errors; for PPO also the KL controller and the critic; for
multi-turn tool episodes the tool calls per episode, the episode length, turns and tool errors)
plus ``overview.png`` with all panels, and ``report.md`` listing the first and last values and
every alarm with its likely cause and fix. A panel whose metrics never change (a constant learning
rate, no clipping, no verifier errors; reward and accuracy are always drawn) is not drawn: report.md lists it as constant, with its
value. Alarms are re-derived from the metrics too, so a run logged without the monitor still gets
them.

Try it::

    rlvr report runs/demo
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlvr.alarms import AlarmMonitor
from rlvr.metrics import read_jsonl_metrics

__all__ = ["PANELS", "write_report"]

# panel name -> (title, metric keys or key prefixes ending with "/")
PANELS: dict[str, tuple[str, list[str]]] = {
    "reward": ("Reward", ["reward/mean", "reward/"]),
    "accuracy": ("Accuracy", ["accuracy", "eval/accuracy"]),
    "kl": ("KL to reference", ["kl"]),
    "kl_control": ("KL per completion and the controller's coefficient (PPO)", ["kl/sequence", "kl_coef"]),
    "critic": ("Critic (PPO): value loss, explained variance", ["loss/value", "value/explained_variance"]),
    "entropy": ("Entropy", ["entropy"]),
    "length": ("Completion length (tokens)", ["length/mean"]),
    "lr": ("Learning rate", ["lr"]),
    "grad_norm": ("Gradient norm (before clipping)", ["grad_norm"]),
    "clip_frac": ("Clip fraction (ratio clipped)", ["clip_frac"]),
    "truncated": ("Completions cut at the token limit", ["length/clipped_frac"]),
    "zero_var": ("Zero-variance groups", ["groups/zero_var_frac"]),
    "verifier": ("Verifier errors / timeouts", ["verifier/error_rate", "verifier/timeout_rate", "code/suspicious_rate"]),
    # multi-turn episodes with tools (rlvr.rollout.episodes.episode_metrics; eval/: held-out, greedy)
    "tool_calls": ("Tool calls per episode", ["tools/calls_per_episode", "eval/tools/calls_per_episode"]),
    "episode_length": ("Episode length (tokens after the prompt: model, observation)",
                       ["episode/model_tokens", "episode/obs_tokens", "eval/episode/model_tokens",
                        "eval/episode/obs_tokens"]),
    "turns": ("Model turns per episode", ["episode/turns", "eval/episode/turns"]),
    "tool_errors": ("Tool errors (error rate; malformed calls, timeouts per step)",
                    ["tools/error_rate", "tools/malformed", "tools/timeouts"]),
}


def _keys(rows: list[dict[str, Any]], patterns: list[str]) -> list[str]:
    present = {k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    keys: list[str] = []
    for p in patterns:
        matched = sorted(k for k in present if (k.startswith(p) if p.endswith("/") else k == p))
        keys += [k for k in matched if k not in keys and k != "reward/std"]
    return keys


def _values(rows: list[dict[str, Any]], key: str) -> set[float]:
    return {r[key] for r in rows if isinstance(r.get(key), (int, float))}


def _plot(ax: Any, rows: list[dict[str, Any]], title: str, keys: list[str]) -> None:
    for key in keys:
        pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, label=key, marker="." if len(pts) < 30 else None)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if len(keys) > 1:
        ax.legend(fontsize=7)


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN_DIR/report/`` and return the path of report.md."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.jsonl"
    if not metrics_path.exists():
        raise FileNotFoundError(f"{metrics_path}: no metrics (is {run_dir} an rlvr run directory?)")
    rows = [r for r in read_jsonl_metrics(metrics_path) if "step" in r]
    out = run_dir / "report"
    out.mkdir(exist_ok=True)
    panels = [(name, title, _keys(rows, pats)) for name, (title, pats) in PANELS.items()]
    panels = [p for p in panels if p[2]]
    flat = [p for p in panels if len(rows) > 1 and p[0] not in ("reward", "accuracy")
            and all(len(_values(rows, k)) == 1 for k in p[2])]
    panels = [p for p in panels if p not in flat]  # a flat line says nothing a number does not
    for name, title, keys in panels:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        _plot(ax, rows, title, keys)
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", dpi=110)
        plt.close(fig)
    if panels:
        cols = 2
        nrows = (len(panels) + 1) // cols
        fig, axes = plt.subplots(nrows, cols, figsize=(12, 3.2 * nrows), squeeze=False)
        for ax, (_, title, keys) in zip(axes.flat, panels):
            _plot(ax, rows, title, keys)
        for ax in list(axes.flat)[len(panels):]:
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(out / "overview.png", dpi=100)
        plt.close(fig)

    alarms: list[dict[str, Any]] = []
    alarms_path = run_dir / "alarms.jsonl"
    if alarms_path.exists():
        alarms = [json.loads(line) for line in alarms_path.read_text().splitlines() if line.strip()]
    monitor = AlarmMonitor()
    for r in rows:
        for a in monitor.update(int(r["step"]), {k: v for k, v in r.items() if k != "step"}):
            if not any(x.get("name") == a.name for x in alarms):
                alarms.append({**a.to_dict(), "derived": True})

    lines = [f"# Run report: {run_dir}", "", f"{len(rows)} logged steps.", ""]
    if rows:
        lines += ["| metric | first (step) | last (step) |", "|---|---|---|"]
        for key in sorted({k for _, _, ks in panels for k in ks}):
            pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
            (s0, a), (s1, b) = pts[0], pts[-1]
            lines.append(f"| {key} | {a:.4g} ({s0}) | {b:.4g} ({s1}) |")
        lines.append("")
    if flat:
        lines += ["Constant over the run (not plotted): " + ", ".join(
            f"{k} = {next(iter(_values(rows, k))):.4g}" for _, _, ks in flat for k in ks) + ".", ""]
    lines += ["## Alarms", ""]
    if not alarms:
        lines.append("None.")
    by_name: dict[str, list[dict[str, Any]]] = {}
    for a in alarms:
        by_name.setdefault(a["name"], []).append(a)
    for name, fired in by_name.items():
        a, steps = fired[-1], [x["step"] for x in fired]
        when = f"step {steps[0]}" if len(steps) == 1 else f"{len(steps)} times, steps {steps[0]}–{steps[-1]}"
        lines.append(f"- **{name}** ({when}): {a['message']}. Likely cause: {a['cause']}. Usual fix: {a['fix']}.")
    lines += ["", "## Plots", ""] + [f"![{title}]({name}.png)" for name, title, _ in panels]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    return report
