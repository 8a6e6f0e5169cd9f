"""One or more results directories read as one set of runs, for publishing.

Suites run on several machines leave several stores. They merge by run id (the hash
of everything that changes a run's numbers), so a run stored twice should hold the
same values twice. Two copies *conflict* when they store different values for the
same (step, metric, reference), or when both finished with different statuses.
Identical copies are one run; a finished copy is preferred over an unfinished one
(the other machine stopped earlier or never started it). A conflicting run is never
silently resolved: it is listed in :attr:`ResultSet.conflicts` and gets the status
``conflict``, so it contributes no values to any table.

A ResultSet offers the store's read API (``suites``, ``runs``, ``suite_settings``,
``evals``, ``samples``), so leaderboards and reports read one store or many alike.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from benchbase.records import RunRecord
from benchbase.errors import BenchbaseInputError
from benchbase.contracts import FINAL_STATUSES
from benchbase.paths import DB_NAME
from benchbase.store import Store

CONFLICT = "conflict"
_STATUS_PREFERENCE = {"done": 0, "diverged": 1, "timeout": 2, "failed": 3, "running": 4, "interrupted": 4,
                      "pending": 5}


@dataclass
class Conflict:
    """A run id whose copies in different results directories disagree."""

    run_id: str
    title: str
    sources: list[str]
    differences: list[str] = field(default_factory=list)  # a few, human-readable
    count: int = 0  # how many stored values differ (status counts as one)

    def describe(self) -> str:
        shown = "; ".join(self.differences[:3]) + (" ..." if len(self.differences) > 3 else "")
        return (f"run {self.run_id} ({self.title}) differs between {' and '.join(self.sources)}: "
                f"{self.count} stored value(s) differ: {shown}")


@dataclass
class _Copy:
    source: str
    store: Store
    record: RunRecord
    evals: list[dict]


class ResultSet:
    """Read-only union of results stores (first directory first)."""

    def __init__(self, directories: Sequence[str | Path]):
        dirs: list[Path] = []
        for d in directories:
            path = Path(d)
            if not (path / DB_NAME).exists():
                raise BenchbaseInputError(f"no results in {path}/ (no {DB_NAME}; run a suite first, "
                                          "or pass the right --results)")
            if path.resolve() not in [p.resolve() for p in dirs]:
                dirs.append(path)
        if not dirs:
            raise BenchbaseInputError("no results directory given")
        self.directories = [str(d) for d in dirs]
        self._stores = [Store(d, create=False) for d in dirs]
        self._chosen: dict[str, _Copy] = {}
        self._suite_runs: dict[str, list[str]] = {}
        self._settings: dict[str, dict] = {}
        self.conflicts: list[Conflict] = []
        self._load()

    # -------------------------------------------------------------- loading
    def _load(self) -> None:
        copies: dict[str, list[_Copy]] = {}
        for source, store in zip(self.directories, self._stores):
            for rec in store.runs():
                copies.setdefault(rec.run_id, []).append(_Copy(source, store, rec, store.evals(rec.run_id)))
            for suite in store.suites():
                order = self._suite_runs.setdefault(suite, [])
                order += [r.run_id for r in store.runs(suite=suite) if r.run_id not in order]
                if suite not in self._settings:
                    self._settings[suite] = store.suite_settings(suite)
        for run_id, found in copies.items():
            chosen = min(found, key=lambda c: (_STATUS_PREFERENCE.get(c.record.status, 9), -len(c.evals)))
            conflict = _compare(run_id, found)
            if conflict is not None:
                self.conflicts.append(conflict)
                chosen.record = dataclasses.replace(chosen.record, status=CONFLICT, conflict=conflict)
            chosen.record = dataclasses.replace(chosen.record, source=chosen.source)
            self._chosen[run_id] = chosen

    # ------------------------------------------------------------ store API
    def suites(self) -> list[str]:
        return sorted(self._suite_runs)

    def runs(self, suite: str | None = None, status: str | None = None) -> list[RunRecord]:
        ids = self._suite_runs.get(suite, []) if suite is not None else list(self._chosen)
        out = [self._chosen[rid].record for rid in ids if rid in self._chosen]
        return [r for r in out if status is None or r.status == status]

    def run(self, run_id: str) -> RunRecord | None:
        copy = self._chosen.get(run_id)
        return copy.record if copy else None

    def suite_settings(self, suite: str) -> dict:
        return dict(self._settings.get(suite, {}))

    def suite_resolved(self, suite: str) -> dict:
        """The suite as last run (from the first directory that holds it)."""
        return next((r for r in (store.suite_resolved(suite) for store in self._stores) if r), {})

    def derived(self, suite: str) -> dict[str, dict]:
        """Training-dynamics records of the suite's runs (benchbase.derived), from the
        store each run was read from; empty where a store has none."""
        out = {}
        for source, store in zip(self.directories, self._stores):
            for run_id, record in store.derived(suite).items():
                chosen = self._chosen.get(run_id)
                if chosen is not None and chosen.source == source:
                    out[run_id] = record
        return out

    def suites_of(self, run_id: str) -> list[str]:
        return [s for s, ids in sorted(self._suite_runs.items()) if run_id in ids]

    def evals(self, run_id: str) -> list[dict]:
        copy = self._chosen.get(run_id)
        return list(copy.evals) if copy else []

    def samples(self, run_id: str, step: int | None = None) -> tuple[int, np.ndarray] | None:
        copy = self._chosen.get(run_id)
        return copy.store.samples(run_id, step) if copy else None

    def close(self) -> None:
        for store in self._stores:
            store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def _compare(run_id: str, copies: list[_Copy]) -> Conflict | None:
    """Conflict if any two copies store different values for the same key."""
    differences: list[str] = []
    count = 0
    sources: list[str] = []
    for i, one in enumerate(copies):
        mine = {(e["step"], e["metric"], e["ref"]): e["value"] for e in one.evals}
        for other in copies[i + 1:]:
            before = count
            a, b = one.record.status, other.record.status
            if a in FINAL_STATUSES and b in FINAL_STATUSES and a != b:
                count += 1
                differences.append(f"status {a} vs {b}")
            for e in other.evals:
                key = (e["step"], e["metric"], e["ref"])
                if key in mine and not _same(mine[key], e["value"]):
                    count += 1
                    if len(differences) < 5:
                        ref = f"[{e['ref']}]" if e["ref"] else ""
                        differences.append(f"{e['metric']}{ref} at step {e['step']}: {mine[key]:.6g} vs "
                                           f"{e['value']:.6g}")
            if count > before:
                sources += [s for s in (one.source, other.source) if s not in sources]
    if not count:
        return None
    return Conflict(run_id, copies[0].record.title, sources, differences, count)
