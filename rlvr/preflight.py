"""Checks a training config can run, before any model loads: names, user code, data splits, model path.

`check_train_config(cfg)` raises one `rlvr.config.ConfigError` listing every problem, each with
the file:line (or override) where the key was set, the key itself and, for a misspelt name, the
closest known one::

    run.yaml:9: task.verifiers.with_unti: unknown verifier 'with_unti'; did you mean 'with_unit'? ...
    run.yaml:14: task.verifier_options.fromat: no component 'fromat' in task.verifiers (math, format)
    override 'model.path=/tmp/nope': model.path: model path /tmp/nope: no such directory

It checks: the task name and options, the prompt template (``task.options.template``), every
verifier in ``task.verifiers`` (registered names, ``file.py:name`` and ``module:name`` references,
built once with their options), that ``task.verifier_options`` and ``task.primary`` name a
component, that held-out evaluation does not read the training rows, that ``model.path`` is a
model directory, ``demo``, ``tiny``, or a hub name that is cached or that the hub knows, and the
``env:`` section of multi-turn runs: every tool in ``env.tools`` resolves (built-in, registered,
``file.py:func``; nothing is started), every ``env.formats`` entry is a known call format, and
``env.environment`` names an `Environment` class that builds with ``env.options``. A critic
preset (PPO) with episodes (the config's or the task's own environment) is refused.

What it does not do: load data rows or models (a bad row is reported when the data loads, with
its file and line), or import ``--import`` targets (`rlvr.plugins.import_targets` does, first).
"""

from __future__ import annotations

import difflib
import os
from typing import Any

from rlvr.config import ConfigError, where_set

__all__ = ["check_env", "check_model_path", "check_train_config"]


