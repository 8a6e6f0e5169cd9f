"""The ``benchbase`` sub-commands: one module each, all with the same interface.

A command module defines::

    NAME = "leaderboard"              # the sub-command
    HELP = "one line for benchbase --help"
    DESCRIPTION = "the paragraph of benchbase NAME --help"

    def add_arguments(parser) -> None: ...
    def run(args) -> int: ...         # the exit status (BenchbaseInputError exits 2)

    EPILOG = "..."                    # optional: examples after the options, shown verbatim

and is listed in :data:`COMMANDS` (the order of ``benchbase --help``). Options shared
by several commands (suite files, results directories, leaderboard slices) live in
:mod:`benchbase.commands.options`. At import time a command module imports only the
standard library and ``options``: everything heavy is imported inside ``run``, so
``benchbase --help`` does not load PyTorch, JAX or matplotlib.
"""
from __future__ import annotations

import importlib
from types import ModuleType

COMMANDS = ("plugins", "validate", "run", "leaderboard", "score", "report", "plot", "dynamics", "sensitivity",
            "chance", "docs", "new")


def command_modules() -> list[ModuleType]:
    return [importlib.import_module(f"benchbase.commands.{name}") for name in COMMANDS]
