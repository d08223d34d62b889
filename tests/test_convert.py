"""`rlvr convert` input errors (no model needed; the conversion itself runs in tests/real_model)."""

from __future__ import annotations

from rlvr.cli import main


def test_missing_gguf_file_is_a_clear_error(tmp_path, capsys):
    assert main(["convert", "--gguf", str(tmp_path / "nope.gguf"), str(tmp_path / "out")]) == 2
    assert f"GGUF file {tmp_path / 'nope.gguf'}: no such file" in capsys.readouterr().err


def test_non_empty_output_is_refused_without_overwrite(tmp_path, capsys):
    src = tmp_path / "m.gguf"
    src.write_bytes(b"GGUF")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["convert", "--gguf", str(src), str(out)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"


def test_a_file_that_is_not_gguf_names_the_file(tmp_path, capsys):
    src = tmp_path / "m.gguf"
    src.write_bytes(b"not a gguf file at all")
    code = main(["convert", "--gguf", str(src), str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and str(src) in err and not (tmp_path / "out").exists()
