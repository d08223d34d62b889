"""Pipelines: one YAML file chains training stages (SFT, reward model, DPO, RL), each in its own run.

    rlvr pipeline rlvr/configs/pipelines/sft_dpo.yaml
    rlvr pipeline rlvr/configs/pipelines/rs_sft_grpo.yaml run_dir=/tmp/rs stages.grpo.config.steps=40
    rlvr pipeline my_pipeline.yaml --resume         # finished stages (summary.json present) are skipped

A file holds ``run_dir``, ``require_improvement`` and ``stages``: a mapping, run in order, of stage
name -> ``kind``, ``config`` (that command's config keys), optional ``metrics`` (judged; default:
the kind's) and ``report`` (shown only). Kinds (`KINDS`): ``demonstrations`` (task problems ->
prompt/completion JSONL), ``sft``, ``rs_sft`` (``rlvr sft`` with rejection sampling), ``rm``,
``dpo`` and ``train`` (``rlvr train``: GRPO-family and PPO presets). A stage config is checked
against its command's config tree with `rlvr.config`'s rules (file:line and key in every error);
the pipeline sets ``logging.run_dir`` to RUN_DIR/<stage>. ``${stages.NAME.OUTPUT}`` in any string
is an earlier stage's output path (``model``, ``run_dir``; demonstrations: ``train``, ``eval``).
Every reference and stage config is checked before the first stage runs. Each stage runs through
its command, in this process, from the resolved ``stage.yaml`` in its directory; a ``train``
stage's last checkpoint model is linked as ``final``. The end: a table (stage, metric, held-out
before -> after, improved, seconds), printed and written to ``pipeline_summary.md`` and ``.json``.

What it does not do: train anything itself, run stages in parallel or on several processes (run a
multi-GPU stage with its own command), or delete an earlier run (pick a new ``run_dir``).
Guide and a full example: docs/pipeline.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr._config_tree import _from_python, _merge, _Node, _parse_override, _plain, _read_yaml
from rlvr.config import ConfigError, build_config, save_resolved
from rlvr.io import InputError, atomic_write, write_jsonl

__all__ = ["KINDS", "DemonstrationsConfig", "Pipeline", "Stage", "load_pipeline", "run_pipeline", "summary_table"]

_REF = re.compile(r"\$\{([^}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass
class DemonstrationsConfig:
    # Task name and options for rlvr.tasks.get_task.
    task: str = "arithmetic"
    task_options: dict[str, Any] = field(default_factory=lambda: {"level": 1})
    # Problems from the task's train split, and from its held-out split (for the SFT eval loss).
    train: int = 512
    eval: int = 64
    # The demonstration: a format string over the sample (answer, prompt).
    completion: str = " <answer>{answer}</answer>"
    # Tokenizer (a directory or hub name) for templates that need a chat template; null = none.
    tokenizer: str | None = None


def _dotted(name: str) -> Any:
    """The object named ``package.module.attr`` (imported on first use: trainers import torch)."""
    module, _, attr = name.rpartition(".")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class Kind:
    """A stage kind: its config class, the command that runs it, its outputs and judged metrics."""

    config: str  # "module.Class" of the config dataclass
    command: str | None  # rlvr.commands module; None = run in this module
    outputs: tuple[str, ...] = ("model", "run_dir")
    metrics: tuple[str, ...] = ()
    forced: tuple[tuple[str, Any], ...] = ()  # dotted key -> value the pipeline sets
    presets: str | None = None  # "module.function" whose tree goes under the config's ``preset:`` key
    known: tuple[str, ...] = ()  # every held-out metric the kind reports (a judged name must be one)


_SFT_METRICS = ("eval/loss", "eval/accuracy")
_DPO_METRICS = ("eval/loss", "eval/accuracy", "eval/reward_accuracy", "eval/reward_margin", "eval/reward_chosen",
                "eval/reward_rejected", "eval/log_odds", "eval/kl_ref", "eval/reward_desirable",
                "eval/reward_undesirable")
KINDS: dict[str, Kind] = {
    "demonstrations": Kind("rlvr.pipeline.DemonstrationsConfig", None, ("train", "eval", "run_dir")),
    "sft": Kind("rlvr.trainers.sft.SFTConfig", "rlvr.commands.sft", metrics=("eval/loss",), known=_SFT_METRICS),
    "rs_sft": Kind("rlvr.trainers.sft.SFTConfig", "rlvr.commands.sft", metrics=("eval/accuracy",),
                   forced=(("rejection_sampling.enabled", True),), known=_SFT_METRICS),
    "rm": Kind("rlvr.trainers.reward.RewardConfig", "rlvr.commands.rm", metrics=("eval/accuracy",),
               known=("eval/accuracy", "eval/loss", "eval/margin", "eval/disagreement")),
    # DPO's judged default is the held-out loss: it starts at log 2 (policy = reference) and falls only
    # when held-out pairs move the right way. Reward accuracy starts as float noise (every implicit
    # reward is 0 up to rounding), so judging it would test nothing.
    "dpo": Kind("rlvr.trainers.dpo.DPOConfig", "rlvr.commands.dpo", metrics=("eval/loss",), known=_DPO_METRICS),
    "train": Kind("rlvr.trainers.config.TrainConfig", "rlvr.commands.train", metrics=("eval/accuracy",),
                  presets="rlvr.presets.preset_tree", known=("eval/accuracy",)),
}
_STAGE_KEYS = ("kind", "config", "metrics", "report")
_TOP_KEYS = ("run_dir", "require_improvement", "stages", "description")


@dataclass
class Stage:
    name: str
    kind: str
    config: Any  # the built config dataclass of the kind
    metrics: list[str]  # judged: require_improvement fails the pipeline when one did not improve
    report: list[str]  # shown in the table, not judged
    dir: Path
    outputs: dict[str, str]


@dataclass
class Pipeline:
    run_dir: Path
    require_improvement: bool
    stages: list[Stage]
    source: str
    raw: dict[str, Any]  # the file + overrides, references unresolved (saved as pipeline.yaml)


# ----------------------------------------------------------------------------- loading
def _close(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _resolve(node: _Node, path: str, stage: str, outputs: dict[str, dict[str, str]],
             order: list[str], problems: list[str]) -> _Node:
    """`node` with every ``${stages.NAME.OUTPUT}`` replaced; bad references go to `problems`."""
    if node.kind == "map":
        return dataclasses.replace(node, value={k: _resolve(v, f"{path}.{k}" if path else k, stage, outputs, order, problems)
                                                for k, v in node.value.items()})
    if node.kind == "seq":
        return dataclasses.replace(node, value=[_resolve(v, f"{path}[{i}]", stage, outputs, order, problems)
                                                for i, v in enumerate(node.value)])
    if not isinstance(node.value, str) or "${" not in node.value:
        return node

    def sub(m: re.Match) -> str:
        ref, where = m.group(0), f"{node.where}: stage {stage!r}: key {path!r}: {m.group(0)}"
        parts = m.group(1).strip().split(".")
        if len(parts) != 3 or parts[0] != "stages":
            problems.append(f"{where}: a reference looks like ${{stages.NAME.OUTPUT}}")
            return ref
        _, name, out = parts
        if name not in outputs:
            if name == stage:
                why = "a stage cannot use its own outputs"
            elif name in order:
                why = f"stage {name!r} runs after {stage!r}; only earlier stages' outputs can be used"
            else:
                why = f"unknown stage {name!r}{_close(name, order)} (earlier stages: {', '.join(outputs) or 'none'})"
            problems.append(f"{where}: {why}")
            return ref
        if out not in outputs[name]:
            problems.append(f"{where}: stage {name!r} has no output {out!r}{_close(out, outputs[name])} "
                            f"(outputs: {', '.join(outputs[name])})")
            return ref
        return outputs[name][out]

    text = _REF.sub(sub, node.value)
    if "${" in _REF.sub("", node.value):
        problems.append(f"{node.where}: stage {stage!r}: key {path!r}: unclosed '${{' in {node.value!r}")
    return _Node(text, node.where)


def build_stage_config(kind: str, node: _Node, stage_dir: Path, stage: str) -> tuple[Any, list[str]]:
    """The kind's config dataclass from a raw tree (as `rlvr.config.load_config` builds it from a file),
    with the pipeline's forced keys; returns (config or None, problems naming file:line and key)."""
    spec = KINDS[kind]
    cls = _dotted(spec.config)
    forced: dict[str, Any] = {}
    if kind != "demonstrations":
        forced["logging.run_dir"] = str(stage_dir)
    forced.update(dict(spec.forced))
    tree = node
    for key, value in forced.items():
        layer: Any = value
        for part in reversed(key.split(".")):
            layer = {part: layer}
        tree = _merge(tree, _from_python(layer, f"set by the pipeline for stage {stage!r}"))
    presets = _dotted(spec.presets) if spec.presets is not None else None
    try:
        return build_config(cls, tree, presets=presets), []
    except ConfigError as e:
        return None, [f"stage {stage!r} ({kind}): {p}" for p in e.problems]


