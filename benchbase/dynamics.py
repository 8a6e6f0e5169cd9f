"""Derived training-dynamics quantities of a run: when it starts to memorize, how
fast it memorizes, and the best fidelity it reached before (seed 001, section 3).

The maths only: functions of a run's stored evaluations and of typed run records.
benchbase.derived reads the store and writes the results back, so they can be
recomputed for any store with other settings (``benchbase dynamics``); the onset
rule itself is benchbase.verdicts'. The definitions, in short (full text with the
reasons in docs/training-dynamics.md):

- ``tau_mem_copy``: the step at which a memorization metric is first significantly
  above its chance level by at least its minimum excess, and stays so for ``confirm``
  more evaluations.
- ``tau_mem_loss``: the first evaluation (confirmed likewise) where the relative
  held-out gap g(s) = (L_test(s) - L_train(s)) / L_test(s) minus its value at the first
  evaluation exceeds ``loss_threshold``; L are the ``<loss_metric>.train`` / ``.test`` rows.
- Both are interpolated linearly in log(step) between the last evaluation below the
  threshold and the first one above it; ``*_eval`` gives that first evaluation step.
  Not reached within the budget: None (right-censored).
- ``mem_rate``: least-squares slope of mem_ratio against log10(step) over the
  evaluations from the copy onset on (per decade of steps, so it is unchanged by the
  step normalization and comparable across n).
- ``best_before_mem``: for each fidelity metric and reference split, the minimum
  over evaluations with step < tau_mem (all evaluations if the run never memorized).
- ``normalized``: step x (B/B0) x (lr/lr0) / (n/n0), with B0, lr0, n0 the smallest
  values among the suite's runs.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np

from benchbase.configurations import configuration, fingerprint, telling_apart
from benchbase.fits import fit_power_law, format_interval
from benchbase.records import RunRecord
from benchbase.specs import RunSpec
from benchbase.suite_schema import DynamicsEntry
from benchbase.verdicts import CopyRule, memorization_onsets, threshold_onset
from benchbase.verdicts import relative_gap as gap_curve

RATE_AXIS = "log10_step"


# ------------------------------------------------------------------- trajectories


@dataclass
class Trajectory:
    """A run's stored evaluations pivoted to one array per (metric, reference)."""

    steps: np.ndarray  # sorted evaluation steps
    series: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (metric, ref) -> values

    @classmethod
    def from_evals(cls, evals: list[dict]) -> "Trajectory":
        steps = np.array(sorted({int(e["step"]) for e in evals}), dtype=np.int64)
        index = {int(s): i for i, s in enumerate(steps)}
        series: dict[tuple[str, str], np.ndarray] = {}
        for e in evals:
            key = (e["metric"], e["ref"] or "")
            arr = series.setdefault(key, np.full(len(steps), np.nan))
            arr[index[int(e["step"])]] = np.nan if e["value"] is None else float(e["value"])
        return cls(steps, series)

    def get(self, metric: str, ref: str | None = None) -> np.ndarray | None:
        """Values of ``metric`` (at ``ref``; by default whichever reference it was stored at,
        preferring none, then train, then test)."""
        if ref is not None:
            return self.series.get((metric, ref))
        for r in ("", "train", "test"):
            if (metric, r) in self.series:
                return self.series[(metric, r)]
        return next((v for (m, _), v in self.series.items() if m == metric), None)

    def refs(self, metric: str) -> list[str]:
        return sorted(r for (m, r) in self.series if m == metric)


# ---------------------------------------------------------------------- criteria


def relative_gap(traj: Trajectory, loss_metric: str) -> np.ndarray | None:
    """(L_test - L_train) / |L_test| minus its value at the first evaluation, or None when
    the held-out losses were not stored."""
    return gap_curve(traj.steps, traj.get(f"{loss_metric}.train"), traj.get(f"{loss_metric}.test"))


def memorization_rate(steps: np.ndarray, mem: np.ndarray, start: int | None) -> float | None:
    """Slope of mem_ratio per decade of steps over evaluations ``start`` onwards (>= 2 points)."""
    if start is None or mem is None:
        return None
    s = np.asarray(steps[start:], dtype=float)
    v = np.asarray(mem[start:], dtype=float)
    ok = np.isfinite(v) & (s > 0)
    if ok.sum() < 2:
        return None
    x = np.log10(s[ok])
    if np.ptp(x) == 0:
        return None
    return float(np.polyfit(x, v[ok], 1)[0])


