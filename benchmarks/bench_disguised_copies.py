"""Which memorization metric, in which feature space, sees which disguised copy?

Runs suites/disguised_copies.yaml (disguised memorizers, exact copies and fresh digits;
nothing trains) once per feature space, each into ``<results>/<space>``, and prints
one table: every model's mean value of every memorization metric over the seeds, per
space. ``true_sampler`` (fresh test-split digits) is the row a metric must leave
behind to call anything a copy.

    python benchmarks/bench_disguised_copies.py [--spaces pixels,trained_encoder,copy_descriptor]
        [--results results/disguised_copies] [--write-docs docs/metrics.md]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_block import write_block  # noqa: E402

SUITE = Path(__file__).resolve().parents[1] / "suites" / "disguised_copies.yaml"
METRICS = ("copy_cosine", "mem_ratio", "authenticity")


def run_space(space: str, results: Path, overrides: list[str], registry) -> dict[str, dict[str, float]]:
    """{model label: {metric: mean over seeds}} of the suite in ``space``."""
    from benchbase.config import load_suite
    from benchbase.driver import run_suite
    from benchbase.progress import Reporter
    from benchbase.store import Store

    suite = load_suite(SUITE, [f"eval.features={space}", *overrides], registry=registry)
    values: dict[str, dict[str, list[float]]] = {}
    with Store(results / space) as store:
        outcome = run_suite(suite, store, registry, reporter=Reporter(quiet=True))
        if not outcome.ok:
            raise SystemExit(f"{space}: runs failed: {outcome.statuses}")
        for run in store.runs(suite=suite.name):
            row = values.setdefault(run.model_label, {})
            for e in store.evals(run.run_id):
                if e["metric"] in METRICS:
                    row.setdefault(e["metric"], []).append(float(e["value"]))
    return {label: {m: float(np.mean(v)) for m, v in row.items()} for label, row in values.items()}


def table(per_space: dict[str, dict], seeds: int) -> str:
    spaces = list(per_space)
    labels = list(next(iter(per_space.values())))
    order = ["true_sampler", "copy_train"] + [m for m in labels if m not in ("true_sampler", "copy_train")]
    head = " | ".join(f"{m} `{s}`" for s in spaces for m in METRICS)
    lines = [f"Mean over {seeds} seeds of 400 samples each (suites/disguised_copies.yaml); copy_cosine "
             "applies each space's own threshold (its calibrated one, else 0.5). Copying reads higher "
             "copy_cosine and mem_ratio and lower authenticity than `true_sampler`.", "",
             f"| model | {head} |", "| --- |" + " --- |" * (len(spaces) * len(METRICS))]
    for label in order:
        cells = [f"{per_space[s][label].get(m, float('nan')):.3f}" for s in spaces for m in METRICS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from benchbase.plugins import PluginPolicy, build_registry

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spaces", default="pixels,trained_encoder,copy_descriptor")
    p.add_argument("--results", default="results/disguised_copies", help="one results folder per space inside")
    p.add_argument("--seeds", default="", help="comma-separated seeds (default: the suite's)")
    p.add_argument("--write-docs", default="", help="replace the generated block of this markdown file")
    args = p.parse_args(argv)
    overrides = [f"seeds=[{args.seeds}]"] if args.seeds else []
    registry = build_registry(PluginPolicy(entry_points=False))
    per_space = {}
    for space in args.spaces.split(","):
        per_space[space] = run_space(space, Path(args.results), overrides, registry)
        print(f"{space}: done", file=sys.stderr)
    seeds = len(args.seeds.split(",")) if args.seeds else 5
    block = table(per_space, seeds)
    print(block)
    if args.write_docs:
        write_block(args.write_docs, "disguised-copies", "benchmarks/bench_disguised_copies.py",
                    argv if argv is not None else sys.argv[1:], block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
