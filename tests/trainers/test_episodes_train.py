"""Training on multi-turn tool episodes (HF sampler), the `env:` config section and its preflight, and
the `tool_spam` alarm.

- a GRPO run of a few steps on the tiny model that learnt three tool-call episodes
  (tests/trainers/episode_model.py): every step plays episodes with the calculator, the step
  metrics and rollouts.jsonl carry the tools and turns, held-out evaluation runs episodes too,
  and the weights move;
- a custom environment by ``file.py:Class`` (with options), the task's own environment, and the
  config's limits laid over either;
- bad ``env:`` input is refused at config load with file:line and key (unknown tool, unknown
  format, missing class, bad options), and so is PPO with episodes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from rlvr.alarms import AlarmMonitor, check_tool_spam
from rlvr.config import ConfigError
from rlvr.metrics import read_jsonl_metrics
from rlvr.preflight import check_train_config
from rlvr.rollout.episodes import ToolEnvironment
from rlvr.trainers.config import load_train_config
from rlvr.verifiers import Sample

from .conftest import small_config


@pytest.fixture(scope="module")
def taught_dir(tiny_model_dir, tmp_path_factory) -> Path:
    from .episode_model import teach_tool_calls

    return teach_tool_calls(tiny_model_dir, tmp_path_factory.mktemp("taught"))


def tool_task():
    """The three scripted prompts as a task (math verifier: "42" is right for A)."""
    from rlvr.api import InMemoryTask

    rows = [Sample(prompt=p, answer=42) for p in ("A:", "B:", "C:")]
    return InMemoryTask(train=rows, test=rows, template="none")


def episode_config(run_dir: Path, model: Path, **sections) -> dict:
    """small_config with tool episodes: 3 prompts x 4 episodes, calculator calls in Hermes format."""
    cfg = small_config(run_dir, model, steps=3, **sections)
    cfg["task"]["verifier_options"] = {"length": {"max_chars": 64}}
    cfg["rollout"].update({"prompts_per_step": 3, "max_new_tokens": 80, "chunks": 1})
    cfg["logging"]["eval_every"] = 3
    cfg["optim"]["lr"] = 1e-4  # small steps: the taught tool calls must survive the length reward
    cfg["checkpoint"]["every"] = 0
    cfg.setdefault("env", {}).update({"max_turns": 3, "max_tokens": 200})
    return cfg


def _load(tmp_path: Path, cfg: dict, *overrides: str):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_train_config(path, list(overrides))


def test_grpo_trains_on_tool_episodes_with_the_hf_sampler(taught_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from rlvr.trainers.grpo import train

    run_dir = tmp_path / "run"
    cfg = _load(tmp_path, episode_config(run_dir, taught_dir, env={"tools": ["calculator"], "formats": ["hermes"]}))
    check_train_config(cfg, task=tool_task())
    summary = train(cfg, task=tool_task())
    assert summary["finished"]
    rows = {int(r["step"]): r for r in read_jsonl_metrics(run_dir / "metrics.jsonl") if "tools/calls_per_episode" in r}
    assert sorted(rows) == [1, 2, 3]
    for r in rows.values():
        assert r["tools/calls_per_episode"] > 0.5 and r["episode/obs_tokens"] > 0 and r["episode/turns"] > 1
        assert r["tools/errors"] >= 1 and r["tools/malformed"] >= 1 and "tools/blocked_s" in r
    evals = [r for r in read_jsonl_metrics(run_dir / "metrics.jsonl") if "eval/accuracy" in r]
    assert {r["step"] for r in evals} == {0, 3} and all(r["eval/tools/calls_per_episode"] == 1.0 for r in evals)
    rollouts = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    assert len(rollouts) == 3 * 3 * 4
    env_turns = [t for r in rollouts for t in r["episode"]["turns"] if t["role"] == "env"]
    assert env_turns and all(t["calls"] and t["results"] for t in env_turns)
    assert any(t["results"][0]["output"] == "42" for t in env_turns)
    before = AutoModelForCausalLM.from_pretrained(taught_dir).state_dict()
    after = AutoModelForCausalLM.from_pretrained(run_dir / "final").state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


ENV_FILE = '''
from rlvr.rollout.episodes import ToolEnvironment


class Strict(ToolEnvironment):
    """The calculator in Hermes format, with a turn limit given as an option."""

    def __init__(self, turns: int = 2):
        super().__init__(["calculator"], ["hermes"], max_turns=turns, max_tokens=100)
'''


def test_custom_environment_by_reference_and_the_tasks_own(tmp_path, tiny_model_dir):
    from rlvr.trainers.setup import build_environment, build_episodes

    (tmp_path / "envs.py").write_text(ENV_FILE)
    cfg = _load(tmp_path, small_config(tmp_path / "r", tiny_model_dir, env={
        "environment": f"{tmp_path}/envs.py:Strict", "options": {"turns": 5}, "max_tokens": 300}))
    check_train_config(cfg)
    env = build_environment(cfg.env, None)
    assert type(env).__name__ == "Strict" and (env.max_turns, env.max_tokens) == (5, 300)  # options, then limits
    setup = build_episodes(cfg, None, tokenizer=None)
    assert set(setup.runner.tools) == {"calculator"}  # the environment's own tools
    setup.runner.close()

    class WithTools(type(tool_task())):
        def environment(self):
            return ToolEnvironment(["calculator"], ["python_fence"], max_turns=2)

    chat = _load(tmp_path, small_config(tmp_path / "r", tiny_model_dir, env={
        "tools": ["calculator"], "options": {"around": "<|im_start|>user\n{results}<|im_end|>"}}))
    from rlvr.tools.base import ToolCall, ToolResult

    call = ToolCall("calculator", {"expression": "6*7"}, raw="<tool_call>...</tool_call>")
    assert build_environment(chat.env, None).observe([call], [ToolResult("42")], None) == \
        "<|im_start|>user\n<tool_response>\n42\n</tool_response>\n<|im_end|>"
    plain = _load(tmp_path, small_config(tmp_path / "r", tiny_model_dir, env={"max_turns": 3}))
    assert build_environment(plain.env, tool_task()) is None  # no env section, no task environment
    env = build_environment(plain.env, WithTools(train=[], test=[]))
    assert isinstance(env, ToolEnvironment) and env.max_turns == 3 and env.stop == ("\n```\n",)


def test_bad_env_sections_name_file_line_and_key(tmp_path, tiny_model_dir):
    (tmp_path / "envs.py").write_text(ENV_FILE)
    cfg = small_config(tmp_path / "r", tiny_model_dir, env={
        "tools": ["calculater"], "formats": ["hermes", "jsn"], "environment": f"{tmp_path}/envs.py:Strikt"})
    with pytest.raises(ConfigError) as err:
        check_train_config(_load(tmp_path, cfg))
    text = str(err.value)
    yaml_lines = (tmp_path / "run.yaml").read_text().splitlines()

    def line_of(key: str) -> int:
        return next(i for i, line in enumerate(yaml_lines, 1) if line.strip().startswith(f"{key}:"))

    assert f"run.yaml:{line_of('tools')}: env.tools: entry 0: unknown tool 'calculater'; did you mean 'calculator'" in text
    assert f"run.yaml:{line_of('formats')}: env.formats: unknown call format 'jsn'" in text
    assert f"run.yaml:{line_of('environment')}: env.environment:" in text and "'Strikt'" in text
    cfg["env"] = {"environment": f"{tmp_path}/envs.py:Strict", "options": {"trns": 3}}
    with pytest.raises(ConfigError, match=r"env\.options: .*Strict does not take these options \['trns'\]"):
        check_train_config(_load(tmp_path, cfg))
    # PPO's GAE would run across observation tokens: refused at load, naming the preset's line
    cfg["env"] = {"tools": ["calculator"]}
    with pytest.raises(ConfigError, match=r"run\.yaml:\d+: .*env: multi-turn episodes do not work with a critic preset"):
        _load(tmp_path, {**cfg, "preset": "ppo"})


def test_tool_spam_alarm_fires_when_calls_rise_and_accuracy_is_flat():
    flat = [{"step": i + 1, "accuracy": 0.3, "tools/calls_per_episode": 0.2 + 0.1 * i} for i in range(10)]
    alarm = check_tool_spam(flat)
    assert alarm is not None and alarm.name == "tool_spam" and "+0.50" in alarm.message
    learning = [{**row, "accuracy": 0.3 + 0.05 * i} for i, row in enumerate(flat)]
    assert check_tool_spam(learning) is None  # calls rise, and so does accuracy
    steady = [{**row, "tools/calls_per_episode": 1.0} for row in flat]
    assert check_tool_spam(steady) is None
    assert [a.name for a in AlarmMonitor().update(1, {}) or []] == []
    mon = AlarmMonitor()
    fired = [a.name for row in flat for a in mon.update(row["step"], {k: v for k, v in row.items() if k != "step"})]
    assert fired == ["tool_spam"]
