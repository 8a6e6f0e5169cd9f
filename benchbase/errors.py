"""Errors the CLI maps to exit codes.

Bad input (a suite, an argument, an unknown plugin) is a ``BenchbaseInputError`` and
exits 2 with one message; anything else that escapes is a bug and exits 1.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


def suggest(word: str, choices: Iterable[str]) -> str:
    """' Did you mean X?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), sorted(set(map(str, choices))), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def list_choices(choices: Iterable[str], limit: int = 40) -> str:
    items = sorted(set(map(str, choices)))
    if not items:
        return "(none)"
    more = f", ... ({len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


class BenchbaseInputError(Exception):
    """Bad user input: exit code 2, nothing written."""


class ConfigError(BenchbaseInputError):
    """One or more problems in a suite file, each located by its key path: one line
    for one problem, a heading and one line per problem for several."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        problems = list(dict.fromkeys(problems))  # one per (key, message): runs repeat them
        self.source = source
        self.problems = problems
        lines = [f"{source}: {path}: {_one_line(msg)}" if path else f"{source}: {_one_line(msg)}"
                 for path, msg in problems]
        if len(lines) == 1:
            super().__init__(f"invalid suite: {lines[0]}")
        else:
            super().__init__(f"invalid suite ({len(problems)} problems)\n  " + "\n  ".join(lines))


def _one_line(message: str) -> str:
    """Messages from libraries may span lines; a problem is reported on one."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


class UnknownPluginError(BenchbaseInputError):
    """A suite or command names a plugin that is not registered (or is ambiguous)."""

    def __init__(self, kind: str, name: str, choices: Iterable[str] = (), message: str | None = None):
        choices = list(choices)
        self.kind, self.name, self.choices = kind, name, choices
        super().__init__(message or (
            f"unknown {kind} '{name}'.{suggest(name, choices)} Valid {kind}s: {list_choices(choices)}"
        ))


class PluginError(Exception):
    """A plugin broke its contract (bad registration, failed import in strict mode)."""


class PluginLoadError(PluginError, BenchbaseInputError):
    """With BENCHBASE_STRICT_PLUGINS set, a third-party plugin failed to load: the
    environment is not what the user asked for, so stop with one line (exit 2)."""


class MissingDataError(BenchbaseInputError):
    """A dataset (or weights file) is not on disk; the message says where to put what."""

    def located(self, source: str, path: str) -> MissingDataError:
        """The same error led by the suite file and the key of the entry that needs the files
        (a suite may name several datasets), its lines on where to put which files kept."""
        return MissingDataError(f"{source}: {path}: {self}")
