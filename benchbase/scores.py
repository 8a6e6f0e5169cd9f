"""The values of one scored sample set (:class:`Scores`), read one by one or as a small
table. A memorization value means little alone (a perfect generalizer scores mem_ratio
0.11 in 2-D), so every one that has a measured chance level is shown beside it, with
the verdict of :func:`benchbase.chance.judge_stored`, as leaderboards show them."""
from __future__ import annotations

import math
from dataclasses import dataclass

from benchbase.chance import DEFAULT_ALPHA, Excess, judge_stored
from benchbase.contracts import EvalRow

#: what the verdict of a judged value means, for a table's footnote
VERDICT_NOTE = (f"chance: what held-out data scores against the same training subset at the same sample size "
                f"(mean ± sd); memorizing: above it by a one-sided t-test at alpha {DEFAULT_ALPHA:g} and by at "
                f"least the metric's minimum excess")


def verdict_text(excess: Excess | None) -> str:
    """``memorizing``, ``not memorizing``, or ``n/a`` where no test was possible (a NaN
    value, a chance level not measured)."""
    if excess is None or math.isnan(excess.excess):
        return "n/a"
    return "memorizing" if excess.memorizing else "not memorizing"


@dataclass(frozen=True, repr=False)
class Scores:
    """The values of one scored sample set: ``rows`` are exactly what a run stores
    (metric, value, reference split, feature space, metric parameters); a memorization
    metric's chance level is in its ``<metric>.chance`` and ``.chance_sd`` rows
    (read them with :meth:`chance`, judge the value with :meth:`verdict`)."""

    rows: tuple[EvalRow, ...]
    feature_space: str
    n_samples: int
    n_train: int
    n_test: int
    train_hash: str
    step: int = 0
    seed: int = 0

    def value(self, metric: str, ref: str | None = None) -> float:
        """One value, e.g. ``value("fd", ref="test")``; ``ref`` may be left out when the
        metric has a single reference split."""
        return self._row(metric, ref).value

    def chance(self, metric: str, ref: str | None = None) -> tuple[float, float]:
        """``(mean, sd)`` of a memorization metric's chance level: what held-out data, which
        no model saw, scores against the same training subset at the same sample size
        (NaN where too few held-out points were left to measure it)."""
        row = self._row(metric, ref)
        level = {r.metric: r.value for r in self.rows if r.ref == row.ref and r.metric.startswith(f"{metric}.chance")}
        if f"{metric}.chance" not in level:
            have = sorted({r.metric[:-len(".chance")] for r in self.rows if r.metric.endswith(".chance")})
            raise KeyError(f"{metric} has no chance level (memorization metrics have one); these have: "
                           f"{', '.join(have) or 'none'}")
        return _number(level[f"{metric}.chance"]), _number(level.get(f"{metric}.chance_sd"))

    def verdict(self, metric: str, ref: str | None = None, alpha: float = DEFAULT_ALPHA) -> Excess:
        """A memorization value judged against its chance level (``.memorizing``,
        ``.p_value``, ``.excess``), by the test leaderboards use."""
        row = self._row(metric, ref)
        self.chance(metric, row.ref)  # the KeyError that says which metrics have one
        judged = self.judged(alpha)
        if (metric, row.ref) not in judged:
            raise KeyError(f"{metric}: no verdict, its chance level {self.chance_text(metric, row.ref)}")
        return judged[(metric, row.ref)]

    def chance_text(self, metric: str, ref: str | None = None) -> str | None:
        """The chance level as tables show it (``0.112 ± 0.022``, or ``not measured: why``);
        None for a metric without one."""
        row = self._row(metric, ref)
        chance = next((r for r in self.rows if r.metric == f"{metric}.chance" and r.ref == row.ref), None)
        if chance is None:
            return None
        mean, sd = self.chance(metric, row.ref)
        why = (chance.params.get("chance") or {}).get("not_measured")
        if why or not math.isfinite(mean):
            return "not measured" + (f": {why}" if why else "")
        return f"{mean:.3g} ± {sd:.2g}" if math.isfinite(sd) else f"{mean:.3g}"

    def judged(self, alpha: float = DEFAULT_ALPHA) -> dict[tuple[str, str], Excess]:
        """Every memorization value judged against its chance level, by ``(metric, ref)``."""
        evals = [{"metric": r.metric, "ref": r.ref, "step": self.step, "value": r.value, "params": r.params}
                 for r in self.rows]
        return {(metric, ref): excess for (metric, ref, _), excess in judge_stored(evals, alpha).items()}

    def as_dict(self) -> dict[str, float]:
        """``{"fd[test]": 3.1, "mem_ratio[train]": 0.0, "fd.n_gen[test]": 1000.0, ...}``."""
        return {_key(r): r.value for r in self.rows}

    def headline(self) -> list[EvalRow]:
        """The rows of the metrics themselves, without their ``name.detail`` values."""
        return [r for r in self.rows if "." not in r.metric]

    def to_json(self) -> dict:
        return {"feature_space": self.feature_space, "n_samples": self.n_samples, "n_train": self.n_train,
                "n_test": self.n_test, "train_hash": self.train_hash, "step": self.step, "seed": self.seed,
                "rows": [{"metric": r.metric, "ref": r.ref, "value": r.value, "params": r.params}
                         for r in self.rows]}

    def summary(self) -> str:
        """A small table: metric, value, and for memorization metrics their chance level
        (mean ± sd) and verdict; what ``print(scores)`` shows."""
        from tabulate import tabulate

        judged = self.judged()
        table = []
        for r in self.headline():
            chance = self.chance_text(r.metric, r.ref)
            table.append([_key(r), r.value] + (["", ""] if chance is None else
                                               [chance, verdict_text(judged.get((r.metric, r.ref)))]))
        head = (f"{self.n_samples} samples against train n={self.n_train} (content {self.train_hash}), test "
                f"{self.n_test}, feature space {self.feature_space}, seed {self.seed}, step {self.step}")
        text = tabulate(table, headers=["metric", "value", "chance ± sd", "verdict"], floatfmt=".4g")
        return "\n".join([head, text] + ([VERDICT_NOTE] if any(row[2] for row in table) else []))

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        values = [f"{_key(r)}={r.value:.4g}" + (f" (chance {chance})" if (chance := self.chance_text(r.metric, r.ref))
                                                 else "")
                  for r in self.headline()]
        return (f"Scores({self.n_samples} samples, {self.feature_space}, seed {self.seed}, step {self.step}: "
                f"{', '.join(values)})")

    def _row(self, metric: str, ref: str | None) -> EvalRow:
        found = [r for r in self.rows if r.metric == metric and (ref is None or r.ref == ref)]
        if not found:
            have = sorted({_key(r) for r in self.rows})
            raise KeyError(f"no value for {metric}" + (f"[{ref}]" if ref else "") + f"; have: {', '.join(have)}")
        if len(found) > 1:
            raise KeyError(f"{metric} was computed against {', '.join(r.ref for r in found)}: pass ref=")
        return found[0]


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _key(row: EvalRow) -> str:
    return f"{row.metric}[{row.ref}]" if row.ref else row.metric
