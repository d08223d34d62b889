"""Files in and out: JSONL rows with line-numbered errors, and atomic writes.

- `read_jsonl(path)` returns every row of a JSONL file (``.jsonl`` or ``.jsonl.gz``); a bad line
  raises `JsonlError` naming the file and the line. `iter_jsonl_lines` + `parse_jsonl_line` are the
  pieces for callers that keep going past bad lines (``rlvr verify`` reports them and scores the rest).
- `write_jsonl(path, rows)` and `atomic_write(path)` never leave a partial file behind: they write
  a temporary file in the same directory, fsync it, and `os.replace` it over the target. If the
  writer raises, the target is untouched and the temporary file is removed.
- `InputError` is the base class of every "your input is wrong" error (config, JSONL, ...). The CLI
  prints such errors as one line and exits with code 2.

What this module does not do: validate what a row means (that is the caller's job, e.g.
`rlvr.commands.verify`), or stream-write (rows are written once, when complete).

Try it::

    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> p = write_jsonl(os.path.join(d, "rows.jsonl"), [{"a": 1}, {"a": 2}])
    >>> read_jsonl(p)
    [{'a': 1}, {'a': 2}]
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "InputError",
    "JsonlError",
    "atomic_write",
    "iter_jsonl_lines",
    "parse_jsonl_line",
    "read_jsonl",
    "to_json_line",
    "write_jsonl",
]


class InputError(ValueError):
    """Bad user input (a file, a row, a config value). The message names the file, line and field."""


class JsonlError(InputError):
    """A bad line in a JSONL file: ``rows.jsonl:12: field 'completion': missing``."""

    def __init__(self, path: str | os.PathLike[str], line: int, message: str, field: str | None = None):
        self.path, self.line, self.field, self.message = str(path), line, field, message
        where = f"field {field!r}: " if field else ""
        super().__init__(f"{self.path}:{line}: {where}{message}")


def _open_binary(path: str | os.PathLike[str]) -> IO[bytes]:
    if str(path).endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def iter_jsonl_lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, str | JsonlError]]:
    """Yield ``(line_number, text)`` for every non-blank line (1-based numbers).

    A line that is not valid UTF-8 yields ``(line_number, JsonlError)`` instead of stopping, so
    callers can report it and go on. A missing file raises FileNotFoundError.
    """
    with _open_binary(path) as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield lineno, JsonlError(path, lineno, f"not valid UTF-8 ({e.reason} at byte {e.start})")
                continue
            if lineno == 1:
                text = text.removeprefix("\ufeff")  # a byte-order mark written by some editors
            if text.strip():
                yield lineno, text


def parse_jsonl_line(text: str, path: str | os.PathLike[str], line: int, *, require_object: bool = True) -> Any:
    """Parse one JSONL line; raise `JsonlError` naming `path:line` when it is not valid JSON
    (or, with `require_object`, not a JSON object).

    >>> parse_jsonl_line('{"a": 1}', "x.jsonl", 3)
    {'a': 1}
    >>> parse_jsonl_line('{"a": 1', "x.jsonl", 3)
    Traceback (most recent call last):
    rlvr.io.JsonlError: x.jsonl:3: invalid JSON: Expecting ',' delimiter (column 8)
    """
    try:
        obj = json.loads(text.rstrip("\r\n"))  # so an unfinished line reports its own column
    except json.JSONDecodeError as e:
        raise JsonlError(path, line, f"invalid JSON: {e.msg} (column {e.colno})") from None
    if require_object and not isinstance(obj, dict):
        raise JsonlError(path, line, f"expected a JSON object, got {_json_type(obj)}")
    return obj


def _json_type(obj: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(obj, (int, float)) and not isinstance(obj, bool):
        return "a number"
    return names.get(type(obj), type(obj).__name__)


def read_jsonl(path: str | os.PathLike[str], *, require_object: bool = True) -> list[Any]:
    """Every row of a JSONL file; the first bad line raises `JsonlError` (file and line named)."""
    rows = []
    for lineno, text in iter_jsonl_lines(path):
        if isinstance(text, JsonlError):
            raise text
        rows.append(parse_jsonl_line(text, path, lineno, require_object=require_object))
    return rows


def _json_default(obj: Any) -> Any:
    """Make verifier diagnostics serialisable: sets and tuples become lists, the rest str()."""
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=repr)
    if isinstance(obj, tuple):
        return list(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        with contextlib.suppress(Exception):
            return obj.item()
    return str(obj)


def to_json_line(row: Any) -> str:
    """One JSONL line (no newline); non-JSON values in diagnostics are converted, never dropped."""
    return json.dumps(row, ensure_ascii=False, default=_json_default)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file next to `path`; on success fsync it and move it over `path`.

    Parent directories are created. If the body raises, `path` is left as it was (absent or
    with its old content) and the temporary file is removed.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "out", "a.txt")
    >>> with atomic_write(p) as f:
    ...     _ = f.write("hello")
    >>> open(p).read()
    'hello'
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race with other threads)."""
    with contextlib.suppress(OSError, ValueError, StopIteration), open("/proc/self/status") as f:
        return int(next(ln for ln in f if ln.startswith("Umask:")).split()[1], 8)
    return 0o022


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (best effort: some filesystems refuse fsync on directories)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Any]) -> Path:
    """Write `rows` as JSONL atomically (``.gz`` suffix: gzip-compressed). Returns the path."""
    target = Path(path)
    if target.name.endswith(".gz"):
        with atomic_write(target, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            for row in rows:
                gz.write((to_json_line(row) + "\n").encode("utf-8"))
    else:
        with atomic_write(target) as f:
            for row in rows:
                f.write(to_json_line(row) + "\n")
    return target
