"""Leaderboards: aggregate stored runs over seeds into tables, rank them by a primary
metric in its declared direction, and hand them to a publisher for rendering.

A table is one (suite, dataset); a row is one model configuration (model, framework,
n and any swept values); a cell is mean ± std over the seeds that finished. Only
runs with status ``done`` contribute values; the others are counted per row.

Which evaluation step a run contributes is an *at rule* (``--at``): ``final``, a fixed
``step=N``, or ``best-before-memorization``. A rule is a function of the run record,
its stored evaluations and the table's primary column (see :func:`resolve_at`), so a
new rule is one function in ``AT_RULES``.
"""
from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from benchbase.records import RunRecord
from benchbase.verdicts import COPY_METRIC, COPY_REF, FALLBACK_COPY_THRESHOLD, memorization_onset

ARROWS = {"higher": "↑", "lower": "↓"}
SCHEMA_VERSION = 1  # of the JSON row schema; bump only with a note in docs/leaderboards.md


@dataclass(frozen=True)
class Column:
    metric: str
    ref: str
    direction: str
    target: float | None = None
    feature_space: str = ""

    @property
    def key(self) -> str:
        return f"{self.metric}[{self.ref}]" if self.ref else self.metric

    @property
    def arrow(self) -> str:
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

    def format(self, digits: int = 4) -> str:
        if not math.isfinite(self.mean):
            return "n/a"
        text = f"{self.mean:.{digits}g}"
        if self.n > 1:
            text += f" ± {self.std:.2g}"
        return text


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

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k.split('.', 1)[-1]}={v}" for k, v in self.params.items())
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
        return escape(" · ").join(parts + [escape(n) for n in self.notes])


AT_TEXT = {"final": "final evaluation", "best-before-memorization": "best evaluation before memorization"}


# ----------------------------------------------------------------------- at rules

#: (run record, its evals, the table's primary column) -> the step it contributes, or None
AtRule = Callable[[RunRecord, list, "Column | None"], "int | None"]


def at_final(run: RunRecord, evals: list[dict], primary: Column | None) -> int | None:
    """The run's last scheduled evaluation."""
    steps = run.spec.eval.steps
    final = max(steps) if steps else 0
    return final if any(e["step"] == final for e in evals) else None


def at_step(step: int) -> AtRule:
    """A fixed step (the same number of examples seen, since budgets are identical).

    A run scheduled at step 0 only (a model that does not train, e.g. an oracle) is
    the same at every step and contributes that evaluation.
    """
    def rule(run: RunRecord, evals: list[dict], primary: Column | None) -> int | None:
        if not run.spec.trains:
            step_used = 0
        else:
            step_used = step
        return step_used if any(e["step"] == step_used for e in evals) else None
    return rule


def at_best_before_memorization(threshold: float = FALLBACK_COPY_THRESHOLD) -> AtRule:
    """The step with the best primary-metric value strictly before memorization onset
    (all steps if the run never memorizes; none if it memorizes from its first eval)."""
    def rule(run: RunRecord, evals: list[dict], primary: Column | None) -> int | None:
        if primary is None:
            return None
        try:
            onset = memorization_onset(run.derived, evals, threshold)
        except LookupError:
            return None
        scored = [(primary.badness(e["value"]), e["step"]) for e in evals
                  if e["metric"] == primary.metric and e["ref"] == primary.ref and math.isfinite(e["value"])
                  and (onset is None or e["step"] < onset)]
        return min(scored)[1] if scored else None
    return rule


AT_RULES: dict[str, Callable[..., AtRule]] = {
    "final": lambda **_: at_final,
    "best-before-memorization": lambda mem_threshold=FALLBACK_COPY_THRESHOLD, **_:
        at_best_before_memorization(mem_threshold),
}


def resolve_at(at: str, mem_threshold: float = FALLBACK_COPY_THRESHOLD) -> AtRule:
    """Parse ``--at``: final | best-before-memorization | step=N."""
    if at in AT_RULES:
        return AT_RULES[at](mem_threshold=mem_threshold)
    if at.startswith("step="):
        try:
            value = float(at.split("=", 1)[1])
        except ValueError:
            value = -1.0
        if value >= 0 and value == int(value):
            return at_step(int(value))
        raise ValueError(f"--at '{at}': N in step=N must be a whole number >= 0")
    raise ValueError(f"unknown --at '{at}'. Valid: {', '.join(AT_RULES)}, step=N")


# ------------------------------------------------------------------------ tables


