"""Do distributional distances tell train from test? (seed 001: barely.)

A distance d (swd, fd) computed against the training subset and against the test split
at every evaluation gives, per run:

- the train/test separation |d[train] - d[test]| at the last evaluation, beside how far
  d[test] moved over training |d[test](last) - d[test](first)|: a distance that
  notices memorization must separate the splits by more than its own trajectory;
- the distance's relative gap (d[test] - d[train]) / d[test] minus its first value,
  judged by the same onset rule and threshold as the held-out loss gap (``threshold_onset``
  with ``loss_threshold``): the step at which the distance *notices*, if it ever does,
  beside tau_mem by the loss and the copy criteria.

d[train] is computed against n training examples and d[test] against the test split,
so the two carry different finite-sample biases; subtracting the first evaluation's
gap removes what does not change along training.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

DISTANCES = ("swd", "fd")


@dataclass
class DistanceGap:
    run_id: str
    n: int
    seed: int
    metric: str
    separation: float | None  # |d[train] - d[test]| at the last evaluation
    movement: float | None  # |d[test](last) - d[test](first)|
    relative_gap_growth: float | None  # relative gap at the last evaluation minus its first value
    notice_step: float | None  # where the relative gap's growth first exceeds the threshold (None: never)
    notice_censored: str | None
    tau_mem_loss: float | None
    tau_mem_copy: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def _finite_ends(values: np.ndarray) -> tuple[int, int] | None:
    idx = np.flatnonzero(np.isfinite(values))
    return (int(idx[0]), int(idx[-1])) if len(idx) else None


def relative_distance_gap(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """(d[test] - d[train]) / |d[test]| at every evaluation (NaN where undefined)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return (test - train) / np.abs(test)


def gap_growth(traj, metric: str) -> np.ndarray | None:
    """The relative gap minus its first finite value (None: not stored against both splits)."""
    train, test = traj.get(metric, "train"), traj.get(metric, "test")
    if train is None or test is None:
        return None
    rel = relative_distance_gap(train, test)
    ends = _finite_ends(rel)
    return rel - rel[ends[0]] if ends else None


def distance_gap(run_id: str, n: int, seed: int, traj, derived: dict, metric: str, threshold: float,
                 confirm: int, onset) -> DistanceGap | None:
    """The train/test behaviour of ``metric`` along one run (None when it was not stored
    against both splits). ``onset`` is the onset rule (steps, values, threshold, confirm)."""
    train, test = traj.get(metric, "train"), traj.get(metric, "test")
    if train is None or test is None:
        return None
    rel = relative_distance_gap(train, test)
    ends, rel_ends = _finite_ends(test), _finite_ends(rel)
    both = np.flatnonzero(np.isfinite(train) & np.isfinite(test))
    separation = float(abs(train[both[-1]] - test[both[-1]])) if len(both) else None
    movement = float(abs(test[ends[1]] - test[ends[0]])) if ends else None
    growth, step, censored = None, None, None
    if rel_ends:
        grown = rel - rel[rel_ends[0]]
        growth = float(grown[rel_ends[1]])
        on = onset(traj.steps, grown, threshold, confirm)
        step, censored = on.step, on.censored
    return DistanceGap(run_id, int(n), int(seed), metric, separation, movement, growth, step, censored,
                       derived.get("tau_mem_loss"), derived.get("tau_mem_copy"))


@dataclass
class DistanceSummary:
    metric: str
    runs: int
    separation_over_movement: float | None  # median over runs
    noticed: int  # runs whose distance noticed within the budget (not at the first evaluation)
    notice_over_copy_onset: float | None  # median of notice step / tau_mem_copy over runs with both
    notice_over_loss_onset: float | None  # median of notice step / tau_mem_loss over runs with both
    copies_unnoticed: int  # runs that copied (tau_mem_copy reached) but whose distance never noticed

    def to_dict(self) -> dict:
        return asdict(self)


def _median(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(vals)) if vals else None


def summarize(gaps: list[DistanceGap]) -> list[DistanceSummary]:
    out = []
    for metric in sorted({g.metric for g in gaps}):
        mine = [g for g in gaps if g.metric == metric]
        ratio = [g.separation / g.movement for g in mine
                 if g.separation is not None and g.movement and g.movement > 0]
        noticed = [g for g in mine if g.notice_step is not None and g.notice_censored != "left"]
        out.append(DistanceSummary(
            metric, len(mine), _median(ratio), len(noticed),
            _median([g.notice_step / g.tau_mem_copy for g in noticed if g.tau_mem_copy]),
            _median([g.notice_step / g.tau_mem_loss for g in noticed if g.tau_mem_loss]),
            sum(1 for g in mine if g.tau_mem_copy is not None and g.notice_step is None)))
    return out


def format_summary(s: DistanceSummary, threshold: float) -> str:
    """One sentence per distance; a clause whose median has no run to take it from is left
    out rather than printed as '-'."""
    from benchbase.wording import counted

    m = s.metric
    clauses = []
    if s.separation_over_movement is not None:
        clauses.append(f"|{m}[train] - {m}[test]| at the end is {s.separation_over_movement:.3g} x the movement "
                       f"of {m}[test] over training (median)")
    onsets = [f"{v:.3g} x tau_mem ({kind})" for kind, v in (("loss", s.notice_over_loss_onset),
                                                             ("copy", s.notice_over_copy_onset)) if v is not None]
    at = f", at {' and '.join(onsets)} ({'medians' if len(onsets) > 1 else 'median'})" if onsets else ""
    clauses.append(f"its relative train/test gap grew by {threshold:g} in {s.noticed} of "
                   f"{counted(s.runs, 'run')}{at}")
    unnoticed = counted(s.copies_unnoticed, "run") if s.copies_unnoticed else "no run"
    clauses.append(f"{unnoticed} copied without the distance noticing")
    return f"{m}: over {counted(s.runs, 'run')}, " + "; ".join(clauses)
