"""A new user's first week (issue 11's walk-through): each test failed on the code before its fix.

Items covered here (no model needed): 2 (the docs' own-data YAML), 3 (a missing test split),
4 (a bad model path fails before any model loads), 5 (a dict override replaces), 8 (no futures
tracebacks at exit), 11 (verifier text printed as is), 12 (no NOTES.md for users), 13 (user
configs get their own defaults). Items 9, 6-of-the-deliverables (final model) and the API are in
tests/trainers/test_api.py; 10 in tests/test_evaluation.py; 14 in tests/test_metrics_report.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rlvr.config import ConfigError
from rlvr.trainers.config import load_train_config

from .conftest import require

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def _rows(path: Path, n: int, offset: int = 0) -> Path:
    path.write_text("".join(json.dumps({"question": f"{i} + 1 = ?", "final_answer": str(i + 1)}) + "\n"
                            for i in range(offset, offset + n)))
    return path


# ----------------------------------------------------------------------------- item 2
def test_docs_own_data_yaml_loads_as_written(tmp_path, monkeypatch):
    """docs/tasks.md "Your own data": the YAML block is a valid train config and its task loads."""
    text = (REPO / "docs" / "tasks.md").read_text()
    section = text.split("## Your own data", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    _rows(tmp_path / "data" / "train.jsonl", 6)
    _rows(tmp_path / "data" / "test.jsonl", 3, offset=100)
    (tmp_path / "run.yaml").write_text(block)
    cfg = load_train_config(tmp_path / "run.yaml", [])
    from rlvr.preflight import check_train_config
    from rlvr.tasks import get_task

    check_train_config(cfg, model=False)
    task = get_task(cfg.task.name, **cfg.task.options)
    train, test = task.samples("train"), task.samples("test")
    assert [s.answer for s in train] == ["1", "2", "3", "4", "5", "6"]
    assert [s.answer for s in test] == ["101", "102", "103"]
    assert cfg.task.verifiers == {"math": 1.0, "format": 0.1}


# ----------------------------------------------------------------------------- item 3
def test_one_file_dataset_with_heldout_eval_is_an_error_at_config_load(tmp_path):
    from rlvr.preflight import check_train_config

    data = _rows(tmp_path / "d.jsonl", 10)
    (tmp_path / "run.yaml").write_text(
        f"task:\n  name: dataset\n  options: {{source: {data}, columns: {{prompt: question, answer: final_answer}}}}\n"
        "  verifiers: {math: 1.0}\n")
    cfg = load_train_config(tmp_path / "run.yaml", [])
    with pytest.raises(ConfigError, match=r"task.eval_split: held-out split 'test' would read the training rows"):
        check_train_config(cfg, model=False)
    check_train_config(load_train_config(tmp_path / "run.yaml", ["logging.eval_every=0"]), model=False)  # no eval: fine
    check_train_config(load_train_config(tmp_path / "run.yaml", ["task.options.holdout=0.2"]), model=False)


def test_holdout_carves_disjoint_test_rows(tmp_path, caplog):
    from rlvr.tasks import get_task

    data = _rows(tmp_path / "d.jsonl", 10)
    task = get_task("dataset", source=str(data), columns={"prompt": "question", "answer": "final_answer"}, holdout=0.2)
    train = [s.answer for s in task.samples("train")]
    with caplog.at_level("WARNING"):
        test = [s.answer for s in task.samples("test")]
    assert len(train) == 8 and len(test) == 2 and sorted(train + test, key=int) == [str(i) for i in range(1, 11)]
    assert "2 of the 10 rows" in caplog.text
    assert [s.answer for s in get_task("dataset", source=str(data), columns={"prompt": "question", "answer": "final_answer"},
                                       holdout=3).samples("test")].__len__() == 3


# ----------------------------------------------------------------------------- item 4
def test_missing_model_path_is_a_config_error_before_loading(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "rlvr", "train", "model.path=/tmp/rlvr-no-such-model",
                           f"logging.run_dir={tmp_path / 'r'}"], env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "override 'model.path=/tmp/rlvr-no-such-model': model.path: model path /tmp/rlvr-no-such-model: " \
           "no such directory" in proc.stderr
    assert not (tmp_path / "r").exists()  # nothing ran


def test_uncached_hub_name_offline_is_a_config_error(monkeypatch):
    from rlvr.preflight import check_model_path

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    why = check_model_path("nope/model")
    assert why is not None and "'nope/model' is not a local directory and not in the Hugging Face cache" in why


# ----------------------------------------------------------------------------- item 5
def test_dict_override_replaces_and_dataclass_override_merges():
    cfg = load_train_config("demo.yaml", ["task.verifiers={math: 1.0}"])
    assert cfg.task.verifiers == {"math": 1.0}  # the demo's format: 0.0 is gone
    cfg = load_train_config("demo.yaml", ["task.verifiers.length=0.5"])  # a dotted key updates
    assert cfg.task.verifiers == {"math": 1.0, "format": 0.0, "length": 0.5}
    cfg = load_train_config("demo.yaml", ["algo={clip_high: 0.3}"])  # a section still merges
    assert cfg.algo.clip_high == 0.3 and cfg.algo.kl_coef == 0.0
    cfg = load_train_config("demo.yaml", ["task.verifier_options={math: {extract: boxed}}"])
    assert cfg.task.verifier_options == {"math": {"extract": "boxed"}}


# ----------------------------------------------------------------------------- item 8
@pytest.mark.docker
def test_code_verifier_script_exits_without_futures_tracebacks(tmp_path):
    from tests.sandboxes.conftest import docker_problem

    problem = docker_problem()
    require(problem is None, problem or "")
    script = tmp_path / "s.py"
    script.write_text("from rlvr.verifiers import Sample, get_verifier\n"
                      "v = get_verifier('code')\n"
                      "print(v('```python\\ndef f(x):\\n    return x\\n```', Sample(tests=['assert f(1) == 1'])).reward)\n")
    proc = subprocess.run([sys.executable, str(script)], env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip() == "1.0", proc.stderr[-2000:]
    assert "cannot schedule new futures" not in proc.stderr and "Traceback" not in proc.stderr


# ----------------------------------------------------------------------------- item 11
def test_verify_summary_prints_reasons_as_is():
    from rich.console import Console

    from rlvr.commands.verify import render_summary, summarize
    from rlvr.verifiers import Score

    console = Console(record=True, width=200)  # a default console: emoji on
    render_summary(summarize([Score(1.0, True, {"reason": "with_unit:ok"})], [], 1.0), console)
    out = console.export_text()
    assert "with_unit:ok: 1" in out and "👌" not in out


# ----------------------------------------------------------------------------- item 12
def test_user_facing_text_never_mentions_notes_md():
    files = [REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "rlvr" / "configs").rglob("*.yaml")]
    assert [f.name for f in files if "NOTES" in f.read_text()] == []


# ----------------------------------------------------------------------------- item 13
def test_user_config_gets_its_own_defaults(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"model": {"path": "tiny"}}))
    cfg = load_train_config(mine, [])
    assert (cfg.logging.run_dir, cfg.steps, cfg.rollout.max_new_tokens) == ("runs/mine", 100, 512)
    demo = load_train_config("demo.yaml", [])
    assert (demo.logging.run_dir, demo.steps, demo.rollout.max_new_tokens) == ("runs/demo", 300, 24)
