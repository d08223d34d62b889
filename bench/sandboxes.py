"""Benchmark the Docker sandbox: warm pool vs one `docker run` per program, recovery, attacks.

Measures, in one run on this machine:

1. HumanEval-style programs/s and p50/p99 latency through `DockerSandbox` (size = cores);
2. the same for one `docker run` per program (same image and lockdown flags, `size` at a time);
3. how long a container killed from the host takes to be replaced (kill -> slot back in the pool);
4. for every attack in `rlvr.sandboxes.probes.ATTACKS`: whether it was contained and the latency
   of the next job in the same container;
5. the p50 of normal jobs on the other slots while a neighbour runs a fork bomb / memory hog /
   infinite loop, against the p50 when the neighbour is idle;
6. code grading: `CodeVerifier.score_many` on the 164 canonical HumanEval solutions (`--grading-reps`
   times over) through the same pool, completions/s, and where a completion's CPU goes (host
   planning and grading, the harness parent, its program and test children, the worker); then
   hacking programs for every task, none of which may score above 0.

Nothing is asserted; the table is printed (markdown) and, with ``--write-docs``, written into the
"## Sandboxes" section of docs/benchmarks.md (other sections are left as they are).

    .venv/bin/python bench/sandboxes.py                 # ~1 min on 2 cores
    .venv/bin/python bench/sandboxes.py --jobs 1000 --docker-run-jobs 40 --write-docs
"""  # noqa: E501

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _grading import grading, grading_lines

from rlvr.sandboxes.base import Job
from rlvr.sandboxes.docker import DockerSandbox
from rlvr.sandboxes.doctor import throughput
from rlvr.sandboxes.probes import ATTACKS, HUMANEVAL_STYLE, containment_selftest

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


def docker_run_baseline(image: str, jobs: int, size: int) -> dict[str, float]:
    """One locked-down `docker run` per program, `size` concurrently (what most setups do)."""
    import docker
    from docker.types import LogConfig

    client = docker.from_env()

    def one(i: int) -> tuple[float, bool]:
        t0 = time.perf_counter()
        c = client.containers.run(
            image,
            ["python3", "-c", HUMANEVAL_STYLE[i % len(HUMANEVAL_STYLE)]],
            detach=True,
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": "size=64m"},
            mem_limit="512m",
            memswap_limit="512m",
            pids_limit=128,
            nano_cpus=10**9,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            user="10000:10000",
            log_config=LogConfig(type="none"),
        )
        try:
            ok = c.wait(timeout=60)["StatusCode"] == 0
        finally:
            c.remove(force=True)
        return time.perf_counter() - t0, ok

    one(0)  # warm-up
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=size) as ex:
        res = list(ex.map(one, range(jobs)))
    elapsed = time.perf_counter() - t0
    lat = [r[0] * 1e3 for r in res]
    return {
        "programs_per_s": jobs / elapsed,
        "p50_ms": pct(lat, 0.5),
        "p99_ms": pct(lat, 0.99),
        "failed": float(sum(not r[1] for r in res)),
    }


