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
