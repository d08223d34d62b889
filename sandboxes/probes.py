"""Probe programs for `rlvr sandbox doctor` and `bench/sandboxes.py`.

`HUMANEVAL_STYLE`: four small programs shaped like HumanEval grading jobs (a solution, a `check`
with asserts, a call), used to measure throughput. `ATTACKS`: hostile programs, each with the
test its result must pass to count as contained. `containment_selftest` runs every attack, then a
plain job, and reports whether the attack was contained and how long that next job took.

What this module does not do: assert anything (the tests in tests/sandboxes do that) or choose a
sandbox (it takes any object with the `Sandbox` protocol's `run`).

Try it::

    >>> from rlvr.sandboxes.probes import ATTACKS
    >>> [a.name for a in ATTACKS][:3]
    ['infinite loop', 'fork bomb', 'memory 1 GiB']
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlvr.sandboxes.base import ExecResult

__all__ = ["ATTACKS", "HUMANEVAL_STYLE", "Attack", "containment_selftest"]

HUMANEVAL_STYLE: tuple[str, ...] = (
    """from typing import List


def has_close_elements(numbers: List[float], threshold: float) -> bool:
    for idx, elem in enumerate(numbers):
        for idx2, elem2 in enumerate(numbers):
            if idx != idx2 and abs(elem - elem2) < threshold:
                return True
    return False


def check(candidate):
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True
    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False
    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) == True
    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 1.0) == True


check(has_close_elements)
""",
    """import math


def is_prime(n):
    if n < 2:
        return False
    for k in range(2, int(math.isqrt(n)) + 1):
        if n % k == 0:
            return False
    return True


def check(candidate):
    assert candidate(6) == False
    assert candidate(101) == True
    assert candidate(13441) == True
    assert candidate(61) == True
    assert candidate(1) == False


check(is_prime)
""",
    """import re
from collections import Counter


def word_count(text: str) -> dict:
    return dict(Counter(w.lower() for w in re.findall(r"[A-Za-z']+", text)))


def check(candidate):
    assert candidate("a b A") == {"a": 2, "b": 1}
    assert candidate("") == {}
    assert candidate("It's it's IT'S") == {"it's": 3}


check(word_count)
""",
    """def fib4(n: int):
    results = [0, 0, 2, 0]
    if n < 4:
        return results[n]
    for _ in range(4, n + 1):
        results.append(results[-1] + results[-2] + results[-3] + results[-4])
        results.pop(0)
    return results[-1]


def check(candidate):
    assert candidate(5) == 4
    assert candidate(8) == 28
    assert candidate(10) == 104
    assert candidate(12) == 386


check(fib4)
""",
)


@dataclass(frozen=True)
class Attack:
    """A hostile program and the property its result must have for the sandbox to pass."""

    name: str
    code: str
    contained: Callable[[ExecResult], bool]
    timeout_s: float = 2.0
    memory_mb: int = 128


_COUNT_PROCS = (
    "import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit() and p != str(os.getpid())))"
)

ATTACKS: tuple[Attack, ...] = (
    Attack("infinite loop", "while True:\n    pass", lambda r: r.timed_out),
    Attack(
        "fork bomb",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        lambda r: r.timed_out or not r.ok,
    ),
    Attack("memory 1 GiB", "x = bytearray(1 << 30)\nprint('got it')", lambda r: "got it" not in r.stdout),
    Attack(
        "write 1 GiB",
        "b = b'0' * (1 << 20)\nf = open('big', 'wb')\nfor _ in range(1024):\n    f.write(b)\n"
        "f.close()\nprint('wrote it')",
        lambda r: "wrote it" not in r.stdout,
        timeout_s=10,
    ),
    Attack(
        "network",
        "import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=1)\nprint('connected')",
        lambda r: "connected" not in r.stdout,
    ),
    Attack(
        "host files",
        "import os\nprint([p for p in ('/var/run/docker.sock', '/run/docker.sock', '/work', "
        "'/root/.cache', '/home/runner') if os.path.exists(p)])",
        lambda r: r.stdout.strip() == "[]",
    ),
    Attack(
        "kill PID 1",
        "import os\nfor s in (9, 15, 2, 19):\n    os.kill(1, s)\nprint('sent')",
        lambda r: r.error is None,
    ),
    Attack(
        "setsid daemon",
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        time.sleep(60)\n    os._exit(0)\nprint('spawned')",
        lambda r: r.error is None,
    ),
)


def containment_selftest(sandbox: Any) -> list[dict[str, Any]]:
    """Run every attack then a process census; one row per attack (pass, detail, next-job ms)."""
    rows = []
    for attack in ATTACKS:
        r = sandbox.run(attack.code, timeout_s=attack.timeout_s, memory_mb=attack.memory_mb)
        t0 = time.perf_counter()
        census = sandbox.run(_COUNT_PROCS, timeout_s=5)
        next_ms = (time.perf_counter() - t0) * 1e3
        clean = census.ok and census.stdout.strip() == "[1]"
        ok = attack.contained(r) and clean
        detail = (
            f"exit={r.exit_code} sig={r.signal} timeout={r.timed_out} mem={r.memory_exceeded}"
            + (f" error={r.error}" if r.error else "")
            + ("" if clean else f" leftovers={census.stdout.strip()}")
        )
        rows.append({"attack": attack.name, "contained": ok, "detail": detail, "next_job_ms": next_ms})
    return rows