def container_cpu_ns(cid: str) -> int | None:
    """CPU time a container has used (cgroup v1 cpuacct or v2 cpu.stat), None when unreadable."""
    for path, scale in (
        (f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage", 1),
        (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat", 1000),
        (f"/sys/fs/cgroup/docker/{cid}/cpu.stat", 1000),
    ):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        if scale == 1:
            return int(text)
        return int(text.split("usage_usec")[1].split()[0]) * scale
    return None


def cpu_per_job(pool: DockerSandbox, jobs: int) -> tuple[float, float] | None:
    """(container CPU ms, host CPU ms) per HumanEval-style job: load-independent cost."""
    ids = pool.container_ids()
    before = [container_cpu_ns(c) for c in ids]
    if None in before:
        return None
    h0 = resource.getrusage(resource.RUSAGE_SELF)
    pool.run_many([Job(HUMANEVAL_STYLE[i % len(HUMANEVAL_STYLE)], timeout_s=10) for i in range(jobs)])
    h1 = resource.getrusage(resource.RUSAGE_SELF)
    after = [container_cpu_ns(c) or 0 for c in ids]
    host = (h1.ru_utime + h1.ru_stime - h0.ru_utime - h0.ru_stime) * 1e3 / jobs
    return (sum(after) - sum(before)) / 1e6 / jobs, host


def replacement_times(pool: DockerSandbox, rounds: int) -> list[float]:
    """Kill a container from the host; time until a fresh one is idle in the pool (s)."""
    import docker

    client = docker.from_env()
    out = []
    for _ in range(rounds):
        victim = pool.idle[0].container_id
        n = len(pool.replace_times)
        t0 = time.perf_counter()
        client.api.kill(victim)
        while len(pool.replace_times) == n or len(pool.idle) < pool.size:
            time.sleep(0.002)
            if time.perf_counter() - t0 > 30:
                break
        out.append(time.perf_counter() - t0)
    return out


def neighbour_effect(pool: DockerSandbox, n: int = 60) -> list[tuple[str, float, float]]:
    """(attack, p50 of normal jobs next door during the attack, p50 with an idle neighbour), ms."""
    code = HUMANEVAL_STYLE[1]

    def p50(until: threading.Event | None = None) -> float:
        lat: list[float] = []
        while len(lat) < n or (until is not None and not until.is_set()):
            lat.append(pool.run(code, timeout_s=10).info["host_wall_s"] * 1e3)
        return statistics.median(lat)

    quiet = p50()
    rows = []
    for attack in [a for a in ATTACKS if a.name in ("fork bomb", "memory 1 GiB", "infinite loop")]:
        done = threading.Event()

        def hostile(a=attack, done=done) -> None:
            pool.run(a.code, timeout_s=3, memory_mb=a.memory_mb)
            done.set()

        t = threading.Thread(target=hostile)
        t.start()
        time.sleep(0.02)
        under = p50(done)
        t.join()
        rows.append((attack.name, under, quiet))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=600, help="programs through the pool")
    ap.add_argument("--docker-run-jobs", type=int, default=24, help="programs through docker run")
    ap.add_argument("--size", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--image", default="rlvr-sandbox:py3")
    ap.add_argument("--grading-reps", type=int, default=4, help="times the 164 HumanEval solutions are graded")
    ap.add_argument(
        "--write-docs", action="store_true", help="update the Sandboxes section of docs/benchmarks.md"
    )
    args = ap.parse_args(argv)

    with DockerSandbox(size=args.size, image=args.image) as pool:
        tp = throughput(pool, args.jobs)
        cost = cpu_per_job(pool, min(args.jobs, 300))
        repl = replacement_times(pool, 3)
        neigh = neighbour_effect(pool)
        grade = grading(pool, args.grading_reps, container_cpu_ns) if args.grading_reps else None
    with DockerSandbox(size=1, image=args.image) as solo:
        attacks = containment_selftest(solo)
    base = docker_run_baseline(args.image, args.docker_run_jobs, args.size)

    load = os.getloadavg()[0]
    lines = [
        (
            f"`{' '.join(['.venv/bin/python', 'bench/sandboxes.py', *(argv if argv is not None else sys.argv[1:])])}` "
            f"({os.cpu_count()} cores, load average {load:.1f} at the end, {time.strftime('%Y-%m-%d')})"
        ),
        "",
        "The load average counts the bench's own containers and any other jobs on the machine; the",
        "programs/s columns depend on what else runs, the CPU-per-job figure below does not.",
        "",
        "| path | HumanEval-style programs/s | p50 ms | p99 ms | failed |",
        "|---|---|---|---|---|",
        (
            f"| warm pool, {args.size} containers ({args.jobs} jobs) | {tp['programs_per_s']:.0f} | {tp['p50_ms']:.1f} | "
            f"{tp['p99_ms']:.1f} | {tp['failed']:.0f} |"
        ),
        (
            f"| one `docker run` per program, {args.size} at a time ({args.docker_run_jobs} jobs) | "
            f"{base['programs_per_s']:.1f} | {base['p50_ms']:.0f} | {base['p99_ms']:.0f} | {base['failed']:.0f} |"
        ),
        "",
        (
            f"Pool speed-up over `docker run`: **{tp['programs_per_s'] / base['programs_per_s']:.0f}x**. "
            f"Container killed from the host -> replacement idle in the pool: "
            f"{', '.join(f'{x:.2f}' for x in repl)} s."
            + (
                f" CPU per job: {cost[0]:.1f} ms in the container + {cost[1]:.1f} ms on the host, so "
                f"{os.cpu_count()} idle cores could run about {os.cpu_count() * 1e3 / sum(cost):.0f} programs/s."
                if cost
                else ""
            )
        ),
        "",
        "| attack (1 container) | contained | next job in that container, ms |",
        "|---|---|---|",
        *[
            f"| {r['attack']} | {'yes' if r['contained'] else 'NO'} | {r['next_job_ms']:.1f} |"
            for r in attacks
        ],
        "",
        "| attack on one slot | p50 of normal jobs next door, ms | p50 with an idle neighbour, ms |",
        "|---|---|---|",
        *[f"| {name} | {under:.1f} | {quiet:.1f} |" for name, under, quiet in neigh],
        *(grading_lines(grade, tp["programs_per_s"]) if grade else []),
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_docs:
        write_section(DOCS, "Sandboxes", text)
        print(f"\nwrote the Sandboxes section of {DOCS}")
    return 0


def write_section(path: Path, title: str, body: str) -> None:
    """Replace (or append) the `## title` section of a markdown file, leaving the others alone."""
    old = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = old.splitlines()
    head = f"## {title}"
    try:
        start = lines.index(head)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    except ValueError:
        start = end = len(lines)
        lines += [""]
        start = end = len(lines)
    new = lines[:start] + [head, "", *body.splitlines(), ""] + lines[end:]
    path.write_text("\n".join(new).rstrip("\n") + "\n")


if __name__ == "__main__":
    sys.exit(main())
