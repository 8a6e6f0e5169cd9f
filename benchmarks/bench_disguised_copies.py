"""Which memorization metric, in which feature space, sees which disguised copy?

Runs suites/disguised_copies.yaml (disguised memorizers, exact copies and fresh digits;
nothing trains) once per feature space, each into ``<results>/<space>``, and prints
one table per space: for every model and memorization metric, the mean value over the
seeds beside the mean chance level it is judged against (held-out digits scored
against the same training subset, benchbase.chance), and how many seeds the core's
calibrated verdict flags - per metric, and for the run (benchbase.verdicts: any
metric significantly above its chance level and by its minimum excess, alpha split
between the metrics), exactly as leaderboards and onsets judge runs.

    python benchmarks/bench_disguised_copies.py [--spaces pixels,trained_encoder,copy_descriptor]
        [--suite suites/disguised_copies.yaml] [--results results/disguised_copies]
        [--write-docs docs/metrics.md]

Another suite of oracles (``--suite suites/blend_strengths.yaml``) gets the same table,
in its own docs block (named after the suite file).
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_block import write_block  # noqa: E402

SUITE = Path(__file__).resolve().parents[1] / "suites" / "disguised_copies.yaml"
#: the columns' order; a suite's other memorization metrics follow in name order
METRICS = ("copy_cosine", "mem_ratio", "authenticity", "fls_overfit", "blend_ratio")


@dataclass
class Judged:
    """One model's runs (one per seed) in one space: values, chance levels, verdicts."""

    values: dict = field(default_factory=dict)  # metric -> [value per seed]
    chances: dict = field(default_factory=dict)  # metric -> [chance level per seed]
    flagged: dict = field(default_factory=dict)  # metric -> seeds this metric's verdict flags
    runs_flagged: int = 0  # seeds the run's verdict (any metric) flags
    runs: int = 0


def judge_run(evals: list[dict], into: Judged) -> None:
    """Add one run's stored step-0 evaluation to ``into``, judged as the core judges it."""
    from benchbase.verdicts import CopyRule, copy_onset, judged_curves

    rule = CopyRule()
    rows = {e["metric"]: e for e in evals if int(e["step"]) == 0 and (e["ref"] or "") == "train"}
    curves = judged_curves(evals, rule)  # every memorization metric the run stored, as the verdict judges them
    for m in curves:
        if m in rows:
            into.values.setdefault(m, []).append(float(rows[m]["value"]))
        chance = rows.get(f"{m}.chance")
        into.chances.setdefault(m, []).append(float("nan") if chance is None or chance["value"] is None
                                              else float(chance["value"]))
        if m in curves:
            into.flagged[m] = into.flagged.get(m, 0) + int(curves[m].memorizing[0])
    onset = copy_onset(evals, rule)
    into.runs_flagged += int(onset is not None and onset.eval_step == 0)
    into.runs += 1


def run_space(suite_path: Path, space: str, results: Path, overrides: list[str], registry) -> dict[str, Judged]:
    """{model label: Judged} of the suite in ``space``."""
    from benchbase.config import load_suite
    from benchbase.driver import run_suite
    from benchbase.progress import Reporter
    from benchbase.store import Store

    suite = load_suite(suite_path, [f"eval.features={space}", *overrides], registry=registry)
    judged: dict[str, Judged] = {}
    with Store(results / space) as store:
        outcome = run_suite(suite, store, registry, reporter=Reporter())
        if not outcome.ok:
            raise SystemExit(f"{space}: runs failed: {outcome.statuses}")
        planned = {spec.run_id for spec in suite.runs}  # not runs an older version left in the folder
        for run in store.runs(suite=suite.name):
            if run.run_id in planned:
                judge_run(store.evals(run.run_id), judged.setdefault(run.model_label, Judged()))
    return judged


def judged_metrics(per_space: dict[str, dict[str, Judged]]) -> list[str]:
    """The memorization metrics the runs stored, in METRICS' order, then by name."""
    found = {m for judged in per_space.values() for j in judged.values() for m in j.values}
    return [m for m in METRICS if m in found] + sorted(found - set(METRICS))