def best_before(traj: Trajectory, metric: str, tau: float | None, censored: str | None) -> dict:
    """Minimum of ``metric`` at each reference over evaluations before ``tau``."""
    out = {}
    if censored == "left":
        mask = np.zeros(len(traj.steps), dtype=bool)
    elif tau is None:
        mask = np.ones(len(traj.steps), dtype=bool)
    else:
        mask = traj.steps < tau
    for ref in traj.refs(metric):
        values = traj.series[(metric, ref)]
        ok = mask & np.isfinite(values)
        key = f"{metric}[{ref}]" if ref else metric
        if not ok.any():
            out[key] = {"value": None, "step": None}
            continue
        i = int(np.flatnonzero(ok)[np.argmin(values[ok])])
        out[key] = {"value": float(values[i]), "step": int(traj.steps[i])}
    return out


# ------------------------------------------------------------------ normalization


def normalization(runs: list[RunRecord]) -> tuple[dict[str, float], dict]:
    """Normalized-step factor (B/B0)(lr/lr0)/(n/n0) per run id, and the references used.

    B0, lr0, n0 are the smallest values among ``runs``. A run without a learning rate
    contributes factor 1 for that term.
    """
    def smallest(values):
        values = [v for v in values if v is not None and v > 0]
        return min(values) if values else None

    specs = [r.spec for r in runs]
    B0 = smallest(s.budget.batch_size for s in specs)
    lr0 = smallest(s.model.lr for s in specs)
    n0 = smallest(s.subset.n for s in specs)
    factors = {}
    for r in runs:
        s = r.spec
        f = s.budget.batch_size / B0 if B0 else 1.0
        lr, n = s.model.lr, s.subset.n
        if lr0 and lr:
            f *= lr / lr0
        if n0 and n:
            f /= n / n0
        factors[r.run_id] = f
    return factors, {"B0": B0, "lr0": lr0, "n0": n0}


# ----------------------------------------------------------------------- settings


def metric_name_problems(settings: DynamicsEntry, judged: list[str], unknown: set[str] = frozenset(),
                         known: list[str] = ()) -> list[tuple[str, str]]:
    """``dynamics.min_excess`` keys, a ``copy_metric`` or ``rate_metric`` that name none of the
    memorization metrics ``judged``, and a ``loss_metric`` or ``fidelity`` entry that names
    none of the suite's metrics ``known`` (an ``unknown`` metric is reported at its own entry):
    such a setting would change no verdict, or judge nothing. ``rate_metric``, ``loss_metric``
    and ``fidelity`` left at their defaults are not checked: the defaults name the usual
    metrics, which a suite need not have."""
    from benchbase.errors import list_choices, suggest

    default = DynamicsEntry()
    named = [("dynamics.rate_metric", settings.rate_metric, default.rate_metric, judged, "a memorization metric"),
             ("dynamics.loss_metric", settings.loss_metric, default.loss_metric, known, "a metric")]
    if settings.fidelity != default.fidelity:
        named += [(f"dynamics.fidelity[{i}]", name, None, known, "a metric") for i, name in enumerate(settings.fidelity)]
    wrong = [(key, f"'{name}' is not {what} of this suite.{suggest(name, valid)} Valid: {list_choices(valid)}")
             for key, name, unset, valid, what in named if name != unset and name not in valid and name not in unknown]

    out = [(f"dynamics.min_excess.{name}",
            f"'{name}' is not a memorization metric of this suite.{suggest(name, judged)} "
            f"Valid: {list_choices(judged)}")
           for name in settings.min_excess if name not in judged and name not in unknown]
    copy = settings.copy_metric
    if copy != "auto" and copy not in judged and copy not in unknown:
        out.append(("dynamics.copy_metric", f"'{copy}' is not a memorization metric of this suite."
                                            f"{suggest(copy, judged)} Valid: auto, {list_choices(judged)}"))
    return out + wrong


# ------------------------------------------------------------------------ one run


