"""One locked-down sandbox container and its channel: what `DockerSandbox` keeps per slot.

`container_kwargs` is the whole isolation policy in one place (see docs/sandboxes.md):

| setting | value |
|---|---|
| network | `none` (no interface but loopback) |
| root filesystem | read-only; tmpfs for /scratch (the job's cwd), /tmp and /dev/shm |
| memory | `mem_limit == memswap_limit` (no swap), sized job memory + tmpfs + worker |
| processes | `pids_limit` (the cgroup) and RLIMIT_NPROC per job |
| CPU | a CFS quota (`cpus`) |
| privileges | `cap_drop=ALL`, `no-new-privileges`, a non-root uid distinct per container |
| host access | no docker socket, no host paths but the read-only /io channel dir, no env secrets |
| logs | log driver `none`; no `--init` (the worker is PID 1) |

`start_slot` creates and starts the container, waits for the worker's hello, and returns a
`Slot`. What this module does not do: schedule jobs or replace slots (that is `docker.py`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr.sandboxes._docker_transport import AttachTransport, ChannelError, SocketTransport, listen_unix

__all__ = ["WORKER_SOURCE", "PoolSpec", "Slot", "container_kwargs", "start_slot", "stop_slot"]

WORKER_SOURCE = (Path(__file__).with_name("worker.py")).read_text()
LABEL = "rlvr.sandbox.pool"


@dataclass(frozen=True)
class PoolSpec:
    """Everything a slot needs to know to start a container (fixed for the pool's life)."""

    image: str
    pool_id: str
    memory_mb: int = 512
    pids_limit: int = 128
    cpus: float = 1.0
    preload: tuple[str, ...] = ()
    lang: dict[str, str] = field(default_factory=dict)
    prelude: str = ""  # Python source jobs often run (the grading harness): the worker compiles it once
    output_cap: int = 64 * 1024
    scratch_mb: int = 64
    tmp_mb: int = 64
    shm_mb: int = 16
    start_timeout_s: float = 60.0
    run_dir: str | None = None  # parent of the per-slot channel dirs (None: the system temp dir)

    @property
    def container_memory_mb(self) -> int:
        """Job memory + every tmpfs (tmpfs pages count against the cgroup) + the worker's share."""
        return self.memory_mb + self.scratch_mb + self.tmp_mb + self.shm_mb + 96


@dataclass
class Slot:
    """A live container: its engine, id, uid, channel and job count."""

    index: int
    engine: int
    client: Any
    container_id: str
    uid: int
    transport: Any
    channel_dir: str | None
    started_s: float
    jobs: int = 0
    generation: int = 0


def container_kwargs(spec: PoolSpec, uid: int, channel_dir: str | None) -> dict[str, Any]:
    """The `containers.create` arguments: the isolation policy (module docstring)."""
    from docker.types import LogConfig, Ulimit

    command = [
        "python3",
        "-I",
        "-c",
        WORKER_SOURCE,
        "--preload",
        ",".join(spec.preload),
        "--cap",
        str(spec.output_cap),
        "--lang",
        json.dumps(spec.lang),
    ] + (["--prelude", spec.prelude] if spec.prelude else [])
    kw: dict[str, Any] = {
        "image": spec.image,
        "command": command + (["--connect", "/io/sock"] if channel_dir else []),
        "auto_remove": True,  # if the host dies, the worker sees EOF, exits, and the engine removes it
        "network_mode": "none",
        "read_only": True,
        "tmpfs": {
            "/scratch": f"rw,nosuid,nodev,exec,size={spec.scratch_mb}m,uid={uid},gid={uid},mode=0700",
            "/tmp": f"rw,nosuid,nodev,noexec,size={spec.tmp_mb}m,mode=1777",
        },
        "shm_size": f"{spec.shm_mb}m",
        "ipc_mode": "private",
        "mem_limit": f"{spec.container_memory_mb}m",
        "memswap_limit": f"{spec.container_memory_mb}m",
        "pids_limit": spec.pids_limit,
        "nano_cpus": int(spec.cpus * 1e9),
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "user": f"{uid}:{uid}",
        "environment": {"LANG": "C.UTF-8", "HOME": "/scratch"},
        "log_config": LogConfig(type="none"),
        "ulimits": [Ulimit(name="nofile", soft=1024, hard=1024), Ulimit(name="core", soft=0, hard=0)],
        "labels": {LABEL: spec.pool_id, "rlvr.sandbox.host_pid": str(os.getpid())},
        "hostname": "sandbox",
        "working_dir": "/",
        "init": False,
    }
    if channel_dir:
        kw["volumes"] = {channel_dir: {"bind": "/io", "mode": "ro"}}
    else:
        kw["stdin_open"] = True
    return kw


def start_slot(
    spec: PoolSpec, client: Any, engine: int, index: int, uid: int, attach: bool, created: dict[str, Any]
) -> Slot:
    """Create + start one container and complete the worker's handshake.

    Every container id goes into `created` (id -> client) the moment it exists, so the pool can
    remove it even if this function fails halfway or the user presses Ctrl-C.
    """
    t0 = time.monotonic()
    channel_dir = listener = container = None
    try:
        if not attach:
            channel_dir = tempfile.mkdtemp(
                prefix=f"rlvr-sandbox-{spec.pool_id}-slot{index}-", dir=spec.run_dir
            )
            os.chmod(channel_dir, 0o711)
            sock_path = os.path.join(channel_dir, "sock")
            listener = listen_unix(sock_path, uid)
        container = client.containers.create(**container_kwargs(spec, uid, channel_dir))
        created[container.id] = client
        if attach:
            raw = client.api.attach_socket(container.id, params={"stdin": 1, "stdout": 1, "stream": 1})
            transport: Any = AttachTransport(raw)
            container.start()
        else:
            container.start()
            transport = SocketTransport(listener, sock_path, uid, spec.start_timeout_s)
        head, _ = transport.recv(time.monotonic() + spec.start_timeout_s)
        if head.get("hello") != 1 or head.get("pid") != 1 or head.get("uid") != uid:
            raise ChannelError(f"unexpected sandbox hello {head!r}")
        if channel_dir:  # connected: the dir has served its purpose (the container keeps its mount)
            shutil.rmtree(channel_dir, ignore_errors=True)
        return Slot(index, engine, client, container.id, uid, transport, None, time.monotonic() - t0)
    except BaseException:
        if listener is not None:
            listener.close()
        if container is not None:
            stop_slot_ids(client, container.id, channel_dir)
            created.pop(container.id, None)
        elif channel_dir:
            shutil.rmtree(channel_dir, ignore_errors=True)
        raise


def stop_slot_ids(client: Any, container_id: str, channel_dir: str | None) -> None:
    """Remove one container by id (gone already is fine) and its channel dir (by exact path)."""
    import docker

    try:
        client.api.remove_container(container_id, force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as e:
        if "already in progress" not in str(e) and e.status_code != 404:
            raise
    if channel_dir:
        shutil.rmtree(channel_dir, ignore_errors=True)


def stop_slot(slot: Slot) -> None:
    """Close the channel (the worker exits on EOF) and remove the container."""
    slot.transport.close()
    stop_slot_ids(slot.client, slot.container_id, slot.channel_dir)
