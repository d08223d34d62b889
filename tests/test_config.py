"""rlvr.config: YAML + dotted overrides into checked dataclasses, and the errors users see."""

from __future__ import annotations

import enum
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from rlvr.config import (
    ConfigError,
    config_keys,
    dump_yaml,
    from_dict,
    load_config,
    print_config,
    save_resolved,
    split_config_args,
    to_dict,
)


class Device(enum.Enum):
    CPU = "cpu"
    CUDA = "cuda"


@dataclass
class Algo:
    clip_low: float = 0.2
    clip_high: float = 0.2
    loss_agg: Literal["token_mean", "seq_mean_token_mean"] = "token_mean"
    kl_coef: float | None = None


@dataclass
class Model:
    path: str  # required
    dtype: str = "float32"
    device: Device = Device.CPU


@dataclass
class Run:
    model: Model
    algo: Algo = field(default_factory=Algo)
    steps: int = 10
    seeds: list[int] = field(default_factory=lambda: [0])
    weights: dict[str, float] = field(default_factory=lambda: {"math": 1.0, "format": 0.1})
    shape: tuple[int, int] = (8, 4)
    out: Path | None = None
    name: str = "run"
    verbose: bool = False
    preset: str | None = None


@dataclass
class Tuned:
    """A nested default that is not the class default: YAML must merge over it."""

    algo: Algo = field(default_factory=lambda: Algo(clip_high=0.28))


@dataclass
class Task:
    name: str
    weight: float = 1.0


@dataclass
class Mix:
    tasks: list[Task] = field(default_factory=list)
    algo: Algo | None = None


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def problems(excinfo: pytest.ExceptionInfo) -> list[str]:
    return excinfo.value.problems


def test_yaml_then_nested_overrides(tmp_path):
    p = write(tmp_path, """
        model:
          path: /models/tiny
        algo:
          clip_high: 0.25
        steps: 20
    """)
    cfg = load_config(Run, p, ["algo.clip_high=0.28", "model.dtype=bfloat16", "steps=30"])
    assert cfg.model == Model(path="/models/tiny", dtype="bfloat16")
    assert cfg.algo == Algo(clip_low=0.2, clip_high=0.28)  # the override wins, clip_low keeps its default
    assert cfg.steps == 30


def test_nested_dataclass_merges_over_a_custom_default():
    assert load_config(Tuned, None, ["algo.clip_low=0.1"]).algo == Algo(clip_low=0.1, clip_high=0.28)


def test_unknown_key_names_file_line_path_and_suggestion(tmp_path):
    p = write(tmp_path, """\
        model:
          path: /m
        algo:
          clip_low: 0.2
          clip_hihg: 0.28
    """)
    with pytest.raises(ConfigError) as e:
        load_config(Run, p)
    assert str(e.value) == f"{p}:5: unknown key 'clip_hihg' (at 'algo.clip_hihg'); did you mean 'algo.clip_high'?"


def test_unknown_override_key_suggests_key_elsewhere_in_the_tree():
    with pytest.raises(ConfigError) as e:
        load_config(Run, None, ["model.path=/m", "clip_high=0.3"])
    assert problems(e) == ["override 'clip_high=0.3': unknown key 'clip_high'; did you mean 'algo.clip_high'?"]


def test_dotted_key_in_yaml_gets_a_nesting_hint(tmp_path):
    p = write(tmp_path, "model: {path: /m}\nalgo.clip_high: 0.3\n")
    with pytest.raises(ConfigError) as e:
        load_config(Run, p)
    assert problems(e) == [(f"{p}:2: unknown key 'algo.clip_high'; dotted keys are for the command line: "
                           "in YAML write it nested (algo: {clip_high: ...})")]


def test_unknown_key_without_close_match_lists_valid_keys():
    with pytest.raises(ConfigError) as e:
        load_config(Algo, None, ["zzz=1"])
    assert "valid keys here: clip_low, clip_high, loss_agg, kl_coef" in str(e.value)


def test_type_error_names_file_line_key_expected_and_value(tmp_path):
    p = write(tmp_path, """\
        model: {path: /m}
        steps: ten
        seeds: [1, x]
        algo:
          loss_agg: token_men
    """)
    with pytest.raises(ConfigError) as e:
        load_config(Run, p)
    assert problems(e) == [
        f"{p}:2: steps: expected int, got str 'ten'",
        f"{p}:3: seeds[1]: expected int, got str 'x'",
        (f"{p}:5: algo.loss_agg: expected one of 'token_mean', 'seq_mean_token_mean', got str 'token_men'; "
         "did you mean 'token_mean'?"),
    ]
    assert str(e.value).startswith("3 problems in the config:\n  - ")


