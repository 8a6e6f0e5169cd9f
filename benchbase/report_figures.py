"""Figures of one run for the report: metric curves over training, and generated
samples beside their nearest training examples (an image grid, or a 2-D scatter for
vector data). Matplotlib's object API only (no pyplot state), so figures can be
made anywhere; files carry no dates, so a regenerated site is byte-identical.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import matplotlib
from matplotlib.figure import Figure

from benchbase.leaderboard import ARROWS

_SAVE = {"png": {"dpi": 110, "metadata": {"Software": None}},
         "svg": {"metadata": {"Date": None}}}


def save(fig: Figure, path_without_suffix: Path, formats: tuple[str, ...] = ("png",)) -> list[Path]:
    """Write ``fig`` in each format; returns the files written."""
    import matplotlib

    out = []
    with matplotlib.rc_context({"svg.hashsalt": "benchbase", "svg.fonttype": "none"}):
        for fmt in formats:
            path = path_without_suffix.parent / f"{path_without_suffix.name}.{fmt}"  # names may hold dots
            fig.savefig(path, format=fmt, **_SAVE[fmt])
            out.append(path)
    return out


def _log_y_if_wide(ax, values: list[float]) -> None:
    """Log y-axis for positive values spanning more than two decades (distances that
    fall by orders of magnitude during training would otherwise flatten the oracles)."""
    finite = [v for v in values if math.isfinite(v)]
    if finite and min(finite) > 0 and max(finite) / min(finite) > 100:
        ax.set_yscale("log")


def headline_series(evals: list[dict]) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{metric: {ref: [(step, value), ...]}} for headline metrics and training logs."""
    series: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for e in evals:
        name = e["metric"]
        if "." in name:  # details (confidence bounds, per-level values) go with their headline
            continue
        series.setdefault(name, {}).setdefault(e["ref"], []).append((e["step"], e["value"]))
    for refs in series.values():
        for points in refs.values():
            points.sort()
    return series


