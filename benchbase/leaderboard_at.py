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


def checkpoint_metric(settings: Any, primary: Any, evals: list[dict]) -> tuple[str, str] | None:
    """The (metric, ref) whose lowest value before memorization picks a run's checkpoint, as
    ``benchbase dynamics`` records ``best_before_mem``: the primary column when it is one of
    the suite's ``dynamics.fidelity`` metrics, else the first of them the run stores (at the
    primary's reference, else test, else its first). Never a memorization metric: its best
    value before the onset is the untrained model. None when the run stores none."""
    fidelity = list(getattr(settings, "fidelity", None) or DynamicsEntry().fidelity)
    if primary is not None and primary.metric in fidelity:
        return primary.metric, primary.ref
    stored = {(e["metric"], e["ref"] or "") for e in evals}
    for name in fidelity:
        refs = sorted(ref for metric, ref in stored if metric == name)
        if refs:
            wanted = ([primary.ref] if primary is not None else []) + ["test"]
            return name, next((ref for ref in wanted if ref in refs), refs[0])
    return None


def at_best_before_memorization(settings: Any = None) -> AtRule:
    """The step with the lowest value of the dynamics fidelity metric (:func:`checkpoint_metric`)
    strictly before memorization onset (all steps if the run never memorizes; none if it
    memorizes from its first eval; the last step before the onset when the run stores no
    fidelity metric). The onset is benchbase.verdicts' (the run's stored dynamics record,
    else the copy criterion on its evaluations with the suite's ``dynamics:`` settings)."""
    settings = settings if settings is not None else DynamicsEntry()

    def rule(run: RunRecord, evals: list[dict], primary: Any) -> int | None:
        try:
            onset = memorization_onset(run.derived, evals, settings)
        except LookupError:
            return None
        before = [e for e in evals if onset is None or e["step"] < onset]
        chosen = checkpoint_metric(settings, primary, evals)
        if chosen is None:
            return max((e["step"] for e in before), default=None)
        rule.used.add(chosen)  # type: ignore[attr-defined]
        scored = [(e["value"], e["step"]) for e in before
                  if (e["metric"], e["ref"] or "") == chosen and e["value"] is not None and math.isfinite(e["value"])]
        return min(scored)[1] if scored else None
    rule.used = set()  # type: ignore[attr-defined]  # (metric, ref) pairs chosen: the table's note names them
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
