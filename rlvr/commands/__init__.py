"""Subcommands of the ``rlvr`` command line, one module each, imported only when run.

The contract (see `rlvr.cli.COMMANDS`, the table that lists them)::

    # rlvr/commands/<name>.py
    '''One line that becomes the command's --help description.'''

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--input", required=True, help="...")

    def run(args: argparse.Namespace) -> int:
        ...            # do the work; return the exit code
        return 0

Rules:
- Never call ``parse_args`` (only `rlvr.cli` does). Import heavy packages (torch, vllm) inside
  `run`, not at module top, so ``rlvr COMMAND --help`` stays fast.
- Raise `rlvr.io.InputError` (or a subclass: `rlvr.config.ConfigError`, `rlvr.io.JsonlError`)
  for bad input, with a message naming the file, the line and the field; the CLI prints it as
  one line and exits with code 2. Any other exception is treated as a bug (traceback, exit 1).
- Commands that take a config use ``rlvr.config.add_config_arguments(parser)`` and
  ``rlvr.config.load_config_from_args(ConfigClass, args)``, then call ``print_config`` and
  ``save_resolved`` into their output directory.
- Exit codes: 0 success (including rows that fail verification: that is data), 1 a bug or a
  failed run, 2 bad usage or bad input, 130 interrupted.

Nothing here is imported by ``import rlvr``.
"""

import argparse
from collections.abc import Callable
from typing import Any


def add_stage_arguments(parser: argparse.ArgumentParser, flag: str, key: str, help: str) -> None:
    """The arguments every pipeline stage (sft, rm, dpo) takes: the config file and dotted overrides,
    one switch `flag` that sets ``KEY=true``, ``--resume`` and ``--print-config``."""
    from rlvr.config import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument(flag, action="store_true", help=f"{help} ({key}=true)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in logging.run_dir")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def load_stage_config(args: argparse.Namespace, flag_dest: str, key: str, loader: Callable[[Any, list[str]], Any]) -> Any:
    """The resolved config of a pipeline stage, or None after printing it for ``--print-config``."""
    from rlvr.config import print_config, split_config_args

    path, overrides = split_config_args(args.config or [])
    overrides += [f"{key}=true"] * bool(getattr(args, flag_dest)) + ["resume=true"] * bool(args.resume)
    cfg = loader(path, overrides)
    if args.print_config:
        print_config(cfg)
        return None
    return cfg