def _node_where(node: _Node, dotted: str) -> str:
    """file:line of the key `dotted` in a stage's config tree (or of the nearest enclosing key)."""
    for part in dotted.split("."):
        if node.kind != "map" or part not in node.value:
            break
        node = node.value[part]
    return node.where


def _check_names(cfg: Any, cnode: _Node, stage: str, kind: str) -> list[str]:
    """Task and verifier names anywhere in a stage's config (``task``, ``task.name``,
    ``from_verifier.task``, ``*.verifiers`` keys) against the registries, before anything runs."""
    from rlvr.tasks import list_tasks
    from rlvr.verifiers.base import list_verifiers

    tasks, verifiers, problems = list_tasks(), list_verifiers(), []

    def walk(obj: Any, path: str) -> None:
        for f in dataclasses.fields(obj) if dataclasses.is_dataclass(obj) else ():
            value, dotted = getattr(obj, f.name), f"{path}{f.name}"
            names_task = f.name == "task" or (f.name == "name" and path.endswith("task."))
            if names_task and isinstance(value, str) and value not in tasks:
                problems.append(f"{_node_where(cnode, dotted)}: stage {stage!r} ({kind}): {dotted}: unknown task "
                                f"{value!r}{_close(value, tasks)} (known: {', '.join(tasks)})")
            elif f.name == "verifiers" and isinstance(value, dict):
                for v in value:  # a registered name, or your own code: file.py:name / module:name
                    why = (_reference_problem(v) if ":" in v else None if v in verifiers else
                           f"unknown verifier {v!r}{_close(v, verifiers)} (known: {', '.join(verifiers)})")
                    if why:
                        problems.append(f"{_node_where(cnode, dotted + '.' + v)}: stage {stage!r} ({kind}): {dotted}: {why}")
            elif dataclasses.is_dataclass(value):
                walk(value, dotted + ".")

    walk(cfg, "")
    return problems


