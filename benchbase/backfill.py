"""Bring a results store written before chance levels up to date (``benchbase chance``).

Memorization verdicts read the chance level stored beside every memorization value
(benchbase.chance). Runs stored before it was stored have the values but not the
chance rows, and so no copy criterion and no judged leaderboard column. Their chance
level is a function of what the run spec records (dataset and its config, training
subset, feature space, metric and config, sample size): this module rebuilds the
run's data and features (from the feature cache when it is there), measures the
chance level once per such key (cached like a run's own) and writes the rows at
every evaluation that stored the metric, then derives the suite's dynamics again.
Nothing is trained and no stored value changes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from benchbase.contracts import EvalRow


@dataclass
class BackfillSummary:
    runs: int = 0  # runs that got chance rows
    rows: int = 0  # rows written
    skipped: list[str] = field(default_factory=list)  # runs that could not be brought up to date, and why
    current: int = 0  # finished runs that already had every chance level
    unfinished: list[str] = field(default_factory=list)  # statuses of the runs with nothing to measure from

    def text(self) -> str:
        """The one line ``benchbase chance`` ends with; says why nothing was stored when
        nothing was, rather than 'stored 0 chance rows for 0 runs'."""
        from benchbase.wording import counted, status_counts

        if self.runs or self.skipped:
            parts = [f"stored {counted(self.rows, 'chance row')} for {counted(self.runs, 'run')}"]
            parts += [f"{counted(self.current, 'run')} already had theirs"] if self.current else []
            parts += [f"{counted(len(self.skipped), 'run')} skipped"] if self.skipped else []
            return "; ".join(parts)
        if self.current:
            others = f"; unfinished: {status_counts(self.unfinished)}" if self.unfinished else ""
            return (f"every finished run already has its chance levels ({counted(self.current, 'run')}"
                    f"{others}); nothing stored")
        return (f"no finished run to measure chance levels for "
                f"({status_counts(self.unfinished) or 'no run is stored'}); nothing stored")


def missing_chance(evals: list[dict], judged: set[str]) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """(metric, ref) -> [(step, examples)] where a memorization metric is stored without
    its chance rows."""
    have = {(e["metric"], e["ref"] or "", e["step"]) for e in evals}
    out: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for e in evals:
        name, ref = e["metric"], e["ref"] or ""
        if name in judged and (f"{name}.chance", ref, e["step"]) not in have:
            out.setdefault((name, ref), []).append((int(e["step"]), int(e["examples"])))
    return out


def backfill_chance(store, registry, suite: str | None = None, progress=None) -> BackfillSummary:
    """Measure and store the missing chance levels of the finished runs of ``suite`` (all
    suites when None); returns what was done."""
    from benchbase.data import DataCatalog, fresh_sampler, select_subset
    from benchbase.evaluation import Evaluator, FeatureCache
    from benchbase.frameworks import NumpyFramework
    from benchbase.structured import plugin_config

    say = progress or (lambda text: None)
    summary = BackfillSummary()
    for run in store.runs(suite=suite):
        if run.status != "done":
            summary.unfinished.append(run.status)
            continue
        spec = run.spec
        judged = {m.name for m in spec.metrics
                  if m.name in registry.names("metric") and getattr(registry.get("metric", m.name).cls,
                                                                    "memorizes", None)}
        missing = missing_chance(store.evals(run.run_id), judged)
        if not missing:
            summary.current += 1
            continue
        try:
            data_reg = registry.get("dataset", spec.dataset.name)
            data_cfg, _ = plugin_config(data_reg, spec.dataset.config, "<stored run spec>", "dataset.config")
            dataset, splits = DataCatalog.shared().load(data_reg, data_cfg, spec.dataset.config)
            subset = select_subset(splits, spec.subset)
            expected = (run.provenance or {}).get("dataset_content_hash")
            if expected and subset.content_hash != expected:
                summary.skipped.append(f"{run.run_id}: the dataset here differs from the one the run saw "
                                       f"(content hash {subset.content_hash} vs {expected})")
                continue
            sample_fresh, source = fresh_sampler(dataset, splits, spec.eval.n_test)
            evaluator = Evaluator(spec, subset, splits, registry, NumpyFramework(), "cpu",
                                  FeatureCache(Path(store.dir) / "cache"),
                                  exact_sampler=sample_fresh if source == "true_sampler" else None)
        except Exception as exc:  # missing plugin or data: this run stays as it is
            summary.skipped.append(f"{run.run_id}: {type(exc).__name__}: {exc}")
            continue
        metrics = {entry.name: (entry, metric) for entry, metric in evaluator.metrics}
        by_step: dict[tuple[int, int], list[EvalRow]] = {}
        for (name, ref), steps in missing.items():
            entry, metric = metrics[name]
            rows = evaluator.chance_rows(entry, metric, ref)
            for step in steps:
                by_step.setdefault(step, []).extend(rows)
        for (step, examples), rows in sorted(by_step.items()):
            store.write_eval(run.run_id, step, examples, rows)
            summary.rows += len(rows)
        summary.runs += 1
        say(f"{run.run_id}: chance levels of {', '.join(sorted({n for n, _ in missing}))} stored")
    return summary

