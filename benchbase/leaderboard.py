"""Leaderboards: aggregate stored runs over seeds into tables, rank them by a primary
metric in its declared direction, and hand them to a publisher for rendering.

A table is one (suite, dataset); a row is one model configuration (model, framework,
n, any swept values, and everything else in the run's spec but its seed); a cell is
mean ± std over the seeds that finished. Only runs with status ``done`` contribute
values; the others are counted per row. Runs of one label under several
configurations (a suite edited and rerun into the same results) are never averaged:
they get one row each, told apart by the spec values that differ, a note in the
caption and a :class:`MixedConfigurationsWarning`.

Which evaluation step a run contributes is an *at rule* (``--at``): ``final``, a fixed
``step=N``, or ``best-before-memorization``. A rule is a function of the run record,
its stored evaluations and the table's primary column (benchbase.leaderboard_at), so
a new rule is one function in ``AT_RULES``.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from benchbase.chance import DEFAULT_ALPHA, judge_stored
from benchbase.leaderboard_checks import (TRAIN_LOSS, canonical, check_slice, memorization_metrics, parse_key,
                                          mixed_rows as _mixed, primary_column as _primary, stored_references)
from benchbase.records import RunRecord
from benchbase.leaderboard_at import AT_RULES, AtRule, resolve_at  # noqa: F401 (AT_RULES: read from here too)
from benchbase.configurations import configuration, differing, fingerprint, short
from benchbase.verdicts import CopyRule, onset_summary

ARROWS = {"higher": "↑", "lower": "↓"}
CHANCE_ARROW = "vs chance"
SCHEMA_VERSION = 2  # of the JSON row schema; bump only with a note in docs/leaderboards.md


@dataclass(frozen=True)
class Column:
    metric: str
    ref: str
    direction: str
    target: float | None = None
    feature_space: str = ""
    judged: bool = False  # a memorization metric judged against its stored chance level

    @property
    def key(self) -> str:
        return f"{self.metric}[{self.ref}]" if self.ref else self.metric

    @property
    def arrow(self) -> str:
        if self.judged:
            return CHANCE_ARROW
        return ARROWS.get(self.direction, f"→{self.target:g}" if self.target is not None else "")

    @property
    def header(self) -> str:
        ref = f" ({self.ref})" if self.ref else ""
        return f"{self.metric}{ref} {self.arrow}".strip()

    def badness(self, value: float) -> float:
        """Smaller is better, whatever the direction."""
        if self.direction == "higher":
            return -value
        if self.direction == "target":
            return abs(value - (self.target or 0.0))
        return value


@dataclass
class Cell:
    mean: float
    std: float
    n: int
    # judged columns (memorization metrics with a stored chance level), over the runs:
    chance: float | None = None  # mean chance level
    excess: float | None = None  # mean excess over chance in the memorization direction
    beyond: float = 0.0  # mean of max(0, excess - the smallest excess that counts): 0 = no evidence
    memorizing: int = 0  # runs significantly above chance by at least the minimum excess

    def format(self, digits: int = 4) -> str:
        if not math.isfinite(self.mean):
            return "n/a"
        text = f"{self.mean:.{digits}g}"
        if self.n > 1:
            text += f" ± {self.std:.2g}"
        if self.chance is not None and math.isfinite(self.chance):
            text += f" (chance {self.chance:.3g})" + (f" †{self.memorizing}" if self.memorizing else "")
        return text

    @classmethod
    def judged_over(cls, values: np.ndarray, verdicts: list) -> "Cell":
        """A cell of a judged column: the values and each run's verdict (benchbase.chance.Excess)."""
        cell = cls(float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0, int(len(values)))
        verdicts = [v for v in verdicts if math.isfinite(v.excess)]
        if verdicts:
            cell.chance = float(np.mean([v.chance for v in verdicts]))
            cell.excess = float(np.mean([v.excess for v in verdicts]))
            cell.beyond = float(np.mean([max(0.0, v.excess - v.threshold) if v.memorizing else 0.0
                                         for v in verdicts]))
            cell.memorizing = sum(v.memorizing for v in verdicts)
        return cell


def badness(col: Column, cell: Cell) -> float:
    """Smaller is better. A judged column ranks by how far runs lie beyond what chance
    explains (0 for every row with no run significantly above chance: being *below*
    chance is not rewarded; inf for a row without a measured chance level); any other
    column by its mean in the declared direction."""
    if col.judged:  # a value with no measured chance level is not judged: never best
        return cell.beyond if cell.chance is not None else math.inf
    return col.badness(cell.mean)