def _reference_problem(ref: str) -> str | None:
    """Why the verifier reference ``file.py:name`` / ``module:name`` cannot be loaded, or None."""
    from rlvr.verifiers.base import VerifierError, get_verifier

    try:
        get_verifier(ref)
    except VerifierError as e:
        return str(e)
    return None


def _load_stage(name: str, node: _Node, root: Path, outputs: dict[str, dict[str, str]], order: list[str],
                problems: list[str]) -> Stage | None:
    """One stage of the ``stages:`` mapping; its outputs go into `outputs` (even when it has problems,
    so that later references to it are not reported twice)."""
    stage_dir = root / name
    paths = {"run_dir": str(stage_dir), "model": str(stage_dir / "final"),
             "train": str(stage_dir / "train.jsonl"), "eval": str(stage_dir / "eval.jsonl")}
    outputs[name] = paths
    if not _NAME.match(name):
        problems.append(f"{node.where}: stage name {name!r}: use letters, digits, '_' and '-' (it names a directory)")
    if node.kind != "map":
        problems.append(f"{node.where}: stage {name!r}: expected a mapping with kind and config")
        return None
    problems += [f"{v.where}: stage {name!r}: unknown key {k!r}{_close(k, _STAGE_KEYS)} (stage keys: {', '.join(_STAGE_KEYS)})"
                 for k, v in node.value.items() if k not in _STAGE_KEYS]
    knode = node.value.get("kind")
    kind = knode.value if knode is not None else None
    if kind not in KINDS:
        got = "missing" if knode is None else repr(kind)
        problems.append(f"{(knode or node).where}: stage {name!r}: kind: {got} is not a stage kind"
                        f"{_close(str(kind), KINDS)} (kinds: {', '.join(KINDS)})")
        return None
    outputs[name] = {k: v for k, v in paths.items() if k in KINDS[kind].outputs}
    lists: dict[str, Any] = {"metrics": list(KINDS[kind].metrics), "report": []}
    for key in lists:
        if key in node.value:
            lists[key] = _plain(node.value[key])
            if not (isinstance(lists[key], list) and all(isinstance(m, str) for m in lists[key])):
                problems.append(f"{node.value[key].where}: stage {name!r}: {key}: expected a list of metric names")
    cnode = node.value.get("config", _Node({}, node.where, "map"))
    if cnode.kind != "map":
        problems.append(f"{cnode.where}: stage {name!r}: config: expected a mapping of the {kind} config's keys")
        return None
    before = len(problems)
    cnode = _resolve(cnode, "", name, {k: v for k, v in outputs.items() if k != name}, order, problems)
    if len(problems) > before:
        return None
    for key in lists:
        bad = [m for m in lists[key] if isinstance(m, str) and m not in KINDS[kind].known]
        problems += [f"{node.value[key].where}: stage {name!r}: {key}: {kind} reports no {m!r}{_close(m, KINDS[kind].known)} "
                     f"(it reports: {', '.join(KINDS[kind].known)})" for m in bad]
    cfg, errs = build_stage_config(kind, cnode, stage_dir, name)
    problems += errs
    if cfg is not None:
        problems += _check_names(cfg, cnode, name, kind)
    return Stage(name, kind, cfg, lists["metrics"], lists["report"], stage_dir, outputs[name])


