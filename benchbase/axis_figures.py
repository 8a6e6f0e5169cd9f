"""Figures of memorization onsets over every swept axis (``benchbase plot``).

A suite that sweeps more than n (width, batch size, learning rate) is fitted by
benchbase.exponents; these figures show what the numbers summarise, so a reader can
see a misfit or a censored corner rather than trust one exponent:

- ``<suite>.tau_vs_axes``: tau_mem against each swept axis, one line per value of the
  other axes (geometric mean over seeds, seeds as small dots, right-censored runs as
  open triangles at their last step), the multi-axis fit drawn through each line;
- ``<suite>.normalizations``: the relative held-out gap of every run against raw step,
  the paper's normalized step and the step normalized by the measured exponents
  (fitted on the other seeds), with the spread of each in the panel title.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchbase.derived import RunData, SuiteData
from benchbase.dynamics import relative_gap
from benchbase.exponents import (PAPER_EXPONENTS, AxisFit, family_key, family_label, predicted_scale, run_axes,
                                 varying_axes)
from benchbase.figure_kit import pyplot as _plt
from benchbase.figure_kit import save_figure as _save

FORMATS = ("png", "svg")
LINE_STYLES = ("-", "--", ":", "-.")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in text).strip("_")[:60]


def _every_family(data: SuiteData) -> set[tuple]:
    """Every run's family: what labels are told apart against, as in benchbase.exponents."""
    return {family_key(r.spec) for r in data.runs}


def _families(data: SuiteData) -> dict[tuple, list[RunData]]:
    """Runs fitted together (benchbase.exponents.family_key), with more than one swept axis."""
    out: dict[tuple, list[RunData]] = {}
    for r in data.runs:
        if (r.traj.steps > 0).any():  # oracles are evaluated at step 0 only
            out.setdefault(family_key(r.spec), []).append(r)
    return {k: v for k, v in out.items() if len(varying_axes([r.run for r in v])) >= 2}


def _value(v: float) -> str:
    return f"{v:g}"


# ---------------------------------------------------------------- tau vs each axis


@dataclass
class AxisLine:
    """The runs that share every other axis's value, along one axis."""

    fixed: dict[str, float]  # the other axes' values
    x: list[float]  # the axis values with at least one run that reached tau_mem
    tau: list[float]  # geometric mean over the seeds that reached it
    seeds: list[tuple[float, float]] = field(default_factory=list)  # (x, tau) of every run that reached it
    censored: list[tuple[float, float]] = field(default_factory=list)  # (x, last step) of runs that did not


@dataclass
class AxisPanel:
    family: str
    axis: str
    quantity: str
    lines: list[AxisLine]
    fit: AxisFit | None  # the multi-axis fit over the family (None: too few runs memorized)

    def fitted(self, fixed: dict[str, float], x: np.ndarray) -> np.ndarray | None:
        """The fit's tau along this axis with the other axes at ``fixed``."""
        if self.fit is None or self.fit.fit is None:
            return None
        f = self.fit.fit
        log_tau = f.exponent("intercept").estimate + sum(
            f.exponent(a).estimate * math.log(v) for a, v in fixed.items())
        return np.exp(log_tau + f.exponent(self.axis).estimate * np.log(x))


def axis_panels(data: SuiteData, quantity: str = "tau_mem") -> list[AxisPanel]:
    """One panel per family and swept axis, for families that sweep two axes or more."""
    panels = []
    for key, runs in _families(data).items():
        axes = varying_axes([r.run for r in runs])
        fit = next((f for f in data.axis_fits if f.family == family_label(key, _every_family(data)) and f.quantity == quantity), None)
        for axis in axes:
            others = [a for a in axes if a != axis]
            by_fixed: dict[tuple, list[RunData]] = {}
            for r in runs:
                values = run_axes(r.spec)
                by_fixed.setdefault(tuple(values[a] for a in others), []).append(r)
            lines = []
            for fixed_values, members in sorted(by_fixed.items()):
                line = AxisLine(dict(zip(others, fixed_values)), [], [])
                reached: dict[float, list[float]] = {}
                for r in members:
                    x = run_axes(r.spec)[axis]
                    tau = r.derived.get(quantity)
                    if tau is None:
                        if r.derived.get("final_step"):
                            line.censored.append((x, float(r.derived["final_step"])))
                    elif r.derived.get(f"{quantity}_censored" if quantity != "tau_mem" else "censored") != "left":
                        reached.setdefault(x, []).append(float(tau))
                        line.seeds.append((x, float(tau)))
                for x in sorted(reached):
                    line.x.append(x)
                    line.tau.append(float(np.exp(np.mean(np.log(reached[x])))))
                lines.append(line)
            panels.append(AxisPanel(family_label(key, _every_family(data)), axis, quantity, lines, fit))
    return panels


