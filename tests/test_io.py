"""rlvr.io: JSONL errors carry file and line; atomic writes never leave a partial file."""

from __future__ import annotations

import gzip
import os

import pytest

from rlvr.io import JsonlError, atomic_write, iter_jsonl_lines, parse_jsonl_line, read_jsonl, write_jsonl


def test_round_trip_keeps_order_unicode_and_skips_blank_lines(tmp_path):
    rows = [{"completion": "x = 1 ½", "n": 1}, {"completion": "∑", "n": 2}]
    p = write_jsonl(tmp_path / "a.jsonl", rows)
    p.write_text(p.read_text() + "\n   \n")
    assert read_jsonl(p) == rows
    assert "½" in p.read_text(encoding="utf-8")  # not \u-escaped


def test_gzip_round_trip(tmp_path):
    p = write_jsonl(tmp_path / "a.jsonl.gz", [{"a": 1}])
    assert gzip.decompress(p.read_bytes()) == b'{"a": 1}\n'
    assert read_jsonl(p) == [{"a": 1}]


def test_errors_name_file_and_line(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_text('{"a": 1}\n\n{"a": 2,}\n')
    with pytest.raises(JsonlError) as e:
        read_jsonl(p)
    assert (e.value.line, str(e.value)) == (3, f"{p}:3: invalid JSON: Expecting property name enclosed in double quotes (column 9)")
    p.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(JsonlError, match=rf"^{p}:2: expected a JSON object, got an array$"):
        read_jsonl(p)
    assert read_jsonl(p, require_object=False) == [{"a": 1}, [1, 2]]


def test_field_named_in_message():
    assert str(JsonlError("r.jsonl", 4, "missing", field="completion")) == "r.jsonl:4: field 'completion': missing"


def test_invalid_utf8_is_reported_per_line_and_reading_goes_on(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": "\xff"}\n{"a": 3}\n')
    items = list(iter_jsonl_lines(p))
    assert [n for n, _ in items] == [1, 2, 3]
    assert isinstance(items[1][1], JsonlError) and str(items[1][1]).startswith(f"{p}:2: not valid UTF-8")
    assert parse_jsonl_line(items[2][1], p, 3) == {"a": 3}


def test_byte_order_mark_is_ignored(tmp_path):
    p = tmp_path / "bom.jsonl"
    p.write_bytes('\ufeff{"a": 1}\n'.encode())
    assert read_jsonl(p) == [{"a": 1}]


def test_atomic_write_leaves_old_file_and_no_temp_when_writer_raises(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")

    def rows():
        yield {"a": 1}
        raise RuntimeError("writer failed halfway")

    with pytest.raises(RuntimeError, match="halfway"):
        write_jsonl(target, rows())
    assert target.read_text() == "old\n"
    assert sorted(os.listdir(tmp_path)) == ["out.jsonl"]


def test_atomic_write_creates_no_file_when_writer_raises_on_a_new_path(tmp_path):
    target = tmp_path / "sub" / "new.txt"
    with pytest.raises(ValueError), atomic_write(target) as f:
        f.write("partial")
        raise ValueError("boom")
    assert not target.exists() and os.listdir(tmp_path / "sub") == []


def test_atomic_write_replaces_and_uses_umask_permissions(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    old_umask = os.umask(0o022)
    try:
        with atomic_write(target) as f:
            f.write("new")
    finally:
        os.umask(old_umask)
    assert target.read_text() == "new"
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)  # not mkstemp's 0600


def test_non_json_values_in_rows_are_converted_not_dropped(tmp_path):
    p = write_jsonl(tmp_path / "a.jsonl", [{"info": {"tags": ("a", "b"), "set": {2, 1}, "obj": object}}])
    row = read_jsonl(p)[0]
    assert row["info"]["tags"] == ["a", "b"] and row["info"]["set"] == [1, 2]
    assert row["info"]["obj"] == "<class 'object'>"
