"""Leaderboards: aggregate stored runs over seeds into tables, rank them by a primary
metric in its declared direction, and hand them to a publisher for rendering.

A table is one (suite, dataset); a row is one model configuration (model, framework,
n and any swept values); a cell is mean ± std over the seeds that finished. Only
runs with status ``done`` contribute values; the others are counted per row.
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from benchbase.store import Store

ARROWS = {"higher": "↑", "lower": "↓"}


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
    dynamics: list[dict] = field(default_factory=list)  # per run: derived quantities (benchbase.dynamics)

    @property
    def label(self) -> str:
        extra = ", ".join(f"{k.split('.', 1)[-1]}={v}" for k, v in self.params.items())
        return f"{self.model} ({extra})" if extra else self.model


@dataclass
class Table:
    suite: str
    dataset: str
    columns: list[Column]
    rows: list[Row]
    primary: str | None  # column key used for ranking
    at: str = "final"
    best: dict[str, int] = field(default_factory=dict)  # column key -> row index
    feature_space: str = ""

    @property
    def title(self) -> str:
        return f"{self.suite} — {self.dataset}"


def build_tables(store: Store, suite: str | None = None, dataset: str | None = None,
                 metrics: list[str] | None = None, at: str = "final", primary: str | None = None,
                 ref: str | None = None) -> list[Table]:
    """Tables for every (suite, dataset) in the store, or a chosen slice."""
    suites = [suite] if suite else store.suites()
    tables = []
    for s in suites:
        runs = store.runs(suite=s)
        if dataset:
            runs = [r for r in runs if dataset in (r["dataset_label"], r["dataset"])]
        by_dataset: dict[str, list[dict]] = defaultdict(list)
        for r in runs:
            by_dataset[r["dataset_label"]].append(r)
        settings = store.suite_settings(s)
        for ds, ds_runs in by_dataset.items():
            tables.append(_table(store, s, ds, ds_runs, metrics or settings.get("metrics") or None,
                                 at, primary or settings.get("primary"), ref))
    return tables


def _value_step(evals: list[dict], at: str, final_step: int) -> int | None:
    steps = sorted({e["step"] for e in evals})
    if not steps:
        return None
    if at == "final":
        return final_step if final_step in steps else None
    if at.startswith("step="):
        want = int(float(at.split("=", 1)[1]))
        return want if want in steps else None
    raise ValueError(f"unknown --at '{at}': use final or step=N")


def _table(store: Store, suite: str, dataset: str, runs: list[dict], wanted: list[str] | None,
           at: str, primary: str | None, ref: str | None) -> Table:
    columns: dict[str, Column] = {}
    groups: dict[tuple, dict] = {}
    derived = store.derived(suite)
    for r in runs:
        spec = r["spec"]
        params = {k: v for k, v in spec.get("sweep", {}).items() if k != "n"}
        gkey = (r["model_label"], r["framework"], r["n"], tuple(sorted(params.items())))
        g = groups.setdefault(gkey, {"row": Row(model=r["model_label"], name=r["model"], family=r["family"],
                                                framework=r["framework"], n=r["n"], params=params, runs=0,
                                                statuses={}, steps=spec["budget"]["steps"],
                                                examples=spec["budget"]["examples"]),
                                     "values": defaultdict(list), "statuses": Counter()})
        g["statuses"][r["status"]] += 1
        g["row"].run_ids.append(r["run_id"])
        if r["run_id"] in derived:
            g["row"].dynamics.append({"run_id": r["run_id"], "seed": r["seed"], **derived[r["run_id"]]})
        meta = {m["name"]: m for m in spec.get("metrics", [])}
        for name, m in meta.items():
            if wanted and name not in wanted:
                continue
            refs = m.get("references") or ["train"]
            use = ref if ref in refs else refs[0]
            col = Column(name, use, m["direction"], m.get("target"), spec["eval"]["features"]["name"])
            columns.setdefault(col.key, col)
        if r["status"] != "done":
            continue
        evals = store.evals(r["run_id"])
        final = max(spec["eval"]["steps"]) if spec["eval"]["steps"] else 0
        step = _value_step(evals, at, final)
        if step is None:
            continue
        g["row"].runs += 1
        for e in evals:
            if e["step"] != step:
                continue
            key = f"{e['metric']}[{e['ref']}]" if e["ref"] else e["metric"]
            if key in columns:
                g["values"][key].append(e["value"])

    ordered_cols = list(columns.values())
    if wanted:
        ordered_cols.sort(key=lambda c: wanted.index(c.metric) if c.metric in wanted else len(wanted))
    rows = []
    for g in groups.values():
        row: Row = g["row"]
        row.statuses = dict(g["statuses"])
        for key, vals in g["values"].items():
            arr = np.asarray(vals, dtype=float)
            arr = arr[np.isfinite(arr)]
            if len(arr):
                row.values[key] = Cell(float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
                                       int(len(arr)))
        rows.append(row)

    primary_key = None
    if primary:
        primary_key = next((c.key for c in ordered_cols if c.metric == primary or c.key == primary), None)
    if primary_key is None and ordered_cols:
        primary_key = ordered_cols[0].key
    if primary_key is not None:
        pcol = columns[primary_key]
        rows.sort(key=lambda r: (primary_key not in r.values,
                                 pcol.badness(r.values[primary_key].mean) if primary_key in r.values else 0,
                                 r.model, r.n or 0))
        rank = 0
        for r in rows:
            if primary_key in r.values:
                rank += 1
                r.rank = rank
    best = {}
    for col in ordered_cols:
        scored = [(col.badness(r.values[col.key].mean), i) for i, r in enumerate(rows) if col.key in r.values]
        if scored:
            best[col.key] = min(scored)[1]
    fs = ordered_cols[0].feature_space if ordered_cols else ""
    return Table(suite=suite, dataset=dataset, columns=ordered_cols, rows=rows, primary=primary_key,
                 at=at, best=best, feature_space=fs)


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
                "best": table.best.get(c.key) == i,
            }
        out.append({
            "suite": table.suite, "dataset": table.dataset, "model": r.model, "name": r.name,
            "family": r.family, "framework": r.framework, "n": r.n, "params": r.params,
            "rank": r.rank, "runs": r.runs, "statuses": r.statuses, "steps": r.steps,
            "examples": r.examples, "at": table.at, "run_ids": r.run_ids, "metrics": metrics,
            "dynamics": r.dynamics,
        })
    return out


def _none_if_nan(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else v