def test_missing_required_field_names_its_dotted_key(tmp_path):
    p = write(tmp_path, "steps: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(Run, p)
    assert problems(e) == [f"{p}:1: model.path: required (no default); set it in the YAML file or with model.path=..."]
    with pytest.raises(ConfigError, match=r"^\(no config file\): model.path: required"):
        load_config(Run, None, [])


def test_coercion_of_lists_dicts_optional_literal_enum_path_tuple():
    cfg = load_config(Run, None, [
        "model.path=/m", "model.device=cuda", "seeds=[1, 2, 3]", "algo.kl_coef=null",
        "algo.loss_agg=seq_mean_token_mean", "out=/tmp/run1", "shape=[2, 3]", "verbose=true",
        "weights={a: 1, b: 2.5}",
    ])
    assert cfg.seeds == [1, 2, 3]
    assert cfg.algo.kl_coef is None and cfg.algo.loss_agg == "seq_mean_token_mean"
    assert cfg.model.device is Device.CUDA
    assert cfg.out == Path("/tmp/run1") and cfg.shape == (2, 3) and cfg.verbose is True
    assert cfg.weights == {"a": 1.0, "b": 2.5} and all(type(v) is float for v in cfg.weights.values())


def test_numbers_and_strings():
    # PyYAML reads 1e-3 as a string: a float field still takes it. An int field takes 2.0 but not 2.5.
    assert load_config(Algo, None, ["clip_high=1e-3"]).clip_high == 0.001
    cfg = load_config(Run, None, ["model.path=/m", "steps=2.0", "name=1.10"])
    assert cfg.steps == 2 and type(cfg.steps) is int
    assert cfg.name == "1.10"  # a str field keeps the text as typed, not float 1.1
    with pytest.raises(ConfigError, match=r"steps: expected int, got float 2.5"):
        load_config(Run, None, ["model.path=/m", "steps=2.5"])
    with pytest.raises(ConfigError, match=r"verbose: expected bool, got int 1"):
        load_config(Run, None, ["model.path=/m", "verbose=1"])
    with pytest.raises(ConfigError, match=r"kl_coef: expected float \| None, got str 'abc'"):
        load_config(Algo, None, ["kl_coef=abc"])


def test_dict_field_dotted_override_updates_whole_value_replaces():
    base = ["model.path=/m"]
    assert load_config(Run, None, base + ["weights.format=0"]).weights == {"math": 1.0, "format": 0.0}
    assert load_config(Run, None, base + ["weights={length: 0.5}"]).weights == {"length": 0.5}


def test_bad_override_syntax_and_duplicate_yaml_key(tmp_path):
    with pytest.raises(ConfigError, match=r"override 'steps': expected key.path=value"):
        load_config(Run, None, ["steps"])
    p = write(tmp_path, "model: {path: /m}\nsteps: 1\nsteps: 2\n")
    with pytest.raises(ConfigError) as e:
        load_config(Run, p)
    assert problems(e) == [f"{p}:3: duplicate key 'steps' (first at {p}:2)"]


def test_invalid_yaml_and_missing_file(tmp_path):
    p = write(tmp_path, "model:\n  path: [unclosed\nsteps: 1\n")
    with pytest.raises(ConfigError, match=rf"^{p}:\d+: invalid YAML"):
        load_config(Run, p)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Run, tmp_path / "nope.yaml")


def test_extends_merges_base_file_and_keeps_its_line_numbers(tmp_path):
    write(tmp_path, "model:\n  path: /base\nsteps: 5\nalgo:\n  clip_hgh: 1.0\n", name="base.yaml")
    p = write(tmp_path, "extends: base.yaml\nsteps: 7\n")
    with pytest.raises(ConfigError) as e:
        load_config(Run, p)
    base = tmp_path / "base.yaml"
    assert problems(e) == [f"{base}:5: unknown key 'clip_hgh' (at 'algo.clip_hgh'); did you mean 'algo.clip_high'?"]
    write(tmp_path, "model:\n  path: /base\nsteps: 5\nalgo:\n  clip_high: 1.0\n", name="base.yaml")
    cfg = load_config(Run, p, ["algo={clip_low: 0.3}"])
    assert (cfg.model.path, cfg.steps, cfg.algo.clip_low, cfg.algo.clip_high) == ("/base", 7, 0.3, 1.0)


