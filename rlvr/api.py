"""The Python trainer API: `rlvr.GRPOTrainer`, the layer ``rlvr train`` itself runs on.

    import rlvr

    def has_answer(completion, sample):                  # (completion, Sample) -> float | bool | Score
        return float(sample.answer in completion)

    trainer = rlvr.GRPOTrainer(
        model="demo",                                    # a model directory, a hub name, "demo", "tiny"
        reward_funcs=[has_answer, "format"],             # callables and verifier names (or file.py:name)
        train_dataset=[{"prompt": "2+3=", "answer": "5"}, {"prompt": "4+4=", "answer": "8"}],
        config={"steps": 20, "rollout": {"max_new_tokens": 24}, "logging": {"run_dir": "runs/api"}},
    )
    trainer.train()                                      # GRPO (or any preset: config={"preset": "dapo"})
    trainer.save("my-model")                             # a save_pretrained directory

- ``config``: a `TrainConfig`, a nested dict of its fields (``preset`` works as in YAML), a YAML
  path, or None (defaults). Everything ``rlvr train`` reads from YAML is available.
- ``reward_funcs``: each a registered verifier name, a ``file.py:name`` reference, or a callable
  ``(completion, sample) -> float | bool | Score`` (wrapped by `rlvr.plugins.FunctionVerifier`:
  the same worker processes, per-item deadlines and failure-as-data as registered verifiers).
  ``reward_weights`` weighs them (default 1 each); the largest weight's ``passed`` is accuracy.
  None: the config's task verifiers.
- ``train_dataset`` / ``eval_dataset``: a `datasets.Dataset` or a list of dicts with ``prompt``
  and ``answer`` (``columns`` maps other names; other fields go to ``sample.metadata``). Without
  an ``eval_dataset`` there is no held-out evaluation. None: the config's task.
- ``template``: a template name (`rlvr.templates`), a callable ``(question, tokenizer) -> str``,
  or None (``"none"``: the prompt as is).
- ``tools`` / ``env``: multi-turn episodes (docs/tools.md). ``tools``: functions (each becomes a
  `rlvr.tools.function.FunctionTool`: schema from its signature), `Tool` objects, or names and
  ``file.py:func`` specs; the model calls them in ``env.formats`` (the config's ``env:`` section
  holds the limits). ``env``: an `rlvr.rollout.trajectory.Environment` object (or a
  ``file.py:Class`` reference); ``tools`` given with it are added to the tools it may call (on a
  copy of it).

`train()` checks the whole set-up first (`rlvr.preflight`), writes the resolved config, trains
(`rlvr.trainers.grpo.train`) and returns its summary; the model ends in ``RUN_DIR/final/``.
`save(path)` copies it. What it does not do: any training logic of its own.
"""

from __future__ import annotations

import contextlib
import copy
import json
import pickle
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlvr.io import InputError
from rlvr.tasks.base import Task, rows_to_samples
from rlvr.verifiers.base import Sample

__all__ = ["GRPOTrainer", "InMemoryTask", "build_reward", "resolve_config"]


@dataclass
class InMemoryTask(Task):
    """A task over samples given in Python (`GRPOTrainer`'s datasets); `template` may be a callable."""

    train: list[Sample] = field(default_factory=list)
    test: list[Sample] = field(default_factory=list)
    template_fn: Callable[[str, Any], str] | None = None
    name: str = "python"

    def samples(self, split: str = "train", limit: int | None = None) -> list[Sample]:
        rows = self.train if split == "train" else self.test
        return rows[:limit] if limit is not None else list(rows)

    def render(self, sample: Sample, tokenizer: Any = None) -> str:
        if self.template_fn is not None:
            return self.template_fn(sample.prompt, tokenizer)
        return super().render(sample, tokenizer)


