"""When does a run count as memorizing? The one onset rule of benchbase.

Every consumer asks here: benchbase.dynamics (``tau_mem`` and the records it
stores), the leaderboard (``--at best-before-memorization`` and the judgement of
memorization columns), the plots and the report, so they agree on every run.

Two criteria, one function (:func:`memorization_onsets`):

- **copy**: memorization has started at the first evaluation where a memorization
  metric is significantly above its chance level (one-sided t-test at ``alpha``,
  benchbase.chance) **and** above it by at least the metric's minimum effect, and
  stays so for the next ``confirm`` evaluations. ``copy_metric: auto`` judges every
  stored memorization metric (any one memorizing counts; ``alpha`` is split between
  them, Bonferroni); a metric name judges that one alone. The crossing is
  interpolated in log(step) on the margin "excess minus the smallest excess that
  counts" of the metric that crossed first.
- **loss**: the relative held-out gap g(s) = (L_test - L_train) / |L_test| minus its
  first value exceeds ``loss_threshold`` (a threshold crossing, :func:`threshold_onset`).

``criterion`` picks the headline (``auto``: copy when a memorization metric with a
chance level was stored, else loss). Settings: the suite's ``dynamics:`` section.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchbase.chance import DEFAULT_ALPHA, Excess, judge_stored

COPY_REF = "train"  # memorization metrics compare samples with the training subset


@dataclass
class Onset:
    """Where a criterion is first met (and confirmed)."""

    step: float | None  # interpolated in log(step); None: not reached
    eval_step: int | None  # first evaluation step meeting the criterion
    index: int | None  # its index in the trajectory
    censored: str | None  # "left": met at the first evaluation; "right": never met
    metric: str | None = None  # copy criterion: the memorization metric that crossed

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def threshold_onset(steps: np.ndarray, values: np.ndarray, threshold: float, confirm: int = 1) -> Onset:
    """First evaluation where ``values > threshold`` holds and keeps holding for the next
    ``confirm`` evaluations (as many as exist), with the crossing interpolated in log(step).

    ``steps`` ascend. Missing values (NaN) never meet a criterion.
    """
    values = np.asarray(values, dtype=float)
    above = np.where(np.isfinite(values), values > threshold, False)
    return _first_confirmed(np.asarray(steps, dtype=float), above, {None: values - threshold}, confirm)


def _first_confirmed(steps: np.ndarray, flags: np.ndarray, margins: dict[str | None, np.ndarray],
                     confirm: int) -> Onset:
    """The first confirmed flag; the step interpolated where a margin (> 0 when flagged)
    crosses zero, earliest over the margins that are positive there."""
    for i in range(len(steps)):
        if not (flags[i] and flags[i + 1:i + 1 + confirm].all()):
            continue
        if i == 0:
            first = next((name for name, m in margins.items() if np.isfinite(m[0]) and m[0] > 0), None)
            return Onset(float(steps[0]), int(steps[0]), 0, "left", first)
        best: tuple[float, str | None] | None = None
        for name, m in margins.items():
            v0, v1 = m[i - 1], m[i]
            if not (np.isfinite(v1) and v1 > 0):
                continue
            frac = 1.0 if not np.isfinite(v0) or v1 == v0 else float(np.clip(-v0 / (v1 - v0), 0, 1))
            s0, s1 = steps[i - 1], steps[i]
            at = math.exp(math.log(s0) + frac * (math.log(s1) - math.log(s0))) if s0 > 0 else s0 + frac * (s1 - s0)
            if best is None or at < best[0]:
                best = (at, name)
        at, name = best if best is not None else (float(steps[i]), None)
        return Onset(float(at), int(steps[i]), i, None, name)
    return Onset(None, None, None, "right")


# ------------------------------------------------------------------ copy criterion


@dataclass
class JudgedCurve:
    """A memorization metric along a run: each evaluation judged against its chance level."""

    metric: str
    steps: np.ndarray
    verdicts: list[Excess | None]  # None where the metric or its chance level is missing

    @property
    def memorizing(self) -> np.ndarray:
        return np.array([v is not None and v.memorizing for v in self.verdicts], dtype=bool)

    @property
    def margin(self) -> np.ndarray:
        """Excess minus the smallest excess that counts (> 0: memorizing); NaN where missing."""
        return np.array([v.excess - v.threshold if v is not None and math.isfinite(v.excess) else math.nan
                         for v in self.verdicts])

    def values(self, what: str) -> np.ndarray:
        """``value``, ``chance`` or ``excess`` per evaluation (NaN where missing)."""
        return np.array([getattr(v, what) if v is not None else math.nan for v in self.verdicts], dtype=float)


@dataclass(frozen=True)
class CopyRule:
    """Settings of the copy criterion (from the suite's ``dynamics:`` section)."""

    copy_metric: str = "auto"  # auto: every stored memorization metric; else one metric name
    alpha: float = DEFAULT_ALPHA  # one-sided level, split between the metrics judged
    min_excess: dict = field(default_factory=dict)  # per metric: overrides the metric's own minimum effect
    confirm: int = 1

    @classmethod
    def of(cls, settings: Any) -> "CopyRule":
        """From a DynamicsEntry (or anything with its attributes)."""
        return cls(getattr(settings, "copy_metric", "auto"), float(getattr(settings, "alpha", DEFAULT_ALPHA)),
                   dict(getattr(settings, "min_excess", None) or {}), int(getattr(settings, "confirm", 1)))

    def describe(self, metrics: list[str]) -> str:
        split = f" (Bonferroni over {len(metrics)})" if len(metrics) > 1 else ""
        return (f"{' or '.join(metrics) or self.copy_metric} significantly above chance (one-sided t-test, "
                f"alpha {self.alpha:g}{split}) and by at least its minimum excess")


def judged_curves(evals: list[dict], rule: CopyRule) -> dict[str, JudgedCurve]:
    """Every memorization metric the rule judges, along the run (each at alpha / k)."""
    stored = sorted({e["metric"][: -len(".chance")] for e in evals
                     if e["metric"].endswith(".chance") and (e["ref"] or "") == COPY_REF})
    metrics = stored if rule.copy_metric == "auto" else [m for m in stored if m == rule.copy_metric]
    if not metrics:
        return {}
    verdicts = judge_stored(evals, rule.alpha / len(metrics), rule.min_excess)
    steps = np.array(sorted({int(e["step"]) for e in evals}), dtype=np.int64)
    return {m: JudgedCurve(m, steps, [verdicts.get((m, COPY_REF, int(s))) for s in steps]) for m in metrics}


def copy_onset(evals: list[dict], rule: CopyRule) -> Onset | None:
    """The copy criterion on a run's stored evaluations; None when no memorization metric
    with a stored chance level is there to judge."""
    curves = judged_curves(evals, rule)
    if not curves:
        return None
    first = next(iter(curves.values()))
    flags = np.logical_or.reduce([c.memorizing for c in curves.values()])
    return _first_confirmed(first.steps.astype(float), flags, {m: c.margin for m, c in curves.items()},
                            rule.confirm)


# -------------------------------------------------------------------- both rules


@dataclass
class Onsets:
    """Both criteria for one run, and which one is the headline."""

    copy: Onset | None  # None: unavailable (no memorization metric with a chance level stored)
    loss: Onset | None  # None: unavailable (no held-out losses stored)
    criterion: str | None  # "copy" | "loss" | None (the chosen one is unavailable)
    copy_metrics: list[str] = field(default_factory=list)  # the memorization metrics judged

    @property
    def headline(self) -> Onset | None:
        return {"copy": self.copy, "loss": self.loss}.get(self.criterion or "")


def relative_gap(steps: np.ndarray, train: np.ndarray | None, test: np.ndarray | None) -> np.ndarray | None:
    """(L_test - L_train) / |L_test| minus its value at the first evaluation with one."""
    if train is None or test is None:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = (test - train) / np.abs(test)
    finite = np.flatnonzero(np.isfinite(gap))
    if not len(finite):
        return None
    return gap - gap[finite[0]]


def memorization_onsets(evals: list[dict], settings: Any, gap: np.ndarray | None = None,
                        steps: np.ndarray | None = None) -> Onsets:
    """The copy and loss criteria of one run, and the headline by ``settings.criterion``.

    ``gap`` (the relative held-out gap at ``steps``) is computed by the caller that
    already pivoted the evaluations; without it only the copy criterion is judged.
    """
    rule = CopyRule.of(settings)
    curves = judged_curves(evals, rule)
    copy = copy_onset(evals, rule) if curves else None
    loss = None
    if gap is not None and steps is not None:
        loss = threshold_onset(steps, gap, float(settings.loss_threshold), int(settings.confirm))
    criterion = settings.criterion
    if criterion == "auto":
        criterion = "copy" if copy is not None else ("loss" if loss is not None else None)
    if criterion not in (None, "copy", "loss") or {"copy": copy, "loss": loss}.get(criterion or "") is None:
        criterion = None
    return Onsets(copy, loss, criterion, sorted(curves))


def memorization_onset(derived: dict | None, evals: list[dict], settings: Any) -> float | None:
    """The step from which a run counts as memorizing; None if it never does; -inf when it
    memorized from its first evaluation.

    The run's stored training-dynamics record (``derived``, written by
    benchbase.dynamics with this module) when there is one, so the leaderboard reads
    exactly what ``benchbase dynamics`` printed; otherwise the copy criterion on the
    stored evaluations with ``settings``. LookupError when neither is available.
    """
    derived = derived or {}
    if derived.get("criterion"):
        if derived.get("censored") == "left":
            return -math.inf
        return derived.get("tau_mem")
    found = copy_onset(evals, CopyRule.of(settings))
    if found is None:
        raise LookupError("no memorization metric with a stored chance level")
    if found.censored == "left":
        return -math.inf
    return found.step


def onset_summary(derived: dict | None, evals: list[dict], settings: Any) -> dict:
    """A run's memorization onset as the leaderboard JSON and the report show it:
    ``tau_mem`` (None: not within the budget), ``censored`` ("left": from the first
    evaluation; "right": never; "unavailable": nothing to judge), ``criterion`` and, for
    the copy criterion, the ``metric`` that crossed. From the run's stored dynamics
    record when there is one (``source`` "dynamics"), else the copy criterion on its
    evaluations (``source`` "evaluations")."""
    if derived:
        criterion = derived.get("criterion")
        return {"tau_mem": derived.get("tau_mem"), "censored": derived.get("censored") if criterion else "unavailable",
                "criterion": criterion, "source": "dynamics",
                "metric": derived.get("tau_mem_copy_metric") if criterion == "copy" else None}
    found = copy_onset(evals, CopyRule.of(settings))
    if found is None:
        return {"tau_mem": None, "censored": "unavailable", "criterion": None, "metric": None, "source": "evaluations"}
    return {"tau_mem": found.step, "censored": found.censored, "criterion": "copy", "metric": found.metric,
            "source": "evaluations"}