def _exponent_text(panel: AxisPanel) -> str:
    if panel.fit is None or panel.fit.fit is None:
        return "no fit"
    c = panel.fit.fit.exponent(panel.axis)
    band = c.ci95 or c.bootstrap95
    text = f"b_{panel.axis} = {c.estimate:.2f}" + (f" [{band[0]:.2f}, {band[1]:.2f}]" if band else "")
    if panel.axis in PAPER_EXPONENTS:
        text += f" (paper {PAPER_EXPONENTS[panel.axis]:g})"
    return text


def plot_tau_axes(data: SuiteData, out: Path, formats=FORMATS) -> list[Path]:
    import matplotlib

    plt = _plt()
    panels = axis_panels(data)
    paths: list[Path] = []
    families = sorted({p.family for p in panels})
    for family in families:
        mine = [p for p in panels if p.family == family]
        fig, axes = plt.subplots(1, len(mine), figsize=(4.6 * len(mine), 4.0), squeeze=False)
        for ax, panel in zip(axes.flat, mine):
            cmap = matplotlib.colormaps["viridis"]
            for i, line in enumerate(panel.lines):
                color = cmap(0.85 * i / max(1, len(panel.lines) - 1))
                label = ", ".join(f"{a}={_value(v)}" for a, v in line.fixed.items())
                if line.seeds:
                    ax.plot([x for x, _ in line.seeds], [t for _, t in line.seeds], ".", color=color, ms=3,
                            alpha=0.6)
                if line.x:
                    ax.plot(line.x, line.tau, "o", color=color, ms=5, label=label)
                    xs = np.geomspace(min(line.x), max(line.x), 30)
                    curve = panel.fitted(line.fixed, xs)
                    if curve is not None:
                        ax.plot(xs, curve, "-", color=color, lw=1.1)
                if line.censored:
                    ax.plot([x for x, _ in line.censored], [s for _, s in line.censored], "^", mfc="none",
                            color=color, ms=7, ls="none", label=None if line.x else label + " (not reached)")
            ax.set_xscale("log")
            ax.set_yscale("log")
            values = sorted({x for line in panel.lines for x in line.x + [c for c, _ in line.censored]})
            if values:
                from matplotlib.ticker import NullFormatter

                ax.set_xticks(values, [_value(v) for v in values])
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(panel.axis)
            ax.set_ylabel(f"{panel.quantity} (training steps)")
            ax.set_title(_exponent_text(panel), fontsize=9)
            ax.grid(True, which="both", alpha=0.25)
            ax.legend(loc="best", fontsize=7)
        fit = mine[0].fit
        note = ("" if fit is None or fit.fit is None else
                f"; fit over {fit.fit.points} runs, R² {fit.fit.r2:.2f}, 95% t intervals"
                + (f", {fit.censored} not reached (triangles, left out)" if fit.censored else ""))
        fig.suptitle(f"{data.name}: {family}, {mine[0].quantity} against each swept axis{note}", fontsize=10)
        fig.tight_layout()
        suffix = "" if len(families) == 1 else "." + _slug(family)
        paths += _save(fig, out, f"{data.name}.tau_vs_axes{suffix}", formats)
    return paths


# ------------------------------------------------------------- normalizations


