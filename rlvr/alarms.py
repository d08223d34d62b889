"""Run-health alarms: spot the known failure modes of RL on LMs in the metrics as they arrive.

Each check is a pure function of the metrics history (a list of per-step dicts with the names in
`rlvr.metrics.METRIC_NAMES`) that returns an `Alarm` or None. Every alarm names the likely cause
and the usual fix. `AlarmMonitor` runs all checks after each step and reports an alarm once, then
again only after `cooldown` steps, so the log is not flooded.

| alarm             | sign                                                     |
|-------------------|----------------------------------------------------------|
| reward_hacking    | a format/shaping reward rising while accuracy stays flat |
| kl_spike          | KL jumping in the first steps                            |
| no_signal         | every group zero-variance for several steps              |
| entropy_collapse  | entropy falling far below its starting value             |
| length_collapse   | mean length falling far below its starting value         |
| length_pinned     | most completions cut at the token limit                  |
| verifier_errors   | verifier errors or timeouts spiking                      |
| code_suspicious   | code-grading `suspicious` flags rising                   |
| tool_spam         | tool calls per episode rising while accuracy stays flat  |

What this module does not do: stop the run. Alarms are advice, logged and put in the report.

Try it::

    >>> from rlvr.alarms import check_no_signal
    >>> check_no_signal([{"step": i, "groups/zero_var_frac": 1.0} for i in range(5)]).name
    'no_signal'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["CHECKS", "Alarm", "AlarmMonitor"]

History = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Alarm:
    name: str
    step: int
    message: str
    cause: str
    fix: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        return f"[{self.name}] step {self.step}: {self.message}. Likely cause: {self.cause}. Usual fix: {self.fix}."


def _series(history: History, key: str) -> list[tuple[int, float]]:
    return [(int(h["step"]), float(h[key])) for h in history if isinstance(h.get(key), (int, float))]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _window_change(points: list[tuple[int, float]], window: int) -> float | None:
    """Mean of the last `window` values minus the mean of the first `window` values."""
    if len(points) < 2 * window:
        return None
    vals = [v for _, v in points]
    return _mean(vals[-window:]) - _mean(vals[:window])


def check_reward_hacking(history: History, window: int = 5, rise: float = 0.2, flat: float = 0.02) -> Alarm | None:
    """A shaping component (format, length, ...) rises while accuracy does not."""
    acc = _window_change(_series(history, "accuracy"), window)
    if acc is None or acc > flat:
        return None
    comps = {k for h in history for k in h if k.startswith("reward/") and k not in ("reward/mean", "reward/std")}
    for key in sorted(comps):
        if key.endswith(("/math", "/code", "/countdown")):
            continue
        change = _window_change(_series(history, key), window)
        if change is not None and change >= rise:
            return Alarm(
                "reward_hacking",
                int(history[-1]["step"]),
                f"{key} rose by {change:+.2f} while accuracy changed {acc:+.3f}",
                "the policy is collecting the shaping reward without solving the task",
                f"lower {key.split('/', 1)[1]}'s weight (0 logs it without rewarding), make the check stricter "
                "(e.g. fail text after </answer>), or reward the format only together with a correct answer",
            )
    return None


def check_kl_spike(history: History, early_steps: int = 20, limit: float = 0.5) -> Alarm | None:
    """KL to the reference jumping above `limit` nats/token within the first steps."""
    for step, kl in _series(history, "kl"):
        if step <= early_steps and kl > limit:
            return Alarm(
                "kl_spike",
                step,
                f"KL reached {kl:.3f} at step {step}",
                "the learning rate is too high for this model, so the policy leaves the reference fast",
                "lower the learning rate (e.g. 3x), add warmup, or raise the KL coefficient",
            )
    return None


def check_no_signal(history: History, steps: int = 5) -> Alarm | None:
    """All groups had zero reward variance for the last `steps` steps: advantages are all zero."""
    pts = _series(history, "groups/zero_var_frac")
    if len(pts) >= steps and all(v >= 0.999 for _, v in pts[-steps:]):
        acc = _series(history, "accuracy")
        level = acc[-1][1] if acc else None
        cause = (
            "every completion fails, so there is nothing to prefer"
            if level is not None and level <= 0.001
            else "every completion passes, so the task is too easy"
            if level is not None and level >= 0.999
            else "every group's completions score the same"
        )
        return Alarm(
            "no_signal",
            pts[-1][0],
            f"every group had zero reward variance for {steps} steps (loss and gradients are 0)",
            cause,
            "check that the base model can ever produce the answer format (sample it), raise the group size "
            "or temperature, use easier/harder prompts, or turn on dynamic sampling",
        )
    return None


def check_entropy_collapse(history: History, fraction: float = 0.2, floor: float = 0.05) -> Alarm | None:
    pts = _series(history, "entropy")
    if len(pts) < 4:
        return None
    start = _mean([v for _, v in pts[:3]])
    step, now = pts[-1]
    if start > 0 and now < max(fraction * start, floor):
        return Alarm(
            "entropy_collapse",
            step,
            f"entropy fell from {start:.3f} to {now:.3f}",
            "mode collapse: the policy has become nearly deterministic and stops exploring",
            "lower the learning rate, add an entropy bonus or a KL penalty, or use clip-higher (dapo)",
        )
    return None


def check_length(history: History, collapse: float = 0.3, pinned: float = 0.8, steps: int = 3) -> Alarm | None:
    pts = _series(history, "length/mean")
    clipped = _series(history, "length/clipped_frac")
    if len(clipped) >= steps and all(v >= pinned for _, v in clipped[-steps:]):
        return Alarm(
            "length_pinned",
            clipped[-1][0],
            f"{clipped[-1][1]:.0%} of completions hit the token limit",
            "lengths are blowing up (rambling, repetition) or the limit is too low for the task",
            "raise max_new_tokens, use overlong shaping (dapo) or mask truncated completions, or add a length penalty",
        )
    if len(pts) >= 4:
        start = _mean([v for _, v in pts[:3]])
        step, now = pts[-1]
        if start > 0 and now < collapse * start:
            return Alarm(
                "length_collapse",
                step,
                f"mean completion length fell from {start:.1f} to {now:.1f} tokens",
                "short answers are rewarded (or a per-token loss normalisation favours them)",
                "use Dr.GRPO's seq_mean_token_sum_norm aggregation, check for a length bias in the reward",
            )
    return None


def check_verifier_errors(history: History, limit: float = 0.05) -> Alarm | None:
    for key, what in (("verifier/timeout_rate", "timeouts"), ("verifier/error_rate", "errors")):
        pts = _series(history, key)
        if pts and pts[-1][1] > limit:
            return Alarm(
                "verifier_errors",
                pts[-1][0],
                f"verifier {what} on {pts[-1][1]:.0%} of completions",
                "completions the verifier cannot handle (huge expressions, hanging code) or a bug in a verifier",
                "read the first traceback in the log and the rollouts with info.error; raise timeout_s if answers are legitimate",
            )
    return None


def check_code_suspicious(history: History, limit: float = 0.02, window: int = 3) -> Alarm | None:
    pts = _series(history, "code/suspicious_rate")
    if len(pts) >= window and _mean([v for _, v in pts[-window:]]) > limit:
        return Alarm(
            "code_suspicious",
            pts[-1][0],
            f"{pts[-1][1]:.0%} of programs look like grader attacks (exit calls, __eq__ overrides, builtins patching)",
            "the policy is learning to game the tests",
            "keep the trusted grader on (it already scores these 0), inspect flagged rollouts, penalise suspicious programs",
        )
    return None


def check_tool_spam(history: History, window: int = 5, rise: float = 0.5, flat: float = 0.02) -> Alarm | None:
    """Tool calls per episode rise by at least `rise` (window means, first vs last) while accuracy
    changes by at most `flat`: calls that buy nothing."""
    acc = _window_change(_series(history, "accuracy"), window)
    if acc is None or acc > flat:
        return None
    change = _window_change(_series(history, "tools/calls_per_episode"), window)
    if change is None or change < rise:
        return None
    return Alarm(
        "tool_spam",
        int(history[-1]["step"]),
        f"tool calls per episode rose by {change:+.2f} while accuracy changed {acc:+.3f}",
        "the policy calls tools without answering better: calls are rewarded (a format or length reward "
        "grows with them) or cost nothing while they fill the episode",
        "make sure no reward component pays for calls (weight 0 logs it), lower env.max_turns or env.max_tokens, "
        "and read the episodes in rollouts.jsonl for repeated or failing calls (tools/errors)",
    )


CHECKS: dict[str, Callable[[History], Alarm | None]] = {
    "reward_hacking": check_reward_hacking,
    "kl_spike": check_kl_spike,
    "no_signal": check_no_signal,
    "entropy_collapse": check_entropy_collapse,
    "length": check_length,
    "verifier_errors": check_verifier_errors,
    "code_suspicious": check_code_suspicious,
    "tool_spam": check_tool_spam,
}


class AlarmMonitor:
    """Runs every check after each step; each alarm fires once, then again after `cooldown` steps."""

    def __init__(self, checks: Mapping[str, Callable[[History], Alarm | None]] | None = None, cooldown: int = 50):
        self.checks = dict(checks or CHECKS)
        self.cooldown = cooldown
        self.history: list[dict[str, Any]] = []
        self._last: dict[str, int] = {}

    def update(self, step: int, metrics: Mapping[str, Any]) -> list[Alarm]:
        self.history.append({"step": step, **metrics})
        fired = []
        for check in self.checks.values():
            alarm = check(self.history)
            if alarm is None:
                continue
            last = self._last.get(alarm.name)
            if last is None or step - last >= self.cooldown:
                self._last[alarm.name] = step
                fired.append(alarm)
        return fired