def load_pipeline(path: str | Path, overrides: Sequence[str] = ()) -> Pipeline:
    """Read a pipeline file (+ dotted overrides such as ``stages.sft.config.steps=5``), resolve the
    references and build every stage's config. Raises `ConfigError` listing every problem."""
    problems: list[str] = []
    tree = _read_yaml(Path(path), problems)
    for text in overrides:
        layer = _parse_override(text, problems)
        if layer is not None and tree is not None:
            tree = _merge(tree, layer)
    if tree is None or problems:
        raise ConfigError(problems)
    top = tree.value
    problems += [f"{top[k].where}: unknown key {k!r}{_close(k, _TOP_KEYS)} (pipeline keys: {', '.join(_TOP_KEYS)})"
                 for k in top if k not in _TOP_KEYS]
    run_dir = top.get("run_dir", _Node(f"runs/pipelines/{Path(path).stem}", str(path)))
    req = top.get("require_improvement", _Node(False, str(path)))
    if not isinstance(run_dir.value, str) or not run_dir.value:
        problems.append(f"{run_dir.where}: run_dir: expected a directory path")
    if not isinstance(req.value, bool):
        problems.append(f"{req.where}: require_improvement: expected true or false, got {req.value!r}")
    snode = top.get("stages")
    if snode is None or snode.kind != "map" or not snode.value:
        where = snode.where if snode is not None else f"{path}:1"
        raise ConfigError(problems + [f"{where}: stages: expected a mapping of stage name -> {{kind, config}}"])
    outputs: dict[str, dict[str, str]] = {}
    stages = [_load_stage(name, node, Path(str(run_dir.value)), outputs, list(snode.value), problems)
              for name, node in snode.value.items()]
    if problems:
        raise ConfigError(problems)
    return Pipeline(Path(str(run_dir.value)), bool(req.value), [s for s in stages if s], str(path), _plain(tree))


# ----------------------------------------------------------------------------- running
def _write_json(path: Path, data: Any) -> None:
    with atomic_write(path) as f:
        f.write(json.dumps(data, indent=1, default=str) + "\n")


