"""``benchbase chance``: chance levels for stores written before they were stored."""
from __future__ import annotations

import sys
from pathlib import Path

from benchbase.commands.options import add_results_dir, open_suite_store
from benchbase.paths import DB_NAME

NAME = "chance"
HELP = "measure and store the chance levels that runs stored before them lack"
DESCRIPTION = ("For every finished run whose memorization metrics were stored without their chance level "
               "(results from before chance levels were stored), measure it from the run's data and features "
               "and store it beside every such value, then derive the suite's training dynamics again. Trains "
               "nothing; changes no stored value.")


def add_arguments(p) -> None:
    add_results_dir(p)
    p.add_argument("--suite", help="only this suite (default: every suite in the store)")


def run(args) -> int:
    from benchbase.backfill import backfill_chance
    from benchbase.derived import derive_suite
    from benchbase.errors import BenchbaseInputError
    from benchbase.plugins import build_registry
    from benchbase.store import Store

    registry = build_registry()
    if args.suite:
        store = open_suite_store(args.results, args.suite)
    elif (Path(args.results) / DB_NAME).exists():
        store = Store(args.results, create=False)
    else:
        raise BenchbaseInputError(f"no results in {args.results}/ (run a suite first, or pass --results)")
    with store:
        summary = backfill_chance(store, registry, args.suite, progress=lambda t: print(t, file=sys.stderr))
        for suite in ([args.suite] if args.suite else store.suites()):
            derive_suite(store, suite, registry=registry)
    for why in summary.skipped:
        print(f"note: not brought up to date: {why}", file=sys.stderr)
    print(summary.text())
    return 1 if summary.skipped else 0