def resolve_config(config: Any) -> Any:
    """A `TrainConfig` from a TrainConfig, a nested dict, a YAML path or None."""
    from rlvr.trainers.config import TrainConfig, load_train_config

    if isinstance(config, TrainConfig):
        return config
    if config is None:
        return load_train_config(None, [])
    if isinstance(config, (str, Path)):
        return load_train_config(config, [])
    if isinstance(config, Mapping):
        from rlvr._config_tree import _from_python
        from rlvr.config import build_config, to_dict
        from rlvr.presets import preset_tree

        cfg = build_config(TrainConfig, _from_python(to_dict(dict(config)), "config"), presets=preset_tree)
        if cfg.logging.run_dir is None:
            cfg.logging.run_dir = "runs/train"
        return cfg
    raise InputError(f"config: expected a TrainConfig, a dict, a YAML path or None, got {type(config).__name__}")


def _rows(data: Any, what: str, columns: Mapping[str, str] | None) -> list[Sample]:
    if hasattr(data, "to_list") and hasattr(data, "column_names"):  # a datasets.Dataset
        data = data.to_list()
    if not isinstance(data, Sequence) or isinstance(data, (str, bytes)):
        raise InputError(f"{what}: expected a datasets.Dataset or a list of dicts, got {type(data).__name__}")
    if data and isinstance(data[0], Sample):
        return list(data)
    bad = next((i for i, r in enumerate(data) if not isinstance(r, Mapping)), None)
    if bad is not None:
        raise InputError(f"{what}[{bad}]: expected a dict with 'prompt' and 'answer', got {type(data[bad]).__name__}")
    if not data:
        raise InputError(f"{what}: no rows")
    return rows_to_samples(list(data), lambda i: f"{what}[{i}]", columns)


def build_reward(reward_funcs: Sequence[Any], weights: Sequence[float] | None = None, *,
                 check_pickle: bool = True) -> Any:
    """`combine(...)` of `reward_funcs` (names, file.py:name references, or plain callables)."""
    from rlvr.plugins import FunctionVerifier
    from rlvr.verifiers.base import VerifierError, combine

    if isinstance(reward_funcs, (str, bytes)) or callable(reward_funcs):
        reward_funcs = [reward_funcs]
    if not reward_funcs:
        raise InputError("reward_funcs: give at least one verifier name or reward function")
    weights = [1.0] * len(reward_funcs) if weights is None else list(weights)
    if len(weights) != len(reward_funcs):
        raise InputError(f"reward_weights: {len(weights)} weights for {len(reward_funcs)} reward functions")
    specs: dict[str, Any] = {}
    for i, fn in enumerate(reward_funcs):
        if isinstance(fn, str):
            key, spec = fn, fn
        elif callable(fn):
            spec = fn if isinstance(fn, FunctionVerifier) else FunctionVerifier(fn)
            key = spec.name if spec.name not in specs and spec.name.isidentifier() else f"reward_{i}"
            if check_pickle:
                try:
                    pickle.dumps(spec)
                except Exception as e:  # noqa: BLE001
                    raise InputError(f"reward_funcs[{i}] ({spec.name}) cannot be sent to the scoring worker "
                                     f"processes ({type(e).__name__}: {e}); define it at module level, "
                                     "install cloudpickle, or set scoring.workers=0") from None
        else:
            raise InputError(f"reward_funcs[{i}]: expected a verifier name or a callable, got {type(fn).__name__}")
        if key in specs:
            raise InputError(f"reward_funcs[{i}]: {key!r} is given twice")
        specs[key] = spec
    try:
        return combine(dict(zip(specs, weights)), specs)
    except VerifierError as e:
        raise InputError(f"reward_funcs: {e}") from None