@dataclass
class Row:
    model: str  # display label
    name: str  # plugin name
    family: str
    framework: str
    n: int | None
    params: dict  # swept values besides n
    runs: int  # finished runs contributing values
    statuses: dict
    values: dict[str, Cell] = field(default_factory=dict)
    rank: int | None = None
    run_ids: list[str] = field(default_factory=list)
    steps: int | None = None
    examples: int | None = None
    at_steps: dict[str, int | None] = field(default_factory=dict)  # run id -> step used (done runs)
    seeds: dict[str, int] = field(default_factory=dict)  # run id -> seed
    dynamics: list[dict] = field(default_factory=list)  # per run: derived training-dynamics record
    onsets: dict[str, dict] = field(default_factory=dict)  # run id -> memorization onset (benchbase.verdicts)
    #: spec values (dotted keys) that tell this row from rows of the same label under another
    #: configuration; empty when the table holds one configuration per label
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The model's label with its swept values and, where needed, the configuration
        values that set this row apart."""
        return self._labelled(self.config)

    @property
    def sweep_label(self) -> str:
        """The label without the configuration values: shared by every configuration."""
        return self._labelled({})

    def _labelled(self, config: dict[str, Any]) -> str:
        extra = ", ".join([f"{k.split('.', 1)[-1]}={v}" for k, v in self.params.items()]
                          + [f"{k}={short(v)}" for k, v in config.items()])
        return f"{self.model} ({extra})" if extra else self.model

    @property
    def runs_text(self) -> str:
        """'2', or '1 (1 failed)' when some runs did not contribute."""
        not_done = {k: v for k, v in self.statuses.items() if k != "done"}
        missing = sum(1 for step in self.at_steps.values() if step is None)
        parts = [f"{v} {k}" for k, v in not_done.items()] + ([f"{missing} no value"] if missing else [])
        return f"{self.runs}" + (f" ({', '.join(parts)})" if parts else "")


@dataclass
class Table:
    suite: str
    dataset: str
    columns: list[Column]
    rows: list[Row]
    primary: str | None  # column key used for ranking
    at: str = "final"
    best: dict[str, list[int]] = field(default_factory=dict)  # column key -> row indices (ties share)
    feature_space: str = ""
    notes: list[str] = field(default_factory=list)
    alpha: float = DEFAULT_ALPHA  # level of the excess-over-chance test of judged columns
    min_excess: dict[str, float] = field(default_factory=dict)  # dynamics overrides of metrics' minimum excess

    @property
    def min_excess_text(self) -> str:
        return "".join(f"; {m}: {v:g}" for m, v in sorted(self.min_excess.items()))

    @property
    def title(self) -> str:
        return f"{self.suite} — {self.dataset}"

    def is_best(self, key: str, row_index: int) -> bool:
        return row_index in self.best.get(key, ())

    @property
    def primary_column(self) -> Column | None:
        return next((c for c in self.columns if c.key == self.primary), None)

    def caption(self, best: str = "marked", escape: Callable[[str], str] = str) -> str:
        """One sentence that says how to read the table (every publisher shows it).

        ``escape`` is applied to every part but ``best``, which is already markup
        (e.g. "in **bold**").
        """
        at = AT_TEXT.get(self.at, f"evaluation at {self.at.replace('=', ' ')}" if self.at.startswith("step=")
                         else self.at)
        parts = [escape(at[:1].upper() + at[1:])]
        if self.feature_space:
            parts.append(escape(f"feature space: {self.feature_space}"))
        parts.append(escape("mean ± std over seeds (runs = seeds contributing)"))
        parts.append(escape("best per column ") + best)
        if self.primary_column is not None:
            parts.append(escape(f"ranked by {self.primary_column.header}"))
        judged = [c.metric for c in self.columns if c.judged]
        if judged:
            parts.append(escape(
                f"{', '.join(judged)} judged against chance (held-out data scored against the same training "
                f"subset at the same sample size, in brackets): best = no run significantly above chance "
                f"(one-sided t-test at alpha {self.alpha:g} and at least the metric's minimum excess"
                f"{self.min_excess_text}), "
                f"†k = k runs are; below chance is not better (samples farther from the training set than "
                f"fresh data: blur, underfitting) and is not rewarded"))
        return escape(" · ").join(parts + [escape(n) for n in self.notes])


class MixedConfigurationsWarning(UserWarning):
    """Runs of one label under several configurations in one table (shown as separate rows)."""


class MissingStepWarning(UserWarning):
    """``--at step=N`` names a step some finished runs were not evaluated at."""


AT_TEXT = {"final": "final evaluation", "best-before-memorization": "best evaluation before memorization"}


# ------------------------------------------------------------------------ tables


def build_tables(results, suite: str | None = None, dataset: str | None = None,
                 metrics: list[str] | None = None, at: str = "final", primary: str | None = None,
                 ref: str | None = None, registry: Any = None) -> list[Table]:
    """Tables for every (suite, dataset) in ``results`` (a Store or a ResultSet), or a slice.
    ``registry`` tells which metrics are memorization metrics (default: the installed ones).

    Memorization onsets and the judgement of memorization columns follow the suite's
    ``dynamics:`` settings as stored (benchbase.verdicts), like ``benchbase dynamics``.
    """
    from benchbase.derived import derived_settings

    suites = [suite] if suite else results.suites()
    check_slice([r for s in suites for r in results.runs(suite=s)], dataset, metrics, primary)
    tables = []
    for s in suites:
        derived = results.derived(s)  # training-dynamics records, where the store has them
        dyn, rederived = derived_settings(results, s, derived)  # the settings those records were derived with
        runs = results.runs(suite=s)
        if dataset:
            runs = [r for r in runs if dataset in (r.dataset_label, r.spec.dataset.name)]
        by_dataset: dict[str, list[RunRecord]] = {}
        for r in runs:
            by_dataset.setdefault(r.dataset_label, []).append(r)
        settings = results.suite_settings(s)
        for ds, ds_runs in by_dataset.items():
            rule = resolve_at(at, dyn)
            ds_runs = [dataclasses.replace(r, derived=derived[r.run_id]) if r.run_id in derived else r
                       for r in ds_runs]
            table = _table(results, s, ds, ds_runs, metrics or settings.get("metrics") or None,
                           primary or settings.get("primary"), ref, rule, dyn, memorization_metrics(registry))
            table.at = at
            table.notes += [rederived] if rederived else []
            if at.startswith("step="):
                _warn_missing_step(table, ds_runs)
            for label, count, keys in _mixed(table.rows):
                table.notes.append(f"{label}: runs of {count} configurations, one row each (they differ in "
                                   f"{', '.join(keys)})")
                warnings.warn(f"{table.title}: {label} has runs of {count} different configurations (they "
                              f"differ in {', '.join(keys)}), shown as separate rows, not averaged; for one "
                              "configuration per model, run the suite into a fresh --results folder, or "
                              "again with `benchbase run SUITE --fresh`", MixedConfigurationsWarning,
                              stacklevel=2)
            if at == "best-before-memorization":
                onset = ("tau_mem from the stored training dynamics" if derived else
                         f"the copy criterion: {CopyRule.of(dyn).describe([])}")
                used = " or ".join(f"{m} ({r})" if r else m for m, r in sorted(getattr(rule, "used", ())))
                what = f"its lowest {used} step (dynamics.fidelity)" if used else "its last evaluation"
                table.notes.append(f"each run at {what} before memorization, as benchbase dynamics records it: "
                                   f"{onset}")
            tables.append(table)
    return tables


def _columns(runs: list[RunRecord], wanted: list[str] | None, ref: str | None,
             primary: str | None, refs: dict[str, tuple[str, ...]]) -> list[Column]:
    """The table's columns: ``wanted`` (metric names or ``metric[ref]`` keys, in that order;
    default: every metric), each metric at ``ref`` where it has it, else its first
    reference; and the primary's column, added last when the others leave it out.
    ``refs``: the runs' stored references (benchbase.leaderboard_checks.stored_references)."""
    want = [canonical(w, refs) or w for w in wanted] if wanted else None
    columns: dict[str, Column] = {}

    def add(col: Column) -> None:
        columns.setdefault(col.key, col)

    for r in runs:
        for m in r.spec.metrics:
            fs = r.spec.eval.features.name
            if want is None or m.name in want:
                add(Column(m.name, ref if ref in m.references else m.references[0], m.direction, m.target, fs))
            for use in m.references if want else ():
                if f"{m.name}[{use}]" in want:
                    add(Column(m.name, use, m.direction, m.target, fs))
    if want and TRAIN_LOSS in want:
        add(_train_loss())
    ordered = list(columns.values())
    if want:
        def place(c: Column) -> int:
            return next((i for i, w in enumerate(want) if w in (c.key, c.metric)), len(want))
        ordered.sort(key=place)
    key = canonical(primary, refs) if primary else None
    if key is not None and _primary(ordered, key) is None:
        name, use = parse_key(key)
        found = _train_loss() if key == TRAIN_LOSS else next(
            (Column(m.name, use or (ref if ref in m.references else m.references[0]), m.direction, m.target,
                    r.spec.eval.features.name) for r in runs for m in r.spec.metrics if m.name == name), None)
        ordered += [found] if found is not None else []
    return ordered


