"""``benchbase sensitivity``: detection rates of the memorization metrics against swept copying levels."""
from __future__ import annotations

import sys

from benchbase.commands.options import add_results_dirs, open_results, output_folder

NAME = "sensitivity"
HELP = "detection rates of the memorization metrics against swept copying levels (controlled memorizers)"
DESCRIPTION = ("Judge every stored memorization value against its chance level and count, per dataset, "
               "metric, model and swept value, the seeds flagged as memorizing. Writes SUITE.md (the values "
               "detected with the given power and the rate tables), SUITE.json and one figure per swept key.")
DEFAULT_POWER = 0.95  # benchbase.sensitivity.DEFAULT_POWER, repeated so that --help imports nothing heavy


def add_arguments(p) -> None:
    add_results_dirs(p)
    p.add_argument("--suite", required=True, help="suite name in the store")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the table, JSON and figures")
    p.add_argument("--alpha", type=float, help="one-sided level (default: the suite's dynamics.alpha)")
    p.add_argument("--power", type=float, default=DEFAULT_POWER,
                   help="detection rate that counts as detected (default: %(default)s)")


def run(args) -> int:
    from benchbase.derived import suite_dynamics
    from benchbase.errors import BenchbaseInputError, UnknownPluginError
    from benchbase.sensitivity import sensitivity, write_all

    if args.alpha is not None and not 0 < args.alpha < 1:
        raise BenchbaseInputError(f"--alpha {args.alpha:g}: must lie in (0, 1), e.g. 0.001")
    if not 0 < args.power <= 1:
        raise BenchbaseInputError(f"--power {args.power:g}: must lie in (0, 1], e.g. {DEFAULT_POWER}")
    out = output_folder(args.out)  # a file there is bad input, found before anything is read
    with open_results(args.results) as results:
        if args.suite not in results.suites():
            raise UnknownPluginError("suite", args.suite, results.suites())
        dyn = suite_dynamics(results, args.suite)  # the verdict every other command applies
        s = sensitivity(results, args.suite, args.alpha if args.alpha is not None else dyn.alpha, args.power,
                        dyn.min_excess)
    if not s.rates:
        raise BenchbaseInputError(f"suite '{args.suite}' has no finished runs with stored chance levels")
    paths = write_all(s, out)
    print(f"wrote {len(paths)} files to {out}/ ({len(s.rates)} detection rates)", file=sys.stderr)
    return 0
