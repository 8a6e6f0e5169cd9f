"""``benchbase dynamics``: recompute, store and print the derived training-dynamics quantities."""
from __future__ import annotations

import dataclasses
import json
import sys

from benchbase.commands.options import add_results_dir, open_suite_store

NAME = "dynamics"
HELP = ("(re)compute tau_mem, memorization rate, best fidelity before memorization and twin similarity "
        "for a suite's stored runs")
DESCRIPTION = ("Derive training-dynamics quantities from stored evaluations, store them (the leaderboard JSON "
               "shows them per run) and print them with the fit of log tau_mem against log n. Thresholds "
               "default to the suite's `dynamics:` section; override with key=value.")


def add_arguments(p) -> None:
    add_results_dir(p)
    p.add_argument("--suite", required=True, help="suite name in the store")
    p.add_argument("overrides", nargs="*", default=[], metavar="key=value",  # a default: argparse calls it optional
                   help="dynamics settings, e.g. alpha=0.05 min_excess.mem_ratio=0.02 criterion=loss")
    p.add_argument("--json", action="store_true", help="print the records as JSON")


def run(args) -> int:
    from benchbase.derived import derive_suite, dynamics_settings, override_text, suite_dynamics
    from benchbase.dynamics import format_fit, group_key, group_label, tau_fits
    from benchbase.errors import BenchbaseInputError, ConfigError
    from benchbase.exponents import axis_fits, format_axis_fit, format_local_exponent, local_exponents
    from benchbase.memscore import format_record
    from benchbase.wording import counted, status_counts

    bad = next((item for item in args.overrides if "=" not in item), None)
    if bad is not None:  # worded as a suite's override is; checked before the store is opened
        raise BenchbaseInputError(f"{bad}: an override must look like key=value (e.g. alpha=0.05)")
    with open_suite_store(args.results, args.suite) as store:
        base = dataclasses.asdict(suite_dynamics(store, args.suite))
        source = settings_source(args)
        try:
            cfg = dynamics_settings(base, args.overrides, source)
            check_metric_names(cfg, store.runs(suite=args.suite), source)
        except ConfigError as exc:
            raise override_error(exc, args.overrides) from None
        records = derive_suite(store, args.suite, cfg)
        stored = store.runs(suite=args.suite)
        runs = [r for r in stored if r.run_id in records]
        changed = override_text(cfg, suite_dynamics(store, args.suite))
    if changed:  # the stored records are what leaderboards, plots and reports read
        print(f"note: the stored training dynamics of suite '{args.suite}' now follow {changed} instead of the "
              f"suite's dynamics settings; leaderboards, plots and reports read them (a leaderboard says so); "
              f"`benchbase dynamics --suite {args.suite}` without overrides restores them", file=sys.stderr)
    if not records:  # like leaderboard and plot on such a store: nothing to show is no error
        statuses = status_counts(r.status for r in stored) or "no run is stored"
        print(f"note: suite '{args.suite}': no run has evaluations to derive training dynamics from "
              f"({statuses}); only finished runs have them", file=sys.stderr)
    elif len(runs) < len(stored):  # the exponents below rest on fewer runs than the suite planned
        left = status_counts(r.status for r in stored if r.run_id not in records)
        print(f"note: suite '{args.suite}': training dynamics of {counted(len(runs), 'run')}; left out {left}",
              file=sys.stderr)
    if args.json:
        print(json.dumps(records, indent=2, sort_keys=True, default=str))
        return 0
    every = {group_key(r.spec) for r in runs}
    for r in sorted(runs, key=lambda r: (group_key(r.spec), r.n or 0, r.seed)):
        rec = records[r.run_id]
        tau = "not reached" if rec["tau_mem"] is None else f"{rec['tau_mem']:.0f}"
        rate = "–" if rec["mem_rate"] is None else f"{rec['mem_rate']:.3f}"
        print(f"{r.run_id}  {group_label(group_key(r.spec), every)}  n={r.n} seed={r.seed}: "
              f"tau_mem={tau} ({rec['criterion'] or 'no criterion available'}), mem_rate={rate}/decade")
    fits = [f for key in ("tau_mem", "tau_mem_copy", "tau_mem_loss")
            for f in tau_fits(runs, records, key) if any(rec.get(key) is not None for rec in records.values())]
    for f in fits:
        print(format_fit(f))
    for f in axis_fits(runs, records, ("tau_mem", "tau_mem_copy", "tau_mem_loss")):
        print(format_axis_fit(f))
    for e in local_exponents(runs, records):
        print(format_local_exponent(e))
    shown = set()
    for r in runs:
        rec = records[r.run_id].get("memorization_score")
        if rec and json.dumps(rec["full_runs"]) not in shown:
            shown.add(json.dumps(rec["full_runs"]))
            print(format_record(rec, group_label(group_key(r.spec), every)))
    return 0


def settings_source(args) -> str:
    """What an error in the settings names as their origin, as the user gave it: the results
    directory and suite whose stored ``dynamics:`` section the overrides change."""
    return f"{args.results} (suite '{args.suite}')"


def override_error(exc, overrides: list[str]) -> Exception:
    """``exc`` worded by the command-line override each problem comes from ("dynamics
    override alpha=2: must lie in (0, 1)"), not as a problem of the stored suite; returned
    unchanged when a problem lies in the stored settings themselves."""
    from benchbase.errors import BenchbaseInputError

    lines = []
    for path, message in exc.problems:
        key = path.removeprefix("dynamics.")
        given = [item for item in overrides if _covers(item.split("=", 1)[0].strip().removeprefix("dynamics."), key)]
        if not given:
            return exc
        lines.append(f"dynamics override {given[-1]}: {message}")
    if len(lines) == 1:
        return BenchbaseInputError(lines[0])
    return BenchbaseInputError(f"{len(lines)} problems with the dynamics overrides\n  " + "\n  ".join(lines))


def _covers(override_key: str, problem_key: str) -> bool:
    """Whether a problem at ``problem_key`` (min_excess, fidelity[0]) concerns the value an
    override of ``override_key`` (min_excess.mem_ratio, fidelity) set."""
    return (override_key == problem_key or problem_key.startswith((f"{override_key}.", f"{override_key}["))
            or override_key.startswith(f"{problem_key}."))


def check_metric_names(cfg, runs, source: str = "<dynamics>") -> None:
    """Refuse settings that name none of the stored runs' memorization metrics, as a suite
    with them is refused (``dynamics min_excess.foo=1`` would change no verdict)."""
    from benchbase.dynamics import metric_name_problems
    from benchbase.errors import ConfigError
    from benchbase.plugins import build_registry

    registry = build_registry()
    names = sorted({m.name for r in runs for m in r.spec.metrics})
    installed = set(names) & set(registry.names("metric"))
    judged = [name for name in sorted(installed) if getattr(registry.get("metric", name).cls, "memorizes", None)]
    problems = metric_name_problems(cfg, judged, unknown=set(names) - installed, known=sorted(installed))
    if problems:
        raise ConfigError(source, problems)
