"""``benchbase run``: validate, then train and evaluate what is left of a suite."""
from __future__ import annotations

import shlex

from benchbase.commands.options import add_results_dir, add_suite_arguments

NAME = "run"
HELP = "run a suite (resumes: done runs are skipped)"
DESCRIPTION = ("Validate, then train and evaluate every run of a suite that is not done yet, writing "
               "results to the store.")


def add_arguments(p) -> None:
    add_suite_arguments(p)
    add_results_dir(p)
    p.add_argument("--fresh", action="store_true", help="redo runs that are already done, and drop from the suite's tables the runs "
                        "that an earlier version of the suite planned")
    p.add_argument("--executor", default=None,
                   help="executor plugin: local, process, ray (default: the suite's, else local); "
                        "configure it with executor.config.<key>=value overrides")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def run(args) -> int:
    from benchbase.config import load_suite
    from benchbase.driver import check_devices, run_suite
    from benchbase.plugins import build_registry
    from benchbase.progress import Reporter
    from benchbase.store import Store

    registry = build_registry()
    suite = load_suite(args.suite, args.overrides, registry=registry, device=args.device,
                       executor=args.executor, trackers=args.tracker)
    check_devices(suite, registry)
    reporter = Reporter(quiet=args.quiet)
    with Store(args.results) as store:
        result = run_suite(suite, store, registry, reporter=reporter, fresh=args.fresh)
    counts = result.counts()
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "nothing to do"
    skipped = f"; {result.skipped} already done" if result.skipped else ""
    print(f"suite '{suite.name}': {summary}{skipped}. Results: {args.results}/")
    for title, reason in result.failures:
        print(f"  not finished: {title}: {reason.splitlines()[-1] if reason else ''}")
    if not result.failures:
        print(f"next: benchbase leaderboard --results {shlex.quote(str(args.results))} --suite {suite.name}")
    return 0 if result.ok else 1
