"""The Docker sandbox's wire protocol, without Docker: framing, demultiplexing, validation.

These run everywhere (no engine needed): a socketpair stands in for the worker's channel, and the
worker's real `Channel` class speaks to the host's real transports.
"""

from __future__ import annotations

import socket
import struct
import time

import pytest

from rlvr.sandboxes._docker_slot import Slot
from rlvr.sandboxes._docker_transport import AttachTransport, ChannelError, ChannelTimeout, _Framed
from rlvr.sandboxes.docker import _result
from rlvr.sandboxes.worker import Channel, encode


class _Pair(_Framed):
    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock
        self.poller.register(sock, 1)


def _soon() -> float:
    return time.monotonic() + 5


def test_frame_round_trip_host_to_worker_and_back():
    host, worker = socket.socketpair()
    h, w = _Pair(host), Channel(worker.fileno(), worker.fileno())
    h.send({"id": "abc", "n": 1}, [b"print(1)", b"", b"\x00\xffdata"])
    head, blobs = w.recv()
    assert head == {"id": "abc", "n": 1, "sizes": [8, 0, 6]}
    assert [bytes(b) for b in blobs] == [b"print(1)", b"", b"\x00\xffdata"]
    w.send({"id": "abc", "exit_code": 0}, [b"out", b"err"])
    assert h.recv(_soon()) == ({"id": "abc", "exit_code": 0, "sizes": [3, 3]}, [b"out", b"err"])


def test_worker_wipe_zeroes_everything_after_the_code():
    host, worker = socket.socketpair()
    w = Channel(worker.fileno(), worker.fileno())
    _Pair(host).send({}, [b"code", b"stdin", b"secret"])
    _, blobs = w.recv()
    w.wipe(len(blobs[0]))
    assert bytes(w.mem) == b"code" + bytes(11)


def test_host_deadline_and_hangup():
    host, worker = socket.socketpair()
    h = _Pair(host)
    with pytest.raises(ChannelTimeout):
        h.recv(time.monotonic() + 0.05)
    worker.sendall(encode({}, [b"x" * 10])[:7])  # half a frame, then the worker dies
    worker.close()
    with pytest.raises(ChannelError, match="closed"):
        h.recv(_soon())


def test_host_rejects_oversized_header():
    host, worker = socket.socketpair()
    worker.sendall(struct.pack("!I", 50 << 20))
    with pytest.raises(ChannelError, match="header"):
        _Pair(host).recv(_soon())


def test_attach_stream_is_demultiplexed():
    host, daemon = socket.socketpair()
    t = AttachTransport(host)
    frame = encode({"id": "z"}, [b"hello"])

    def mux(kind: int, data: bytes) -> bytes:
        return bytes([kind, 0, 0, 0]) + struct.pack(">I", len(data)) + data

    # stdout split across two multiplexed chunks, with a stderr chunk in between that is dropped
    daemon.sendall(mux(1, frame[:5]) + mux(2, b"noise") + mux(1, frame[5:]))
    assert t.recv(_soon()) == ({"id": "z", "sizes": [5]}, [b"hello"])


def _slot() -> Slot:
    return Slot(0, 0, None, "c" * 64, 10000, None, None, 0.0)


def test_result_fields_are_type_checked():
    good = {
        "exit_code": 0,
        "signal": None,
        "timed_out": False,
        "stdout_bytes": 5,
        "stderr_bytes": 0,
        "wall_s": 0.01,
        "memory_exceeded": False,
    }
    r = _result(good, [b"hi", b""], _slot(), 0.02)
    assert (r.exit_code, r.stdout, r.truncated, r.ok) == (0, "hi", True, True)  # 5 bytes written, 2 kept
    for key, bad in (("exit_code", "0"), ("stdout_bytes", None), ("wall_s", "fast"), ("signal", True)):
        with pytest.raises(ChannelError, match=key):
            _result({**good, key: bad}, [b"", b""], _slot(), 0.0)
