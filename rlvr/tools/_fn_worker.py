"""The child process that runs one function tool's calls (started by `rlvr.tools.function`).

Run as a script (not imported): it reads length-prefixed pickle frames on stdin and answers on
its original stdout. Frame 1 is the cloudpickled function; every later frame is
``(arguments, cap)`` and gets ``(kind, text, total_chars)`` back, kind "ok" or "error". The
function's own prints go to a capped buffer (its output when it returns None), and file
descriptor 1 is pointed at /dev/null, so nothing the function writes can corrupt the channel.
The parent kills this process (its whole session) at a call's deadline.
"""

import os
import pickle
import struct
import sys
import traceback


class _Capped:
    """A text stream that keeps the first `cap` characters and counts the rest."""

    def __init__(self, cap):
        self.cap, self.parts, self.kept, self.total = cap, [], 0, 0

    def write(self, s):
        s = str(s)
        self.total += len(s)
        if self.kept < self.cap:
            part = s[: self.cap - self.kept]
            self.parts.append(part)
            self.kept += len(part)
        return len(s)

    def flush(self):
        pass

    def text(self):
        return "".join(self.parts)


def _render(value):
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, tuple)):
        import json

        try:
            return json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            return repr(value)
    return str(value)


def _read(stream):
    head = stream.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack("!I", head)
    return pickle.loads(stream.read(n))


def _write(stream, obj):
    data = pickle.dumps(obj)
    stream.write(struct.pack("!I", len(data)) + data)
    stream.flush()


def main():
    chan_in = os.fdopen(os.dup(0), "rb")
    chan_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    fn = _read(chan_in)
    while True:
        msg = _read(chan_in)
        if msg is None:
            return
        arguments, cap = msg
        sys.stdout = sys.stderr = buf = _Capped(cap)
        try:
            value = fn(**arguments)
            text = buf.text() if value is None else _render(value)
            total = buf.total if value is None else len(text)
            reply = ("ok", text[:cap], total)
        except BaseException as e:  # noqa: BLE001 - the function's failure is the call's result
            text = "".join(traceback.format_exception(type(e), e, e.__traceback__.tb_next))  # from fn down
            reply = ("error", text[-cap:], len(text))  # the end: the innermost frame and the message
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        _write(chan_out, reply)


if __name__ == "__main__":
    main()
