"""`rlvr pipeline`: the three shipped chains run end to end on the demo model and every stage
improves its held-out metric; references and config errors are checked before anything runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from rlvr.config import ConfigError
from rlvr.pipeline import KINDS, improved, load_pipeline, stage_metrics, summary_table
from tests.trainers.conftest import REPO, env, rlvr_cmd

PIPELINES = REPO / "rlvr" / "configs" / "pipelines"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


GOOD = """\
run_dir: {run_dir}
stages:
  demos:
    kind: demonstrations
    config: {{train: 8, eval: 4}}
  sft:
    kind: sft
    config:
      model:
        path: tiny
      data:
        train: ${{stages.demos.train}}
        eval: "${{stages.demos.eval}}"
      steps: 2
  dpo:
    kind: dpo
    config:
      model:
        path: ${{stages.sft.model}}
      reference: ${{stages.sft.run_dir}}/final
      from_verifier: {{enabled: true}}
"""


# ----------------------------------------------------------------------------- loading (fast)
def test_references_resolve_to_earlier_stages_outputs(tmp_path: Path) -> None:
    p = load_pipeline(write(tmp_path / "p.yaml", GOOD.format(run_dir=tmp_path / "run")))
    assert [(s.name, s.kind) for s in p.stages] == [("demos", "demonstrations"), ("sft", "sft"), ("dpo", "dpo")]
    sft, dpo = p.stages[1].config, p.stages[2].config
    assert sft.data.train == str(tmp_path / "run" / "demos" / "train.jsonl")
    assert sft.data.eval == str(tmp_path / "run" / "demos" / "eval.jsonl")
    assert dpo.model.path == str(tmp_path / "run" / "sft" / "final")
    assert dpo.reference == str(tmp_path / "run" / "sft" / "final")  # a reference inside a longer string
    # the pipeline sets each stage's run directory; the kind's defaults fill the rest
    assert sft.logging.run_dir == str(tmp_path / "run" / "sft") and sft.steps == 2
    assert p.stages[2].metrics == list(KINDS["dpo"].metrics)


def test_overrides_reach_stage_configs_and_rs_sft_forces_rejection_sampling(tmp_path: Path) -> None:
    text = f"run_dir: {tmp_path}\nstages:\n  rs:\n    kind: rs_sft\n  grpo:\n    kind: train\n" \
           "    config:\n      preset: dapo\n      model: {path: '${stages.rs.model}'}\n"
    p = load_pipeline(write(tmp_path / "p.yaml", text), ["stages.rs.config.steps=7", "stages.grpo.config.algo.clip_high=0.3"])
    rs, grpo = p.stages[0].config, p.stages[1].config
    assert rs.steps == 7 and rs.rejection_sampling.enabled is True
    assert grpo.algo.clip_high == 0.3 and grpo.algo.name == "dapo"  # the preset is laid under the stage's algo
    assert grpo.model.path == str(tmp_path / "rs" / "final")


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("${stages.sfft.model}", "p.yaml:6: stage 'dpo': key 'model.path': ${stages.sfft.model}: unknown stage 'sfft'; did you mean 'sft'?"),
        ("${stages.sft.modle}", "p.yaml:6: stage 'dpo': key 'model.path': ${stages.sft.modle}: stage 'sft' has no output 'modle'; did you mean 'model'?"),
        ("${stages.dpo.model}", "a stage cannot use its own outputs"),
        ("${stages.later.model}", "stage 'later' runs after 'dpo'; only earlier stages' outputs can be used"),
        ("${sft.model}", "p.yaml:6: stage 'dpo': key 'model.path': ${sft.model}: a reference looks like ${stages.NAME.OUTPUT}"),
    ],
)
def test_bad_reference_names_file_line_stage_and_key(tmp_path: Path, ref: str, expected: str) -> None:
    text = ("stages:\n  sft: {kind: sft, config: {data: {train: x.jsonl}}}\n  dpo:\n    kind: dpo\n"
            f"    config:\n      model: {{path: '{ref}'}}\n      data: {{train: x.jsonl}}\n"
            "  later: {kind: rm, config: {data: {train: x.jsonl}}}\n")
    with pytest.raises(ConfigError) as e:
        load_pipeline(write(tmp_path / "p.yaml", text))
    assert expected in str(e.value).replace(str(tmp_path) + "/", "")


def load_errors(tmp_path: Path, text: str) -> str:
    """The ConfigError message of loading `text` as p.yaml, with the temporary directory cut."""
    with pytest.raises(ConfigError) as e:
        load_pipeline(write(tmp_path / "p.yaml", text))
    return str(e.value).replace(str(tmp_path) + "/", "")


def test_unknown_kind_stage_key_and_config_key_are_reported_together(tmp_path: Path) -> None:
    text = ("run_dir: r\nrequire_improvment: true\nstages:\n"
            "  a: {kind: sftt}\n"
            "  b:\n    kind: rm\n    confg: {}\n"
            "  c:\n    kind: dpo\n    config:\n      data: {train: x.jsonl}\n      stpes: 3\n")
    msg = load_errors(tmp_path, text)
    assert "p.yaml:2: unknown key 'require_improvment'; did you mean 'require_improvement'?" in msg
    assert "p.yaml:4: stage 'a': kind: 'sftt' is not a stage kind; did you mean 'sft'?" in msg
    assert "p.yaml:7: stage 'b': unknown key 'confg'; did you mean 'config'?" in msg
    assert "stage 'c' (dpo): p.yaml:12: unknown key 'stpes'; did you mean 'steps'?" in msg


def test_bad_value_from_an_override_names_the_override(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"stage 'sft' \(sft\): override 'stages.sft.config.steps=ten': steps: expected int"):
        load_pipeline(write(tmp_path / "p.yaml", GOOD.format(run_dir="r")), ["stages.sft.config.steps=ten"])


def test_metric_directions_and_summary_rows() -> None:
    assert improved("eval/loss", 0.5, 0.4) and not improved("eval/loss", 0.4, 0.4)
    assert improved("eval/accuracy", 0.25, 0.5) and not improved("eval/accuracy", 0.5, None)
    # rm: before is the mean of the members' first evaluations, after the ensemble's final one
    rm = stage_metrics("rm", {"before": [{"eval/accuracy": 0.25}, {"eval/accuracy": 0.75}], "final": {"eval/accuracy": 0.9}})
    assert rm == {"eval/accuracy": (0.5, 0.9)}
    assert stage_metrics("sft", {"before": {"eval/loss": 2.0}, "after": {"eval/loss": 1.5}}) == {"eval/loss": (2.0, 1.5)}
    table = summary_table([{"stage": "rm", "kind": "rm", "metric": "eval/accuracy", "before": 0.5, "after": 0.9,
                            "improved": True, "judged": True, "seconds": 12.4, "skipped": False}])
    assert table.splitlines()[-1] == "| rm | rm | eval/accuracy | 50.0% -> 90.0% | yes | 12 |"


# ----------------------------------------------------------------------------- the shipped chains
def run_pipeline_cli(name: str, run_dir: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    cmd = rlvr_cmd("pipeline", str(PIPELINES / f"{name}.yaml"), f"run_dir={run_dir}", *extra)
    proc = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=900)
    summary_path = run_dir / "pipeline_summary.json"
    assert summary_path.exists(), f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return proc, json.loads(summary_path.read_text())


def check_every_stage_improved(proc: subprocess.CompletedProcess, summary: dict, stages: list[str]) -> None:
    judged = [r for r in summary["stages"] if r["metric"] is not None]
    assert sorted({r["stage"] for r in judged}) == sorted(stages)
    bad = [f"{r['stage']} {r['metric']}: {r['before']} -> {r['after']}" for r in judged if not r["improved"]]
    assert not bad, f"not improved: {bad}\n{proc.stdout}"
    assert summary["ok"] and proc.returncode == 0, proc.stderr[-3000:]
    assert "| stage | kind | metric |" in proc.stdout


@pytest.mark.slow
def test_rs_sft_grpo_chain_improves_every_stage(tmp_path: Path) -> None:
    proc, summary = run_pipeline_cli("rs_sft_grpo", tmp_path / "run")
    check_every_stage_improved(proc, summary, ["rs_sft", "grpo"])
    assert (tmp_path / "run" / "grpo" / "final" / "config.json").exists()  # the last checkpoint's model
    assert not (tmp_path / "run" / "grpo" / "rollouts.jsonl").exists()  # logging.rollouts: false, no empty file
    # --resume: every stage has its summary, so nothing runs again and the table is the same
    again, summary2 = run_pipeline_cli("rs_sft_grpo", tmp_path / "run", "--resume")
    assert again.returncode == 0 and "finished, skipped" in again.stderr
    assert [r["after"] for r in summary2["stages"]] == [r["after"] for r in summary["stages"]]
    # without --resume the run directory is refused
    refused = subprocess.run(rlvr_cmd("pipeline", str(PIPELINES / "rs_sft_grpo.yaml"), f"run_dir={tmp_path / 'run'}"),
                             env=env(), capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "already holds a pipeline run" in refused.stderr


@pytest.mark.slow
def test_sft_dpo_chain_improves_every_stage(tmp_path: Path) -> None:
    proc, summary = run_pipeline_cli("sft_dpo", tmp_path / "run")
    check_every_stage_improved(proc, summary, ["sft", "dpo"])


@pytest.mark.slow
def test_sft_rm_ppo_chain_improves_every_stage(tmp_path: Path) -> None:
    proc, summary = run_pipeline_cli("sft_rm_ppo", tmp_path / "run")
    check_every_stage_improved(proc, summary, ["sft", "rm", "ppo"])


def test_shipped_pipelines_load(tmp_path: Path) -> None:
    for path in sorted(PIPELINES.glob("*.yaml")):
        p = load_pipeline(path, [f"run_dir={tmp_path}"])
        assert yaml.safe_load(path.read_text())["require_improvement"] is True
        assert all(s.dir.parent == tmp_path for s in p.stages)


def test_task_verifier_and_metric_typos_are_caught_at_load(tmp_path: Path) -> None:
    text = ("stages:\n  rm:\n    kind: rm\n    metrics: [eval/acuracy]\n"
            "    config: {data: {train: x.jsonl}, from_verifier: {task: countdwn}}\n"
            "  ppo:\n    kind: train\n    config:\n      task:\n        name: arithmetc\n"
            "        verifiers: {lenght: 1.0}\n")
    msg = load_errors(tmp_path, text)
    assert "p.yaml:4: stage 'rm': metrics: rm reports no 'eval/acuracy'; did you mean 'eval/accuracy'?" in msg
    assert "p.yaml:5: stage 'rm' (rm): from_verifier.task: unknown task 'countdwn'; did you mean 'countdown'?" in msg
    assert "p.yaml:10: stage 'ppo' (train): task.name: unknown task 'arithmetc'; did you mean 'arithmetic'?" in msg
    assert "p.yaml:11: stage 'ppo' (train): task.verifiers: unknown verifier 'lenght'; did you mean 'length'?" in msg


def test_resume_continues_a_train_stage_that_max_minutes_stopped(tmp_path: Path, tiny_model_dir: Path) -> None:
    from rlvr.pipeline import run_pipeline
    from tests.trainers.conftest import small_config

    cfg = small_config(tmp_path / "unused", tiny_model_dir, steps=3, max_minutes=1e-6,
                       logging={"eval_every": 5, "tensorboard": False, "progress": "none"}, checkpoint={"every": 0})
    del cfg["logging"]["run_dir"]
    path = write(tmp_path / "p.yaml", yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": {"rl": {"kind": "train", "config": cfg}}}))
    first = run_pipeline(load_pipeline(path))
    row = first["stages"][0]
    assert row["note"] == "stopped at step 1 of 3"
    assert row["after"] is not None  # the step it stopped at was evaluated (eval_every=5 would not have)
    assert "(stopped at step 1 of 3)" in (tmp_path / "run" / "pipeline_summary.md").read_text()
    # --resume runs the stage again from its checkpoint (it is not "finished") and completes it
    second = run_pipeline(load_pipeline(path, ["stages.rl.config.max_minutes=null"]), resume=True)
    assert second["stages"][0]["note"] is None and not second["stages"][0]["skipped"]
    assert json.loads((tmp_path / "run" / "rl" / "summary.json").read_text())["steps"] == 3