def derive_run(evals: list[dict], cfg: DynamicsEntry, factor: float = 1.0) -> dict:
    """Every derived quantity of one run from its stored evaluations (JSON-able); the
    onsets by the one rule of benchbase.verdicts."""
    traj = Trajectory.from_evals(evals)
    out: dict = {"criterion": None, "tau_mem": None, "tau_mem_eval": None, "tau_mem_normalized": None,
                 "censored": None, "norm_factor": factor, "rate_axis": RATE_AXIS,
                 "final_step": int(traj.steps[-1]) if len(traj.steps) else None}
    gap = relative_gap(traj, cfg.loss_metric)
    found = memorization_onsets(evals, cfg, gap, traj.steps.astype(float))
    for name in ("copy", "loss"):
        o = getattr(found, name)
        out[f"tau_mem_{name}"] = o.step if o else None
        out[f"tau_mem_{name}_eval"] = o.eval_step if o else None
        out[f"tau_mem_{name}_censored"] = o.censored if o else "unavailable"
    out["tau_mem_copy_metric"] = found.copy.metric if found.copy else None
    out["copy_metrics"] = found.copy_metrics
    chosen = found.headline
    out["criterion"] = found.criterion
    out["threshold"] = cfg.loss_threshold if found.criterion == "loss" else None
    out["rule"] = ({"copy": CopyRule.of(cfg).describe(found.copy_metrics),
                    "loss": f"relative held-out gap above its first value by {cfg.loss_threshold:g}"}
                   .get(found.criterion or ""))
    out["settings"] = dataclasses.asdict(cfg)
    if chosen is not None:
        out.update(tau_mem=chosen.step, tau_mem_eval=chosen.eval_step, censored=chosen.censored,
                   tau_mem_normalized=None if chosen.step is None else chosen.step * factor)
    # the rate once copies appear, whichever criterion dates the onset: after a loss onset
    # mem_ratio can stay at 0 for a decade, which would only dilute the slope
    copy = found.copy
    mem = traj.get(cfg.rate_metric)
    out["mem_rate"] = memorization_rate(traj.steps, mem, copy.index if copy else None)
    out["mem_final"] = _last_finite(mem)
    out["gap_final"] = _last_finite(gap)
    tau = chosen.step if chosen else None
    censored = chosen.censored if chosen else None
    best: dict = {}
    for metric in cfg.fidelity:
        best.update(best_before(traj, metric, tau, censored))
    out["best_before_mem"] = best
    before = traj.steps if censored != "left" and tau is None else traj.steps[traj.steps < (tau or 0)]
    out["last_step_before_mem"] = int(before[-1]) if len(before) else None
    return out


def step_before_memorization(record: dict, metric: str | None = None) -> int | None:
    """The evaluation step to read for a leaderboard at "best before memorization": the step
    of the best ``metric`` (a ``best_before_mem`` key such as ``"swd[test]"``) before tau_mem,
    else the last evaluation before tau_mem; None when the run memorized from the start."""
    if metric is not None:
        best = (record.get("best_before_mem") or {}).get(metric) or {}
        if best.get("step") is not None:
            return int(best["step"])
    return record.get("last_step_before_mem")


def _last_finite(values: np.ndarray | None) -> float | None:
    if values is None:
        return None
    ok = np.flatnonzero(np.isfinite(values))
    return float(values[ok[-1]]) if len(ok) else None


# ---------------------------------------------------------------------- scaling fit


#: configuration keys (benchbase.configurations) that vary along a tau_mem-vs-n fit
N_AXIS_KEYS = ("subset.n", "subset.content_hash", "subset.split", "subset.holdout")


def group_key(spec: RunSpec) -> tuple:
    """Runs that differ only in n, subset split or holdout fold and seed share a
    tau_mem-vs-n fit (and a figure): everything else in their configuration is the same,
    so runs of one label under another budget, learning rate or framework (an edited
    suite rerun into the same results) never enter one fit."""
    sweep = {k: v for k, v in spec.sweep.items() if k not in ("n", "subset.split", "subset.holdout")}
    config = {k: v for k, v in configuration(spec).items() if not k.startswith(N_AXIS_KEYS)}
    return (spec.model.label, spec.dataset.label, json.dumps(sweep, sort_keys=True, default=str),
            fingerprint(config))


def group_label(key: tuple, among=()) -> str:
    """``key``'s model, dataset and swept values; with ``among`` (the other groups shown
    beside it), also the configuration values that tell it from groups of the same
    model, dataset and sweep."""
    model, dataset, sweep, config = key
    extra = [f"{k.split('.', 1)[-1]}={v}" for k, v in json.loads(sweep).items()]
    extra += telling_apart(config, {k[3] for k in among if tuple(k[:3]) == (model, dataset, sweep)})
    return f"{model} on {dataset}" + (f" ({', '.join(extra)})" if extra else "")


def tau_fits(runs: list[RunRecord], records: dict[str, dict], key: str = "tau_mem") -> list[dict]:
    """One fit of log ``key`` against log n per group of runs (see ``group_key``).

    Runs that never met the criterion (right-censored) are listed in ``censored``; runs
    that met it already at their first evaluation (left-censored: an upper bound, e.g. an
    oracle evaluated once) in ``left_censored``; neither enters the fit, nor do runs
    trained without a ``subset.holdout`` fold (they see fewer than n examples).
    """
    flag = "censored" if key == "tau_mem" else f"{key}_censored"
    every = {group_key(r.spec) for r in runs}  # labels tell apart configurations of one label
    groups: dict[tuple, list] = {}
    for r in runs:
        rec = records.get(r.run_id)
        if rec is None or r.spec.subset.holdout is not None:  # a fold run trains on fewer than n
            continue
        groups.setdefault(group_key(r.spec), []).append((r.n, rec.get(key), rec.get(flag)))
    out = []
    for gkey, pts in groups.items():
        reached = [(n, t) for n, t, c in pts if t is not None and c != "left"]
        fit = fit_power_law([n for n, _ in reached], [t for _, t in reached])
        out.append({"group": group_label(gkey, every), "quantity": key, "fit": fit, "runs": len(pts),
                    "censored": sorted({n for n, t, _ in pts if t is None}),
                    "left_censored": sorted({n for n, t, c in pts if t is not None and c == "left"}),
                    "points": sorted(reached)})
    return out