def _train_loss() -> Column:
    """The training loss as a column: lower is better; not computed in a feature space."""
    return Column(TRAIN_LOSS, "train", "lower")


def _label_key(r: RunRecord) -> tuple:
    """What a reader sees of a row: label, framework, n and swept values."""
    params = {k: v for k, v in r.spec.sweep.items() if k != "n"}
    return (r.model_label, r.spec.model.framework, r.n, tuple(sorted((k, str(v)) for k, v in params.items())))


def _row_key(r: RunRecord) -> tuple:
    """Runs that share a row: the same label key and the same configuration, so that a
    row's spread is over seeds only, never over budgets or hyperparameters."""
    return (*_label_key(r), fingerprint(configuration(r.spec)))


def _warn_missing_step(table: Table, runs: list[RunRecord]) -> None:
    """``--at step=N`` that finished runs were not evaluated at: say which steps are stored
    (the table still shows those runs, without a value)."""
    missing = sum(step is None for row in table.rows for step in row.at_steps.values())
    if not missing:
        return
    steps = sorted({s for r in runs if r.status == "done" for s in r.spec.eval.steps})
    shown = ", ".join(map(str, steps[:12])) + (f", ... ({len(steps)} in all)" if len(steps) > 12 else "")
    warnings.warn(f"{table.title}: {missing} finished run(s) have no evaluation at {table.at.replace('=', ' ')}; "
                  f"stored steps: {shown or 'none'}", MissingStepWarning, stacklevel=3)


