"""`rlvr eval` and `rlvr.evaluation.evaluate_task` play multi-turn tool episodes.

The model is the tiny one that learnt three tool-call episodes (tests/trainers/episode_model.py):
``A:`` calls the calculator and answers 42, ``B:`` calls an unknown tool, ``C:`` writes a
malformed call.
- a run directory written by the trainer's `write_final` with an ``env:`` section in its
  config.yaml is evaluated with those tools: every sample row holds its turns, the summary the
  episode metrics; ``--no-env`` evaluates the same model single-turn;
- ``--env KEY=VALUE`` gives tools to a model without a training config, and a bad ``--env``
  fails (exit 2, the key named) before the model loads;
- `evaluate_task` on a task that brings its own environment plays episodes by default.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr import cli
from rlvr.verifiers import Sample

PROMPTS = ("A:", "B:", "C:")


@pytest.fixture(scope="module")
def taught_dir(tiny_model_dir, tmp_path_factory) -> Path:
    from .episode_model import teach_tool_calls

    return teach_tool_calls(tiny_model_dir, tmp_path_factory.mktemp("taught"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "abc.jsonl"
    path.write_text("".join(json.dumps({"q": p, "a": "42"}) + "\n" for p in PROMPTS))
    return path


def _eval(model: Path | str, data: Path, out: Path, *extra: str) -> int:
    return cli.main(["eval", "--model", str(model), "--task", "dataset", "--task-option", f"source={data}",
                     "--task-option", "columns={prompt: q, answer: a}", "--task-option", "template=none",
                     "--task-option", "verifiers={math: 1.0}", "--n", "2", "--temperature", "0",
                     "--max-new-tokens", "80", "--workers", "0", "--output", str(out), *extra])


def _read(out: Path) -> tuple[dict[str, dict], dict]:
    rows = {r["prompt"]: r for r in map(json.loads, out.read_text().splitlines())}
    return rows, json.loads(out.with_suffix(".summary.json").read_text())


def _tool_run(taught_dir: Path, tmp_path: Path, *overrides: str) -> Path:
    """A run directory as `rlvr train` leaves it (final/ with its config.yaml) for the taught model,
    trained with the calculator (3 turns, 200 tokens) and `overrides`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.config import dump_yaml
    from rlvr.trainers.config import load_train_config
    from rlvr.trainers.finalize import write_final

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    cfg = load_train_config(None, [f"model.path={taught_dir}", "env.tools=[calculator]", "env.max_turns=3",
                                   "env.max_tokens=200", *overrides])
    write_final(run, AutoModelForCausalLM.from_pretrained(taught_dir), AutoTokenizer.from_pretrained(taught_dir),
                dump_yaml(cfg))
    return run


def test_eval_of_a_tool_trained_run_plays_its_episodes(taught_dir, data, tmp_path):
    run = _tool_run(taught_dir, tmp_path, "env.formats=[hermes]")

    assert _eval(run, data, tmp_path / "tools.jsonl") == 0
    rows, summary = _read(tmp_path / "tools.jsonl")
    a, b, c = (rows[p]["episode"] for p in PROMPTS)
    assert [t["role"] for t in a["turns"]] == ["model", "env", "model"] and a["end"] == "done"
    assert a["turns"][1]["results"][0]["output"] == "42" and rows["A:"]["passed"]
    assert "unknown tool 'search'" in b["turns"][1]["results"][0]["output"]
    assert c["turns"][1]["calls"][0]["error"] and not rows["C:"]["passed"]
    assert "<tool_response>" in rows["A:"]["completion"]  # the whole episode after the prompt
    ep = summary["episodes"]
    assert ep["episodes"] == 6 and ep["tools/calls_per_episode"] == 1.0 and ep["tools/call_rate"] == 1.0
    assert (ep["tools/errors"], ep["tools/malformed"], ep["tools/unknown"]) == (4, 2, 2)
    assert ep["episode/turns"] == 2.0 and ep["episode/obs_tokens"] > 0
    ends = {k: v for k, v in ep.items() if k.startswith("end/")}
    assert sum(ends.values()) == pytest.approx(1.0) and ep[f"end/{c['end']}"] >= 1 / 6
    assert summary["env"] == {"environment": "ToolEnvironment", "tools": ["calculator"], "formats": ["hermes"],
                              "max_turns": 3, "max_tokens": 200}
    assert summary["pass@1"][0] == pytest.approx(1 / 3)

    assert _eval(run, data, tmp_path / "plain.jsonl", "--no-env") == 0
    rows, summary = _read(tmp_path / "plain.jsonl")
    assert "episodes" not in summary and not any("episode" in r for r in rows.values())
    assert rows["A:"]["completion"].startswith("<tool_call>") and not rows["A:"]["passed"]  # no tool, no answer