def format_fit(fit: dict) -> str:
    f = fit["fit"]
    head = f"{fit['quantity']} vs n, {fit['group']}: "
    if f is None:
        return head + f"no fit (fewer than 2 distinct n reached memorization; not reached at n={fit['censored']})"
    cens = f"; not reached within the budget at n={fit['censored']}" if fit["censored"] else ""
    if fit.get("left_censored"):
        cens += f"; already met at the first evaluation (left out) at n={fit['left_censored']}"
    slope = format_interval(f["slope"], f.get("ci95"), f.get("bootstrap95"), f.get("dof"))
    return (head + f"slope {slope} (log-log least squares), R^2 = {f['r2']:.3f}, "
                   f"{f['points']} runs at {f['distinct_x']} values of n{cens}")


# ------------------------------------------------------------------ curve collapse

COLLAPSE_LEVELS = {"mem_ratio": (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5),
                   "relative_gap": (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)}


def collapse(runs: list[RunRecord], trajectories: dict[str, Trajectory], records: dict[str, dict],
             metric: str = "mem_ratio", levels=None, confirm: int = 1, loss_metric: str = "heldout_gap") -> list[dict]:
    """Do the curves of runs that differ only in n collapse under the normalized step?

    ``metric`` is a stored metric or ``"relative_gap"`` (the loss criterion's curve). For
    each level L, the step at which each run's curve first exceeds L (``threshold_onset``,
    interpolated) is found; over the runs that reach L (at least two values of n), the
    spread is the standard deviation of log10 of that step, raw and normalized. Curves
    that collapse have a normalized spread near 0 (a horizontal distance: 0.3 = a
    factor of 2); the summary averages over the levels.
    """
    levels = levels or COLLAPSE_LEVELS.get(metric, COLLAPSE_LEVELS["mem_ratio"])

    def curve(traj: Trajectory):
        return relative_gap(traj, loss_metric) if metric == "relative_gap" else traj.get(metric)

    every = {group_key(r.spec) for r in runs}
    groups: dict[tuple, list] = {}
    for r in runs:
        if r.run_id in trajectories and r.run_id in records:
            groups.setdefault((group_key(r.spec), r.seed), []).append(r)
    out = []
    for (gkey, seed), members in groups.items():
        members = [m for m in members if curve(trajectories[m.run_id]) is not None]
        if len({m.n for m in members}) < 2:
            continue
        per_level = []
        for level in levels:
            hits = [(m.n, step, step * records[m.run_id].get("norm_factor", 1.0))
                    for m, step in level_crossings(members, trajectories, curve, level, confirm)]
            if len({n for n, _, _ in hits}) < 2:
                continue
            raw, norm = np.log10([a for _, a, _ in hits]), np.log10([b for _, _, b in hits])
            per_level.append({"level": level, "n": sorted(n for n, _, _ in hits),
                              "spread_step": float(raw.std()), "spread_normalized": float(norm.std())})
        out.append({"group": group_label(gkey, every), "seed": seed, "metric": metric, "runs": len(members),
                    "levels": per_level,
                    "spread_step": float(np.mean([p["spread_step"] for p in per_level])) if per_level else None,
                    "spread_normalized": (float(np.mean([p["spread_normalized"] for p in per_level]))
                                          if per_level else None)})
    return out


def level_crossings(members: list[RunRecord], trajectories: dict[str, Trajectory], curve, level: float,
                    confirm: int) -> list[tuple[RunRecord, float]]:
    """(run, step) for every run whose ``curve(trajectory)`` first exceeds ``level`` after
    its first evaluation (``threshold_onset``'s rule and interpolation)."""
    out = []
    for m in members:
        traj = trajectories[m.run_id]
        on = threshold_onset(traj.steps, curve(traj), level, confirm)
        if on.step is not None and on.censored != "left":
            out.append((m, on.step))
    return out


def format_collapse(c: dict) -> str:
    head = f"{c['metric']} curves, {c['group']}, seed {c['seed']}: "
    if not c["levels"]:
        return head + "no level reached by runs of two or more n; nothing to compare"
    levels = ", ".join(f"{p['level']:g} (n={'/'.join(map(str, sorted(set(p['n']))))})" for p in c["levels"])
    return (head + f"std across n of log10(step reaching a level) {c['spread_normalized']:.3f} against "
                   f"normalized step vs {c['spread_step']:.3f} against step; 0 = perfect collapse, 0.3 = a "
                   f"factor of 2; mean over levels {levels}")
