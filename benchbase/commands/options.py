"""Options shared by several commands, defined once: the suite file with its
overrides, results directories (one, or several merged), the leaderboard slice
options of ``leaderboard`` and ``report``, and counts that must not be negative."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchbase.errors import BenchbaseInputError
from benchbase.paths import DB_NAME, default_results_dir


def whole_number(least: int):
    """An argparse type: a whole number >= ``least`` (a negative count would slice from the end)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value
    return parse


def seed_number(text: str) -> int:
    """An argparse type: a seed as a suite's ``seeds`` take it (0 to 2^63-1, what a
    store's SQLite integers hold), so a value scored here can be a run's."""
    value = whole_number(0)(text)
    if value >= 2 ** 63:
        raise argparse.ArgumentTypeError(f"seeds are whole numbers from 0 to 2^63-1 (got {value})")
    return value


def results_directory(text: str) -> str:
    """An argparse type: a results directory; an empty one would be the current directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty, which would be the current directory; name a results "
                                         "directory")
    return text


def add_suite_arguments(p: argparse.ArgumentParser) -> None:
    """The suite YAML file, ``key=value`` overrides, ``--device`` and ``--tracker``."""
    p.add_argument("suite", help="suite YAML file")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value",  # a default: argparse calls it optional
                   help="dotlist overrides, e.g. budget.examples=2e5 seeds=[0,1]")
    p.add_argument("--device", choices=None, default=None,
                   help="auto | cpu | cuda | cuda:N | tpu (overrides the suite's device)")
    p.add_argument("--tracker", action="append", default=[], metavar="NAME",
                   help="also mirror the runs to this experiment tracker: tensorboard, mlflow, wandb, ... "
                        "(repeatable; added to the suite's `trackers` with its default config)")


def add_results_dir(p: argparse.ArgumentParser) -> None:
    """``--results DIR``: the one results directory a command writes or reads."""
    p.add_argument("--results", type=results_directory, default=default_results_dir(), metavar="DIR",
                   help="results directory holding benchbase.sqlite (default: %(default)s, "
                        "or $BENCHBASE_RESULTS)")


def add_results_dirs(p: argparse.ArgumentParser) -> None:
    """``--results DIR`` (repeatable: several directories merge into one set)."""
    p.add_argument("--results", action="append", type=results_directory, metavar="DIR",
                   help="results directory holding benchbase.sqlite; repeat to merge directories "
                        f"from several machines (default: {default_results_dir()}, or $BENCHBASE_RESULTS)")


def open_results(directories: list[str] | None):
    """The ResultSet of repeatable ``--results`` values (the default directory when none was given)."""
    from benchbase.resultset import ResultSet

    return ResultSet(list(directories) if directories else [default_results_dir()])


def open_suite_store(results: str, suite: str):
    """The store in ``results`` for reading ``suite``; clear input errors otherwise."""
    from benchbase.errors import BenchbaseInputError, UnknownPluginError
    from benchbase.store import Store

    if not (Path(results) / DB_NAME).exists():
        raise BenchbaseInputError(f"no results in {results}/ (run a suite first, or pass --results)")
    store = Store(results, create=False)
    if suite not in store.suites():
        known = store.suites()
        store.close()
        raise UnknownPluginError("suite", suite, known)
    return store


def output_folder(out: str, option: str = "--out") -> Path:
    """``option`` as a folder to write into: one that is a file, or lies under one, is bad input."""
    path = Path(out)
    blocker = _file_in_the_way(path)
    if blocker is not None:
        raise BenchbaseInputError(f"{option} {out}: {blocker} is a file, not a folder; name a folder "
                                  "(it is created if missing)")
    return path


def output_file(out: str, option: str = "--out") -> Path:
    """``option`` as a file to write: it must not be a folder, nor lie under a file."""
    path = Path(out)
    if path.is_dir():
        raise BenchbaseInputError(f"{option} {out} is a folder; name a file")
    blocker = _file_in_the_way(path.parent)
    if blocker is not None:
        raise BenchbaseInputError(f"{option} {out}: {blocker} is a file, not a folder; name a file in a folder "
                                  "(the folder is created if missing)")
    return path


def _file_in_the_way(folder: Path) -> Path | None:
    """The first of ``folder`` and its parents that exists as something other than a folder."""
    return next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)


def report_conflicts(conflicts: list) -> int:
    """Print a ResultSet's conflicts to stderr; the exit status for a command that published anyway."""
    for c in conflicts:
        print(f"conflict: {c.describe()}", file=sys.stderr)
    if conflicts:
        print(f"{len(conflicts)} conflicting run(s) left out of the tables (status 'conflict'). Keep one "
              "copy, or rerun them in one place.", file=sys.stderr)
    return 1 if conflicts else 0


def add_slice_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that choose which tables and values (shared by leaderboard and report)."""
    from benchbase.leaderboard import AT_RULES

    parser.add_argument("--suite", help="only this suite")
    parser.add_argument("--dataset", help="only this dataset (label or name)")
    parser.add_argument("--metric", action="append",
                        help="only these metrics (repeatable): a name (fd), or one reference of it (fd[test], fd.test)")
    parser.add_argument("--primary", help="column to rank by: a metric as for --metric, or train/loss (default: the "
                                          "suite's, else the first column); a name of no column is refused")
    parser.add_argument("--ref", choices=("train", "test"), help="reference split for metrics that have both")
    parser.add_argument("--at", default="final",
                        help=f"which evaluation of each run: {' | '.join(AT_RULES)} | step=N (default: final); "
                             "memorization onsets follow the suite's dynamics settings (benchbase dynamics)")


def tables_from_args(results, args) -> list:
    """build_tables for parsed ``add_slice_arguments`` options; bad values are input errors."""
    from benchbase.errors import BenchbaseInputError, UnknownPluginError
    from benchbase.leaderboard import build_tables

    if args.suite and args.suite not in results.suites():
        raise UnknownPluginError("suite", args.suite, results.suites())
    try:
        return build_tables(results, suite=args.suite, dataset=args.dataset, metrics=args.metric, at=args.at,
                            primary=args.primary, ref=args.ref)
    except ValueError as exc:
        raise BenchbaseInputError(str(exc)) from None