def test_eval_env_option_gives_tools_and_bad_input_fails_first(taught_dir, data, tmp_path, capsys):
    assert _eval(taught_dir, data, tmp_path / "o.jsonl", "--env", "tools=[calculator]",
                 "--env", "formats=[hermes]") == 0
    rows, summary = _read(tmp_path / "o.jsonl")
    assert rows["A:"]["episode"]["turns"][1]["results"][0]["output"] == "42"
    assert summary["episodes"]["tools/calls_per_episode"] == 1.0
    missing = tmp_path / "no-model"
    assert _eval(missing, data, tmp_path / "x.jsonl", "--env", "tools=[calculater]") == 2
    err = capsys.readouterr().err
    assert "env.tools: entry 0" in err and "calculater" in err and "no such directory" not in err
    assert _eval(missing, data, tmp_path / "x.jsonl", "--env", "max_turns=many") == 2
    assert "max_turns" in capsys.readouterr().err


def test_evaluate_task_plays_the_tasks_own_environment(taught_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlvr.api import InMemoryTask
    from rlvr.evaluation import evaluate_task, summarize
    from rlvr.rollout.episodes import ToolEnvironment
    from rlvr.samplers import HFSampler, SamplingParams
    from rlvr.scoring import Scorer

    class WithCalculator(InMemoryTask):
        def environment(self):
            return ToolEnvironment(["calculator"], ["hermes"], max_turns=2, max_tokens=200)

    rows = [Sample(prompt="A:", answer=42)]
    task = WithCalculator(train=rows, test=rows, template="none")
    tok = AutoTokenizer.from_pretrained(taught_dir)
    sampler = HFSampler(AutoModelForCausalLM.from_pretrained(taught_dir).eval(), tok)
    with Scorer(task.verifier(), workers=0) as scorer:
        records, problems = evaluate_task(task, sampler, rows, n=1, params=SamplingParams(temperature=0.0,
                                          max_new_tokens=80), scorer=scorer)
        single, _ = evaluate_task(task, sampler, rows, n=1, params=SamplingParams(temperature=0.0, max_new_tokens=80),
                                  scorer=scorer, episodes=None)
    assert records[0]["passed"] and records[0]["episode"]["turns"][1]["results"][0]["output"] == "42"
    assert summarize(problems, [1])["episodes"]["tools/calls_per_episode"] == 1.0
    assert "episode" not in single[0] and not single[0]["passed"]


def test_generate_plays_the_episodes_of_a_tool_trained_run(taught_dir, tmp_path, capsys):
    """`rlvr generate` on a run trained with tools runs its calls and shows their output between
    the model's turns (single-turn, the model would write a made-up result)."""
    run = _tool_run(taught_dir, tmp_path, "rollout.max_new_tokens=80")  # formats: from the tools (hermes)
    assert cli.main(["generate", "--model", str(run), "--template", "none", "--prompt", "A:", "--json"]) == 0
    out = capsys.readouterr()
    row = json.loads(out.out.strip().splitlines()[-1])
    assert "multi-turn episodes" in out.err and "tools calculator, formats hermes" in out.err
    (episode,) = row["episodes"]
    assert [t["role"] for t in episode["turns"]] == ["model", "env", "model"]
    assert episode["turns"][1]["results"][0]["output"] == "42"
    assert "<tool_response>\n42\n</tool_response>" in row["completions"][0]
    assert cli.main(["generate", "--model", str(run), "--template", "none", "--prompt", "A:", "--json",
                     "--no-env"]) == 0
    assert "episodes" not in json.loads(capsys.readouterr().out.strip().splitlines()[-1])
