"""Host side of the channel to one sandbox worker: frames with a host-side deadline.

Two transports, both one long-lived byte stream per container opened when the container starts,
so the hot path makes no Docker API call at all:

- `SocketTransport` (local engines, the fast path): the host listens on a unix socket in a
  per-container directory bind-mounted read-only at /io; the worker (PID 1) connects once, the host
  checks the peer's uid with SO_PEERCRED, then unlinks the socket file and closes the listener, so
  no later process (a job in the container, another host user) can connect. The socket file is
  owned by the container's uid with mode 0600 while it exists.
- `AttachTransport` (remote engines, `tcp://` or `ssh://` DOCKER_HOST, where no host directory is
  shared): one attach connection to the worker's stdin/stdout, opened before the container starts;
  stdout arrives in Docker's 8-byte-header multiplexed format and is demultiplexed here. It adds a
  hop through the daemon, but still no per-job API call.

What this module does not do: create containers (`_docker_slot`) or validate result contents
(`docker.DockerSandbox`). Frames are JSON headers plus raw blobs; nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import select
import socket
import struct
import time
from typing import Any

from rlvr.sandboxes.worker import HDR, MAX_FRAME, encode

__all__ = ["AttachTransport", "ChannelError", "ChannelTimeout", "SocketTransport", "listen_unix"]


class ChannelError(ConnectionError):
    """The worker's channel broke or sent something malformed: the container is replaced."""


class ChannelTimeout(ChannelError):
    """No (complete) frame before the host-side deadline."""


class _Framed:
    """Reads frames from `self.sock` with a deadline; subclasses may unwrap a stream format."""

    sock: socket.socket

    def __init__(self) -> None:
        self.buf = bytearray()
        self.poller = select.poll()

    def _fill(self, deadline: float) -> None:
        """Append at least one byte of payload to self.buf, or raise."""
        left = deadline - time.monotonic()
        if left <= 0 or not self.poller.poll(left * 1000):
            raise ChannelTimeout("no reply from the sandbox worker before the host deadline")
        try:
            chunk = self.sock.recv(1 << 18)
        except OSError as e:
            raise ChannelError(f"sandbox channel failed: {e}") from e
        if not chunk:
            raise ChannelError("sandbox worker closed its channel (container lost)")
        self._feed(chunk)

    def _feed(self, chunk: bytes) -> None:
        self.buf += chunk

    def _take(self, n: int, deadline: float) -> bytes:
        while len(self.buf) < n:
            self._fill(deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def recv(self, deadline: float) -> tuple[dict[str, Any], list[bytes]]:
        """One frame, or ChannelTimeout/ChannelError. `deadline` is a time.monotonic() value."""
        (n,) = HDR.unpack(self._take(HDR.size, deadline))
        if n > 1 << 20:
            raise ChannelError(f"sandbox frame header of {n} bytes")
        try:
            head = json.loads(self._take(n, deadline))
            sizes = [int(s) for s in head.get("sizes", [])]
        except (ValueError, TypeError, AttributeError) as e:
            raise ChannelError(f"malformed sandbox frame: {e}") from e
        if sum(sizes) > MAX_FRAME or any(s < 0 for s in sizes):
            raise ChannelError("sandbox frame too large")
        return head, [self._take(s, deadline) for s in sizes]

    def send(self, head: dict[str, Any], blobs: list[bytes]) -> None:
        try:
            self.sock.sendall(self._wrap(encode(head, blobs)))
        except OSError as e:
            raise ChannelError(f"sandbox channel failed: {e}") from e

    def _wrap(self, data: bytes) -> bytes:
        return data

    def dead(self) -> bool:
        """True when the worker hung up or sent something unasked (checked while idle)."""
        if self.buf:
            return True
        return bool(self.poller.poll(0))

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def listen_unix(path: str, uid: int) -> socket.socket:
    """A listening unix socket at `path` that only `uid` (and root) may connect to."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    os.chown(path, uid, uid)
    os.chmod(path, 0o600)
    sock.listen(1)
    return sock


class SocketTransport(_Framed):
    """The worker's unix-socket connection (see the module docstring)."""

    def __init__(self, listener: socket.socket, path: str, uid: int, timeout_s: float) -> None:
        super().__init__()
        listener.settimeout(timeout_s)
        try:
            conn, _ = listener.accept()
        except TimeoutError as e:
            raise ChannelTimeout(f"the sandbox worker did not connect within {timeout_s:.0f} s") from e
        finally:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            listener.close()
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, peer_uid, _gid = struct.unpack("3i", creds)
        if peer_uid != uid:
            conn.close()
            raise ChannelError(f"sandbox socket peer has uid {peer_uid}, expected {uid}")
        conn.setblocking(True)
        self.sock = conn
        self.poller.register(conn, select.POLLIN)


class AttachTransport(_Framed):
    """Worker stdin/stdout over one Docker attach connection (remote engines)."""

    def __init__(self, raw: Any) -> None:
        super().__init__()
        sock = getattr(raw, "_sock", raw)
        if not isinstance(sock, socket.socket):
            raise ChannelError(
                f"attach transport needs a socket, got {type(sock).__name__} (ssh:// is unsupported)"
            )
        self.raw, self.sock, self.pending = raw, sock, bytearray()
        self.poller.register(sock, select.POLLIN)

    def _feed(self, chunk: bytes) -> None:
        # Docker's multiplexed stream: [type, 0, 0, 0, len (4 bytes BE)] + payload; keep stdout (1).
        self.pending += chunk
        while len(self.pending) >= 8:
            kind, size = self.pending[0], struct.unpack(">I", self.pending[4:8])[0]
            if len(self.pending) < 8 + size:
                break
            if kind == 1:
                self.buf += self.pending[8 : 8 + size]
            del self.pending[: 8 + size]

    def _fill(self, deadline: float) -> None:
        before = len(self.buf)
        while len(self.buf) == before:
            super()._fill(deadline)
