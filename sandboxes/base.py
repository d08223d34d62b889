"""The sandbox contract: `Sandbox` (run one program) and `ExecResult` (what came of it).

Implementations: `rlvr.sandboxes.docker.DockerSandbox` (a warm pool of locked-down containers)
and `rlvr.sandboxes.local.LocalSandbox` (for machines without Docker; it isolates less and says
exactly what it does not isolate). This module imports neither docker nor anything heavy.

Try it::

    >>> from rlvr.sandboxes.local import LocalSandbox          # doctest: +SKIP
    >>> with LocalSandbox() as sb:                              # doctest: +SKIP
    ...     print(sb.run("print(1 + 1)", timeout_s=2).stdout)
    2
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["ExecResult", "Job", "Sandbox", "DEFAULT_OUTPUT_CAP", "run_jobs"]

DEFAULT_OUTPUT_CAP = 64 * 1024  # bytes kept of each of stdout and stderr


@dataclass
class ExecResult:
    """The outcome of one program run.

    exit_code is None when the program was killed by a signal (then `signal` is set).
    stdout/stderr hold at most the first DEFAULT_OUTPUT_CAP bytes (decoded with errors="replace");
    *_bytes count everything the program wrote, and `truncated` is True when either was cut.
    `error` is set when the sandbox itself failed (e.g. "sandbox_lost"), not the program.
    """

    exit_code: int | None
    signal: int | None = None
    timed_out: bool = False
    stdout: str = ""
    stderr: str = ""
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    truncated: bool = False
    wall_s: float = 0.0
    memory_exceeded: bool = False
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Job:
    """One program for `run_many`."""

    code: str
    stdin: str | bytes | None = None
    files: Mapping[str, str | bytes] | None = None
    timeout_s: float = 10.0
    memory_mb: int = 512


@runtime_checkable
class Sandbox(Protocol):
    """Runs untrusted Python programs. Pools are context managers that clean up after themselves."""

    def run(
        self,
        code: str,
        *,
        stdin: str | bytes | None = None,
        files: Mapping[str, str | bytes] | None = None,
        timeout_s: float = 10.0,
        memory_mb: int = 512,
    ) -> ExecResult: ...

    def run_many(self, jobs: Iterable[Job]) -> Sequence[ExecResult]: ...

    def close(self) -> None: ...

    def __enter__(self) -> Sandbox: ...

    def __exit__(self, *exc: object) -> None: ...


def run_jobs(executor: Any, run: Any, jobs: Iterable[Job]) -> list[ExecResult]:
    """Submit every job to `executor` (one thread per sandbox slot) and return results in input
    order; if waiting is interrupted (Ctrl-C) or a run raises, jobs not yet started are cancelled.
    Shared by the sandboxes' `run_many`."""
    futures = [
        executor.submit(run, j.code, stdin=j.stdin, files=j.files, timeout_s=j.timeout_s, memory_mb=j.memory_mb)
        for j in jobs
    ]
    try:
        return [f.result() for f in futures]
    except BaseException:
        for f in futures:
            f.cancel()
        raise
