"""Run-health alarms fire on the histories that show each failure mode, and stay quiet on a healthy run."""

from __future__ import annotations

from rlvr.alarms import (
    AlarmMonitor,
    check_code_suspicious,
    check_entropy_collapse,
    check_kl_spike,
    check_length,
    check_no_signal,
    check_reward_hacking,
    check_verifier_errors,
)


def hist(n, **series):
    """n steps; each kwarg is a function step -> value."""
    return [{"step": i + 1, **{k.replace("__", "/"): f(i) for k, f in series.items()}} for i in range(n)]


HEALTHY = hist(
    30,
    accuracy=lambda i: 0.1 + 0.02 * i,
    reward__mean=lambda i: 0.1 + 0.02 * i,
    reward__format=lambda i: 0.2 + 0.02 * i,
    kl=lambda i: 0.001 * i,
    entropy=lambda i: 1.0 - 0.01 * i,
    length__mean=lambda i: 20.0,
    length__clipped_frac=lambda i: 0.05,
    groups__zero_var_frac=lambda i: 0.3,
    verifier__error_rate=lambda i: 0.0,
)


def test_healthy_run_raises_nothing():
    assert AlarmMonitor().history == []
    fired = []
    mon = AlarmMonitor()
    for row in HEALTHY:
        fired += mon.update(row["step"], {k: v for k, v in row.items() if k != "step"})
    assert fired == []


def test_reward_hacking_format_up_accuracy_flat():
    h = hist(12, accuracy=lambda i: 0.05, reward__format=lambda i: 0.05 * i, reward__math=lambda i: 0.05)
    alarm = check_reward_hacking(h)
    assert alarm is not None and alarm.name == "reward_hacking" and "reward/format" in alarm.message
    # the correctness component itself rising is not hacking
    assert check_reward_hacking(hist(12, accuracy=lambda i: 0.05, reward__math=lambda i: 0.05 * i)) is None


def test_kl_spike_only_early():
    assert check_kl_spike(hist(10, kl=lambda i: 0.9 if i == 3 else 0.01)).step == 4
    assert check_kl_spike(hist(40, kl=lambda i: 0.9 if i == 35 else 0.01)) is None


def test_no_signal_needs_consecutive_all_zero_variance_and_names_the_cause():
    dead = hist(6, groups__zero_var_frac=lambda i: 1.0, accuracy=lambda i: 0.0)
    alarm = check_no_signal(dead)
    assert alarm is not None and "fails" in alarm.cause
    assert check_no_signal(hist(6, groups__zero_var_frac=lambda i: 1.0 if i != 4 else 0.5)) is None


def test_entropy_collapse():
    assert check_entropy_collapse(hist(10, entropy=lambda i: 1.0 if i < 3 else 0.1)).name == "entropy_collapse"
    assert check_entropy_collapse(hist(10, entropy=lambda i: 1.0 - 0.05 * i)) is None


def test_length_collapse_and_pinned():
    assert check_length(hist(10, length__mean=lambda i: 100 if i < 3 else 10)).name == "length_collapse"
    assert check_length(hist(5, length__mean=lambda i: 64, length__clipped_frac=lambda i: 0.95)).name == "length_pinned"
    assert check_length(hist(10, length__mean=lambda i: 100 - i, length__clipped_frac=lambda i: 0.1)) is None


def test_verifier_errors_and_code_suspicious():
    assert check_verifier_errors(hist(3, verifier__timeout_rate=lambda i: 0.2)).name == "verifier_errors"
    assert check_verifier_errors(hist(3, verifier__error_rate=lambda i: 0.01)) is None
    assert check_code_suspicious(hist(4, code__suspicious_rate=lambda i: 0.1)).name == "code_suspicious"
    assert check_code_suspicious(hist(4, code__suspicious_rate=lambda i: 0.0)) is None


def test_monitor_fires_once_then_after_cooldown():
    mon = AlarmMonitor(cooldown=5)
    names = []
    for step in range(1, 16):
        names += [(step, a.name) for a in mon.update(step, {"groups/zero_var_frac": 1.0, "accuracy": 0.0})]
    assert names == [(5, "no_signal"), (10, "no_signal"), (15, "no_signal")]
