"""The ``benchbase`` command. Exit codes: 0 success, 1 some run did not finish (or an
unexpected error), 2 bad input (suite, arguments, unknown plugin).

Each sub-command is a module with ``add_parser(subparsers)`` that sets
``func=run(args) -> int``; ``COMMANDS`` lists them in ``--help`` order.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import warnings

from benchbase.errors import BenchbaseInputError

COMMANDS = (
    "benchbase.cli:plugins",
    "benchbase.cli:validate",
    "benchbase.cli:run",
    "benchbase.cli:leaderboard",
    "benchbase.report:command",
    "benchbase.plots:plot",
    "benchbase.dynamics:command",
    "benchbase.cli:docs",
    "benchbase.scaffold:add_parser",
)


def _results_arg(p: argparse.ArgumentParser) -> None:
    from benchbase.store import default_results_dir

    p.add_argument("--results", default=default_results_dir(), metavar="DIR",
                   help="results directory holding benchbase.sqlite (default: %(default)s, "
                        "or $BENCHBASE_RESULTS)")


# ---------------------------------------------------------------------- plugins


def plugins(sub) -> None:
    p = sub.add_parser("plugins", help="list registered plugins",
                       description="List every registered plugin: name, kind, family, framework and "
                                   "where it came from.")
    p.add_argument("--kind", choices=("model", "dataset", "metric", "feature", "executor", "publisher"))
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_plugins)


def _plugins(args) -> int:
    from tabulate import tabulate

    from benchbase.plugins import KINDS, build_registry

    registry = build_registry()
    kinds = [args.kind] if args.kind else list(KINDS)
    items = [r.describe() for kind in kinds for r in registry.all(kind)]
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    rows = [[i["kind"], i["name"], i.get("family") or "", i.get("framework") or "",
             i.get("direction") or "", i["source"], i["summary"][:60]] for i in items]
    print(tabulate(rows, headers=["kind", "name", "family", "framework", "direction", "source", "summary"]))
    return 0


# --------------------------------------------------------------------- validate


def _suite_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", help="suite YAML file")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="dotlist overrides, e.g. budget.examples=2e5 seeds=[0,1]")
    p.add_argument("--device", choices=None, default=None,
                   help="auto | cpu | cuda | cuda:N | tpu (overrides the suite's device)")


def validate(sub) -> None:
    p = sub.add_parser("validate", help="check a suite without running it",
                       description="Validate a whole suite: keys, types, plugins, plugin configs, "
                                   "dataset sizes, metric requirements. Nothing is written.")
    _suite_args(p)
    p.set_defaults(func=_validate)


def _validate(args) -> int:
    from benchbase.config import load_suite
    from benchbase.fleet import describe_plan
    from benchbase.plugins import build_registry

    registry = build_registry()
    suite = load_suite(args.suite, args.overrides, registry=registry, device=args.device)
    steps = sorted({r.budget["steps"] for r in suite.runs})
    print(f"{args.suite}: valid. Suite '{suite.name}': {len(suite.runs)} run(s), "
          f"{len({r.model['label'] for r in suite.runs})} model(s), "
          f"{len({r.dataset['label'] for r in suite.runs})} dataset(s), steps per run: "
          f"{', '.join(map(str, steps[:6]))}{' ...' if len(steps) > 6 else ''}")
    print(describe_plan(suite.runs, suite.executor or {"name": "local"}, suite.device, registry))
    return 0


# -------------------------------------------------------------------------- run


def run(sub) -> None:
    p = sub.add_parser("run", help="run a suite (resumes: done runs are skipped)",
                       description="Validate, then train and evaluate every run of a suite that is not "
                                   "done yet, writing results to the store.")
    _suite_args(p)
    _results_arg(p)
    p.add_argument("--fresh", action="store_true", help="redo runs that are already done")
    p.add_argument("--executor", default=None,
                   help="executor plugin: local, process, ray (default: the suite's, else local); "
                        "configure it with executor.config.<key>=value overrides")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from benchbase.config import load_suite
    from benchbase.driver import run_suite
    from benchbase.plugins import build_registry
    from benchbase.progress import Reporter
    from benchbase.store import Store

    registry = build_registry()
    suite = load_suite(args.suite, args.overrides, registry=registry, device=args.device,
                       executor=args.executor)
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
        print(f"next: benchbase leaderboard --results {args.results} --suite {suite.name}")
    return 0 if result.ok else 1


# ------------------------------------------------------------------ leaderboard


def leaderboard(sub) -> None:
    from benchbase.leaderboard import add_slice_arguments
    from benchbase.resultset import add_results_argument

    p = sub.add_parser("leaderboard", help="render leaderboard tables from stored results",
                       description="One table per suite and dataset: rows are models, columns are "
                                   "metrics with their direction, values mean ± std over seeds. Several "
                                   "--results directories merge; conflicting copies of a run are "
                                   "reported (exit status 1) and left out.")
    add_results_argument(p)
    add_slice_arguments(p)
    p.add_argument("--format", default="markdown", help="a publisher: markdown, latex, csv, json, html, ...")
    p.add_argument("--out", help="write to this file instead of stdout")
    p.set_defaults(func=_leaderboard)


def _leaderboard(args) -> int:
    from pathlib import Path

    from benchbase.leaderboard import tables_from_args
    from benchbase.plugins import build_registry
    from benchbase.resultset import open_results, report_conflicts

    registry = build_registry()
    publisher = registry.get("publisher", args.format).cls()
    with open_results(args.results) as results:
        tables = tables_from_args(results, args)
        conflicts = results.conflicts
    text = publisher.render(tables)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return report_conflicts(conflicts)


# ------------------------------------------------------------------------- docs


def docs(sub) -> None:
    p = sub.add_parser("docs", help="generate reference docs (hooks)",
                       description="Write docs generated from the code, e.g. docs/hooks.md from the hook specs.")
    p.add_argument("what", choices=("hooks",))
    p.add_argument("--out", help="file to write (default: stdout)")
    p.set_defaults(func=_docs)


def _docs(args) -> int:
    from pathlib import Path

    from benchbase.hookdocs import render_hooks_markdown

    text = render_hooks_markdown()
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


# ------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="benchbase",
        description="Comparative benchmarks for deep generative models: identical budgets, shared "
                    "memorization/novelty/fidelity metrics, leaderboards.")
    from benchbase import __version__

    parser.add_argument("--version", action="version", version=f"benchbase {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for ref in COMMANDS:
        module, func = ref.split(":")
        getattr(importlib.import_module(module), func)(sub)
    return parser


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may come after options (`run s.yaml --results r a=1`): argparse would
    # call them unrecognized, so collect leftover key=value words as overrides.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    warnings.formatwarning = _format_warning
    try:
        return int(args.func(args) or 0)
    except BenchbaseInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished evaluations are stored; run the same command again to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