class GRPOTrainer:
    """GRPO-family RL on a model, with reward functions and a dataset given in Python (see module doc)."""

    def __init__(self, model: Any = None, reward_funcs: Sequence[Any] | None = None, train_dataset: Any = None,
                 config: Any = None, *, eval_dataset: Any = None, reward_weights: Sequence[float] | None = None,
                 template: str | Callable[[str, Any], str] | None = None, columns: Mapping[str, str] | None = None,
                 processing_class: Any = None, tools: Sequence[Any] | None = None, env: Any = None):
        self.cfg = resolve_config(config)
        self._model_obj = None
        if isinstance(model, (str, Path)):
            self.cfg.model.path = str(model)
        elif model is not None:  # a transformers model: saved under the run directory at train()
            if processing_class is None:
                raise InputError("model: a model object needs its tokenizer too (processing_class=...)")
            self._model_obj = (model, processing_class)
        self.task = None
        if train_dataset is not None:
            tname = template if isinstance(template, str) else "none"
            self.task = InMemoryTask(template=tname, template_fn=template if callable(template) else None,
                                     train=_rows(train_dataset, "train_dataset", columns),
                                     test=_rows(eval_dataset, "eval_dataset", columns) if eval_dataset is not None else [])
            fn_name = f"{getattr(template, '__module__', '?')}:{getattr(template, '__qualname__', '?')}"
            self.cfg.task.name, self.cfg.task.options = "python", {"template": fn_name if callable(template) else tname}
            self.cfg.task.verifiers = None  # the resolved config says what ran: data and rewards from Python
            if eval_dataset is None and self.cfg.logging.eval_every:
                print("rlvr: no eval_dataset: held-out evaluation is off (logging.eval_every=0)", file=sys.stderr)
                self.cfg.logging.eval_every = 0
        elif eval_dataset is not None or template is not None:
            raise InputError("eval_dataset and template go with train_dataset (else the config's task is used)")
        workers = self.cfg.scoring.workers
        self.verifier = build_reward(reward_funcs, reward_weights, check_pickle=workers > 0) if reward_funcs else None
        if self.verifier is None and self.task is not None:
            raise InputError("reward_funcs: a train_dataset needs reward functions (names or callables)")
        self.summary: dict[str, Any] | None = None
        self._own_tools: list[Any] = []  # FunctionTools made here from functions: closed after train()
        if tools is not None or env is not None:
            self.task = self._with_episodes(tools, env)

    def _with_episodes(self, tools: Sequence[Any] | None, env: Any) -> Any:
        """The task, bringing the environment that `tools`/`env` describe (its `environment()`)."""
        from rlvr.rollout.episodes import ToolEnvironment
        from rlvr.rollout.trajectory import Environment
        from rlvr.tools.base import Tool
        from rlvr.tools.function import FunctionTool

        e = self.cfg.env
        if isinstance(env, str):
            if e.environment is not None and e.environment != env:
                raise InputError(f"env={env!r}: the config names another environment ({e.environment!r})")
            e.environment, env = env, None
        elif env is not None:
            if not isinstance(env, Environment):
                raise InputError(f"env: expected an rlvr.rollout.trajectory.Environment (or 'file.py:Class'), "
                                 f"got {type(env).__name__}")
            if e.environment is not None:
                raise InputError(f"env: an Environment object and the config's env.environment={e.environment!r} "
                                 "both name the environment; give one")
        objects: list[Any] = []
        if isinstance(tools, (str, bytes)) or (tools is not None and not isinstance(tools, Sequence)):
            raise InputError(f"tools: expected a list of functions, Tool objects or names, got {type(tools).__name__}")
        for i, t in enumerate(tools or []):
            if isinstance(t, str):
                if t not in e.tools:
                    e.tools.append(t)  # checked by preflight like a YAML entry
            elif isinstance(t, Tool):
                objects.append(t)
            elif callable(t):
                try:
                    tool = FunctionTool(t)
                except TypeError as err:
                    raise InputError(f"tools[{i}]: {err}") from None
                self._own_tools.append(tool)
                objects.append(tool)
            else:
                raise InputError(f"tools[{i}]: {t!r} is not a function, a Tool or a tool name")
        names = [getattr(t, "name", None) for t in objects] + list(e.tools)
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InputError(f"tools: two tools named {twice[0]!r}")
        if env is None and not objects:
            return self.task  # names only: the config's env section says it all
        if env is None and e.environment is None:
            env = ToolEnvironment((*e.tools, *objects), None if e.formats is None else tuple(e.formats), **e.options)
        elif env is None:
            raise InputError("tools: function and Tool objects go with env=None or an Environment object; "
                             f"for env.environment={e.environment!r} list them in its `tools`")
        elif objects:  # a copy: the caller's object is not changed (and can be given again)
            env = copy.copy(env)
            env.tools = (*tuple(env.tools), *objects)
        task = self.task if self.task is not None else _config_task(self.cfg)
        return _WithEnvironment(task, env)

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.logging.run_dir)

    def check(self) -> None:
        """Every check that needs no model: names, user code, splits, model path (ConfigError)."""
        from rlvr.preflight import check_train_config

        check_train_config(self.cfg, model=self._model_obj is None, task=self.task, verifier=self.verifier)

    def train(self, *, resume: bool = False, overwrite: bool = False, quiet: bool = False) -> dict[str, Any]:
        """Check, then train (or resume); returns the summary (also written to RUN_DIR/summary.json)."""
        import os

        from rlvr.config import dump_yaml, print_config, save_resolved

        self.check()
        main = os.environ.get("RANK", "0") == "0"
        run_dir = self.run_dir
        _prepare_run_dir(run_dir, resume=resume, overwrite=overwrite, main=main)
        if self._model_obj is not None and main:
            start = run_dir / "start-model"
            if not (start / "config.json").exists():
                self._model_obj[0].save_pretrained(start)
                self._model_obj[1].save_pretrained(start)
            self.cfg.model.path = str(start)
        if main:
            if not quiet:
                print_config(self.cfg)
            run_dir.mkdir(parents=True, exist_ok=True)
            save_resolved(self.cfg, run_dir)
        from rlvr.trainers.grpo import train

        try:
            with _script_not_rerun(self.verifier):
                summary = train(self.cfg, resume=resume, config_yaml=dump_yaml(self.cfg), task=self.task,
                                verifier=self.verifier)
        finally:
            for tool in self._own_tools:  # their worker processes
                tool.close()
        if main:
            (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
        self.summary = summary
        return summary

    def save(self, path: str | Path) -> Path:
        """Copy the trained model (RUN_DIR/final: weights, tokenizer, generation and training config) to `path`."""
        final = self.run_dir / "final"
        if not (final / "config.json").exists():
            raise InputError(f"{final}: no final model yet; call train() first")
        out = Path(path)
        if out.resolve() != final.resolve():
            shutil.copytree(final, out, dirs_exist_ok=True)
        return out


def _config_task(cfg: Any) -> Any:
    from rlvr.tasks import get_task

    try:
        return get_task(cfg.task.name, **cfg.task.options)
    except (TypeError, ValueError) as e:
        raise InputError(f"task {cfg.task.name!r}: {e}") from None


class _WithEnvironment:
    """A task whose `environment()` is the given one; everything else is the wrapped task's."""

    def __init__(self, task: Any, env: Any):
        self._task, self._env = task, env

    def environment(self) -> Any:
        return self._env

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["_task"], name)