def build_tables(results, suite: str | None = None, dataset: str | None = None,
                 metrics: list[str] | None = None, at: str = "final", primary: str | None = None,
                 ref: str | None = None, mem_threshold: float = FALLBACK_COPY_THRESHOLD) -> list[Table]:
    """Tables for every (suite, dataset) in ``results`` (a Store or a ResultSet), or a slice."""
    rule = resolve_at(at, mem_threshold)
    suites = [suite] if suite else results.suites()
    tables = []
    for s in suites:
        runs = results.runs(suite=s)
        if dataset:
            runs = [r for r in runs if dataset in (r.dataset_label, r.spec.dataset.name)]
        by_dataset: dict[str, list[RunRecord]] = {}
        for r in runs:
            by_dataset.setdefault(r.dataset_label, []).append(r)
        settings = results.suite_settings(s)
        derived = results.derived(s)  # training-dynamics records, where the store has them
        for ds, ds_runs in by_dataset.items():
            ds_runs = [dataclasses.replace(r, derived=derived[r.run_id]) if r.run_id in derived else r
                       for r in ds_runs]
            table = _table(results, s, ds, ds_runs, metrics or settings.get("metrics") or None,
                           primary or settings.get("primary"), ref, rule)
            table.at = at
            if at == "best-before-memorization":
                pcol = table.primary_column
                onset = (f"{COPY_METRIC} ({COPY_REF}) first exceeds {mem_threshold:g}" if not derived else
                         f"tau_mem from the stored training dynamics (else {COPY_METRIC} ({COPY_REF}) > "
                         f"{mem_threshold:g})")
                table.notes.append(f"each run at its best {pcol.header if pcol else 'primary metric'} step "
                                   f"before memorization: {onset}")
            tables.append(table)
    return tables


def _columns(runs: list[RunRecord], wanted: list[str] | None, ref: str | None) -> list[Column]:
    columns: dict[str, Column] = {}
    for r in runs:
        for m in r.spec.metrics:
            if wanted and m.name not in wanted:
                continue
            use = ref if ref in m.references else m.references[0]
            col = Column(m.name, use, m.direction, m.target, r.spec.eval.features.name)
            columns.setdefault(col.key, col)
    ordered = list(columns.values())
    if wanted:
        ordered.sort(key=lambda c: wanted.index(c.metric) if c.metric in wanted else len(wanted))
    return ordered


def _primary(columns: list[Column], primary: str | None) -> Column | None:
    if primary:
        found = next((c for c in columns if c.metric == primary or c.key == primary), None)
        if found is not None:
            return found
    return columns[0] if columns else None


def _row_key(r: RunRecord) -> tuple:
    params = {k: v for k, v in r.spec.sweep.items() if k != "n"}
    return (r.model_label, r.spec.model.framework, r.n, tuple(sorted((k, str(v)) for k, v in params.items())))


def _table(results, suite: str, dataset: str, runs: list[RunRecord], wanted: list[str] | None,
           primary: str | None, ref: str | None, rule: AtRule) -> Table:
    columns = _columns(runs, wanted, ref)
    keys = {c.key for c in columns}
    pcol = _primary(columns, primary)
    groups: dict[tuple, tuple[Row, Counter, dict[str, list[float]]]] = {}
    for r in runs:
        spec = r.spec
        gkey = _row_key(r)
        if gkey not in groups:
            params = {k: v for k, v in spec.sweep.items() if k != "n"}
            groups[gkey] = (Row(model=r.model_label, name=spec.model.name, family=spec.model.family,
                                framework=spec.model.framework, n=r.n, params=params, runs=0, statuses={},
                                steps=spec.budget.steps, examples=spec.budget.examples),
                            Counter(), {})
        row, statuses, values = groups[gkey]
        statuses[r.status] += 1
        row.run_ids.append(r.run_id)
        row.seeds[r.run_id] = r.seed
        if r.derived:
            row.dynamics.append({"run_id": r.run_id, "seed": r.seed, **r.derived})
        if r.status != "done":
            continue
        evals = results.evals(r.run_id)
        step = rule(r, evals, pcol)
        row.at_steps[r.run_id] = step
        if step is None:
            continue
        row.runs += 1
        for e in evals:
            key = f"{e['metric']}[{e['ref']}]" if e["ref"] else e["metric"]
            if e["step"] == step and key in keys:
                values.setdefault(key, []).append(e["value"])

    rows = []
    for row, statuses, values in groups.values():
        row.statuses = dict(statuses)
        for key, vals in values.items():
            arr = np.asarray(vals, dtype=float)
            arr = arr[np.isfinite(arr)]
            if len(arr):
                row.values[key] = Cell(float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
                                       int(len(arr)))
        rows.append(row)

    if pcol is not None:
        _rank(rows, pcol)
    best = {}
    for col in columns:
        scores = {i: col.badness(r.values[col.key].mean) for i, r in enumerate(rows) if col.key in r.values}
        if scores:
            top = min(scores.values())
            best[col.key] = [i for i, s in scores.items() if s == top]
    fs = columns[0].feature_space if columns else ""
    return Table(suite=suite, dataset=dataset, columns=columns, rows=rows,
                 primary=pcol.key if pcol else None, best=best, feature_space=fs)


def _rank(rows: list[Row], pcol: Column) -> None:
    """Sort by the primary column; equal means share a rank (1, 1, 3); no value: no rank."""
    def score(r: Row) -> float:
        return pcol.badness(r.values[pcol.key].mean) if pcol.key in r.values else math.inf

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
            }
        out.append({
            "schema_version": SCHEMA_VERSION,
            "suite": table.suite, "dataset": table.dataset, "at": table.at, "primary": table.primary,
            "feature_space": table.feature_space,
            "model": r.model, "name": r.name, "family": r.family, "framework": r.framework, "n": r.n,
            "params": r.params, "rank": r.rank, "runs": r.runs, "statuses": r.statuses,
            "steps": r.steps, "examples": r.examples, "run_ids": r.run_ids, "at_steps": r.at_steps,
            "metrics": metrics, "dynamics": r.dynamics,
        })
    return out


def _none_if_nan(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else v
