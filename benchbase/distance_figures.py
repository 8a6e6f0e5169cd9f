"""When does a distributional distance notice memorization? (``benchbase plot``)

``<suite>.distance_gap``: for every run that stored swd or fd against both the
training subset and the test split, the distance's relative train/test gap
(d[test] - d[train]) / d[test] minus its first value (benchbase.distance_gap), beside
the relative held-out loss gap and the copy metric, all against step / tau_mem by the
loss criterion of that run. Curves that rise only right of 1 notice memorization after
the held-out loss does; a flat curve never notices it. One line per run, coloured by n.
"""
from __future__ import annotations

from pathlib import Path

from benchbase.derived import SuiteData
from benchbase.distance_gap import DISTANCES, gap_growth
from benchbase.dynamics import relative_gap
from benchbase.figure_kit import pyplot as _plt
from benchbase.figure_kit import save_figure as _save

FORMATS = ("png", "svg")


def plot_distance_gaps(data: SuiteData, out: Path, formats=FORMATS) -> list[Path]:
    import matplotlib

    runs = [r for r in data.runs if r.derived.get("tau_mem_loss")
            and any(gap_growth(r.traj, m) is not None for m in DISTANCES)]
    if not runs:
        return []
    plt = _plt()
    cfg = data.settings
    copy_metric = next((r.derived.get("tau_mem_copy_metric") for r in runs if r.derived.get("tau_mem_copy_metric")),
                       "mem_ratio")
    panels = [(m, f"{m}: relative train/test gap") for m in DISTANCES
              if any(gap_growth(r.traj, m) is not None for r in runs)]
    panels += [("__gap__", "held-out loss: relative gap"), (copy_metric, f"{copy_metric} (copies)")]
    ns = sorted({r.n for r in runs})
    cmap = matplotlib.colormaps["viridis"]
    color = {n: cmap(0.9 * i / max(1, len(ns) - 1)) for i, n in enumerate(ns)}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.0 * len(panels), 3.6), squeeze=False)
    labelled = set()
    for ax, (metric, title) in zip(axes[0], panels):
        for r in runs:
            if metric == "__gap__":
                y = relative_gap(r.traj, cfg.loss_metric)
            elif metric in DISTANCES:
                y = gap_growth(r.traj, metric)
            else:
                y = r.traj.get(metric, "train")
            if y is None:
                continue
            keep = r.traj.steps > 0
            label = f"n={r.n}" if r.n not in labelled else None
            labelled.add(r.n)
            ax.plot(r.traj.steps[keep] / r.derived["tau_mem_loss"], y[keep], "-", color=color[r.n], lw=0.9,
                    alpha=0.8, label=label)
        ax.axvline(1.0, color="k", lw=0.8, ls="--")
        if metric != copy_metric:
            ax.axhline(cfg.loss_threshold, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlabel("step / tau_mem (loss criterion)")
        ax.set_title(title, fontsize=9)
        ax.grid(True, which="both", alpha=0.25)
    axes[0, 0].legend(loc="upper left", fontsize=7)
    fig.suptitle(f"{data.name}: when do distances notice memorization? (dashed: the held-out loss gap opens; "
                 f"dotted: its threshold {cfg.loss_threshold:g}; gaps minus their first value)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out, f"{data.name}.distance_gap", formats)