def _table(results, suite: str, dataset: str, runs: list[RunRecord], wanted: list[str] | None,
           primary: str | None, ref: str | None, rule: AtRule, dyn: Any, declared: frozenset[str]) -> Table:
    refs = stored_references(runs)
    columns = _columns(runs, wanted, ref, primary, refs)
    keys = {c.key for c in columns}
    evals_of = {r.run_id: results.evals(r.run_id) for r in runs if r.status == "done"}
    memorization = declared | {e["metric"][:-len(".chance")] for evals in evals_of.values()
                                             for e in evals if e["metric"].endswith(".chance")}  # never the default rank
    pcol = _primary(columns, canonical(primary, refs) if primary else None, memorization)
    judged: dict[tuple, dict[str, list]] = {}  # row key -> column key -> per value: its Excess or None
    groups: dict[tuple, tuple[Row, Counter, dict[str, list[float]]]] = {}
    configs: dict[tuple, dict[tuple, dict[str, Any]]] = {}  # label key -> row key -> configuration
    for r in runs:
        spec = r.spec
        gkey = _row_key(r)
        if gkey not in groups:
            params = {k: v for k, v in spec.sweep.items() if k != "n"}
            groups[gkey] = (Row(model=r.model_label, name=spec.model.name, family=spec.model.family,
                                framework=spec.model.framework, n=r.n, params=params, runs=0, statuses={},
                                steps=spec.budget.steps, examples=spec.budget.examples),
                            Counter(), {})
            configs.setdefault(_label_key(r), {})[gkey] = configuration(spec)
        row, statuses, values = groups[gkey]
        statuses[r.status] += 1
        row.run_ids.append(r.run_id)
        row.seeds[r.run_id] = r.seed
        if r.derived:
            row.dynamics.append({"run_id": r.run_id, "seed": r.seed, **r.derived})
        if r.status != "done":
            continue
        evals = evals_of[r.run_id]
        row.onsets[r.run_id] = onset_summary(r.derived, evals, dyn)
        step = rule(r, evals, pcol)
        row.at_steps[r.run_id] = step
        if step is None:
            continue
        row.runs += 1
        verdicts = judge_stored(evals, dyn.alpha, dyn.min_excess)
        for e in evals:
            key = f"{e['metric']}[{e['ref']}]" if e["ref"] else e["metric"]
            if e["step"] == step and key in keys:
                values.setdefault(key, []).append(e["value"])
                judged.setdefault(gkey, {}).setdefault(key, []).append(
                    verdicts.get((e["metric"], e["ref"] or "", int(step))))

    for by_row in configs.values():
        if len(by_row) > 1:
            differ = differing(list(by_row.values()))
            for gkey, config in by_row.items():
                groups[gkey][0].config = {k: config.get(k) for k in differ}

    judged_keys = {key for by_key in judged.values() for key, vs in by_key.items() if any(vs)}
    columns = [dataclasses.replace(c, judged=c.key in judged_keys) for c in columns]
    pcol = next((c for c in columns if pcol is not None and c.key == pcol.key), None)
    unranked = pcol is not None and not primary and pcol.metric in memorization and not pcol.judged
    pcol = None if unranked else pcol  # a default memorization column ranks by its verdicts or not at all
    rows = []
    for gkey, (row, statuses, values) in groups.items():
        row.statuses = dict(statuses)
        for key, vals in values.items():
            arr = np.asarray(vals, dtype=float)
            finite = np.isfinite(arr)
            if not finite.any():
                continue
            if key in judged_keys:
                verdicts = [v for v, ok in zip(judged[gkey][key], finite) if ok and v is not None]
                row.values[key] = Cell.judged_over(arr[finite], verdicts)
            else:
                arr = arr[finite]
                row.values[key] = Cell(float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
                                       int(len(arr)))
        rows.append(row)

    if pcol is not None:
        _rank(rows, pcol)
    best = {}
    for col in columns:
        scores = {i: badness(col, r.values[col.key]) for i, r in enumerate(rows) if col.key in r.values}
        scores = {i: s for i, s in scores.items() if math.isfinite(s)}
        if scores:
            top = min(scores.values())
            best[col.key] = [i for i, s in scores.items() if s == top]
    fs = next((c.feature_space for c in columns if c.feature_space), "")
    notes = [f"not ranked: no run of this table stores {primary}"] if primary and pcol is None else []
    notes += ["not ranked: memorization metrics only, without a measured chance level"] if unranked else []
    return Table(suite=suite, dataset=dataset, columns=columns, rows=rows, primary=pcol.key if pcol else None,
                 best=best, feature_space=fs, notes=notes, alpha=dyn.alpha, min_excess=dict(dyn.min_excess or {}))


