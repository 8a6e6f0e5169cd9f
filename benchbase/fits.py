"""Power-law fits of memorization times with 95% intervals, for one axis (tau_mem
against n) or several at once (n, batch size, learning rate, width).

log y = a + sum_k b_k log x_k by least squares over runs. Two intervals for every
exponent b_k:

- ``ci95``: the t interval b_k +- t_{0.975, dof} se(b_k), dof = runs - parameters,
  from the residual variance (runs of different seeds are independent replicates);
- ``bootstrap95``: the 2.5th and 97.5th percentiles of b_k over refits in which the
  replicates (seeds) of every design point (distinct x) are resampled with
  replacement. It needs two or more seeds at some design point; with one seed per
  point only the t interval exists.

Pure numpy/scipy: commands that read results do not import a framework.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

BOOTSTRAP_REPLICATES = 2000
BOOTSTRAP_SEED = 0  # fixed, so a rerun prints the same interval


@dataclass
class Coefficient:
    name: str  # the axis ("n", "batch_size", ...) or "intercept"
    estimate: float
    stderr: float | None
    ci95: list[float] | None  # t interval
    bootstrap95: list[float] | None  # percentile interval over seed resamples

    def interval(self) -> list[float] | None:
        """The interval to quote: the bootstrap's when there is one, else the t interval."""
        return self.bootstrap95 or self.ci95


@dataclass
class LogLinearFit:
    axes: list[str]
    coefficients: list[Coefficient]
    r2: float
    points: int
    dof: int
    design_points: int  # distinct x
    bootstrap_replicates: int = 0
    notes: list[str] = field(default_factory=list)

    def exponent(self, axis: str) -> Coefficient:
        return next(c for c in self.coefficients if c.name == axis)

    def to_dict(self) -> dict:
        return asdict(self)


def t_quantile(dof: int, level: float = 0.95) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, dof))


def _solve(design: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return coef, y - design @ coef


def fit_log_linear(x: np.ndarray, y: np.ndarray, axes: list[str]) -> LogLinearFit | None:
    """Fit log y on the logs of the columns of ``x`` (runs x axes, all > 0). None when
    the design cannot identify every exponent (an axis that does not vary, too few runs)."""
    y = np.asarray(y, dtype=float)
    if not len(y):
        return None
    x = np.asarray(x, dtype=float).reshape(len(y), -1)
    ok = np.isfinite(y) & (y > 0) & np.isfinite(x).all(1) & (x > 0).all(1)
    x, y = x[ok], y[ok]
    if not len(y):
        return None
    lx, ly = np.log(x), np.log(y)
    design = np.column_stack([np.ones(len(ly)), lx])
    p = design.shape[1]
    if len(ly) < p or np.linalg.matrix_rank(design) < p:
        return None
    coef, resid = _solve(design, ly)
    dof = len(ly) - p
    ss_res = float((resid ** 2).sum())
    ss_tot = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    if dof > 0:
        cov = ss_res / dof * np.linalg.inv(design.T @ design)
        se = np.sqrt(np.clip(np.diag(cov), 0, None))
        tq = t_quantile(dof)
    else:
        se, tq = None, None
    rows = [tuple(r) for r in np.round(lx, 12)]
    design_points = len(set(rows))
    boot = _bootstrap(design, ly, rows)
    names = ["intercept"] + list(axes)
    coefficients = []
    for j, name in enumerate(names):
        ci = None if se is None else [float(coef[j] - tq * se[j]), float(coef[j] + tq * se[j])]
        bi = None if boot is None else [float(np.percentile(boot[:, j], 2.5)), float(np.percentile(boot[:, j], 97.5))]
        coefficients.append(Coefficient(name, float(coef[j]), None if se is None else float(se[j]), ci, bi))
    notes = []
    if boot is None:
        notes.append("no bootstrap interval: one seed per design point")
    return LogLinearFit(list(axes), coefficients, float(r2), int(len(ly)), int(dof), design_points,
                        0 if boot is None else len(boot), notes)


def _bootstrap(design: np.ndarray, ly: np.ndarray, rows: list[tuple]) -> np.ndarray | None:
    """Refits with the replicates of every design point resampled with replacement."""
    strata: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        strata.setdefault(r, []).append(i)
    if all(len(v) < 2 for v in strata.values()):
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    groups = [np.asarray(v) for v in strata.values()]
    idx = np.concatenate([g[rng.integers(0, len(g), (BOOTSTRAP_REPLICATES, len(g)))] for g in groups], axis=1)
    xb, yb = design[idx], ly[idx]  # (replicates, runs, parameters), (replicates, runs)
    gram = np.einsum("bip,biq->bpq", xb, xb)
    ok = np.linalg.matrix_rank(gram) == design.shape[1]  # every design point stays, so always full rank
    return np.linalg.solve(gram[ok], np.einsum("bip,bi->bp", xb[ok], yb[ok])[..., None])[..., 0]


def fit_power_law(x, y) -> dict | None:
    """One axis: slope, intercept, R^2, standard error and both 95% intervals (plain data)."""
    fit = fit_log_linear(np.asarray(x, dtype=float).reshape(-1, 1), y, ["x"])
    if fit is None:
        return None
    slope, intercept = fit.exponent("x"), fit.exponent("intercept")
    return {"slope": slope.estimate, "intercept": intercept.estimate, "r2": fit.r2, "stderr": slope.stderr,
            "ci95": slope.ci95, "bootstrap95": slope.bootstrap95, "dof": fit.dof, "points": fit.points,
            "distinct_x": fit.design_points, "bootstrap_replicates": fit.bootstrap_replicates}


def format_interval(estimate: float, ci95: list | None, bootstrap95: list | None, dof: int | None = None) -> str:
    """'1.02, 95% CI [0.85, 1.19] (t, 13 dof); bootstrap over seeds [0.90, 1.15]'."""
    text = f"{estimate:.3f}"
    parts = []
    if ci95 is not None:
        parts.append(f"95% CI [{ci95[0]:.3f}, {ci95[1]:.3f}] (t" + (f", {dof} dof)" if dof is not None else ")"))
    if bootstrap95 is not None:
        parts.append(f"bootstrap over seeds [{bootstrap95[0]:.3f}, {bootstrap95[1]:.3f}]")
    if not parts:
        parts.append("no interval (as many runs as parameters)")
    return text + ", " + "; ".join(parts)


def log_spread(values: list[float]) -> float:
    """Standard deviation of log10 of positive values (0.3 = a factor of 2)."""
    arr = np.log10(np.asarray(values, dtype=float))
    return float(arr.std()) if len(arr) > 1 else math.nan