@contextlib.contextmanager
def _script_not_rerun(verifier: Any) -> Iterator[None]:
    """Let a script call ``trainer.train()`` at top level, without ``if __name__ == "__main__":``.

    Worker processes (scoring, vLLM) started by forkserver/spawn re-run the main script to rebuild
    it, which would start a second training run in each worker. Reward functions given in Python
    travel by value (cloudpickle), so the workers do not need the script: while training, the
    script's path is hidden from multiprocessing, as it is for a notebook. Not done when a verifier
    is named by a registration that only the script makes (the workers then need the script).
    """
    from rlvr.verifiers.base import _REGISTRY

    main = sys.modules.get("__main__")
    names = [spec for _, spec in getattr(verifier, "components", {}).values() if isinstance(spec, str)]
    own = any(getattr(_REGISTRY.get(n), "__module__", None) == "__main__" for n in names)
    if own or main is None or getattr(main, "__spec__", None) is not None or not getattr(main, "__file__", None):
        yield
        return
    path = main.__file__
    del main.__file__
    try:
        yield
    finally:
        main.__file__ = path


def _prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool, main: bool) -> None:
    """Refuse to mix two runs in one directory; --overwrite removes only what a run writes."""
    previous = [run_dir / n for n in ("checkpoints", "metrics.jsonl", "rollouts.jsonl", "alarms.jsonl", "summary.json")]
    if resume or not any(p.exists() for p in previous):
        return
    if not overwrite:
        raise InputError(f"{run_dir} already holds a run; pass --resume to continue it, --overwrite to start "
                         f"over there, or choose another directory with logging.run_dir=...")
    if main:
        print(f"rlvr train: --overwrite: replacing the run in {run_dir}", file=sys.stderr)
        for p in previous + [run_dir / "tb", run_dir / "report", run_dir / "final"]:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
