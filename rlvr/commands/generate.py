"""`rlvr generate`: sample a model (a trained one, a checkpoint, a LoRA adapter) from the command line.

    rlvr generate --model runs/demo/final --prompt "What is 12 + 30?"
    rlvr generate --model runs/demo --prompt "What is 7 + 8?" --n 4 --temperature 1.0
    echo "What is 3 + 4?" | rlvr generate --model runs/lora/checkpoints/step-000050
    rlvr generate --model Qwen/Qwen2.5-0.5B-Instruct --template chat --prompt "Hi" --max-new-tokens 64

--model takes what ``rlvr eval`` takes: a model directory or hub name, ``demo``, a run directory
(its ``final/``), a checkpoint, or a LoRA adapter (merged into its base). With no ``--prompt``
each line of standard input is a prompt. A model written by ``rlvr train`` carries its training
config (``config.yaml``): unless told otherwise the prompt template, the stop strings and the
token budget are the ones it was trained with, so the model sees what it learned on. Prints each
completion (``--json``: one JSON object per line with the prompt, the rendered prompt and the
completions).

Multi-turn episodes with tools: a model trained with tools (an ``env:`` section, or a task that
brings its own environment, as the tool demo's ``products``) plays episodes here too, with the
same tools, call formats and limits: its calls run (model-written code in the sandbox) and their
output is shown between the model's turns. ``--env KEY=VALUE`` / ``--env FILE.yaml`` give any
model tools, ``--no-env`` plays one turn (the options of ``rlvr eval``). ``--json`` rows then add
each episode's turns.

What it does not do: score completions (``rlvr eval`` does), or serve requests (``rlvr serve``).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="a model directory, hub name, 'demo', run directory, "
                        "checkpoint or LoRA adapter directory")
    parser.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable); default: stdin lines")
    parser.add_argument("--template", default=None, help="prompt template (default: the one the model was "
                        "trained with, from its config.yaml, else 'none'); 'none' sends the text as is")
    parser.add_argument("--n", type=int, default=1, help="completions per prompt")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (the default)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--max-new-tokens", type=int, default=None,
                        help="default: the model's generation_config.max_new_tokens, else 256")
    parser.add_argument("--stop", action="append", default=None, help="stop string (repeatable; default: the "
                        "training run's rollout.stop)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON object per prompt on stdout")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE | FILE.py",
                        help="import a module or .py file first (a template, a tool or an environment of your own)")
    from rlvr.commands.eval import add_env_arguments

    add_env_arguments(parser)


def _training_config(model: str) -> dict[str, Any]:
    """The resolved training config saved beside the model (final/config.yaml, a checkpoint's), or {}."""
    import yaml

    from rlvr.checkpoint import model_dir

    if model == "demo":
        return {}
    where = model_dir(model)
    for candidate in (where / "config.yaml", where.parent / "config.yaml"):
        if candidate.is_file():
            data = yaml.safe_load(candidate.read_text())
            return data if isinstance(data, dict) and "rollout" in data else {}
    return {}


def _template(args: argparse.Namespace, trained: dict[str, Any]) -> str:
    """--template, else the template the training config names (task.options.template, else the
    task's own), else "none"; a recorded one that no longer loads falls back to "none" with a note."""
    if args.template is not None:
        return args.template
    from rlvr.io import InputError
    from rlvr.tasks import get_task
    from rlvr.templates import get_template

    task = trained.get("task") or {}
    name = (task.get("options") or {}).get("template")
    try:  # not _trained_task: a task that no longer loads is said here, not skipped
        if name is None and task:
            name = getattr(get_task(task.get("name", ""), **(task.get("options") or {})), "template", None)
        if isinstance(name, str):
            get_template(name)
            return name
    except (InputError, TypeError, ValueError) as e:
        print(f"rlvr generate: the training template cannot be used here ({e}); using 'none' "
              "(pass --template)", file=sys.stderr)
    return "none"


def _trained_task(trained: dict[str, Any]) -> Any:
    """The task the model was trained on (for its own environment), or None."""
    task = trained.get("task") or {}
    if not task.get("name"):
        return None
    from rlvr.io import InputError
    from rlvr.tasks import get_task

    try:
        return get_task(task["name"], **(task.get("options") or {}))
    except (InputError, TypeError, ValueError):
        return None


def _environment(args: argparse.Namespace, trained: dict[str, Any]) -> tuple[Any, Any, str]:
    """(env: section, environment, where it came from); the environment is None for single turns.
    A bad --env or training env: section fails here, before the model loads."""
    from rlvr.commands.eval import env_config
    from rlvr.rollout.environments import build_environment

    ecfg, source = env_config(args)
    if ecfg is None:
        return None, None, source
    task = _trained_task(trained)
    env = build_environment(ecfg, task)
    if source == "the task" and env is not None:
        source = f"task {trained['task']['name']!r}"
    return ecfg, env, source


def run(args: argparse.Namespace) -> int:
    from rlvr.checkpoint import load_trained
    from rlvr.io import InputError
    from rlvr.plugins import import_targets
    from rlvr.samplers import HFSampler, SamplingParams
    from rlvr.templates import get_template

    import_targets(args.imports)
    if args.n < 1:
        raise InputError(f"--n {args.n}: must be >= 1")
    trained = _training_config(args.model)
    template = get_template(_template(args, trained))  # an unknown name fails before the model loads
    ecfg, env, source = _environment(args, trained)
    questions = args.prompt or [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not questions:
        raise InputError("no prompt: give --prompt TEXT or prompts on standard input, one per line")
    model, tokenizer = load_trained(args.model)
    model.eval()
    rollout = trained.get("rollout") or {}
    budget = args.max_new_tokens or getattr(model.generation_config, "max_new_tokens", None) or 256
    stop = tuple(args.stop if args.stop is not None else rollout.get("stop") or ())
    if trained and args.template is None:
        print(f"rlvr generate: template {template.name!r}, stop {list(stop)}, max_new_tokens {budget} "
              "(from the training config)", file=sys.stderr)
    params = SamplingParams(temperature=args.temperature, top_p=args.top_p, max_new_tokens=budget, stop=stop,
                            seed=args.seed)
    prompts = [template(q, tokenizer) for q in questions]
    episodes = None
    if env is not None:
        from rlvr.commands.eval import env_line
        from rlvr.rollout.environments import build_episodes

        print(f"rlvr generate: {env_line(env, source)}", file=sys.stderr)
        episodes = build_episodes(ecfg, _trained_task(trained), tokenizer, env=env)
    trajs: list[list[Any]] = [[] for _ in prompts]
    with HFSampler(model, tokenizer) as sampler:
        if episodes is None:
            groups = sampler.generate(prompts, n=args.n, params=params)
        else:
            from rlvr.rollout.episodes import episode_groups
            from rlvr.verifiers import Sample

            with episodes:
                groups, trajs = episode_groups(sampler, episodes, prompts, [Sample(prompt=q) for q in questions],
                                               args.n, params)
    for q, p, g, ts in zip(questions, prompts, groups, trajs):
        texts = [c.text for c in g.completions]  # an episode's: model turns and tool output in order
        if args.json:
            row = {"prompt": q, "rendered": p, "completions": texts}
            if ts:
                row["episodes"] = [t.to_dict() for t in ts]
            print(json.dumps(row))
        else:
            for k, t in enumerate(texts):
                head = f"[{k + 1}/{len(texts)}] " if len(texts) > 1 else ""
                print(f"{head}{q}{t}" if template.name == "none" else f"{head}{t}")
    return 0
