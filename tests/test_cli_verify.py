"""The rlvr command line and `rlvr verify`, end to end: in-process through `cli.main` and as the
installed console script (`.venv/bin/rlvr`) in a subprocess.

The verifiers below are real ones registered by this module; the subprocess runs load them with
``--import tests/test_cli_verify.py``, as a user would load their own verifier file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr import __version__, cli
from rlvr.io import read_jsonl
from rlvr.verifiers import Sample, Score, register_verifier

ROOT = Path(__file__).resolve().parents[1]
RLVR = ROOT / ".venv" / "bin" / "rlvr"
THIS = Path(__file__).resolve()


@register_verifier("cli_test_exact")
def exact_answer(completion: str, sample: Sample, prefix: str = "ANSWER:") -> Score:
    """1.0 when the text after the last `prefix` (up to a tag or a line end) equals the answer."""
    if prefix not in completion:
        return Score(0.0, False, {"reason": "no_final_answer"})
    got = completion.rsplit(prefix, 1)[1].split("<", 1)[0].split("\n", 1)[0].strip()
    ok = got == str(sample.answer).strip()
    return Score(float(ok), ok, {"reason": "ok" if ok else "mismatch", "extracted": got})


@register_verifier("cli_test_fragile")
def fragile(completion: str, sample: Sample) -> Score:
    """A verifier with a bug: it raises on completions containing 'BOOM'."""
    if "BOOM" in completion:
        raise ZeroDivisionError("the verifier has a bug")
    return Score(1.0, True, {})


# 9 lines: 3 good rows, 1 blank line, 5 malformed ones (lines 3, 4, 5, 7, 8).
ROWS = "\n".join([
    json.dumps({"prompt": "2+2?", "answer": "4", "completion": "so ANSWER: 4", "id": "a"}),
    json.dumps({"answer": 6, "completion": "ANSWER: 5", "metadata": {"src": "t"}, "reward": 9}),
    '{"answer": "1", "completion": "ANSWER: 1",',                # 3: invalid JSON
    json.dumps({"answer": "1"}),                                 # 4: no completion
    json.dumps({"answer": "1", "completion": 1}),                # 5: completion not a string
    "",                                                          # 6: blank, ignored
    json.dumps(["completion", "x"]),                             # 7: not an object
    json.dumps({"completion": "ANSWER: 1", "metadata": "src"}),  # 8: metadata not an object
    json.dumps({"answer": "7", "completion": "no final answer here"}),
]) + "\n"


@pytest.fixture
def rows(tmp_path: Path) -> Path:
    p = tmp_path / "rows.jsonl"
    p.write_text(ROWS)
    return p


def run_cli(*argv: str) -> int:
    return cli.main(["verify", *argv])


def test_verify_in_process_scores_good_rows_and_reports_malformed_ones(rows, tmp_path, capsys):
    out, summary = tmp_path / "out" / "scored.jsonl", tmp_path / "summary.json"
    code = run_cli("--verifier", "cli_test_exact", "--input", str(rows), "--output", str(out),
                   "--workers", "0", "--no-progress", "--summary-json", str(summary))
    assert code == 0
    scored = read_jsonl(out)
    # original fields kept, in input order; reward/passed/info added (an old "reward" replaced)
    assert [r.get("id") for r in scored] == ["a", None, None]
    assert scored[0] == {"prompt": "2+2?", "answer": "4", "completion": "so ANSWER: 4", "id": "a",
                         "reward": 1.0, "passed": True, "info": {"reason": "ok", "extracted": "4"}}
    assert scored[1]["metadata"] == {"src": "t"}
    assert [(r["reward"], r["passed"], r["info"]["reason"]) for r in scored] == [
        (1.0, True, "ok"), (0.0, False, "mismatch"), (0.0, False, "no_final_answer")]
    s = json.loads(summary.read_text())
    assert (s["rows"], s["passed"], s["malformed"], s["timeouts"]) == (3, 1, 5, 0)
    assert s["pass_rate"] == pytest.approx(1 / 3)
    assert s["reasons"] == {"ok": 1, "mismatch": 1, "no_final_answer": 1}
    assert s["malformed_rows"] == [
        f"{rows}:3: invalid JSON: Expecting property name enclosed in double quotes (column 43)",
        f"{rows}:4: field 'completion': missing (every row needs the model's completion)",
        f"{rows}:5: field 'completion': expected a string, got int 1",
        f"{rows}:7: expected a JSON object, got an array",
        f"{rows}:8: field 'metadata': expected an object or null, got str 'src'",
    ]
    text = capsys.readouterr().out
    assert f"malformed {rows}:4: field 'completion': missing" in text
    assert "1/3" in text and "33.3%" in text and "rows/s" in text


def test_strict_stops_at_first_bad_row_and_writes_nothing(rows, tmp_path, capsys):
    out = tmp_path / "scored.jsonl"
    code = run_cli("--verifier", "cli_test_exact", "--input", str(rows), "--output", str(out), "--strict")
    assert code == 2 and not out.exists()
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rlvr verify: error: {rows}:3: invalid JSON")
    assert "--strict" in err and "Traceback" not in err and "\n" not in err


def test_unknown_verifier_suggests_the_closest_name(rows, tmp_path, capsys):
    code = run_cli("--verifier", "cli_test_exat", "--input", str(rows), "--output", str(tmp_path / "o.jsonl"))
    assert code == 2
    err = capsys.readouterr().err
    assert "unknown verifier 'cli_test_exat'; did you mean 'cli_test_exact'?" in err and "Traceback" not in err


def test_weights_combine_verifiers_and_options_reach_components(tmp_path):
    # exact (weight 1) + format (weight 0.5): the R1-formatted right answer gets 1 + 0.5 = 1.5,
    # the unformatted right answer 1 + 0 = 1.0, the formatted wrong answer 0 + 0.5 = 0.5.
    p = tmp_path / "rows.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in [
        {"answer": "4", "completion": "<think>2+2</think><answer>RESULT= 4</answer>"},
        {"answer": "4", "completion": "RESULT= 4"},
        {"answer": "4", "completion": "<think>2+2</think><answer>RESULT= 5</answer>"},
    ]))
    out = tmp_path / "o.jsonl"
    # the prefix option reaches only the exact component
    code = run_cli("--verifier", "cli_test_exact=1,format=0.5", "--input", str(p), "--output", str(out),
                   "--option", "cli_test_exact.prefix=RESULT=", "--workers", "0", "--no-progress")
    assert code == 0
    scored = read_jsonl(out)
    assert [r["info"]["rewards"]["format"] for r in scored] == [1.0, 0.0, 1.0]
    assert [r["reward"] for r in scored] == [pytest.approx(x) for x in (1.5, 1.0, 0.5)]


def test_option_errors_are_usage_errors(rows, tmp_path, capsys):
    o = str(tmp_path / "o.jsonl")
    assert run_cli("--verifier", "cli_test_exact", "--input", str(rows), "--output", o, "--option", "nope=1") == 2
    assert "takes no option(s) ['nope']" in capsys.readouterr().err
    assert run_cli("--verifier", "cli_test_exact=1,format=1", "--input", str(rows), "--output", o,
                   "--option", "prefix=x") == 2
    assert "prefix the component" in capsys.readouterr().err
    assert run_cli("--verifier", "cli_test_exact", "--input", str(tmp_path / "missing.jsonl"), "--output", o) == 2
    assert "missing.jsonl: No such file or directory" in capsys.readouterr().err


def test_verifier_bug_exits_1_keeps_output_and_shows_the_traceback(tmp_path, capsys, caplog):
    p = tmp_path / "rows.jsonl"
    p.write_text('{"completion": "fine"}\n{"completion": "BOOM"}\n{"completion": "fine"}\n')
    out = tmp_path / "o.jsonl"
    assert run_cli("--verifier", "cli_test_fragile", "--input", str(p), "--output", str(out),
                   "--workers", "0", "--no-progress") == 1
    scored = read_jsonl(out)
    assert [r["passed"] for r in scored] == [True, False, True]
    assert scored[1]["info"]["error"] == "exception"
    assert "raised on 1 row(s) (ZeroDivisionError: 1)" in capsys.readouterr().out
    assert "ZeroDivisionError: the verifier has a bug" in caplog.text  # the first traceback, logged once


def test_console_script_end_to_end_with_worker_processes(rows, tmp_path):
    out = tmp_path / "scored.jsonl"
    proc = subprocess.run(
        [str(RLVR), "verify", "--import", str(THIS), "--verifier", "cli_test_exact", "--input", str(rows),
         "--output", str(out), "--workers", "2", "--timeout", "20"],
        check=False, capture_output=True, text=True, timeout=180, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert [(r["passed"], r["info"]["reason"]) for r in read_jsonl(out)] == [
        (True, "ok"), (False, "mismatch"), (False, "no_final_answer")]
    assert f"malformed {rows}:5: field 'completion': expected a string, got int 1" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_console_script_strict_exit_code_and_one_line_error(rows, tmp_path):
    proc = subprocess.run(
        [str(RLVR), "verify", "--import", str(THIS), "--verifier", "cli_test_exact", "--input", str(rows),
         "--output", str(tmp_path / "o.jsonl"), "--strict"],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    expected = (f"rlvr verify: error: {rows}:3: invalid JSON: Expecting property name enclosed in double "
                "quotes (column 43) (--strict stops at the first bad row)")
    assert proc.stderr.strip().splitlines() == [expected]


def test_help_version_and_unknown_command(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"rlvr {__version__}"
    assert cli.main(["verfy"]) == 2
    assert "unknown command 'verfy'; did you mean 'verify'?" in capsys.readouterr().err
    assert cli.main(["verify", "--help"]) == 0
    assert "--verifier" in capsys.readouterr().out
    assert cli.main(["verify"]) == 2  # argparse: the required options are missing
    assert "required" in capsys.readouterr().err


def test_top_level_help_is_light():
    code = ("import sys; from rlvr import cli; rc = cli.main(['--help']); "
            "print('HEAVY', sorted(m for m in ('torch', 'transformers', 'sympy', 'rlvr.commands.verify') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COLUMNS": "100"})
    assert proc.returncode == 0, proc.stderr
    assert "verify" in proc.stdout and "HEAVY []" in proc.stdout


def test_rlvr_debug_shows_the_traceback_of_input_errors(rows, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RLVR_DEBUG", "1")
    assert run_cli("--verifier", "cli_test_exat", "--input", str(rows), "--output", str(tmp_path / "o.jsonl")) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "VerifierError" in err


def test_console_script_with_the_math_verifier(tmp_path):
    rows = [
        {"answer": "72", "completion": "48/2 = 24 in May, 48 + 24 = 72 in all.\n#### 72"},
        {"answer": "\\frac{1}{2}", "completion": "<think>maybe \\boxed{2}</think><answer>0.5</answer>"},
        {"answer": "1000000", "completion": "The answer is \\boxed{1000001}."},
        {"answer": "3", "completion": "I think it is three"},
    ]
    p = tmp_path / "rows.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]) + '{"answer": "9"}\n'
                 + "".join(json.dumps(r) + "\n" for r in rows[2:]))
    out, summary = tmp_path / "scored.jsonl", tmp_path / "summary.json"
    proc = subprocess.run(
        [str(RLVR), "verify", "--verifier", "math", "--input", str(p), "--output", str(out),
         "--workers", "1", "--summary-json", str(summary)],
        check=False, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    scored = read_jsonl(out)
    assert [r["answer"] for r in scored] == [r["answer"] for r in rows]
    assert [(r["passed"], r["info"]["reason"], r["info"]["extracted"]) for r in scored] == [
        (True, "match", "72"), (True, "match", "0.5"), (False, "mismatch", "1000001"),
        (False, "no_final_answer", None)]
    s = json.loads(summary.read_text())
    assert (s["rows"], s["passed"], s["malformed"], s["reasons"]) == (
        4, 2, 1, {"match": 2, "mismatch": 1, "no_final_answer": 1})
    assert s["malformed_rows"] == [f"{p}:3: field 'completion': missing (every row needs the model's completion)"]
