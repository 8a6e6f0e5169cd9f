"""``benchbase report``: write a static report site from stored results."""
from __future__ import annotations

import sys

from benchbase.commands.options import (add_results_dirs, add_slice_arguments, open_results, output_folder,
                                        report_conflicts, tables_from_args, whole_number)

NAME = "report"
HELP = "write a static report site (leaderboards, curves, samples)"
DESCRIPTION = ("Write a static site: an index with every leaderboard and one page per run with its metric "
               "curves, samples beside their nearest training examples and its provenance. Open "
               "SITE/index.html in a browser.")


def add_arguments(p) -> None:
    add_results_dirs(p)
    p.add_argument("--out", required=True, metavar="SITE", help="directory to write the site to")
    add_slice_arguments(p)
    p.add_argument("--samples", type=whole_number(0), default=16, metavar="K",
                   help="image samples shown per run (default: %(default)s)")
    p.add_argument("--svg", action="store_true", help="also write the metric curves as SVG (for papers)")


def run(args) -> int:
    from benchbase.plugins import build_registry
    from benchbase.report import build_report

    out = output_folder(args.out)
    registry = build_registry()
    with open_results(args.results) as results:
        tables = tables_from_args(results, args)
        summary = build_report(results, tables, out, registry, max_images=args.samples,
                               curve_formats=("png", "svg") if args.svg else ("png",), suite=args.suite)
        conflicts = results.conflicts
    for note in summary.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {summary.out / 'index.html'}: {len(tables)} leaderboard(s), {summary.runs} run page(s), "
          f"{summary.figures} figure file(s) in {summary.seconds:.1f}s")
    return report_conflicts(conflicts)
