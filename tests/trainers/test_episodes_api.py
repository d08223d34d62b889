"""Tool episodes from the Python API: `rlvr.GRPOTrainer(..., tools=[function])` and `env=Environment()`.

A TRL user passes tools as Python functions and an environment as an object, not as file
references. The tiny model here has learnt to call ``calculator`` (tests/trainers/episode_model.py);
a plain Python function of that name answers it, so its output in rollouts.jsonl shows that the
function ran, in a worker process that is gone after `train()`. The same model checks that a bug
in an environment's `observe` names the environment and the turn.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr.io import InputError
from rlvr.rollout.episodes import ToolEnvironment
from rlvr.rollout.trajectory import Done, Environment, Observation

from .conftest import small_config


@pytest.fixture(scope="module")
def taught_dir(tiny_model_dir, tmp_path_factory) -> Path:
    from .episode_model import teach_tool_calls

    return teach_tool_calls(tiny_model_dir, tmp_path_factory.mktemp("taught"))


def calculator(expression: str) -> str:
    """Looks an expression up (the model only ever asks for 6*7)."""
    return {"6*7": "forty-two"}.get(expression, "?")


def is_42(completion, sample):
    return "42" in completion


class Nudge(Environment):
    """Answers every turn once with a fixed text, then ends the episode."""

    max_turns, max_tokens = 2, 120

    def respond(self, trajectory, sample):
        return Done() if len(trajectory.model_turns) > 1 else Observation("\nTry again:")


def _config(run_dir: Path) -> dict:
    cfg = small_config(run_dir, "unused", steps=1)
    cfg.pop("task")
    cfg["rollout"].update({"prompts_per_step": 2, "max_new_tokens": 80, "chunks": 1})
    cfg["logging"]["eval_every"] = 0
    cfg["checkpoint"]["every"] = 0
    cfg["env"] = {"formats": ["hermes"], "max_turns": 2, "max_tokens": 200}
    return cfg


def _env_turns(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "rollouts.jsonl").read_text().splitlines()]
    return [t for r in rows for t in r["episode"]["turns"] if t["role"] == "env"]


def test_api_tools_as_python_functions_and_env_as_an_object(taught_dir, tmp_path):
    import rlvr

    rows = [{"prompt": "A:", "answer": "42"}, {"prompt": "B:", "answer": "42"}]
    trainer = rlvr.GRPOTrainer(model=str(taught_dir), reward_funcs=[is_42], train_dataset=rows,
                               config=_config(tmp_path / "fn"), tools=[calculator])
    assert trainer.train(quiet=True)["finished"]
    turns = _env_turns(tmp_path / "fn")
    assert any(t["results"][0]["output"] == "forty-two" for t in turns)  # our function answered
    assert any(t["results"][0]["info"].get("reason") == "unknown_tool" for t in turns)  # B: calls `search`
    assert trainer._own_tools and trainer._own_tools[0].pids() == []  # its worker processes are gone

    nudge = Nudge()
    trainer = rlvr.GRPOTrainer(model=str(taught_dir), reward_funcs=[is_42], train_dataset=rows,
                               config=_config(tmp_path / "obj"), env=nudge, tools=[calculator])
    assert trainer.train(quiet=True)["finished"]
    turns = _env_turns(tmp_path / "obj")
    assert turns and all(t["text"] == "\nTry again:" for t in turns)
    assert nudge.tools == ()  # the tools went to a copy: the object can be given to another trainer


def test_api_bad_tools_and_env_fail_before_any_model_loads(tmp_path):
    import rlvr

    rows = [{"prompt": "A:", "answer": "42"}]

    def make(**kw):
        return rlvr.GRPOTrainer(model="tiny", reward_funcs=[is_42], train_dataset=rows,
                                config=_config(tmp_path / "bad"), **kw)

    with pytest.raises(InputError, match=r"tools\[1\]: 3 is not a function"):
        make(tools=[calculator, 3])
    with pytest.raises(InputError, match="two tools named 'calculator'"):
        make(tools=[calculator, "calculator"])
    with pytest.raises(InputError, match="expected an rlvr.rollout.trajectory.Environment"):
        make(env=object())
    with pytest.raises(InputError, match="expected a list"):
        make(tools="calculator")
    from rlvr.config import ConfigError

    with pytest.raises(ConfigError, match="unknown tool 'calculater'; did you mean 'calculator'"):
        make(tools=["calculater"]).check()
    ppo = _config(tmp_path / "ppo")
    ppo["preset"] = "ppo"
    with pytest.raises(ConfigError, match="brings its own environment"):
        rlvr.GRPOTrainer(model="tiny", reward_funcs=[is_42], train_dataset=rows, config=ppo, env=Nudge()).check()


class BadObserve(ToolEnvironment):
    """The calculator in Hermes format; its `observe` has a bug (or returns the wrong type)."""

    def __init__(self, wrong_type: bool = False):
        super().__init__(["calculator"], ["hermes"], max_turns=2, max_tokens=200)
        self.wrong_type = wrong_type

    def observe(self, calls, results, sample):
        if self.wrong_type:
            return results  # a list, not text
        return {"x": 1}[results[0].output]


def test_a_bug_in_observe_names_the_environment_and_the_turn(taught_dir):
    """Like `respond`, an exception in `observe` (the environment's code, not the model's mistake)
    is raised naming the environment and the turn; a non-text observation is refused, not tokenized."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.rollout.episodes import run_episodes
    from rlvr.samplers import HFSampler
    from rlvr.samplers.base import SamplingParams
    from rlvr.tools.runner import ToolRunner

    tok = AutoTokenizer.from_pretrained(taught_dir)  # "A:" -> a calculator call
    sampler = HFSampler(AutoModelForCausalLM.from_pretrained(taught_dir).eval(), tok)
    prompt = tok("A:")["input_ids"]
    with ToolRunner(["calculator"]) as runner:
        with pytest.raises(RuntimeError, match=r"BadObserve\.observe raised after model turn 1: KeyError: '42'"):
            run_episodes(sampler, BadObserve(), runner, [prompt], [None], SamplingParams(max_new_tokens=80, temperature=0.0), tok, seed=0)
        with pytest.raises(TypeError, match=r"BadObserve\.observe returned list, not the observation text"):
            run_episodes(sampler, BadObserve(True), runner, [prompt], [None], SamplingParams(max_new_tokens=80, temperature=0.0), tok,
                         seed=0)