def test_preset_hook_lays_values_under_file_and_overrides(tmp_path):
    presets = {"dapo": {"algo": {"clip_low": 0.2, "clip_high": 0.28}, "steps": 100}}

    def resolve(name: str) -> dict:
        if name not in presets:
            raise KeyError(f"unknown preset {name!r}")
        return presets[name]

    p = write(tmp_path, "preset: dapo\nmodel: {path: /m}\nsteps: 3\n")
    cfg = load_config(Run, p, ["algo.clip_low=0.1"], presets=resolve)
    assert (cfg.algo.clip_low, cfg.algo.clip_high, cfg.steps, cfg.preset) == (0.1, 0.28, 3, "dapo")
    with pytest.raises(ConfigError, match=r"^override 'preset=dapi': preset: unknown preset 'dapi'"):
        load_config(Run, p, ["preset=dapi"], presets=resolve)
    p.write_text("preset: dapi\nmodel: {path: /m}\n")
    with pytest.raises(ConfigError, match=rf"^{p}:1: preset: unknown preset 'dapi'"):
        load_config(Run, p, presets=resolve)


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(Run, None, ["model.path=/m", "model.device=cuda", "name=1.10", "out=/o",
                                  "algo.clip_high=1e-3", "shape=[1, 2]", "weights.x=0.5"])
    path = save_resolved(cfg, tmp_path / "out")
    assert path == tmp_path / "out" / "config.yaml"
    assert load_config(Run, path) == cfg
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["config.yaml"]  # no temp file left
    assert to_dict(cfg)["model"] == {"path": "/m", "dtype": "float32", "device": "cuda"}
    assert "name: '1.10'" in dump_yaml(cfg)


def test_from_dict_and_config_keys_and_split_args():
    assert from_dict(Algo, {"clip_high": 0.3}).clip_high == 0.3
    with pytest.raises(ConfigError, match=r"<dict>: clip_high: expected float, got str 'x'"):
        from_dict(Algo, {"clip_high": "x"})
    assert "algo.clip_high" in config_keys(Run) and "model.path" in config_keys(Run)
    assert split_config_args(["a.yaml", "x=1", "y.z=2"]) == ("a.yaml", ["x=1", "y.z=2"])
    with pytest.raises(ConfigError, match="at most one config file"):
        split_config_args(["a.yaml", "b.yaml"])


def test_print_config_shows_values():
    from rich.console import Console

    console = Console(record=True, width=80)
    print_config(load_config(Run, None, ["model.path=/models/x"]), console=console)
    text = console.export_text()
    assert "/models/x" in text and "clip_high: 0.2" in text and "Run" in text


def test_list_of_dataclasses_and_optional_section(tmp_path):
    p = write(tmp_path, """\
        tasks:
          - name: gsm8k
          - nme: math
            weight: 0.5
    """)
    with pytest.raises(ConfigError) as e:
        load_config(Mix, p)
    assert problems(e) == [
        f"{p}:3: unknown key 'nme' (at 'tasks[1].nme'); did you mean 'tasks[1].name'?",
        f"{p}:3: tasks[1].name: required (no default); set it in the YAML file",
    ]
    cfg = load_config(Mix, None, ["tasks=[{name: gsm8k}, {name: math, weight: 0.5}]", "algo.clip_high=0.3"])
    assert cfg.tasks == [Task("gsm8k"), Task("math", 0.5)] and cfg.algo == Algo(clip_high=0.3)
    assert load_config(Mix, None, ["algo=null"]).algo is None


def test_shipped_configs_are_found_from_any_directory(tmp_path, monkeypatch):
    """The documented commands (`rlvr train rlvr/configs/ppo_demo.yaml`, `rlvr pipeline
    rlvr/configs/pipelines/sft_dpo.yaml`, `extends: ppo_demo.yaml`) work outside the checkout."""
    from rlvr.pipeline import load_pipeline
    from rlvr.trainers.config import load_train_config

    monkeypatch.chdir(tmp_path)
    for name in ("rlvr/configs/ppo_demo.yaml", "ppo_demo.yaml", "ppo_demo"):
        assert load_train_config(name, []).algo.name == "ppo", name
    (tmp_path / "mine.yaml").write_text("extends: ppo_demo.yaml\nsteps: 3\n")
    cfg = load_train_config(tmp_path / "mine.yaml", [])
    assert (cfg.steps, cfg.algo.kl_target) == (3, 1.0)
    assert [s.name for s in load_pipeline("rlvr/configs/pipelines/sft_dpo.yaml").stages] == ["demos", "sft", "dpo"]
    assert load_pipeline("sft_dpo").stages[-1].kind == "dpo"
    (tmp_path / "ppo_demo.yaml").write_text("steps: 7\n")  # a file of the user's own wins
    assert load_train_config("ppo_demo.yaml", []).steps == 7
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_train_config("nope.yaml", [])