def _run_demonstrations(stage: Stage) -> None:
    """Task problems -> ``train.jsonl`` / ``eval.jsonl`` of {prompt (rendered), completion} rows."""
    from rlvr.tasks import get_task

    c: DemonstrationsConfig = stage.config
    task = get_task(c.task, **c.task_options)
    tokenizer = None
    if c.tokenizer is not None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(c.tokenizer)
    counts = {}
    for split, n, out in (("train", c.train, "train"), ("test", c.eval, "eval")):
        samples = task.samples(split, limit=n) if n > 0 else []
        try:
            rows = [{"prompt": task.render(s, tokenizer), "completion": c.completion.format(answer=s.answer, prompt=s.prompt)}
                    for s in samples]
        except (KeyError, IndexError, ValueError) as e:
            raise InputError(f"stage {stage.name!r}: completion {c.completion!r}: bad format field {e}") from None
        write_jsonl(stage.dir / f"{out}.jsonl", rows)
        counts[f"{out}_rows"] = len(rows)
    _write_json(stage.dir / "summary.json", {**stage.outputs, **counts})


def _finished(stage: Stage, summary: dict[str, Any]) -> bool:
    """A stage ran all its steps (a ``train`` stage that ``max_minutes`` stopped early has not, and
    ``--resume`` continues it from its checkpoint)."""
    if stage.kind != "train":
        return True
    return int(summary.get("steps", 0)) >= int(summary.get("steps_planned", stage.config.steps))


def _run_command(stage: Stage, resume: bool) -> None:
    """Run the stage's command (in this process) on its resolved config, saved as ``stage.yaml``."""
    module = importlib.import_module(KINDS[stage.kind].command)
    parser = argparse.ArgumentParser(prog=f"rlvr {module.__name__.rsplit('.', 1)[-1]}")
    module.add_arguments(parser)
    path = save_resolved(stage.config, stage.dir, "stage.yaml")
    code = module.run(parser.parse_args([str(path)] + ["--resume"] * resume))
    if code:
        raise RuntimeError(f"stage {stage.name!r}: {parser.prog} exited with code {code}")


def _link_final(stage: Stage) -> None:
    """A train stage's model output: ``final`` -> the newest checkpoint's ``model`` directory (a run
    that wrote its own ``final/``, as ``rlvr train`` does, keeps it: LoRA runs' is merged)."""
    from rlvr.checkpoint import latest_checkpoint

    if (stage.dir / "final").is_dir() and not (stage.dir / "final").is_symlink():
        return
    ckpt = latest_checkpoint(stage.dir)
    if ckpt is None:
        raise RuntimeError(f"stage {stage.name!r}: no checkpoint in {stage.dir / 'checkpoints'}")
    final = stage.dir / "final"
    if final.is_symlink():
        final.unlink()
    final.symlink_to((ckpt / "model").relative_to(stage.dir), target_is_directory=True)


def stage_metrics(kind: str, summary: dict[str, Any]) -> dict[str, tuple[float | None, float | None]]:
    """metric -> (held-out before, after) from a stage's ``summary.json``.

    >>> stage_metrics("train", {"eval_first": 0.1, "eval_last": 0.5})
    {'eval/accuracy': (0.1, 0.5)}
    """
    if kind == "train":
        return {"eval/accuracy": (summary.get("eval_first"), summary.get("eval_last"))}
    if kind == "rm":  # before: the members' mean (each starts from its own random head)
        befores = [b for b in summary.get("before") or [] if b]
        final = summary.get("final") or {}
        return {k: (sum(b.get(k, float("nan")) for b in befores) / len(befores) if befores else None, v)
                for k, v in final.items()}
    before, after = summary.get("before") or {}, summary.get("after") or {}
    return {k: (before.get(k), v) for k, v in after.items()}


def improved(metric: str, before: float | None, after: float | None) -> bool:
    """Strictly better after than before: lower for losses (names ending in ``loss``), higher otherwise."""
    if before is None or after is None or before != before or after != after:
        return False
    return after < before if metric.endswith("loss") else after > before


def _row_values(stage: Stage, summary: dict[str, Any], seconds: float | None, skipped: bool) -> list[dict[str, Any]]:
    found = stage_metrics(stage.kind, summary) if stage.kind != "demonstrations" else {}
    note = None if _finished(stage, summary) else \
        f"stopped at step {summary.get('steps')} of {summary.get('steps_planned', stage.config.steps)}"
    rows = []
    for m in stage.metrics + [m for m in stage.report if m not in stage.metrics]:
        before, after = found.get(m, (None, None))
        rows.append({"stage": stage.name, "kind": stage.kind, "metric": m, "before": before, "after": after,
                     "improved": improved(m, before, after), "judged": m in stage.metrics,
                     "seconds": seconds, "skipped": skipped, "note": note})
    if not rows:
        rows.append({"stage": stage.name, "kind": stage.kind, "metric": None, "before": None, "after": None,
                     "improved": None, "judged": False, "seconds": seconds, "skipped": skipped, "note": note})
    return rows


