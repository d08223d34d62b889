"""`rlvr sandbox doctor`: is the Docker sandbox usable here, how isolated is it, how fast?

Checks, in order, each a row of the printed table:

1. engine: a Docker engine answers (version, storage driver, cgroup version, seccomp);
2. image: the language's image exists (size);
3. isolation: a one-container pool starts and its container really has the lockdown settings
   (network none, read-only root, capabilities dropped, no-new-privileges, memory == swap, pids
   and CPU limits, non-root uid, log driver none, PID 1 is the worker);
4. containment: every attack in `rlvr.sandboxes.probes.ATTACKS` is contained and leaves no process
   behind, and the next job then runs normally (its latency is shown);
5. throughput: `jobs` HumanEval-style programs through a pool of `size` (programs/s, p50, p99).

Exit code 0 when every check passes, 1 otherwise. What it does not do: build the image (`rlvr
sandbox build`) or start an engine (scripts/setup_docker.sh).

Try it::

    $ rlvr sandbox doctor --jobs 300
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from rlvr.sandboxes.base import Job
from rlvr.sandboxes.languages import get_language
from rlvr.sandboxes.probes import HUMANEVAL_STYLE, containment_selftest

__all__ = ["doctor", "format_table", "isolation_findings", "throughput"]


def format_table(rows: list[tuple[str, str, str]]) -> str:
    """Aligned text table of (check, status, detail) rows."""
    head = ("check", "status", "detail")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(2)]
    lines = [f"{head[0]:<{widths[0]}}  {head[1]:<{widths[1]}}  {head[2]}"]
    lines.append("-" * (widths[0] + widths[1] + 4 + max(len(r[2]) for r in [head, *rows])))
    lines += [f"{c:<{widths[0]}}  {s:<{widths[1]}}  {d}" for c, s, d in rows]
    return "\n".join(lines)


def isolation_findings(client: Any, container_id: str) -> list[tuple[str, bool]]:
    """(setting, in effect?) for one container, from `docker inspect`."""
    info = client.api.inspect_container(container_id)
    hc, cfg = info["HostConfig"], info["Config"]
    uid = cfg.get("User", "").split(":")[0]
    return [
        ("network none", hc.get("NetworkMode") == "none"),
        ("read-only root", hc.get("ReadonlyRootfs") is True),
        ("cap_drop ALL", hc.get("CapDrop") == ["ALL"] and not hc.get("CapAdd")),
        ("no-new-privileges", "no-new-privileges" in (hc.get("SecurityOpt") or [])),
        ("memory == memory+swap", bool(hc.get("Memory")) and hc.get("Memory") == hc.get("MemorySwap")),
        ("pids limit", (hc.get("PidsLimit") or 0) > 0),
        ("cpu quota", (hc.get("NanoCpus") or 0) > 0),
        ("non-root uid", uid.isdigit() and int(uid) > 0),
        ("log driver none", hc.get("LogConfig", {}).get("Type") == "none"),
        ("not privileged, no --init", not hc.get("Privileged") and not hc.get("Init")),
        ("no docker socket", not any("docker.sock" in b for b in hc.get("Binds") or [])),
    ]


def throughput(sandbox: Any, jobs: int) -> dict[str, float]:
    """Run `jobs` HumanEval-style programs through `sandbox.run_many`; programs/s, p50, p99 (ms)."""
    batch = [Job(HUMANEVAL_STYLE[i % len(HUMANEVAL_STYLE)], timeout_s=10) for i in range(jobs)]
    sandbox.run_many(batch[: max(2, jobs // 20)])  # warm-up
    t0 = time.perf_counter()
    results = sandbox.run_many(batch)
    elapsed = time.perf_counter() - t0
    lat = sorted(r.info.get("host_wall_s", r.wall_s) * 1e3 for r in results)
    return {
        "programs_per_s": jobs / elapsed,
        "p50_ms": lat[len(lat) // 2],
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "failed": float(sum(not r.ok for r in results)),
    }


def doctor(
    language: str = "python",
    size: int | None = None,
    jobs: int = 200,
    image: str | None = None,
    docker_host: str | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Run every check, print the table, return the exit code (0: all passed)."""
    rows: list[tuple[str, str, str]] = []
    image = image or get_language(language).image
    ok = _checks(rows, language, size or os.cpu_count() or 1, jobs, image, docker_host)
    say(format_table(rows))
    say("all checks passed" if ok else "some checks FAILED (see docs/sandboxes.md, 'Troubleshooting')")
    return 0 if ok else 1


def _checks(rows: list, language: str, size: int, jobs: int, image: str, docker_host: str | None) -> bool:
    import docker

    from rlvr.sandboxes.docker import DockerSandbox

    try:
        client = docker.DockerClient(base_url=docker_host) if docker_host else docker.from_env()
        info = client.info()
    except Exception as e:  # noqa: BLE001
        rows.append(("engine", "FAIL", f"{type(e).__name__}: {e}; run scripts/setup_docker.sh"))
        return False
    sec = ",".join(o.split(",")[0].removeprefix("name=") for o in info.get("SecurityOptions", []))
    rows.append(
        (
            "engine",
            "ok",
            (
                f"Docker {info.get('ServerVersion')}, {info.get('Driver')}, "
                f"cgroup v{info.get('CgroupVersion', '?')}, {info.get('NCPU')} CPUs, security: {sec or 'none'}"
            ),
        )
    )
    try:
        img = client.images.get(image)
    except docker.errors.ImageNotFound:
        rows.append(("image", "FAIL", f"{image} not found; run `rlvr sandbox build --language {language}`"))
        return False
    rows.append(("image", "ok", f"{image} ({img.attrs.get('Size', 0) / 2**20:.0f} MiB)"))
    t0 = time.perf_counter()
    try:
        solo = DockerSandbox(
            size=1, image=image, language=language, memory_mb=256, docker_hosts=_hosts(docker_host)
        )
    except Exception as e:  # noqa: BLE001
        rows.append(("pool start", "FAIL", f"{type(e).__name__}: {e}"))
        return False
    all_ok = True
    with solo:
        rows.append(("pool start", "ok", f"1 container ready in {time.perf_counter() - t0:.2f} s"))
        findings = isolation_findings(client, solo.container_ids()[0])
        missing = [name for name, good in findings if not good]
        all_ok &= not missing
        rows.append(
            (
                "isolation",
                "FAIL" if missing else "ok",
                ("missing: " + ", ".join(missing)) if missing else ", ".join(n for n, _ in findings),
            )
        )
        if language == "python":
            for row in containment_selftest(solo):
                all_ok &= row["contained"]
                rows.append(
                    (
                        f"contain: {row['attack']}",
                        "ok" if row["contained"] else "FAIL",
                        f"{row['detail']}; next job {row['next_job_ms']:.0f} ms",
                    )
                )
    if language == "python" and jobs > 0:
        with DockerSandbox(size=size, image=image, docker_hosts=_hosts(docker_host)) as pool:
            tp = throughput(pool, jobs)
        good = tp["failed"] == 0
        all_ok &= good
        rows.append(
            (
                "throughput",
                "ok" if good else "FAIL",
                (
                    f"{tp['programs_per_s']:.0f} programs/s on {size} containers, p50 {tp['p50_ms']:.1f} ms, "
                    f"p99 {tp['p99_ms']:.1f} ms ({jobs} HumanEval-style jobs, {tp['failed']:.0f} failed)"
                ),
            )
        )
    return all_ok


def _hosts(docker_host: str | None) -> list[str] | None:
    return [docker_host] if docker_host else None
