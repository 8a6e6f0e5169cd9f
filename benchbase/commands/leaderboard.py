"""``benchbase leaderboard``: render leaderboard tables from stored results."""
from __future__ import annotations

import sys

from benchbase.commands.options import (add_results_dirs, add_slice_arguments, open_results, output_file,
                                        report_conflicts, tables_from_args)

NAME = "leaderboard"
HELP = "render leaderboard tables from stored results"
DESCRIPTION = ("One table per suite and dataset: rows are models, columns are metrics with their direction, "
               "values mean ± std over seeds. Several --results directories merge; conflicting copies of a run "
               "are reported (exit status 1) and left out.")


def add_arguments(p) -> None:
    add_results_dirs(p)
    add_slice_arguments(p)
    p.add_argument("--format", default="markdown", help="a publisher: markdown, latex, csv, json, html, ...")
    p.add_argument("--out", help="write to this file instead of stdout")


def run(args) -> int:
    from benchbase.plugins import build_registry

    out = output_file(args.out) if args.out else None
    registry = build_registry()
    publisher = registry.get("publisher", args.format).cls()
    with open_results(args.results) as results:
        tables = tables_from_args(results, args)
        conflicts = results.conflicts
    text = publisher.render(tables)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return report_conflicts(conflicts)