def table(per_space: dict[str, dict[str, Judged]], seeds: int, suite_path: Path = SUITE,
          memorizes: dict[str, str] | None = None) -> str:
    """The tables, one per space; ``memorizes`` (metric -> "higher" or "lower") words the
    direction each metric moves when samples copy."""
    from benchbase.verdicts import CopyRule

    metrics = judged_metrics(per_space)
    memorizes = memorizes or {}
    ways = {way: [m for m in metrics if memorizes.get(m) == way] for way in ("higher", "lower")}
    reads = " and ".join(f"{way} {', '.join(ms)}" for way, ms in ways.items() if ms)
    first = next(iter(per_space.values()))
    brackets = [m for m in ("true_sampler", "copy_train") if m in first]
    order = brackets + [m for m in first if m not in brackets]
    lines = [f"{seeds} seeds of 400 samples each (suites/{suite_path.name}). Each cell: the mean value over "
             "the seeds / the mean chance level it is judged against (fresh held-out digits scored against the "
             "same training subset), then the seeds the calibrated verdict flags. Verdict: "
             f"{CopyRule().describe(metrics)}, the rule leaderboards and onsets apply. copy_cosine "
             "applies each space's own threshold (its calibrated one, else 0.5)"
             f"{'; blend_ratio reads data space in every space' if 'blend_ratio' in metrics else ''}. "
             f"Copying reads {reads} than chance. true_sampler's "
             "fls_overfit (-50) is not a false negative: its samples are the test points the metric "
             "compares against, so every kernel prefers them."]
    for space, judged in per_space.items():
        lines += ["", f"**`{space}`**", "", "| model | " + " | ".join(metrics) + " | verdict (any metric) |",
                  "| --- |" + " --- |" * (len(metrics) + 1)]
        for label in order:
            j = judged[label]
            cells = [f"{np.mean(j.values.get(m, [np.nan])):.3f} / {np.nanmean(j.chances.get(m, [np.nan])):.3f}: "
                     f"{j.flagged.get(m, 0)}/{j.runs}" for m in metrics]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | **{j.runs_flagged}/{j.runs}** |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from benchbase.plugins import PluginPolicy, build_registry

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spaces", default="pixels,trained_encoder,copy_descriptor")
    p.add_argument("--suite", default=str(SUITE.relative_to(SUITE.parents[1])),
                   help="a suite of oracles to judge (default: the disguised copies)")
    p.add_argument("--results", default="results/disguised_copies", help="one results folder per space inside")
    p.add_argument("--seeds", default="", help="comma-separated seeds (default: the suite's)")
    p.add_argument("--space-config", default="{}",
                   help='JSON: {"space": {config}}, e.g. {"copy_descriptor": {"whitening": 0.1}}')
    p.add_argument("--write-docs", default="", help="replace the generated block of this markdown file")
    p.add_argument("--block", default="", help="the name of that block (default: named after the suite file)")
    args = p.parse_args(argv)
    overrides = [f"seeds=[{args.seeds}]"] if args.seeds else []
    registry = build_registry(PluginPolicy(entry_points=False))
    suite_path = Path(args.suite)
    if not suite_path.is_file():
        raise SystemExit(f"--suite {args.suite}: no such file")
    try:
        space_config = json.loads(args.space_config)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--space-config is not JSON ({exc})") from None
    if not isinstance(space_config, dict) or not all(isinstance(v, dict) for v in space_config.values()):
        raise SystemExit(f'--space-config must map a space to its config, e.g. {{"copy_descriptor": {{"whitening": 0.1}}}}')
    per_space = {}
    for space in args.spaces.split(","):
        configured = [f"eval.features.config.{k}={json.dumps(v)}" for k, v in space_config.get(space, {}).items()]
        per_space[space] = run_space(suite_path, space, Path(args.results), overrides + configured, registry)
        print(f"{space}: done", file=sys.stderr)
    seeds = max(j.runs for judged in per_space.values() for j in judged.values())
    memorizes = {r.name: r.cls.memorizes for r in registry.all("metric") if getattr(r.cls, "memorizes", None)}
    block = table(per_space, seeds, suite_path, memorizes)
    print(block)
    if args.write_docs:
        name = args.block or ("disguised-copies" if suite_path.resolve() == SUITE else
                              suite_path.stem.replace("_", "-"))
        write_block(args.write_docs, name, "benchmarks/bench_disguised_copies.py",
                    argv if argv is not None else sys.argv[1:], block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
