"""Fixes from a review of the tool-episode code by a new user (issue 13): each test failed before.

- `env.options` for the built-in ToolEnvironment (a misspelt option, a template with an unknown
  field) is refused at config load with file:line and key, not with a traceback after the model
  loaded, or a KeyError at the first tool call;
- a custom environment's default `observe` keeps several results apart, each in its call's format;
- each bad env limit names its key and line (test_episodes_api.py: a bug in `observe` names the
  environment and the turn).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rlvr.config import ConfigError
from rlvr.preflight import check_train_config
from rlvr.rollout.episodes import ToolEnvironment
from rlvr.rollout.trajectory import Environment
from rlvr.tools.base import ToolCall, ToolResult
from rlvr.trainers.config import load_train_config

from .conftest import small_config


def _check(tmp_path: Path, env: dict) -> str:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(small_config(tmp_path / "r", "tiny", env=env)))
    with pytest.raises(ConfigError) as err:
        check_train_config(load_train_config(path, []))
    line = next(i for i, s in enumerate(path.read_text().splitlines(), 1) if s.strip().startswith("options:"))
    assert f"run.yaml:{line}: env.options:" in str(err.value)
    return str(err.value)


def test_tool_environment_options_are_checked_at_config_load(tmp_path):
    assert "does not take these options ['observaton']" in _check(
        tmp_path, {"tools": ["calculator"], "options": {"observaton": "{output}"}})
    assert "around='<r>{result}</r>' is not a template of {results}" in _check(
        tmp_path, {"tools": ["calculator"], "options": {"around": "<r>{result}</r>"}})
    with pytest.raises(ValueError, match="observation='{out}' is not a template"):
        ToolEnvironment(["calculator"], observation="{out}")
    ToolEnvironment(["calculator"], observation="[{name}: {status}] {output}\n", around="{results}")


def test_default_observe_keeps_several_results_apart():
    calls = [ToolCall("hang", {}), ToolCall("python", {"code": "print(1)"}, "```python\nprint(1)\n```")]
    results = [ToolResult("error: hang timed out", "timeout"), ToolResult("1\n")]
    assert Environment().observe(calls, results, None) == \
        "<tool_response>\nerror: hang timed out\n</tool_response>\n```output\n1\n```\n"


def test_bad_env_limits_point_at_their_own_line(tmp_path):
    """Each bad limit names its key and the line it was set on (it used to point at `env:` with one
    message listing all five values)."""
    path = tmp_path / "run.yaml"
    path.write_text("model: {path: tiny}\nenv:\n  tools: [calculator]\n  timeout_s: 0\n  max_output_chars: 10\n")
    with pytest.raises(ConfigError) as err:
        load_train_config(path, [])
    text = str(err.value)
    assert "run.yaml:4: env: " in text and "timeout_s must be > 0, got 0.0" in text
    assert "max_output_chars must be >= 100, got 10" in text and "(max_output_chars set at " in text
    assert text.rstrip(")").endswith("run.yaml:5")
    with pytest.raises(ConfigError, match=r"override 'env.max_turns=0': env: max_turns must be >= 1, got 0"):
        load_train_config(None, ["env.max_turns=0", "model.path=tiny"])


def test_the_python_tools_sandbox_starts_with_the_run(tmp_path, caplog):
    """The fall-back to LocalSandbox is logged when the run starts (docs/tools.md says so), not at
    the model's first python call, which may come mid-run or never; `sandbox: docker` without
    Docker would fail there too, instead of answering every call with an error."""
    import logging

    from rlvr.trainers.setup import build_episodes

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(small_config(tmp_path / "r", "tiny", env={"tools": ["python"], "sandbox": "local"})))
    with caplog.at_level(logging.WARNING, logger="rlvr.tools"):
        setup = build_episodes(load_train_config(path, []), None, tokenizer=None)
    try:
        assert any("model-written programs run in" in r.getMessage() for r in caplog.records)
        assert setup.runner.counts()["calls"] == 0
    finally:
        setup.runner.close()
