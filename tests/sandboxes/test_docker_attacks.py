"""DockerSandbox contains hostile programs: one attack per test, and the pool stays usable.

Needs Docker and the image (skips locally, fails under CI=true).
"""

from __future__ import annotations

import signal
import threading
import tracemalloc

import pytest

pytestmark = pytest.mark.docker

FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"


def test_fork_bomb_contained(solo_sandbox):
    r = solo_sandbox.run(FORK_BOMB, timeout_s=2)
    assert r.timed_out and r.error is None
    after = solo_sandbox.run(
        "import os; print(len([p for p in os.listdir('/proc') if p.isdigit()]))", timeout_s=5
    )
    assert after.stdout == "2\n"  # the worker and this job: every bomb process is gone
    assert after.info["container"] == r.info["container"]


def test_memory_cap(docker_sandbox):
    r = docker_sandbox.run(
        "x = bytearray(1024 * 1024 * 1024)\nprint('allocated')", timeout_s=10, memory_mb=128
    )
    assert r.exit_code == 1 and r.memory_exceeded and "allocated" not in r.stdout


def test_memory_pressure_across_processes_spares_the_worker(docker_sandbox):
    # Two children are forked first (small), the program takes 200 MiB, then each child takes 170
    # MiB: every process is under RLIMIT_AS (256 MiB) but together they ask for more than the
    # container's cgroup limit (256 + 240 MiB). Whatever the kernel does about it, the worker (PID 1)
    # must survive (no container lost) and the next job must run.
    # Known gap (docs/sandboxes.md): on this CI machine's kernel (cgroup v1) the aggregate limit is
    # not always enforced: in about one run in three all three processes kept their memory. The
    # per-process RLIMIT_AS cap (test_memory_cap) always holds.
    code = (
        "import os, time\n"
        "def hog(mib):\n    b = bytearray(mib << 20)\n    for j in range(0, len(b), 4096):\n        b[j] = 1\n    return b\n"
        "for _ in range(2):\n    if os.fork() == 0:\n        time.sleep(1.5); hog(170); time.sleep(30); os._exit(0)\n"
        "keep = hog(200)\n"
        "time.sleep(4)\nprint('survived')"
    )
    r = docker_sandbox.run(code, timeout_s=20, memory_mb=256)
    assert not r.timed_out and r.error is None
    if r.signal == 9:  # the OOM killer picked the program
        assert r.memory_exceeded
    nxt = docker_sandbox.run("print('worker fine')", timeout_s=5)
    assert nxt.stdout == "worker fine\n" and docker_sandbox.stats["lost"] == 0


def test_one_gib_write_stopped(docker_sandbox):
    code = (
        "chunk = b'0' * (1 << 20)\nwith open('big', 'wb') as f:\n"
        "    for i in range(1024):\n        f.write(chunk); f.flush(); print(i, flush=True)"
    )
    r = docker_sandbox.run(code, timeout_s=20)
    written_mib = len(r.stdout.split())
    assert not r.ok and written_mib < 100  # stopped at the 64 MiB file-size limit (SIGXFSZ)
    assert r.signal == signal.SIGXFSZ or r.exit_code == 1


def test_no_network(docker_sandbox):
    code = (
        "import socket, os\nprint(sorted(os.listdir('/sys/class/net')))\n"
        "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2)\n    print('connected')\n"
        "except OSError as e:\n    print('blocked', e.errno)"
    )
    r = docker_sandbox.run(code, timeout_s=10)
    assert r.stdout.splitlines()[0] == "['lo']" and r.stdout.splitlines()[1].startswith("blocked")


def test_no_host_files_visible(docker_sandbox, tmp_path):
    marker = tmp_path / "host-secret.txt"
    marker.write_text("secret")
    paths = [str(marker), "/work", "/root/.cache", "/var/run/docker.sock", "/run/docker.sock", "/etc/shadow-"]
    code = (
        f"import os\nprint([os.path.exists(p) for p in {paths!r}])\n"
        "try:\n    print(os.listdir('/io'))\nexcept OSError as e:\n    print(type(e).__name__)"
    )
    r = docker_sandbox.run(code, timeout_s=5)
    assert r.stdout.splitlines()[0] == str([False] * len(paths))
    assert r.stdout.splitlines()[1] in ("[]", "PermissionError")  # the channel dir: nothing to see
    ro = docker_sandbox.run("open('/etc/evil', 'w')", timeout_s=5)
    assert "Read-only file system" in ro.stderr


def test_worker_cannot_be_killed(solo_sandbox):
    code = "import os, signal\nfor s in (9, 15, 19, 2, 1):\n    os.kill(1, s)\nprint('sent')"
    r = solo_sandbox.run(code, timeout_s=5)
    assert r.stdout == "sent\n"
    again = solo_sandbox.run("print('alive')", timeout_s=5)
    assert again.stdout == "alive\n" and again.info["container"] == r.info["container"]


