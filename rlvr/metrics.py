"""Run logs: metrics to JSONL and TensorBoard (W&B optional), and every rollout to JSONL.

Files in a run directory:
  metrics.jsonl   one object per step: {"step": 3, "reward/mean": 0.41, ...}
  rollouts.jsonl  one object per completion: step, prompt, completion, reward, rewards per
                  verifier component, passed, verifier info (multi-turn: also "episode", its
                  end and turns with their text, tool calls and results)
  alarms.jsonl    run-health alarms (see `rlvr.alarms`)
  tb/             TensorBoard event files

On resume, `truncate_after(step)` drops lines logged after the checkpoint being resumed from, so a
resumed run's logs read like an uninterrupted one. Metric names are shared across trainers and the
report; the common ones are listed in `METRIC_NAMES`.

Try it::

    >>> from rlvr.metrics import RunLogger  # doctest: +SKIP
    >>> with RunLogger("runs/x") as log:
    ...     log.metrics(1, {"reward/mean": 0.5})
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["METRIC_NAMES", "RunLogger", "read_jsonl_metrics", "wilson_interval"]

# The names trainers log, the alarms read and the report plots.
METRIC_NAMES = {
    "reward/mean": "mean total reward of the batch's completions",
    "reward/<component>": "mean raw reward of one verifier component (weight 0 components too)",
    "accuracy": "fraction of completions whose primary verifier passed",
    "kl": "mean per-token KL to the reference model (estimator per preset)",
    "entropy": "mean per-token entropy of the policy on its completions",
    "length/mean": "mean completion length in tokens",
    "length/clipped_frac": "fraction of completions cut at the token limit",
    "clip_frac": "fraction of tokens whose ratio was clipped",
    "groups/zero_var_frac": "fraction of groups whose rewards all tie (no learning signal)",
    "groups/dropped": "groups dropped by dynamic sampling this step",
    "verifier/error_rate": "fraction of completions whose verifier raised, crashed or timed out",
    "verifier/timeout_rate": "fraction of completions whose verifier timed out",
    "code/suspicious_rate": "fraction of code completions flagged suspicious by the grader",
    "eval/accuracy": "held-out accuracy (greedy) when evaluation runs",
    "tools/calls_per_episode": "multi-turn episodes: tool calls per episode (eval/tools/... on held-out episodes)",
    "tools/errors": "tool calls whose result was an error (unknown tool, malformed call, failed program)",
    "tools/timeouts": "tool calls stopped at their deadline",
    "tools/malformed": "tool calls that could not be parsed (the model read the parse error)",
    "tools/unknown": "tool calls naming a tool that does not exist",
    "tools/truncated": "tool outputs cut at env.max_output_chars",
    "tools/replaced": "tool calls whose sandbox container or process died and was replaced",
    "tools/error_rate": "fraction of tool calls that did not succeed (errors and timeouts)",
    "tools/wait_s": "seconds an episode spent waiting on its tools, mean over episodes",
    "tools/blocked_s": "seconds generation stood still because every episode was waiting on a tool",
    "episode/turns": "model turns per episode",
    "episode/model_tokens": "model tokens per episode (in the loss)",
    "episode/obs_tokens": "observation tokens per episode (in the sequence, out of the loss)",
    "episode/obs_frac": "observation tokens / all tokens after the prompt",
    "episode/truncated": "episodes cut by the token budget or the per-turn limit",
    "episode/max_turns": "episodes ended by the turn limit",
    "time/step": "seconds per training step",
    "lr": "learning rate",
    "grad_norm": "gradient norm before clipping (mean over the step's optimizer steps)",
}


def wilson_interval(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% for z=1.96) of a proportion `p` observed over `n` items; it
    stays inside [0, 1], also at p=0 and p=1. For the mean of values in [0, 1] that are not all 0/1
    (pass@k estimates, partial rewards) it is conservative: their variance is at most p(1-p).

    >>> [round(x, 4) for x in wilson_interval(1.0, 16)]
    [0.8064, 1.0]
    """
    if n <= 0:
        return float("nan"), float("nan")
    q = z * z / n
    center = (p + q / 2) / (1 + q)
    half = z / (1 + q) * math.sqrt(max(p * (1 - p), 0.0) / n + q / (4 * n))
    return max(0.0, center - half), min(1.0, center + half)


def _clean(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (1e308 if value > 0 else -1e308)
    return value


def _truncate_jsonl(path: Path, step: int) -> None:
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line).get("step", 0) <= step:
                kept.append(line)
        except json.JSONDecodeError:
            continue  # a line torn by a kill mid-write
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text("".join(x + "\n" for x in kept), encoding="utf-8")
    os.replace(tmp, path)


class RunLogger:
    """Appends metrics, rollouts and alarms under `run_dir`; mirrors metrics to TensorBoard."""

    def __init__(self, run_dir: str | Path, *, tensorboard: bool = True, wandb_project: str | None = None, config: Mapping | None = None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._files = {name: None for name in ("metrics", "rollouts", "alarms")}
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tb"))
        self._wandb = None
        if wandb_project:
            import wandb  # optional dependency: pip install rlvr[wandb]

            self._wandb = wandb.init(project=wandb_project, dir=str(self.run_dir), config=dict(config or {}), resume="allow")

    def path(self, name: str) -> Path:
        return self.run_dir / f"{name}.jsonl"

    def _append(self, name: str, rows: Iterable[Mapping[str, Any]]) -> None:
        f = self._files[name]
        if f is None:
            f = self._files[name] = self.path(name).open("a", encoding="utf-8")
        for row in rows:
            f.write(json.dumps({k: _clean(v) for k, v in row.items()}, default=str) + "\n")
        f.flush()

    def metrics(self, step: int, values: Mapping[str, Any]) -> None:
        row = {"step": step, **{k: _clean(v) for k, v in values.items()}}
        self._append("metrics", [row])
        for key, value in row.items():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                if self._tb is not None:
                    self._tb.add_scalar(key, value, step)
        if self._tb is not None:
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(row, step=step)

    def rollouts(self, step: int, records: Iterable[Mapping[str, Any]]) -> None:
        rows = [{"step": step, **r} for r in records]
        if rows:  # no empty rollouts.jsonl when rollouts are not logged (logging.rollouts: false)
            self._append("rollouts", rows)

    def alarm(self, step: int, record: Mapping[str, Any]) -> None:
        self._append("alarms", [{"step": step, **record}])

    def truncate_after(self, step: int) -> None:
        """Drop records logged after `step` (call before logging again on resume)."""
        for name in self._files:
            if self._files[name] is not None:
                self._files[name].close()
                self._files[name] = None
            _truncate_jsonl(self.path(name), step)

    def close(self) -> None:
        for name, f in self._files.items():
            if f is not None:
                f.close()
                self._files[name] = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_jsonl_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Metrics rows of a run (a torn last line from a kill is skipped)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows
