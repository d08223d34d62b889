"""`DockerSandbox`: a warm pool of locked-down containers, each running a fork-server worker.

Each slot is one container (isolation policy: `rlvr.sandboxes._docker_slot`) whose PID 1 is
`rlvr.sandboxes.worker`: it forks a fresh, rlimited child per job from an interpreter that has
already imported the `preload` modules, so a job costs a fork, not an interpreter start. The host
talks to each worker over one long-lived channel (a unix socket in a read-only bind mount on local
engines; one attach connection on remote ones, see `_docker_transport`), never through a Docker
API call per job. Every job gets a random id that the result must echo, and a host-side deadline
(the job's timeout plus `grace_s`); a container that misses it, hangs up, or answers with the
wrong id is removed and replaced in the background, as is a container that has served
`recycle_after` jobs. One pool can span several engines (`docker_hosts`, a list of DOCKER_HOST
URLs): slots are dealt round-robin.

What it does not do: grade anything (`rlvr.verifiers.code` does, by running a harness as the
job), pull images (build one with `rlvr sandbox build`), or isolate against kernel exploits beyond
what Docker's default seccomp profile, dropped capabilities and no-new-privileges give.

Cleanup: `close()` (also run by `with`, on error, on Ctrl-C and at interpreter exit) removes exactly
the containers this pool created, by id. Each container's channel directory (host side of /io)
exists only until its worker has connected, and is then removed by its exact path. If the host
process is killed outright, each worker sees its channel close and exits, and the engine removes
the container (`auto_remove`).

Try it::

    >>> from rlvr.sandboxes.docker import DockerSandbox                # doctest: +SKIP
    >>> with DockerSandbox(size=2) as sb:                              # doctest: +SKIP
    ...     print(sb.run("print(sum(range(10)))", timeout_s=5).stdout)
    45
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self

from rlvr.sandboxes._docker_slot import PoolSpec, Slot, start_slot, stop_slot, stop_slot_ids
from rlvr.sandboxes._docker_transport import ChannelError, ChannelTimeout
from rlvr.sandboxes.base import DEFAULT_OUTPUT_CAP, ExecResult, Job, run_jobs
from rlvr.sandboxes.harness import harness_source
from rlvr.sandboxes.languages import DEFAULT_PRELOAD, get_language

__all__ = ["DockerSandbox", "SandboxUnavailable"]

log = logging.getLogger(__name__)


class SandboxUnavailable(RuntimeError):
    """No engine, no image, or no container could start: the message says which and what to do."""


def _client(url: str | None) -> Any:
    import docker

    try:
        client = docker.DockerClient(base_url=url) if url else docker.from_env()
        client.ping()
    except Exception as e:
        where = url or os.environ.get("DOCKER_HOST", "the default socket")
        raise SandboxUnavailable(
            f"no Docker engine at {where}: {e} (start one: scripts/setup_docker.sh)"
        ) from e
    return client


class DockerSandbox:
    """A warm pool of `size` sandbox containers; implements `rlvr.sandboxes.base.Sandbox`.

    size: containers (default: CPU cores). image: defaults to the language's (`rlvr-sandbox:py3`).
    memory_mb: the most memory one job may ask for (per-job `memory_mb` is clamped to it; it sets
    RLIMIT_AS, and the container's cgroup limit is this plus the tmpfs sizes plus 96 MiB).
    pids_limit: the container's cgroup pid cap; each job gets RLIMIT_NPROC = pids_limit - 8, so a
    job's own children (a grading harness forking one process per test) fit. cpus: CFS quota per
    container. recycle_after: jobs before a container is replaced (0: never). preload: modules
    each worker imports up front. docker_hosts: engine URLs (default: the environment's engine).
    transport: "auto" (unix socket for unix:// engines, attach otherwise), "socket" or "attach".
    grace_s: extra host-side wait beyond a job's timeout before its container counts as lost.
    prelude: Python source that jobs often run verbatim; each worker compiles it once at start-up
    and a job whose code is exactly it skips compiling (default: the grading harness of
    `rlvr.sandboxes.harness`, ~10 ms of compile per code-verifier job; "" for none).
    """

    def __init__(
        self,
        size: int | None = None,
        *,
        image: str | None = None,
        language: str = "python",
        memory_mb: int = 1024,
        pids_limit: int = 128,
        cpus: float = 1.0,
        recycle_after: int = 2000,
        preload: Sequence[str] | None = None,
        docker_hosts: Sequence[str] | None = None,
        transport: str = "auto",
        output_cap: int = DEFAULT_OUTPUT_CAP,
        grace_s: float = 2.0,
        start_timeout_s: float = 60.0,
        fsize_mb: int = 64,
        prelude: str | None = None,
    ) -> None:
        lang = get_language(language)
        self.size = int(size or os.cpu_count() or 1)
        if self.size < 1 or memory_mb < 16 or pids_limit < 16:
            raise ValueError("DockerSandbox: size >= 1, memory_mb >= 16 and pids_limit >= 16 required")
        if transport not in {"auto", "socket", "attach"}:
            raise ValueError(f"DockerSandbox: transport must be auto, socket or attach, not {transport!r}")
        self.recycle_after, self.grace_s, self.fsize = recycle_after, grace_s, fsize_mb << 20
        self.pool_id = secrets.token_hex(4)
        self.spec = PoolSpec(
            image=image or lang.image,
            pool_id=self.pool_id,
            memory_mb=memory_mb,
            pids_limit=pids_limit,
            cpus=cpus,
            preload=tuple(DEFAULT_PRELOAD if preload is None else preload),
            lang=lang.worker_spec(),
            prelude=(harness_source() if prelude is None and not lang.run else prelude or ""),
            output_cap=output_cap,
            start_timeout_s=start_timeout_s,
        )
        self.created: dict[str, Any] = {}  # container id -> client: everything we must remove
        self.idle: list[Slot] = []
        self.busy: set[int] = set()
        self.cond = threading.Condition()
        self.closed = False
        self.stats = {"replaced": 0, "recycled": 0, "lost": 0, "jobs": 0}
        self.replace_times: list[float] = []  # seconds from a loss being noticed to its slot being back
        span = (
            4 * self.size
        )  # uids base .. base+span-1: 4 per slot (a fresh one while the old container dies)
        self._uid_base = 10000 + span * secrets.randbelow(max(1, 50000 // span))
        self._executor: ThreadPoolExecutor | None = None
        self._replacer = ThreadPoolExecutor(
            max_workers=max(2, self.size), thread_name_prefix="rlvr-sbx-replace"
        )
        atexit.register(_close_ref, weakref.ref(self))
        try:
            self._engines = self._connect(docker_hosts, transport)
            with ThreadPoolExecutor(max_workers=self.size) as ex:
                slots = list(ex.map(self._start, range(self.size), [0] * self.size))
            self.idle.extend(slots)
        except BaseException:
            self.close()
            raise
        self._monitor = threading.Thread(target=self._watch, name="rlvr-sbx-monitor", daemon=True)
        self._monitor.start()

    # ------------------------------------------------------------------ setup and replacement
    def _connect(self, hosts: Sequence[str] | None, transport: str) -> list[tuple[Any, bool]]:
        engines = []
        for url in list(hosts or [None]):
            client = _client(url)
            try:
                client.images.get(self.spec.image)
            except Exception as e:
                raise SandboxUnavailable(
                    f"image {self.spec.image} not found on engine {url or 'default'}: run `rlvr sandbox build`"
                ) from e
            where = url or os.environ.get("DOCKER_HOST", "")
            remote = bool(where) and not where.startswith("unix://")
            engines.append((client, transport == "attach" or (transport == "auto" and remote)))
        return engines

    def _start(self, index: int, generation: int) -> Slot:
        client, attach = self._engines[index % len(self._engines)]
        uid = self._uid_base + index * 4 + generation % 4
        slot = start_slot(self.spec, client, index % len(self._engines), index, uid, attach, self.created)
        slot.generation = generation
        return slot

    def _replace(self, slot: Slot, why: str, noticed: float) -> None:
        """Background: remove `slot`'s container and start a new one in its place."""
        try:
            self._replacer.submit(self._do_replace, slot, why, noticed)
        except RuntimeError:  # closed meanwhile: close() removes every container we created
            pass

    def _do_replace(self, slot: Slot, why: str, noticed: float) -> None:
        log.info("sandbox slot %d: replacing container %s (%s)", slot.index, slot.container_id[:12], why)
        threading.Thread(target=self._remove, args=(slot,), daemon=True).start()
        for attempt in range(3):
            if self.closed:
                return
            try:
                new = self._start(slot.index, slot.generation + 1 + attempt)
                break
            except Exception as e:  # noqa: BLE001 - retried, then the pool runs one slot short
                log.warning("sandbox slot %d: restart failed (%s)", slot.index, e)
                time.sleep(0.5 * (attempt + 1))
        else:
            log.error(
                "sandbox slot %d: could not restart its container; the pool runs one slot short", slot.index
            )
            with self.cond:
                self.busy.discard(slot.index)
                self.cond.notify_all()
            return
        with self.cond:
            if self.closed:  # close() may have listed our containers before this one existed
                self._remove(new)
                return
            self.stats["recycled" if why == "recycle" else "replaced"] += 1
            self.replace_times.append(time.monotonic() - noticed)
            self.busy.discard(slot.index)
            self.idle.append(new)
            self.cond.notify()

    def _remove(self, slot: Slot) -> None:
        try:
            stop_slot(slot)
        except Exception as e:  # noqa: BLE001 - logged; close() retries every id it still has
            log.warning("sandbox: could not remove container %s: %s", slot.container_id[:12], e)
            return
        self.created.pop(slot.container_id, None)

    def _watch(self) -> None:
        """Notice idle containers that died (killed from outside, OOM, engine restart) early."""
        while not self.closed:
            time.sleep(0.1)
            with self.cond:
                dead = [s for s in self.idle if s.transport.dead()]
                for s in dead:
                    self.idle.remove(s)
                    self.busy.add(s.index)
            for s in dead:
                self.stats["lost"] += 1
                self._replace(s, "lost while idle", time.monotonic())

    # ------------------------------------------------------------------ running jobs
    def _acquire(self) -> Slot:
        """An idle, live slot; waits while any slot is busy or restarting."""
        with self.cond:
            while True:
                if self.closed:
                    raise SandboxUnavailable("DockerSandbox is closed")
                while self.idle:
                    slot = self.idle.pop()
                    if not slot.transport.dead():
                        self.busy.add(slot.index)
                        return slot
                    self.busy.add(slot.index)
                    self.stats["lost"] += 1
                    self._replace(slot, "lost while idle", time.monotonic())
                if not self.busy:
                    raise SandboxUnavailable("every sandbox container failed to restart (see the log)")
                self.cond.wait(1.0)

    def _release(self, slot: Slot) -> None:
        slot.jobs += 1
        if self.recycle_after and slot.jobs >= self.recycle_after:
            self._replace(slot, "recycle", time.monotonic())
            return
        with self.cond:
            self.busy.discard(slot.index)
            self.idle.append(slot)
            self.cond.notify()

    def run(
        self,
        code: str,
        *,
        stdin: str | bytes | None = None,
        files: Mapping[str, str | bytes] | None = None,
        timeout_s: float = 10.0,
        memory_mb: int = 512,
    ) -> ExecResult:
        """Run one program in a warm container; failures of the sandbox come back as `error`. A job
        whose container was lost before it answered runs once more in another; its result then
        carries ``info["lost"]`` (why the first container was lost)."""
        blobs = [code.encode("utf-8", "surrogateescape"), _as_bytes(stdin or b"")]
        names = []
        for name, data in (files or {}).items():
            name = str(name)
            if not name or name.startswith("/") or ".." in name.split("/") or "\0" in name:
                raise ValueError(
                    f"DockerSandbox.run: files[{name!r}]: must be a relative path inside the scratch dir"
                )
            names.append(name)
            blobs.append(_as_bytes(data))
        req = {
            "timeout_s": float(timeout_s),
            "memory_mb": int(min(memory_mb, self.spec.memory_mb)),
            "fsize": self.fsize,
            "nproc": self.spec.pids_limit - 8,
            "files": names,
        }
        t0 = time.monotonic()
        lost = None  # why the first container was lost, when the job had to run again
        for attempt in range(2):  # a container lost before it could take the job: one more try
            slot = self._acquire()
            req["id"] = job_id = secrets.token_hex(16)
            try:
                slot.transport.send(req, blobs)
                head, out = slot.transport.recv(time.monotonic() + timeout_s + self.grace_s)
                if head.get("id") != job_id:
                    raise ChannelError(f"result for job {head.get('id')!r}, expected {job_id!r}")
                result = _result(head, out, slot, time.monotonic() - t0)
            except ChannelTimeout as e:
                self._lost(slot, str(e))
                return ExecResult(None, 9, True, wall_s=time.monotonic() - t0, error="sandbox_unresponsive")
            except ChannelError as e:
                self._lost(slot, str(e))
                if attempt == 0 and not self.closed:
                    lost = str(e)[:200]
                    continue
                return ExecResult(
                    None, wall_s=time.monotonic() - t0, error="sandbox_lost", info={"why": str(e)}
                )
            except BaseException:  # Ctrl-C mid-job: that container's state is unknown
                self._lost(slot, "interrupted")
                raise
            self.stats["jobs"] += 1
            self._release(slot)
            if lost is not None:  # callers can tell that a container died under this job
                result.info["lost"] = lost
            return result
        raise AssertionError("unreachable")

    def _lost(self, slot: Slot, why: str) -> None:
        self.stats["lost"] += 1
        self._replace(slot, why, time.monotonic())

    def run_many(self, jobs: Iterable[Job]) -> Sequence[ExecResult]:
        """Run every job, `size` at a time, so no slot idles while work is left; results in order."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="rlvr-sbx")
        return run_jobs(self._executor, self.run, jobs)

    # ------------------------------------------------------------------ cleanup
    def container_ids(self) -> list[str]:
        """Ids of the containers this pool currently owns (live or being removed)."""
        return list(self.created)

    def close(self) -> None:
        """Remove every container this pool created (by id); idempotent."""
        with self.cond:
            if self.closed and not self.created:
                return
            self.closed = True
            slots, self.idle = list(self.idle), []
            self.cond.notify_all()
        for s in slots:
            s.transport.close()
        ids = list(self.created.items())
        if ids:
            try:
                with ThreadPoolExecutor(max_workers=min(8, len(ids))) as ex:
                    list(ex.map(lambda kv: _quiet_remove(*kv), ids))
            except RuntimeError:  # at interpreter exit (our atexit hook) executors take no new work
                for kv in ids:
                    _quiet_remove(*kv)
        for cid, _ in ids:
            self.created.pop(cid, None)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._replacer.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DockerSandbox(size={self.size}, image={self.spec.image!r}, idle={len(self.idle)})"


def _quiet_remove(cid: str, client: Any) -> None:
    try:
        stop_slot_ids(client, cid, None)
    except Exception as e:  # noqa: BLE001
        log.warning("sandbox: could not remove container %s: %s", cid[:12], e)


def _close_ref(ref: weakref.ref[DockerSandbox]) -> None:
    pool = ref()
    if pool is not None:
        pool.close()


def _as_bytes(x: str | bytes) -> bytes:
    return x.encode("utf-8") if isinstance(x, str) else bytes(x)


def _result(head: Mapping[str, Any], out: list[bytes], slot: Slot, host_wall: float) -> ExecResult:
    """Build an ExecResult from a worker frame, type-checking every field."""
    if "error" in head:
        return ExecResult(
            None, wall_s=host_wall, error="sandbox_worker", info={"why": str(head["error"])[:500]}
        )
    stdout, stderr = (out + [b"", b""])[:2]

    def num(key: str, kind: type, allow_none: bool = False) -> Any:
        v = head.get(key)
        if (v is None and allow_none) or (isinstance(v, kind) and not isinstance(v, bool)):
            return v
        raise ChannelError(f"sandbox result field {key!r} has bad value {v!r}")

    nout, nerr = num("stdout_bytes", int), num("stderr_bytes", int)
    return ExecResult(
        exit_code=num("exit_code", int, True),
        signal=num("signal", int, True),
        timed_out=head.get("timed_out") is True,
        stdout=stdout.decode("utf-8", "replace"),
        stderr=stderr.decode("utf-8", "replace"),
        stdout_bytes=nout,
        stderr_bytes=nerr,
        truncated=nout > len(stdout) or nerr > len(stderr),
        wall_s=float(num("wall_s", float)),
        memory_exceeded=head.get("memory_exceeded") is True,
        info={"host_wall_s": host_wall, "slot": slot.index, "container": slot.container_id[:12]},
    )
