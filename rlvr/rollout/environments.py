"""From an ``env:`` section to the episodes a run plays: the environment and the tool runner.

One construction, shared by ``rlvr train`` (`rlvr.trainers.grpo`), ``rlvr eval`` and
`rlvr.evaluation.evaluate_task`, so that a model is evaluated with exactly the tools, call
formats and limits it was trained with:

- `build_environment(ecfg, task)`: the `rlvr.rollout.trajectory.Environment`, or None for
  single-turn completions. ``env.environment`` (a class by ``file.py:Class`` or
  ``module:Class``, built with ``env.options``) wins; else the task's own
  (``Task.environment()``); else, with ``env.tools``, the built-in `ToolEnvironment`.
  ``env.max_turns``/``env.max_tokens`` override the environment's limits.
- `build_episodes(ecfg, task, tokenizer)`: an `rlvr.rollout.episodes.EpisodeSetup` (the
  environment, one `rlvr.tools.runner.ToolRunner` for ``env.tools`` and the environment's own
  ``tools``, the tokenizer), or None. Close it (``setup.close()``, or ``with setup:``) when done:
  that stops the runner's sandbox pool and workers.

`ecfg` is an `rlvr.trainers.config.EnvConfig` (anything with its fields). What this module does
not do: check the section (`rlvr.preflight.check_env` does, before any model loads), play
episodes (`rlvr.rollout.episodes`) or refuse PPO (the trainer does).

Try it::

    >>> from rlvr.trainers.config import EnvConfig
    >>> env = build_environment(EnvConfig(tools=["calculator"], formats=["hermes"], max_turns=2), task=None)
    >>> type(env).__name__, env.max_turns, env.stop
    ('ToolEnvironment', 2, ('</tool_call>',))
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_environment", "build_episodes"]


def build_environment(ecfg: Any, task: Any) -> Any:
    """The environment the ``env:`` section and the task ask for (None: single-turn completions)."""
    if ecfg.environment is not None:
        from rlvr.plugins import load_object

        env = load_object(ecfg.environment)(**ecfg.options)
    else:
        own = getattr(task, "environment", None)  # a duck-typed user task may lack the method
        env = own() if callable(own) else None
        if env is None and ecfg.tools:
            from rlvr.rollout.episodes import ToolEnvironment

            env = ToolEnvironment(tuple(ecfg.tools), _formats(ecfg.formats), **ecfg.options)
    if env is not None:
        env.max_turns = ecfg.max_turns if ecfg.max_turns is not None else env.max_turns
        env.max_tokens = ecfg.max_tokens if ecfg.max_tokens is not None else env.max_tokens
    return env


def build_episodes(ecfg: Any, task: Any, tokenizer: Any, env: Any = None) -> Any:
    """An `rlvr.rollout.episodes.EpisodeSetup` when episodes are played (else None); `env`: one
    already built by `build_environment`. The runner serves ``env.tools`` and the environment's
    own ``tools``, with the section's timeout, output cap, workers and sandbox."""
    from rlvr.rollout.episodes import EpisodeSetup

    env = env if env is not None else build_environment(ecfg, task)
    if env is None:
        return None
    specs = [*ecfg.tools, *(t for t in env.tools if t not in ecfg.tools)]  # names, specs or Tools
    runner = None
    if specs:
        from rlvr.tools.runner import ToolRunner

        runner = ToolRunner(specs, timeout_s=ecfg.timeout_s, max_output_chars=ecfg.max_output_chars,
                            workers=ecfg.workers, sandbox=ecfg.sandbox)
        _start_sandboxes(runner)
    return EpisodeSetup(env, runner, tokenizer)


def _start_sandboxes(runner: Any) -> None:
    """Start the python tool's sandbox now, not at the model's first call: `env.sandbox: docker`
    without Docker fails here, and `auto`'s fall-back to LocalSandbox is logged at start-up."""
    from rlvr.tools.builtin import PythonTool

    for tool in runner.tools.values():
        if isinstance(tool, PythonTool):
            try:
                tool.sandbox  # noqa: B018 - starts it
            except Exception as err:
                runner.close()
                raise RuntimeError(f"env.sandbox={tool._spec!r}: the python tool's sandbox did not start: "
                                   f"{type(err).__name__}: {err}") from err


def _formats(formats: Any) -> tuple[str, ...] | None:
    """The config's ``env.formats`` (None: the environment derives them from its tools)."""
    return None if formats is None else tuple(formats)