def curves_figure(evals: list[dict], directions: dict[str, str], title: str = "",
                  onset: float | None = None) -> Figure | None:
    """One panel per metric (training logs last), one line per reference split; None
    for fewer than two evaluated steps.

    ``directions`` maps metric -> higher|lower|target for the arrow in each panel title.
    A metric's ``<name>.ci_low``/``.ci_high`` details, when stored, shade a band; its
    ``<name>.chance`` level, when stored, is a dotted line; ``onset`` (the run's
    memorization onset step) a vertical grey line in every panel.
    """
    series = headline_series(evals)
    if len({e["step"] for e in evals}) < 2:  # evaluated once (a model that does not train): no curve
        return None
    names = sorted(series, key=lambda m: ("/" in m, m))
    bands = {(e["metric"].rsplit(".", 1)[0], e["ref"], e["step"], e["metric"].rsplit(".", 1)[1]): e["value"]
             for e in evals if e["metric"].endswith((".ci_low", ".ci_high", ".chance"))}
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows))
    # fixed margins: a layout engine would double the drawing time of every figure
    fig.subplots_adjust(left=0.8 / (4.2 * cols), right=1 - 0.2 / (4.2 * cols), bottom=0.55 / (3.0 * rows),
                        top=1 - 0.4 / (3.0 * rows), wspace=0.3, hspace=0.55)
    positive = sorted({e["step"] for e in evals if e["step"] > 0})
    log_x = len(positive) > 2 and positive[-1] / positive[0] >= 20  # log-spaced schedules
    for i, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, i + 1)
        for ref, points in sorted(series[name].items()):
            xs = np.array([p[0] for p in points], dtype=float)
            ys = np.array([p[1] for p in points], dtype=float)
            label = ref or "value"
            line, = ax.plot(xs, ys, marker="o", markersize=3.5, linewidth=1.4, label=label)
            lo = [bands.get((name, ref, int(x), "ci_low")) for x in xs]
            hi = [bands.get((name, ref, int(x), "ci_high")) for x in xs]
            if all(v is not None for v in lo + hi):
                ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.18, linewidth=0)
            chance = [bands.get((name, ref, int(x), "chance")) for x in xs]
            if all(v is not None for v in chance):
                ax.plot(xs, chance, ":", color=line.get_color(), linewidth=1.0, label=f"{label}: chance")
        if onset is not None and math.isfinite(onset):
            ax.axvline(onset, color="0.35", linestyle="--", linewidth=0.9)
        _log_y_if_wide(ax, [v for points in series[name].values() for _, v in points])
        arrow = ARROWS.get(directions.get(name, ""), "")
        ax.set_title(f"{name} {arrow}".strip(), fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if log_x:
            ax.set_xscale("symlog", linthresh=positive[0])  # linear near 0 keeps a step-0 point
        if len(ax.get_legend_handles_labels()[0]) > 1:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def _to_image(x: np.ndarray) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W) or (H, W, 3) in [0, 1]."""
    img = np.clip((np.asarray(x, dtype=np.float32) + 1) / 2, 0, 1)
    return img[0] if img.shape[0] == 1 else np.moveaxis(img[:3], 0, -1)


def mosaic(samples: np.ndarray, neighbours: np.ndarray | None, per_row: int = 8, pad: int = 1) -> np.ndarray:
    """Rows of samples, each followed by a row of their nearest training examples."""
    tiles = [_to_image(s) for s in samples]
    nn_tiles = [_to_image(s) for s in neighbours] if neighbours is not None else None
    h, w = tiles[0].shape[:2]
    channels = tiles[0].shape[2:]  # () or (3,)
    groups = math.ceil(len(tiles) / per_row)
    lines = 2 if nn_tiles is not None else 1
    canvas = np.ones(((h + pad) * groups * lines + pad, (w + pad) * per_row + pad, *channels), dtype=np.float32)
    for i, tile in enumerate(tiles):
        g, c = divmod(i, per_row)
        top = (h + pad) * g * lines + pad
        left = (w + pad) * c + pad
        canvas[top:top + h, left:left + w] = tile
        if nn_tiles is not None:
            canvas[top + h + pad:top + 2 * h + pad, left:left + w] = nn_tiles[i]
    return canvas


def image_grid_png(samples: np.ndarray, train: np.ndarray | None, path: Path, max_images: int = 16,
                   scale: int | None = None) -> dict:
    """Samples (rows) each above a row of their nearest training images, as one PNG.

    Written with Pillow, upscaled without smoothing so every pixel stays visible.
    Returns facts for the caption (how many shown, median distance to the neighbour).
    """
    from PIL import Image

    from benchbase.neighbors import knn

    shown = samples[:max_images]
    facts: dict = {"shown": len(shown), "per_row": min(8, len(shown))}
    nn = None
    if train is not None:
        dist, idx = knn(shown.reshape(len(shown), -1), train.reshape(len(train), -1), k=1)
        nn = train[idx[:, 0]]
        facts["median_distance"] = float(np.median(dist[:, 0]))
    grid = mosaic(shown, nn, facts["per_row"])
    scale = scale or max(1, 96 // samples.shape[-1])  # about 96 px per example
    pixels = (grid * 255).round().astype(np.uint8)
    img = Image.fromarray(pixels, mode="L" if pixels.ndim == 2 else "RGB")
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path, format="PNG", optimize=True)
    return facts


def scatter_figure(samples: np.ndarray, train: np.ndarray | None, title: str = "") -> tuple[Figure, dict]:
    """Vector data in the plane: the training subset, the samples, and a segment from
    each sample to its nearest training point (L2 in data space). Dimensions other
    than 2 are shown on the first two principal axes of the training data."""
    from matplotlib.collections import LineCollection

    from benchbase.neighbors import knn

    facts: dict = {"shown": len(samples)}
    flat = samples.reshape(len(samples), -1)
    ref = train.reshape(len(train), -1) if train is not None else None
    axes_names = ("x1", "x2")
    project = lambda a: a  # noqa: E731
    if flat.shape[1] != 2:
        basis_src = ref if ref is not None else flat
        mean = basis_src.mean(0)
        _, _, vt = np.linalg.svd(basis_src - mean, full_matrices=False)
        project = lambda a: (a - mean) @ vt[:2].T  # noqa: E731
        axes_names = ("PC1", "PC2")
    fig = Figure(figsize=(5.2, 4.6), layout="constrained")
    ax = fig.add_subplot()
    gen2 = project(flat)
    if ref is not None:
        tr2 = project(ref)
        dist, idx = knn(flat, ref, k=1)
        facts["median_distance"] = float(np.median(dist[:, 0]))
        segs = np.stack([gen2, tr2[idx[:, 0]]], axis=1)
        ax.scatter(tr2[:, 0], tr2[:, 1], s=7, c="0.65", label="training subset", linewidths=0)
        ax.add_collection(LineCollection(segs, colors="tab:red", linewidths=0.6, alpha=0.6,
                                         label="to nearest training point"))
    ax.scatter(gen2[:, 0], gen2[:, 1], s=10, c="tab:blue", label="generated", linewidths=0)
    ax.set_xlabel(axes_names[0], fontsize=8)
    ax.set_ylabel(axes_names[1], fontsize=8)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=7, loc="best")
    ax.set_aspect("equal", adjustable="datalim")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig, facts


def table_curves_figure(table, evals_of, statuses: dict[str, str]) -> Figure | None:
    """A leaderboard over training: one panel per column, one line per row (the mean
    over its finished runs at each step). Rows evaluated once (models that do not
    train, e.g. oracles) are dashed horizontal references.

    ``evals_of(run_id)`` returns a run's stored evals; ``statuses`` maps run id -> status.
    """
    if not table.columns or not table.rows:
        return None
    cols = min(3, len(table.columns))
    rows = math.ceil(len(table.columns) / cols)
    legend_rows = math.ceil(len(table.rows) / 6)
    height = 3.2 * rows + 0.3 + 0.2 * legend_rows
    fig = Figure(figsize=(4.4 * cols, height))
    fig.subplots_adjust(left=0.8 / (4.4 * cols), right=1 - 0.2 / (4.4 * cols),
                        bottom=(0.5 + 0.2 * legend_rows) / height, top=1 - 0.45 / height,
                        wspace=0.3, hspace=0.55)
    curves: dict[tuple[str, int], dict[int, list[float]]] = {}  # (column key, row index) -> step -> values
    for i, row in enumerate(table.rows):
        for run_id in row.run_ids:
            if statuses.get(run_id) != "done":
                continue
            for e in evals_of(run_id):
                key = f"{e['metric']}[{e['ref']}]" if e["ref"] else e["metric"]
                if np.isfinite(e["value"]):
                    curves.setdefault((key, i), {}).setdefault(e["step"], []).append(e["value"])
    positive = sorted({s for c in curves.values() for s in c if s > 0})
    handles = {}
    # a model in two frameworks is two rows with one label: name them apart in the legend
    shared = {r.label for r in table.rows if sum(o.label == r.label for o in table.rows) > 1}
    names = [f"{r.label} ({r.framework})" if r.label in shared else r.label for r in table.rows]
    cmap = matplotlib.colormaps["tab10" if len(table.rows) <= 10 else "tab20"]
    colors = [cmap(i % cmap.N) for i in range(len(table.rows))]
    for j, col in enumerate(table.columns):
        ax = fig.add_subplot(rows, cols, j + 1)
        for i, row in enumerate(table.rows):
            points = curves.get((col.key, i))
            if not points:
                continue
            steps = sorted(points)
            means = [float(np.mean(points[s])) for s in steps]
            color = colors[i]
            if len(steps) == 1 and len(positive) > 1:
                line = ax.axhline(means[0], color=color, linestyle="--", linewidth=1.2)
            else:
                line, = ax.plot(steps, means, marker="o", markersize=3, linewidth=1.4, color=color)
            handles.setdefault(names[i], line)
        _log_y_if_wide(ax, [v for i in range(len(table.rows)) for vals in curves.get((col.key, i), {}).values()
                            for v in vals])
        ax.set_title(col.header, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if len(positive) > 2 and positive[-1] / positive[0] >= 20:
            ax.set_xscale("symlog", linthresh=positive[0])
        if positive:  # dashed references must not widen the step axis
            first = min((s for c in curves.values() if len(c) > 1 for s in c), default=positive[0])
            ax.set_xlim(first / 1.3 if first > 0 else -0.05 * positive[-1], positive[-1] * 1.3)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(6, len(handles)),
                   fontsize=8, frameon=False)
    return fig
