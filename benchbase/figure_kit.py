"""Matplotlib plumbing shared by the figures of stored results (``benchbase plot``):
the Agg backend with reproducible SVGs, saving one figure in several formats, and
rows of images."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    """matplotlib.pyplot on the Agg backend, with the house style (fixed SVG hash salt:
    the same figure gives the same bytes)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "benchbase", "figure.dpi": 110, "font.size": 9,
                         "axes.titlesize": 10, "legend.fontsize": 8})
    return plt


def save_figure(fig, out: Path, stem: str, formats: tuple[str, ...]) -> list[Path]:
    """``out/stem.<fmt>`` for every format (SVG without a date), then close the figure."""
    paths = []
    for fmt in formats:
        path = out / f"{stem}.{fmt}"
        meta = {"Date": None} if fmt == "svg" else {}
        fig.savefig(path, format=fmt, bbox_inches="tight", metadata=meta)
        paths.append(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths


def as_images(x: np.ndarray, value_range=(-1.0, 1.0)) -> np.ndarray | None:
    """(N, C, H, W) in value_range -> (N, H, W[, 3]) in [0, 1] for imshow; None for vectors."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        return None
    lo, hi = value_range
    img = np.clip((x - lo) / (hi - lo), 0, 1)
    return img[:, 0] if x.shape[1] == 1 else img.transpose(0, 2, 3, 1)


def image_rows(plt, rows: list[tuple[str, np.ndarray, list[str] | None]], title: str):
    """A grid with one labelled row of images per entry, an optional note over each image."""
    cols = max(len(imgs) for _, imgs, _ in rows)
    fig, axes = plt.subplots(len(rows), cols, figsize=(0.95 * cols + 1.2, 1.05 * len(rows) + 0.6), squeeze=False)
    for i, (label, imgs, notes) in enumerate(rows):
        for j in range(cols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(imgs):
                ax.imshow(imgs[j], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
                if notes:
                    ax.set_title(notes[j], fontsize=6.5, pad=2)
        axes[i, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
