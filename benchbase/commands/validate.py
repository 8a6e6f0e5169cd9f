"""``benchbase validate``: check a whole suite without running it."""
from __future__ import annotations

from benchbase.commands.options import add_suite_arguments

NAME = "validate"
HELP = "check a suite without running it"
DESCRIPTION = ("Validate a whole suite: keys, types, plugins, plugin configs, dataset sizes, metric "
               "requirements. Nothing is written.")


def add_arguments(p) -> None:
    add_suite_arguments(p)


def run(args) -> int:
    from benchbase.config import load_suite

    suite = load_suite(args.suite, args.overrides, device=args.device, trackers=args.tracker)
    steps = sorted({r.budget.steps for r in suite.runs})
    print(f"{args.suite}: valid. Suite '{suite.name}': {len(suite.runs)} run(s), "
          f"{len({r.model.label for r in suite.runs})} model(s), "
          f"{len({r.dataset.label for r in suite.runs})} dataset(s), steps per run: "
          f"{', '.join(map(str, steps[:6]))}{' ...' if len(steps) > 6 else ''}")
    return 0