def _close(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_train_config(cfg: Any, *, model: bool = True, task: Any = None, verifier: Any = None) -> None:
    """Raise ConfigError naming every problem of `cfg` (a `TrainConfig`) found without loading a model.
    `task` / `verifier` given in Python (the `rlvr.GRPOTrainer` API) replace the config's."""
    problems: list[str] = []

    def bad(key: str | list[str], text: str) -> None:
        dotted = key if isinstance(key, str) else ".".join(key)
        problems.append(f"{where_set(cfg, key)}: {dotted}: {text}")

    if task is None:
        task = _task(cfg, bad)
    if task is not None and verifier is None:
        _verifiers(cfg, task, bad)
    _environment(cfg, task, bad)
    if task is not None and cfg.logging.eval_every and task_shares_rows(task, "train", cfg.task.eval_split):
        bad("task.eval_split", f"held-out split {cfg.task.eval_split!r} would read the training rows "
            f"({getattr(task, 'source', '?')} has no {cfg.task.eval_split!r} split): give one with "
            f"task.options.splits.{cfg.task.eval_split}=FILE, carve one off with task.options.holdout=0.1 "
            "(those rows are then never trained on), or turn held-out evaluation off with logging.eval_every=0")
    if model:
        why = check_model_path(cfg.model.path)
        if why:
            bad("model.path", why)
    if problems:
        from rlvr.config import _file_order

        raise ConfigError(sorted(problems, key=_file_order))


def task_shares_rows(task: Any, train_split: str, eval_split: str) -> bool:
    """True when `eval_split` of `task` would read the same rows as `train_split` (a one-file dataset)."""
    same = getattr(task, "same_rows", None)
    return bool(same(train_split, eval_split)) if callable(same) else False


def _task(cfg: Any, bad: Any) -> Any:
    from rlvr.io import InputError
    from rlvr.tasks import get_task, list_tasks
    from rlvr.templates import get_template

    name = cfg.task.name
    try:
        task = get_task(name, **cfg.task.options)
    except InputError as e:
        text = str(e)
        if text.startswith(f"unknown task {name!r}"):
            bad("task.name", f"unknown task {name!r}{_close(name, list_tasks())}")
        else:
            bad("task.options", text)
        return None
    template = getattr(task, "template", None)
    if isinstance(template, str):
        try:
            get_template(template)
        except InputError as e:
            bad("task.options.template" if "template" in cfg.task.options else "task.name", str(e))
    return task


def _verifiers(cfg: Any, task: Any, bad: Any) -> None:
    from rlvr.verifiers.base import VerifierError, get_verifier

    tcfg = cfg.task
    weights = dict(tcfg.verifiers) if tcfg.verifiers is not None else dict(task.verifiers)
    key = "task.verifiers" if tcfg.verifiers is not None else "task.name"
    options = {k: dict(v) for k, v in getattr(task, "verifier_options", {}).items()}
    for k, v in tcfg.verifier_options.items():
        if k not in weights:
            bad(["task", "verifier_options", k], f"no component {k!r} in task.verifiers "
                f"({', '.join(weights)}){_close(k, list(weights))}")
        options[k] = {**options.get(k, {}), **v}
    for name in weights:
        try:
            get_verifier(name, **options.get(name, {}))
        except VerifierError as e:
            bad(["task", "verifiers", name] if key == "task.verifiers" else key, str(e))
        except (TypeError, ValueError) as e:
            bad(["task", "verifier_options", name], f"verifier {name!r}: {e}")
    if tcfg.primary is not None and tcfg.primary not in weights:
        bad("task.primary", f"{tcfg.primary!r} is not one of the verifiers ({', '.join(weights)})"
            f"{_close(tcfg.primary, list(weights))}")


def _environment(cfg: Any, task: Any, bad: Any) -> None:
    """The ``env:`` section (`check_env`), and no critic preset with the task's own environment."""
    own = _own_environment(task)
    check_env(cfg.env, lambda key, text: bad(f"env.{key}", text), own_environment=own)
    if cfg.env.environment is None and task is not None and cfg.algo.needs_critic:
        if own:
            from rlvr.trainers.config import EPISODES_WITH_CRITIC

            bad("preset", f"task {cfg.task.name!r} brings its own environment; {EPISODES_WITH_CRITIC}")


def check_env(e: Any, bad: Any, own_environment: bool = False) -> None:
    """An `EnvConfig`'s tools, call formats, environment class and its options; ``bad(key, text)``
    is called for each problem with the key inside the section (``tools``, ``formats``, ...).
    own_environment: the task brings its own environment (then ``options`` are not the built-in
    `ToolEnvironment`'s). Nothing is started. ``rlvr eval`` checks its ``--env`` with it too."""
    if e.tools:
        from rlvr.tools.builtin import check_tool_spec

        for i, spec in enumerate(e.tools):
            try:
                check_tool_spec(spec)
            except Exception as err:  # noqa: BLE001 - ToolSpecError or PluginError (a user file's import error)
                bad("tools", f"entry {i}: {err}")
    from rlvr.tools.parse import STOPS

    if e.tools or e.environment is not None:
        for fmt in e.formats or ():
            if fmt not in STOPS:
                bad("formats", f"unknown call format {fmt!r}{_close(fmt, list(STOPS))} (known: {', '.join(STOPS)})")
    if e.environment is not None:
        _environment_class(e, bad)
    elif e.tools and e.options and set(e.formats or ()) <= set(STOPS) and not own_environment:
        from rlvr.rollout.episodes import ToolEnvironment  # the options go to the built-in environment

        try:
            ToolEnvironment(tuple(e.tools), None if e.formats is None else tuple(e.formats), **e.options)
        except TypeError as err:
            bad("options", f"ToolEnvironment does not take these options {sorted(e.options)} (it takes "
                f"observation and around): {err}")
        except ValueError as err:
            bad("options", str(err))


def _own_environment(task: Any) -> bool:
    own = getattr(task, "environment", None)
    return callable(own) and own() is not None


def _environment_class(e: Any, bad: Any) -> None:
    from rlvr.plugins import is_reference, load_object
    from rlvr.rollout.trajectory import Environment

    ref = e.environment
    if not is_reference(ref):
        bad("environment", f"{ref!r} is not a class reference: give path/to/file.py:Class or package.module:Class")
        return
    try:
        cls = load_object(ref)
    except Exception as err:  # noqa: BLE001 - PluginError, or the user file's own import error
        bad("environment", str(err))
        return
    if not (isinstance(cls, type) and issubclass(cls, Environment)):
        bad("environment", f"{ref} is {cls!r}, not a subclass of rlvr.rollout.trajectory.Environment")
        return
    try:
        cls(**e.options)
    except TypeError as err:
        bad("options", f"{ref} does not take these options {sorted(e.options)}: {err}")


def check_model_path(path: str) -> str | None:
    """Why `path` cannot be loaded as a model (None when it can, as far as can be told without loading):
    a local directory needs config.json; a hub name must be cached, or known to the hub (one request)."""
    if path in ("demo", "demo-tool", "tiny"):
        return None
    from rlvr.models import ModelLoadError, resolve_model_path

    try:
        where = resolve_model_path(path)
    except ModelLoadError as e:
        return str(e)
    if not isinstance(where, str):
        return None
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(where, "config.json"), str):
        return None
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}:
        return f"{where!r} is not a local directory and not in the Hugging Face cache (HF_HUB_OFFLINE is set)"
    return _probe_hub(where)


def _probe_hub(name: str) -> str | None:
    """One request to the hub (no retries): None when it has `name`, else why not."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().model_info(name, timeout=10)
    except GatedRepoError:  # it exists; transformers will say what access it needs
        return None
    except RepositoryNotFoundError:
        return f"{name!r} is not a local directory, and the Hugging Face hub has no model of that name"
    except Exception as e:  # noqa: BLE001 - no network, a proxy, a gated model: say what happened
        return (f"{name!r} is not a local directory nor in the Hugging Face cache, and the hub could not be "
                f"asked ({type(e).__name__}); give a local save_pretrained directory or download it first")
    return None
