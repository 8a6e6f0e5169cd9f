"""``benchbase plot``: figures and tables of a suite's training dynamics."""
from __future__ import annotations

import sys

from benchbase.commands.options import add_results_dir, open_suite_store, output_folder
from benchbase.errors import BenchbaseInputError

NAME = "plot"
HELP = "plot training dynamics of a suite (PNG + SVG)"
DESCRIPTION = ("Metric curves vs step and normalized step per n, tau_mem vs n with the fitted log-log slope "
               "(printed too), a phase diagram, samples beside their nearest training images and twin samples, "
               "from stored results.")
FORMATS = ("png", "svg")


def add_arguments(p) -> None:
    add_results_dir(p)
    p.add_argument("--suite", required=True, help="suite name in the store")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the figures")
    p.add_argument("--metric", action="append", help="only these metrics in the curves (repeatable)")
    p.add_argument("--format", action="append", choices=FORMATS, help="png and/or svg (default: both)")


def run(args) -> int:
    from benchbase.dynamics import format_collapse, format_fit
    from benchbase.dynamics_report import analysis_sections
    from benchbase.plots import write_all
    from benchbase.wording import counted, status_counts

    out = output_folder(args.out)
    with open_suite_store(args.results, args.suite) as store:
        if args.metric:
            stored = sorted({m.name for r in store.runs(suite=args.suite) for m in r.spec.metrics})
            unknown = [m for m in args.metric if m not in stored]
            if unknown:
                raise BenchbaseInputError(f"--metric {unknown[0]}: not among the metrics of suite '{args.suite}': "
                                          f"{', '.join(stored)}")
        paths, data = write_all(store, args.suite, out, tuple(args.format or FORMATS), args.metric)
        unfinished = [r.status for r in store.runs(suite=args.suite) if r.status != "done"]
    if unfinished:  # figures and fits are of finished runs only: say what they leave out
        print(f"note: suite '{args.suite}': plotted {counted(len(data.runs), 'finished run')}; left out "
              f"{status_counts(unfinished)}", file=sys.stderr)
    for f in data.fits:
        print(format_fit(f))
    for c in data.collapse:
        print(format_collapse(c))
    for _, lines in analysis_sections(data):
        for line in lines:
            print(line)
    print(f"wrote {len(paths)} files to {out}/", file=sys.stderr)
    return 0