def test_worker_cannot_be_forged(solo_sandbox):
    code = (
        "import json, struct, sys, os\n"
        "fake = json.dumps({'id': 'x', 'exit_code': 0, 'signal': None, 'timed_out': False, 'stdout_bytes': 2,\n"
        "                   'stderr_bytes': 0, 'wall_s': 0.0, 'memory_exceeded': False, 'sizes': [2, 0]}).encode()\n"
        "frame = struct.pack('!I', len(fake)) + fake + b'OK'\n"
        "sys.stdout.buffer.write(frame); sys.stdout.flush()\n"
        "for path in ('/io/sock', '/proc/1/fd/3', '/proc/1/mem'):\n"
        "    try:\n        open(path, 'wb').write(frame)\n        print('WROTE', path)\n"
        "    except OSError as e:\n        print('denied', type(e).__name__)\n"
        "sys.exit(5)"
    )
    r = solo_sandbox.run(code, timeout_s=5)
    assert r.exit_code == 5 and r.error is None  # the program's real status, not the fake one
    assert "WROTE" not in r.stdout and r.stdout.count("denied") == 3
    assert solo_sandbox.run("print(1)", timeout_s=5).stdout == "1\n"


def test_output_flood_truncated_host_memory_flat(docker_sandbox):
    code = "import sys\nblock = 'x' * (1 << 20)\nfor _ in range(100):\n    sys.stdout.write(block)"
    tracemalloc.start()
    r = docker_sandbox.run(code, timeout_s=30)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert r.exit_code == 0 and r.truncated and r.stdout_bytes == 100 << 20
    assert len(r.stdout) == 64 * 1024
    assert peak < 4 << 20  # the host never held more than a few MiB of it


def test_setsid_daemon_does_not_survive(solo_sandbox):
    daemon = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        time.sleep(60)\n    os._exit(0)\nprint('spawned')"
    )
    first = solo_sandbox.run(daemon, timeout_s=5)
    second = solo_sandbox.run(
        "import os\nprint(sorted(int(p) for p in os.listdir('/proc') if p.isdigit() and p != str(os.getpid())))",
        timeout_s=5,
    )
    assert first.stdout == "spawned\n" and second.info["container"] == first.info["container"]
    assert second.stdout == "[1]\n"  # only the worker besides this job: the daemon is gone


def test_scratch_wiped_between_jobs(solo_sandbox):
    solo_sandbox.run("open('left.txt', 'w').write('x'); open('/tmp/t', 'w').write('y')", timeout_s=5)
    r = solo_sandbox.run(
        "import os; print(os.listdir('.'), os.listdir('/tmp'), os.listdir('/dev/shm'))", timeout_s=5
    )
    assert r.stdout == "[] [] []\n"


def test_attack_does_not_affect_neighbour(docker_sandbox):
    hostile = {}
    t = threading.Thread(target=lambda: hostile.setdefault("r", docker_sandbox.run(FORK_BOMB, timeout_s=3)))
    t.start()
    calm = [docker_sandbox.run("print(sum(range(100)))", timeout_s=10) for _ in range(5)]
    t.join()
    assert all(r.stdout == "4950\n" and r.ok for r in calm)
    assert hostile["r"].timed_out


def test_files_leave_no_copy_in_job_memory(solo_sandbox):
    import hashlib
    import secrets

    secret = secrets.token_hex(32)  # 64 chars; the job only knows the first half and a hash
    head, digest = secret[:32], hashlib.sha256(secret.encode()).hexdigest()
    scan = (  # reads its own readable mappings with ctypes (/proc/self/mem is closed to it)
        "import ctypes, hashlib, os, re\n"
        "os.unlink('nonce')  # never read: any copy in memory came from the sandbox\n"
        f"head, digest, hits = {head!r}.encode(), {digest!r}, 0\n"
        "for line in open('/proc/self/maps').read().splitlines():\n"
        "    f = line.split()\n"
        "    if not f[1].startswith('r') or (len(f) > 5 and f[5].startswith('[v')):\n        continue\n"
        "    lo, hi = (int(x, 16) for x in f[0].split('-'))\n"
        "    data = ctypes.string_at(lo, hi - lo)\n"
        "    for m in re.finditer(re.escape(head), data):\n"
        "        hits += hashlib.sha256(data[m.start():m.start() + 64]).hexdigest() == digest\n"
        "print('copies', hits)"
    )
    r = solo_sandbox.run(scan, files={"nonce": secret}, timeout_s=20)
    assert r.stdout == "copies 0\n", r.stderr[-500:]