def _fmt(metric: str | None, v: float | None) -> str:
    if v is None or metric is None:
        return "-"
    return f"{v:.1%}" if "accuracy" in metric else f"{round(v, 4) + 0.0:.4f}"  # + 0.0: no "-0.0000"


def summary_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table: stage, metric, held-out before -> after, improved, seconds."""
    out = ["| stage | kind | metric | held-out before -> after | improved | seconds |", "|---|---|---|---|---|---|"]
    for r in rows:
        imp = "-" if r["improved"] is None else ("yes" if r["improved"] else "**no**" if r["judged"] else "no")
        imp += "" if r["judged"] or r["metric"] is None else " (not judged)"
        secs = "-" if r["seconds"] is None else f"{r['seconds']:.0f}" + (" (earlier run)" if r["skipped"] else "")
        change = "-" if r["metric"] is None else f"{_fmt(r['metric'], r['before'])} -> {_fmt(r['metric'], r['after'])}"
        name = r["stage"] + (f" ({r['note']})" if r.get("note") else "")
        out.append(f"| {name} | {r['kind']} | {r['metric'] or '-'} | {change} | {imp} | {secs} |")
    return "\n".join(out) + "\n"


def _banner(text: str) -> None:
    from rich.console import Console

    Console(stderr=True).rule(f"[bold]{text}")


def run_pipeline(p: Pipeline, resume: bool = False) -> dict[str, Any]:
    """Run the stages in order (skipping finished ones with `resume`); returns the pipeline summary
    (also ``RUN_DIR/pipeline_summary.json`` and ``.md``)."""
    started = [s.name for s in p.stages if s.dir.is_dir() and any(s.dir.iterdir())]
    if started and not resume:
        raise InputError(f"{p.run_dir} already holds a pipeline run (stages {', '.join(started)}); pass --resume "
                         "to continue it, or choose another directory with run_dir=...")
    p.run_dir.mkdir(parents=True, exist_ok=True)
    import yaml

    with atomic_write(p.run_dir / "pipeline.yaml") as f:
        f.write(f"# pipeline from {p.source} (with overrides), references unresolved\n")
        f.write(yaml.safe_dump(p.raw, sort_keys=False))
    rows: list[dict[str, Any]] = []
    for i, stage in enumerate(p.stages, 1):
        done, timing = stage.dir / "summary.json", stage.dir / "pipeline_stage.json"
        skipped = resume and done.exists() and _finished(stage, json.loads(done.read_text()))
        _banner(f"stage {i}/{len(p.stages)}: {stage.name} ({stage.kind})" + (" - finished, skipped" if skipped else "")
                + f" -> {stage.dir}")
        if skipped:
            seconds = json.loads(timing.read_text()).get("seconds") if timing.exists() else None
        else:
            t0 = time.perf_counter()
            stage.dir.mkdir(parents=True, exist_ok=True)
            try:
                _run_demonstrations(stage) if stage.kind == "demonstrations" else _run_command(stage, resume)
            except InputError as e:  # e.g. nothing passed the verifiers: say which stage
                raise InputError(f"stage {stage.name!r} ({stage.kind}): {e}") from e
            seconds = time.perf_counter() - t0
            _write_json(timing, {"seconds": seconds})
        if stage.kind == "train":
            _link_final(stage)
        rows += _row_values(stage, json.loads(done.read_text()), seconds, skipped)
    failed = sorted({r["stage"] for r in rows if r["judged"] and not r["improved"]})
    summary = {"run_dir": str(p.run_dir), "source": p.source, "require_improvement": p.require_improvement,
               "stages": rows, "not_improved": failed, "ok": not (p.require_improvement and failed)}
    table = summary_table(rows)
    with atomic_write(p.run_dir / "pipeline_summary.md") as f:
        f.write(table)
    _write_json(p.run_dir / "pipeline_summary.json", summary)
    _banner(f"pipeline {p.source}: done")
    print(table, end="")
    return summary
