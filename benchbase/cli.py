"""The ``benchbase`` command. Exit codes: 0 success, 1 some run did not finish (or an
unexpected error), 2 bad input (suite, arguments, unknown plugin), 130 Ctrl-C, 141
stdout's reader left (``| head``).

Each sub-command is a module of benchbase.commands with the same interface (``NAME``,
``HELP``, ``DESCRIPTION``, ``add_arguments(parser)``, ``run(args) -> int``); this module
only builds the parser from them and maps errors to exit codes.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from benchbase.commands import command_modules
from benchbase.errors import BenchbaseInputError


class _Parser(argparse.ArgumentParser):
    """Bad arguments get one line (and exit 2), like every other bad input; --help shows usage."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from benchbase import __version__

    parser = _Parser(
        prog="benchbase",
        description="Comparative benchmarks for deep generative models: identical budgets, shared "
                    "memorization/novelty/fidelity metrics, leaderboards.")
    parser.add_argument("--version", action="version", version=f"benchbase {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in command_modules():
        epilog = getattr(command, "EPILOG", None)
        p = sub.add_parser(command.NAME, help=command.HELP, description=command.DESCRIPTION, epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter if epilog else argparse.HelpFormatter)
        command.add_arguments(p)
        p.set_defaults(func=command.run)
    return parser


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may come after options (`run s.yaml --results r a=1`): argparse would
    # call them unrecognized, so leftover words that are not options go to the overrides,
    # whose parser says what is wrong with one that lacks '='.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and not any(e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    warnings.formatwarning = _format_warning
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, so a reader that left (`| head`) is met below, not at exit
        return code
    except BrokenPipeError:
        return _reader_gone()
    except BenchbaseInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished evaluations are stored; run the same command again to resume",
              file=sys.stderr)
        return 130


def _reader_gone() -> int:
    """stdout's reader closed the pipe (``benchbase plugins | head -1``): no traceback. Python's
    documented way: point stdout at devnull, so the flush at exit cannot fail again; exit
    141 (128 + SIGPIPE), what a shell reports for a command a closed pipe stopped."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # a stdout without a file descriptor (captured in tests)
        pass
    return 141


if __name__ == "__main__":
    sys.exit(main())
