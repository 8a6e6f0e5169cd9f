"""How tau_mem scales with every swept axis at once, and whether the measured
exponents collapse the curves better than the position paper's normalization.

The paper (seed 001, section 3.3) plots metrics against step x (B/B0)(lr/lr0)/(n/n0),
i.e. it assumes tau_mem proportional to n / (B lr). Here, per model and dataset,
log tau_mem = a + b_n log n + b_B log B + b_lr log lr + ... is fitted over every run
that reached memorization (benchbase.fits: exponents with t and seed-bootstrap 95%
intervals); the paper's normalization is b_n = 1, b_B = -1, b_lr = -1.

Collapse: for each level L of a curve (the copy metric, or the relative held-out
gap), the step at which each run first exceeds L, divided by the run's predicted
scale, should not depend on the run when the scaling is right. The spread is the
standard deviation across runs of log10 of that normalized step (0 = perfect, 0.3 =
a factor of 2), averaged over levels and seeds, for three normalizations: none
(raw step), the paper's and the measured exponents. With two or more seeds the
measured exponents used for a seed's curves are fitted on the other seeds only
(out of sample), so the comparison does not favour the fit by construction.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np

from benchbase.configurations import configuration, fingerprint, telling_apart
from benchbase.dynamics import COLLAPSE_LEVELS, Trajectory, level_crossings, relative_gap
from benchbase.fits import LogLinearFit, fit_log_linear, format_interval
from benchbase.records import RunRecord
from benchbase.specs import RunSpec

PAPER_EXPONENTS = {"n": 1.0, "batch_size": -1.0, "lr": -1.0}  # tau ~ n / (B lr)
AXIS_NAMES = {"n": "n", "budget.batch_size": "batch_size", "model.lr": "lr"}


def axis_name(sweep_key: str) -> str:
    return AXIS_NAMES.get(sweep_key, sweep_key.split(".", 1)[-1])


def run_axes(spec: RunSpec) -> dict[str, float]:
    """The numeric swept values of a run, by axis name; n, the batch size and the
    learning rate always, read from the run itself: a run shared by two suites (same
    run id) is stored with the sweep of the suite that registered it first, and must
    still carry the axes the other suite sweeps. Axes that do not vary within a family
    are dropped by ``varying_axes``."""
    out = {"n": float(spec.subset.n), "batch_size": float(spec.budget.batch_size)}
    if isinstance(spec.model.lr, (int, float)) and not isinstance(spec.model.lr, bool):
        out["lr"] = float(spec.model.lr)
    for key, value in spec.sweep.items():
        if key.startswith("subset.") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        out[axis_name(key)] = float(value)
    return out


def family_key(spec: RunSpec) -> tuple:
    """Runs fitted together: same model and dataset, the same non-numeric sweep values,
    and the same configuration off the axes (so runs of one label under another budget
    or framework, an edited suite rerun into the same results, are never fitted together)."""
    fixed = {k: v for k, v in spec.sweep.items()
             if k.startswith("subset.") or isinstance(v, bool) or not isinstance(v, (int, float))}
    return (spec.model.label, spec.dataset.label, json.dumps(fixed, sort_keys=True, default=str),
            fingerprint(_off_axis_configuration(spec)))


def _off_axis_configuration(spec: RunSpec) -> dict:
    """The run's configuration without what may vary along a family's axes (:func:`run_axes`):
    n and the subset drawn, the budget (a swept batch size changes its steps), the learning
    rate and every numeric model setting (a swept width). Read from the configuration alone,
    not the run's sweep: a run shared with another suite carries that suite's sweep."""
    def on_axis(key: str, value) -> bool:
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        return (key.startswith(("subset.n", "subset.content_hash", "budget.")) or key == "model.lr"
                or (key.startswith("model.config.") and numeric))
    return {k: v for k, v in configuration(spec).items() if not on_axis(k, v)}


def family_label(key: tuple, among=()) -> str:
    """``key``'s model, dataset and fixed sweep values; with ``among`` (every family of the
    runs), also the configuration values that tell it from families of the same model,
    dataset and sweep values."""
    model, dataset, fixed, config = key
    extra = [f"{k.split('.', 1)[-1]}={v}" for k, v in json.loads(fixed).items()]
    extra += telling_apart(config, {k[3] for k in among if tuple(k[:3]) == (model, dataset, fixed)})
    return f"{model} on {dataset}" + (f" ({', '.join(extra)})" if extra else "")


@dataclass
class AxisFit:
    family: str
    quantity: str
    axes: list[str]
    fit: LogLinearFit | None
    runs: int
    censored: int  # runs that never met the criterion (left out)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["fit"] = None if self.fit is None else self.fit.to_dict()
        return out


def _families(runs: list[RunRecord]) -> dict[tuple, list[RunRecord]]:
    out: dict[tuple, list[RunRecord]] = {}
    for r in runs:
        out.setdefault(family_key(r.spec), []).append(r)
    return out


def varying_axes(members: list[RunRecord]) -> list[str]:
    values: dict[str, set] = {}
    for r in members:
        for k, v in run_axes(r.spec).items():
            values.setdefault(k, set()).add(v)
    return sorted((k for k, v in values.items() if len(v) > 1), key=lambda k: (k != "n", k))


def _fit(members: list[RunRecord], records: dict, quantity: str, axes: list[str]) -> tuple[LogLinearFit | None, int]:
    flag = "censored" if quantity == "tau_mem" else f"{quantity}_censored"
    rows, ys, censored = [], [], 0
    for r in members:
        rec = records.get(r.run_id) or {}
        if rec.get(quantity) is None:
            censored += 1
            continue
        if rec.get(flag) == "left":
            continue
        values = run_axes(r.spec)
        rows.append([values[a] for a in axes])
        ys.append(rec[quantity])
    if not ys:
        return None, censored
    return fit_log_linear(np.array(rows), np.array(ys), axes), censored


def axis_fits(runs: list[RunRecord], records: dict[str, dict], quantities=("tau_mem",)) -> list[AxisFit]:
    """One multi-axis fit per family and quantity, over the axes that vary (two or more)."""
    out = []
    families = _families(runs)
    for key, members in families.items():
        axes = varying_axes(members)
        if len(axes) < 2:
            continue  # a single axis is tau_fits' job
        for quantity in quantities:
            if not any((records.get(r.run_id) or {}).get(quantity) is not None for r in members):
                continue
            fit, censored = _fit(members, records, quantity, axes)
            out.append(AxisFit(family_label(key, families), quantity, axes, fit, len(members), censored))
    return out


def format_axis_fit(f: AxisFit) -> str:
    head = f"{f.quantity} ~ " + " ".join(f"{a}^b_{a}" for a in f.axes) + f", {f.family}: "
    if f.fit is None:
        return head + f"no fit (the runs that reached memorization do not identify {len(f.axes)} exponents)"
    parts = [f"b_{a} = " + format_interval(c.estimate, c.ci95, c.bootstrap95, f.fit.dof)
             for a in f.axes for c in [f.fit.exponent(a)]]
    paper = ", ".join(f"b_{a} = {PAPER_EXPONENTS[a]:g}" for a in f.axes if a in PAPER_EXPONENTS)
    return (head + "; ".join(parts) + f"; R^2 = {f.fit.r2:.3f}, {f.fit.points} runs"
            + (f", {f.censored} never memorized (left out)" if f.censored else "")
            + (f" (the paper's normalization: {paper})" if paper else ""))


@dataclass
class LocalExponent:
    """The exponent of one axis between two adjacent swept values: one power law over a
    whole axis hides a curve that bends or turns (tau falling then rising with lr)."""

    family: str
    quantity: str
    axis: str
    lower: float
    upper: float
    fit: LogLinearFit | None
    runs: int
    censored: int

    def to_dict(self) -> dict:
        out = asdict(self)
        out["fit"] = None if self.fit is None else self.fit.to_dict()
        return out


def local_exponents(runs: list[RunRecord], records: dict[str, dict], quantity: str = "tau_mem") -> list[LocalExponent]:
    """Per family with two or more swept axes, and per axis with three values or more,
    the multi-axis fit over the runs at each pair of adjacent values of that axis (the
    other axes over all their values)."""
    out = []
    families = _families(runs)
    for key, members in families.items():
        axes = varying_axes(members)
        if len(axes) < 2:
            continue
        for axis in axes:
            values = sorted({run_axes(r.spec)[axis] for r in members})
            if len(values) < 3:
                continue
            for lower, upper in zip(values, values[1:]):
                pair = [r for r in members if run_axes(r.spec)[axis] in (lower, upper)]
                fit, censored = _fit(pair, records, quantity, varying_axes(pair))
                out.append(LocalExponent(family_label(key, families), quantity, axis, lower, upper, fit, len(pair), censored))
    return out


def format_local_exponent(e: LocalExponent) -> str:
    head = f"{e.quantity}, {e.family}: local b_{e.axis} between {e.lower:g} and {e.upper:g}: "
    if e.fit is None or e.axis not in e.fit.axes:
        return head + "no fit (too few runs reached memorization)"
    c = e.fit.exponent(e.axis)
    return (head + format_interval(c.estimate, c.ci95, c.bootstrap95, e.fit.dof) + f"; {e.fit.points} runs"
            + (f", {e.censored} never memorized (left out)" if e.censored else ""))


# ---------------------------------------------------------------------- collapse


@dataclass
class CollapseComparison:
    family: str
    metric: str
    axes: list[str]
    spread_step: float | None
    spread_paper: float | None
    spread_measured: float | None
    exponents: dict  # seed -> {axis: exponent used for that seed's curves}
    out_of_sample: bool
    levels: list[float]
    seeds: int

    def to_dict(self) -> dict:
        return asdict(self)


def predicted_scale(values: dict[str, float], ref: dict[str, float], exponents: dict[str, float]) -> float:
    """Predicted tau relative to the reference run: prod (x / x0)^b."""
    return math.prod((values[a] / ref[a]) ** b for a, b in exponents.items())


def collapse_comparison(runs: list[RunRecord], trajectories: dict[str, Trajectory], records: dict[str, dict],
                        metric: str = "mem_ratio", confirm: int = 1,
                        loss_metric: str = "heldout_gap") -> list[CollapseComparison]:
    """Spread of the curves' level crossings under no, the paper's and the measured
    normalization; the exponents are those of the onset of the same curve (the loss
    criterion's tau for the relative gap, the copy criterion's for the copy metric)."""
    levels = COLLAPSE_LEVELS.get(metric, COLLAPSE_LEVELS["mem_ratio"])
    quantity = "tau_mem_loss" if metric == "relative_gap" else "tau_mem_copy"

    def curve(traj: Trajectory):
        return relative_gap(traj, loss_metric) if metric == "relative_gap" else traj.get(metric)

    out = []
    families = _families(runs)
    for key, members in families.items():
        members = [m for m in members if m.run_id in trajectories and curve(trajectories[m.run_id]) is not None]
        axes = varying_axes(members)
        if not axes:
            continue
        ref = {a: min(run_axes(m.spec)[a] for m in members) for a in axes}
        seeds = sorted({m.seed for m in members})
        paper = {a: PAPER_EXPONENTS.get(a, 0.0) for a in axes}
        spreads = {"step": [], "paper": [], "measured": []}
        used: dict = {}
        for seed in seeds:
            mine = [m for m in members if m.seed == seed]
            train = [m for m in members if m.seed != seed] if len(seeds) > 1 else members
            fit, _ = _fit(train, records, quantity, axes)
            if fit is None:
                continue
            measured = {a: fit.exponent(a).estimate for a in axes}
            used[str(seed)] = measured
            for level in levels:
                hits = [(step, run_axes(m.spec)) for m, step in level_crossings(mine, trajectories, curve, level,
                                                                                    confirm)]
                if len(hits) < 3:
                    continue
                for name, exps in (("step", None), ("paper", paper), ("measured", measured)):
                    steps = [s if exps is None else s / predicted_scale(v, ref, exps) for s, v in hits]
                    spreads[name].append(float(np.log10(steps).std()))
        mean = {k: (float(np.mean(v)) if v else None) for k, v in spreads.items()}
        out.append(CollapseComparison(family_label(key, families), metric, axes, mean["step"], mean["paper"], mean["measured"],
                                      used, len(seeds) > 1, list(levels), len(seeds)))
    return out


def format_collapse_comparison(c: CollapseComparison) -> str:
    head = f"{c.metric} curves, {c.family}, over {', '.join(c.axes)}: "
    if c.spread_step is None:
        return head + "fewer than three runs reach a common level; nothing to compare"
    how = "exponents fitted on the other seeds" if c.out_of_sample else "exponents fitted on the same runs (one seed)"
    verdict = ("the measured exponents collapse the curves better" if c.spread_measured < c.spread_paper
               else "the paper's normalization collapses the curves as well or better")
    return (head + f"std of log10(step reaching a level) {c.spread_step:.3f} raw, {c.spread_paper:.3f} under "
                   f"step x (B/B0)(lr/lr0)/(n/n0), {c.spread_measured:.3f} under the measured exponents ({how}); "
                   f"{verdict}; 0 = perfect collapse, 0.3 = a factor of 2")