def _rank(rows: list[Row], pcol: Column) -> None:
    """Sort by the primary column; equal scores share a rank (1, 1, 3); no value: no rank."""
    def score(r: Row) -> float:
        return badness(pcol, r.values[pcol.key]) if pcol.key in r.values else math.inf

    rows.sort(key=lambda r: (pcol.key not in r.values, score(r), r.model, r.n or 0))
    previous, rank = None, 0
    for i, r in enumerate(rows):
        if pcol.key not in r.values:
            continue
        if score(r) != previous:
            rank, previous = i + 1, score(r)
        r.rank = rank


# ------------------------------------------------------------------- JSON schema


def table_to_records(table: Table) -> list[dict]:
    """The stable JSON row schema (documented in docs/leaderboards.md)."""
    out = []
    for i, r in enumerate(table.rows):
        metrics = {}
        for c in table.columns:
            cell = r.values.get(c.key)
            metrics[c.key] = {
                "metric": c.metric, "ref": c.ref, "direction": c.direction, "target": c.target,
                "feature_space": c.feature_space,
                "mean": _none_if_nan(cell.mean) if cell else None,
                "std": _none_if_nan(cell.std) if cell else None,
                "n": cell.n if cell else 0,
                "best": table.is_best(c.key, i),
                "judged_against_chance": c.judged,
                "chance": _none_if_nan(cell.chance) if cell and cell.chance is not None else None,
                "excess": _none_if_nan(cell.excess) if cell and cell.excess is not None else None,
                "memorizing": cell.memorizing if cell and c.judged else None,
            }
        out.append({
            "schema_version": SCHEMA_VERSION,
            "suite": table.suite, "dataset": table.dataset, "at": table.at, "primary": table.primary,
            "feature_space": table.feature_space,
            "model": r.model, "name": r.name, "family": r.family, "framework": r.framework, "n": r.n,
            "params": {**r.params, **r.config}, "rank": r.rank, "runs": r.runs, "statuses": r.statuses,
            "steps": r.steps, "examples": r.examples, "run_ids": r.run_ids, "at_steps": r.at_steps,
            "metrics": metrics, "dynamics": r.dynamics, "onsets": r.onsets,
        })
    return out


def _none_if_nan(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else v
