"""When does a run count as memorizing? The one onset rule of benchbase.

Every consumer asks here: benchbase.dynamics (``tau_mem`` by the copy and the loss
criterion, and the curve-collapse levels), the leaderboard (``--at
best-before-memorization``), and through them the plots and the report.

The rule today is a threshold crossing (:func:`onset`): the first evaluation where a
curve exceeds a threshold and keeps exceeding it for ``confirm`` more evaluations,
with the crossing interpolated in log(step). Its settings come from the caller:

- the suite's ``dynamics:`` section (benchbase.suite_schema.DynamicsEntry): copy
  threshold 0.01 on ``mem_ratio`` and 0.05 on the relative held-out gap, confirm 1;
- the leaderboard's fallback for stores without derived records: ``mem_ratio[train]``
  above ``--mem-threshold`` (default :data:`FALLBACK_COPY_THRESHOLD`), unconfirmed,
  read at the evaluation step (no interpolation).

A calibrated rule (a threshold judged against the chance level of the metric)
replaces :func:`onset` here, and nowhere else.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

#: the copy curve the leaderboard's fallback reads
COPY_METRIC, COPY_REF = "mem_ratio", "train"
#: its default threshold (``--mem-threshold``)
FALLBACK_COPY_THRESHOLD = 0.1


@dataclass
class Onset:
    """Where a criterion is first met (and confirmed)."""

    step: float | None  # interpolated in log(step); None: not reached
    eval_step: int | None  # first evaluation step meeting the criterion
    index: int | None  # its index in the trajectory
    censored: str | None  # "left": met at the first evaluation; "right": never met

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def onset(steps: np.ndarray, values: np.ndarray, threshold: float, confirm: int = 1) -> Onset:
    """First evaluation where ``values > threshold`` holds and keeps holding for the next
    ``confirm`` evaluations (as many as exist), with the crossing interpolated in log(step).

    ``steps`` ascend. Missing values (NaN) never meet a criterion.
    """
    steps = np.asarray(steps, dtype=float)
    values = np.asarray(values, dtype=float)
    above = np.where(np.isfinite(values), values > threshold, False)
    for i in range(len(steps)):
        if above[i] and above[i + 1:i + 1 + confirm].all():
            if i == 0:
                return Onset(float(steps[0]), int(steps[0]), 0, "left")
            s0, s1, v0, v1 = steps[i - 1], steps[i], values[i - 1], values[i]
            frac = 1.0 if not np.isfinite(v0) or v1 == v0 else float(np.clip((threshold - v0) / (v1 - v0), 0, 1))
            if s0 > 0:
                at = math.exp(math.log(s0) + frac * (math.log(s1) - math.log(s0)))
            else:  # an evaluation at step 0: interpolate linearly
                at = s0 + frac * (s1 - s0)
            return Onset(float(at), int(s1), i, None)
    return Onset(None, None, None, "right")


def memorization_onset(derived: dict | None, evals: list[dict],
                       threshold: float = FALLBACK_COPY_THRESHOLD) -> float | None:
    """The step from which a run counts as memorizing; None if it never does.

    With the run's derived training-dynamics record (``derived``, written by
    benchbase.derived: ``tau_mem`` by the suite's criterion) that is the onset; a
    record censored on the left (memorizing at the first evaluation) gives -inf.
    Otherwise the copy criterion on the stored curve: the first evaluated step where
    ``mem_ratio[train]`` exceeds ``threshold``. LookupError when neither is available.
    """
    derived = derived or {}
    if derived.get("criterion"):
        if derived.get("censored") == "left":
            return -math.inf
        return derived.get("tau_mem")
    curve = sorted((e["step"], e["value"]) for e in evals if e["metric"] == COPY_METRIC and e["ref"] == COPY_REF)
    if not curve:
        raise LookupError(COPY_METRIC)
    steps, values = zip(*curve)
    return onset(np.array(steps), np.array(values, dtype=float), threshold, confirm=0).eval_step