def plot_normalizations(data: SuiteData, out: Path, formats=FORMATS) -> list[Path]:
    """The relative held-out gap under no, the paper's and the measured normalization."""
    plt = _plt()
    cfg = data.settings
    families = _families(data)
    paths: list[Path] = []
    for key, runs in families.items():
        comparison = next((c for c in data.normalizations
                           if c.family == family_label(key, _every_family(data)) and c.metric == "relative_gap"), None)
        if comparison is None or comparison.spread_step is None:
            continue
        axes_names = comparison.axes
        ref = {a: min(run_axes(r.spec)[a] for r in runs) for a in axes_names}
        color_axis = axes_names[-1]
        style_axes = axes_names[:-1]
        colors = _colors(sorted({run_axes(r.spec)[color_axis] for r in runs}))
        styles = {v: LINE_STYLES[i % len(LINE_STYLES)] for i, v in
                  enumerate(sorted({tuple(run_axes(r.spec)[a] for a in style_axes) for r in runs}))}
        paper = {a: PAPER_EXPONENTS.get(a, 0.0) for a in axes_names}
        spreads = {"step": comparison.spread_step, "paper": comparison.spread_paper,
                   "measured": comparison.spread_measured}
        titles = {"step": "training step",
                  "paper": "paper: step·(B/B0)(lr/lr0)/(n/n0)",
                  "measured": "measured exponents (other seeds' fit)"}
        fig, axs = plt.subplots(1, 3, figsize=(13.5, 4.0), sharey=True)
        for ax, how in zip(axs, ("step", "paper", "measured")):
            for r in runs:
                values = run_axes(r.spec)
                if how == "step":
                    scale = 1.0
                elif how == "paper":
                    scale = predicted_scale(values, ref, paper)
                else:
                    exps = comparison.exponents.get(str(r.run.seed))
                    if exps is None:
                        continue
                    scale = predicted_scale(values, ref, exps)
                gap = relative_gap(r.traj, cfg.loss_metric)
                if gap is None:
                    continue
                keep = r.traj.steps > 0
                ax.plot(r.traj.steps[keep] / scale, gap[keep], styles[tuple(values[a] for a in style_axes)],
                        color=colors[values[color_axis]], lw=1.0, alpha=0.8)
            ax.axhline(cfg.loss_threshold, color="grey", lw=0.8, ls=":")
            ax.set_xscale("log")
            spread = spreads[how]
            ax.set_title(f"{titles[how]}\nspread {spread:.3f}" if spread is not None else titles[how], fontsize=9)
            ax.set_xlabel("step / predicted scale" if how != "step" else "step")
            ax.grid(True, which="both", alpha=0.25)
        axs[0].set_ylabel("relative held-out gap (minus its first value)")
        handles = [plt.Line2D([], [], color=c, lw=1.5, label=f"{color_axis}={_value(v)}") for v, c in colors.items()]
        if style_axes and len(styles) > 1:
            handles += [plt.Line2D([], [], color="k", ls=s, lw=1.0,
                                   label=", ".join(f"{a}={_value(x)}" for a, x in zip(style_axes, v)))
                        for v, s in styles.items()]
        axs[0].legend(handles=handles, loc="upper left", fontsize=7)
        fig.suptitle(f"{data.name}: {family_label(key, _every_family(data))}, do the curves collapse? (spread = std of log10 step "
                     f"reaching levels {', '.join(_value(v) for v in comparison.levels)}; 0 = perfect, "
                     f"0.3 = a factor of 2; dotted: loss threshold)", fontsize=9)
        fig.tight_layout()
        suffix = "" if len(families) == 1 else "." + _slug(family_label(key, _every_family(data)))
        paths += _save(fig, out, f"{data.name}.normalizations{suffix}", formats)
    return paths


def _colors(values: list[float]) -> dict[float, tuple]:
    import matplotlib

    cmap = matplotlib.colormaps["plasma"]
    if len(values) == 1:
        return {values[0]: cmap(0.3)}
    return {v: cmap(0.85 * i / (len(values) - 1)) for i, v in enumerate(values)}
