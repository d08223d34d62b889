"""`rlvr eval` end to end on a tiny local model and a local data file: every sample written with its
scores, and the summary's numbers consistent with those samples."""

from __future__ import annotations

import json

import pytest

from rlvr import cli
from rlvr.tiny import build_tiny_model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny"), hidden_size=32, num_hidden_layers=1, intermediate_size=64, seed=1)


def test_eval_writes_samples_and_consistent_summary(tiny_dir, tmp_path):
    data = tmp_path / "q.jsonl"
    data.write_text("".join(json.dumps({"q": f"What is {a} + 1?", "a": str(a + 1)}) + "\n" for a in range(5)))
    out = tmp_path / "samples.jsonl"
    code = cli.main([
        "eval", "--model", str(tiny_dir), "--task", "dataset",
        "--task-option", f"source={data}", "--task-option", "columns={prompt: q, answer: a}",
        "--task-option", "template=r1_zero_short", "--task-option", "verifiers={math: 1.0, format: 0.0}",
        "--n", "4", "--k", "1,2,4", "--max-new-tokens", "6", "--workers", "0", "--output", str(out),
    ])
    assert code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 * 4
    assert sorted({(r["index"], r["sample"]) for r in rows}) == [(i, g) for i in range(5) for g in range(4)]
    assert all(set(r["rewards"]) == {"math", "format"} and 1 <= r["length"] <= 6 for r in rows)
    assert {r["finish_reason"] for r in rows} <= {"stop", "length"}
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["problems"] == 5 and summary["samples_per_problem"] == 4
    passed = sum(bool(r["passed"]) for r in rows) / len(rows)
    assert summary["pass@1"][0] == pytest.approx(passed)
    assert summary["length"]["max"] == max(r["length"] for r in rows)
    assert summary["length"]["truncated_frac"] == pytest.approx(sum(r["finish_reason"] == "length" for r in rows) / 20)


def test_eval_rejects_k_above_n_and_bad_model(tiny_dir, tmp_path, capsys):
    assert cli.main(["eval", "--model", str(tiny_dir), "--task", "arithmetic", "--n", "2", "--k", "4"]) == 2
    assert "each k must be between 1 and --n" in capsys.readouterr().err
    assert cli.main(["eval", "--model", str(tmp_path / "missing"), "--task", "arithmetic", "--n", "1"]) == 2
    assert "no such directory" in capsys.readouterr().err
