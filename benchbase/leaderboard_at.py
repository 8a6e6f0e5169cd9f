"""Which evaluation step each run contributes to a leaderboard: the *at rules* of
``--at``. A rule is a function of the run record, its stored evaluations and the
table's primary column, so a new rule is one function in ``AT_RULES``."""
from __future__ import annotations

import math
from typing import Any, Callable

from benchbase.records import RunRecord
from benchbase.suite_schema import DynamicsEntry
from benchbase.verdicts import memorization_onset

#: (run record, its evals, the table's primary column: a benchbase.leaderboard.Column or
#: None) -> the step it contributes, or None
AtRule = Callable[[RunRecord, list, Any], "int | None"]


def at_final(run: RunRecord, evals: list[dict], primary: Any) -> int | None:
    """The run's last scheduled evaluation."""
    steps = run.spec.eval.steps
    final = max(steps) if steps else 0
    return final if any(e["step"] == final for e in evals) else None


def at_step(step: int) -> AtRule:
    """A fixed step (the same number of examples seen, since budgets are identical).

    A run scheduled at step 0 only (a model that does not train, e.g. an oracle) is
    the same at every step and contributes that evaluation.
    """
    def rule(run: RunRecord, evals: list[dict], primary: Any) -> int | None:
        if not run.spec.trains:
            step_used = 0
        else:
            step_used = step
        return step_used if any(e["step"] == step_used for e in evals) else None
    return rule


def at_best_before_memorization(settings: Any = None) -> AtRule:
    """The step with the best primary-metric value strictly before memorization onset
    (all steps if the run never memorizes; none if it memorizes from its first eval).
    The onset is benchbase.verdicts' (the run's stored dynamics record, else the copy
    criterion on its evaluations with the suite's ``dynamics:`` settings)."""
    settings = settings if settings is not None else DynamicsEntry()

    def rule(run: RunRecord, evals: list[dict], primary: Any) -> int | None:
        if primary is None:
            return None
        try:
            onset = memorization_onset(run.derived, evals, settings)
        except LookupError:
            return None
        scored = [(primary.badness(e["value"]), e["step"]) for e in evals
                  if e["metric"] == primary.metric and e["ref"] == primary.ref and math.isfinite(e["value"])
                  and (onset is None or e["step"] < onset)]
        return min(scored)[1] if scored else None
    return rule


AT_RULES: dict[str, Callable[..., AtRule]] = {
    "final": lambda **_: at_final,
    "best-before-memorization": lambda settings=None, **_: at_best_before_memorization(settings),
}


def resolve_at(at: str, settings: Any = None) -> AtRule:
    """Parse ``--at``: final | best-before-memorization | step=N (``settings``: the suite's
    dynamics settings, for the memorization onset)."""
    if at in AT_RULES:
        return AT_RULES[at](settings=settings)
    if at.startswith("step="):
        try:
            value = float(at.split("=", 1)[1])
        except ValueError:
            value = -1.0
        if value >= 0 and value == int(value):
            return at_step(int(value))
        raise ValueError(f"--at '{at}': N in step=N must be a whole number >= 0")
    raise ValueError(f"unknown --at '{at}'. Valid: {', '.join(AT_RULES)}, step=N")
