"""The ``rlvr`` command line: one table of subcommands, each in its own lazily imported module.

    rlvr --help                 # lists the commands without importing any of them (fast, no torch)
    rlvr --version
    rlvr verify --verifier math --input rows.jsonl --output scored.jsonl

Adding a command: write ``rlvr/commands/<name>.py`` exposing ``add_arguments(parser)`` and
``run(args) -> int`` (see `rlvr.commands`), and give it a line in `COMMANDS`. Only the module of
the command being run is imported. This is the only place that parses arguments: commands that
take a config use `rlvr.config.add_config_arguments`-style positional tokens
(``rlvr train run.yaml algo.clip_high=0.28``) and `rlvr.config.load_config`.

Errors: bad input (`rlvr.io.InputError`, which covers config and JSONL errors, unknown verifiers,
missing files) prints one line ``rlvr <command>: error: ...`` and exits with code 2. Any other
exception is a bug and keeps its traceback (exit code 1). ``RLVR_DEBUG=1`` shows the traceback of
input errors too.

What this module does not do: the work of any command, or configure logging beyond a basic
stderr handler.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import importlib.util
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from rlvr import __version__

__all__ = ["COMMANDS", "build_parser", "main"]

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "verify": ("rlvr.commands.verify", "score a JSONL file of completions with a verifier"),
    "train": ("rlvr.commands.train", "RL from a YAML config: GRPO, Dr.GRPO, DAPO, RLOO, REINFORCE++, GSPO, PPO (no config: the demo)"),
    "eval": ("rlvr.commands.eval", "sample a model on a task and report pass@k"),
    "generate": ("rlvr.commands.generate", "sample a model (a trained run, a checkpoint, a LoRA adapter) on prompts"),
    "serve": ("rlvr.commands.serve", "run a vLLM engine behind HTTP (with weight updates) for the trainer"),
    "presets": ("rlvr.commands.presets", "list the algorithm presets, or show one's exact objective"),
    "sandbox": ("rlvr.commands.sandbox", "build the code sandbox image or check the sandbox (doctor)"),
    "report": ("rlvr.commands.report", "write PNG plots and a summary of a run directory (alarms included)"),
    "sft": ("rlvr.commands.sft", "supervised fine-tuning on response tokens (chat/prompt-completion, packing, rejection sampling)"),
    "rm": ("rlvr.commands.rm", "train a Bradley-Terry reward model (margin, normalisation, ensembles)"),
    "dpo": ("rlvr.commands.dpo", "preference optimisation: DPO, IPO, cDPO, SimPO, ORPO, KTO"),
    "pipeline": ("rlvr.commands.pipeline", "chain stages from one YAML file: SFT -> RM -> PPO, SFT -> DPO, RS-SFT -> GRPO"),
    "cai": ("rlvr.commands.cai", "Constitutional AI: critique and revise responses with a judge model into SFT rows and DPO pairs"),
    "convert": ("rlvr.commands.convert", "turn a GGUF file into a save_pretrained model directory (float32)"),
}


def _available(name: str) -> bool:
    """True when the command's module exists (finding it does not import it)."""
    try:
        return importlib.util.find_spec(COMMANDS[name][0]) is not None
    except ModuleNotFoundError:
        return False


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; only `command`'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="rlvr",
        description="rlvr: reinforcement learning from verifiable rewards for reasoning LMs.",
        epilog="Run 'rlvr COMMAND --help' for a command's options. Docs: docs/cli.md",
    )
    parser.add_argument("--version", action="version", version=f"rlvr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    for name, (module, help_text) in COMMANDS.items():
        if name != command and not _available(name):
            continue
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            mod = importlib.import_module(module)
            if mod.__doc__:
                sp.description = mod.__doc__.strip().split("\n\n")[0]
            sp.formatter_class = argparse.RawDescriptionHelpFormatter
            mod.add_arguments(sp)
            sp.set_defaults(_run=mod.run)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str], command: str | None) -> argparse.Namespace:
    """Parse `argv`, letting a command's options stand between its positional tokens
    (``rlvr train run.yaml --preset ppo steps=40``): a plain argparse stops collecting ``nargs='*'``
    positionals at the first option. Commands with sub-actions (``rlvr sandbox build``) and options
    before the command name (``rlvr --version``) take the plain path."""
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    sp = sub.choices.get(command) if sub is not None and command is not None else None
    nested = sp is not None and any(isinstance(a, argparse._SubParsersAction) for a in sp._actions)
    if sp is None or nested or argv.index(command) != 0:
        return parser.parse_args(argv)
    args = sp.parse_intermixed_args(argv[1:])
    args.command = command
    return args


def _find_command(argv: Sequence[str]) -> str | None:
    """The first token that is not an option: the command name (or None)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _is_input_error(exc: BaseException) -> bool:
    from rlvr.io import InputError

    if isinstance(exc, (InputError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return True
    verr = sys.modules.get("rlvr.verifiers.base")  # imported by any command that uses verifiers
    return verr is not None and isinstance(exc, verr.VerifierError)


def _debug() -> bool:
    return os.environ.get("RLVR_DEBUG", "").lower() not in {"", "0", "false", "no"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``rlvr`` command line; returns the exit code (the console script exits with it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _find_command(argv)
    if command is not None and command not in COMMANDS:
        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(f"rlvr: error: unknown command {command!r}{hint} (commands: {', '.join(COMMANDS)})",
              file=sys.stderr)
        return 2
    if command is not None and not _available(command):
        print(f"rlvr: error: command {command!r} is planned but not available in this version "
              f"({COMMANDS[command][0]} is missing)", file=sys.stderr)
        return 2
    try:
        parser = build_parser(command)
        args = _parse(parser, argv, command)
    except SystemExit as e:  # --help, --version, or an argparse usage error (already printed)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    if command is None:
        parser.print_help(sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO if not _debug() else logging.DEBUG,
                            format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print(f"rlvr {command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `rlvr presets show ppo | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit flush
        return 141
    except Exception as e:
        if not _is_input_error(e):
            raise  # a bug: keep the traceback
        if _debug():
            traceback.print_exc()
        msg = str(e) if not isinstance(e, OSError) or not e.filename else f"{e.filename}: {e.strerror}"
        print(f"rlvr {command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
