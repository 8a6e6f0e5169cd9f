"""Figures of the leave-fold-out memorization score (benchbase.memscore):

- ``memscore_top``: per model, for every n, the training examples with the highest
  M(x_i) (images: a row of them over rows of their nearest generated samples, from
  the kept samples of the model trained on all of S; 2-D data: the training points
  coloured by M with the generated samples behind them);
- ``memscore_by_n``: per model, the distribution of M over the training examples
  for every n (empirical CDFs), shaded by the chance band of a per-seed score where
  there are two seeds or more, and its mean with a standard error against n.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from benchbase.figure_kit import as_images, image_rows, pyplot, save_figure
from benchbase.memscore import scored_groups
from benchbase.twins import train_split

SHOWN = 8  # most memorized examples per n
NEIGHBOURS = 2  # generated neighbours shown under each


def plot_memorization_scores(store, data, out: Path, formats, registry=None) -> list[Path]:
    groups = scored_groups(data)
    if not groups:
        return []
    if registry is None:
        from benchbase.plugins import build_registry

        registry = build_registry()
    paths = []
    for model, members in groups.items():
        stem = f"{data.name}.memscore_top" + (f".{model}" if len(groups) > 1 else "")
        paths += _plot_top(store, data.name, model, members, out, stem, formats, registry)
        stem = f"{data.name}.memscore_by_n" + (f".{model}" if len(groups) > 1 else "")
        paths += _plot_by_n(data.name, model, members, out, stem, formats)
    return paths


def _plot_top(store, suite: str, model: str, members, out: Path, stem: str, formats, registry) -> list[Path]:
    from benchbase.neighbors import knn

    plt = pyplot()
    splits = train_split(members[0][1].spec, registry)
    rows, scatter = [], []
    for rec, run in members:
        score = np.asarray(rec["score"], dtype=float)
        index = np.asarray(rec["indices"], dtype=np.int64)
        order = np.argsort(score)[::-1][:SHOWN]
        got = store.samples(run.run.run_id)
        gen = None if got is None else got[1]
        train = splits.train[index[order]]
        images = as_images(train, splits.spec.value_range)
        if images is None:  # vector data: one scatter panel per n
            scatter.append((rec, splits.train[index], score, gen))
            continue
        se = rec.get("score_se") or [None] * len(score)
        notes = [f"M={score[j]:.3g}" + (f"±{se[j]:.2g}" if se[j] is not None else "") for j in order]
        rows.append((f"n={rec['n']}\nmost\nmemorized", images, notes))
        if gen is not None and len(gen):
            k = min(NEIGHBOURS, len(gen))
            d, idx = knn(train, gen, k=k)
            for j in range(k):
                rows.append((f"generated\nneighbour {j + 1}", as_images(gen[idx[:, j]], splits.spec.value_range),
                             [f"d={v:.2f}" for v in d[:, j]]))
    paths = []
    if rows:
        fig = image_rows(plt, rows, f"{suite}, {model}: training examples with the largest leave-fold-out "
                                    f"memorization score M = log p(x|S) - log p(x|S without its fold), over their "
                                    f"nearest generated samples (pixel L2 distance d)")
        paths += save_figure(fig, out, stem, formats)
    elif scatter:
        fig, axes = plt.subplots(1, len(scatter), figsize=(3.6 * len(scatter) + 0.8, 3.6), squeeze=False)
        for ax, (rec, x, score, gen) in zip(axes[0], scatter):
            if gen is not None and len(gen):
                g = gen.reshape(len(gen), -1)
                ax.scatter(g[:, 0], g[:, 1], s=3, c="lightgrey", label="generated")
            pts = ax.scatter(x[:, 0], x[:, 1], c=score, s=14, cmap="viridis", edgecolors="none")
            top = np.argsort(score)[::-1][:SHOWN]
            ax.scatter(x[top, 0], x[top, 1], s=60, facecolors="none", edgecolors="red", lw=0.8,
                       label=f"top {len(top)}")
            ax.set_title(f"n={rec['n']}", fontsize=9)
            ax.set_aspect("equal")
            fig.colorbar(pts, ax=ax, fraction=0.046, pad=0.02).set_label("M (nats)", fontsize=7)
        axes[0, 0].legend(loc="lower left", fontsize=6, frameon=False)
        fig.suptitle(f"{suite}, {model}: training points coloured by their leave-fold-out memorization score",
                     fontsize=9)
        fig.tight_layout()
        paths += save_figure(fig, out, stem, formats)
    return paths


def _plot_by_n(suite: str, model: str, members, out: Path, stem: str, formats) -> list[Path]:
    import matplotlib

    plt = pyplot()
    ns = sorted({rec["n"] for rec, _ in members})
    cmap = matplotlib.colormaps["viridis"]
    color = {n: cmap(0.9 * i / max(len(ns) - 1, 1)) for i, n in enumerate(ns)}
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.6))
    means = []
    for rec, _ in sorted(members, key=lambda m: m[0]["n"]):
        score = np.sort(np.asarray(rec["score"], dtype=float))
        left.step(score, np.arange(1, len(score) + 1) / len(score), where="post", color=color[rec["n"]],
                  label=f"n={rec['n']} (K={rec['K']}, {len(rec['full_runs'])} seed(s))")
        s = rec["summary"]
        means.append((rec["n"], s["mean"], s.get("mean_se") or 0.0))
        null = rec.get("null") or {}
        if null.get("values"):  # chance band of one seed's score (benchbase.memscore.seed_null)
            left.axvspan(*null["band95"], color=color[rec["n"]], alpha=0.12, lw=0)
    left.axvline(0, color="grey", lw=0.8, ls=":")
    left.set_xlabel("M(x_i) = log p(x_i | S) - log p(x_i | S without its fold)  [nats]")
    left.set_ylabel("fraction of training examples")
    left.legend(fontsize=7, frameon=False)
    left.set_title("distribution over the training set\n(shaded: 95% band of two models both trained on S)",
                   fontsize=9)
    xs, ys, es = zip(*means)
    right.errorbar(xs, ys, yerr=[1.96 * e for e in es], fmt="o-", color="C0", capsize=3)
    right.axhline(0, color="grey", lw=0.8, ls=":")
    right.set_xscale("log")
    right.set_xticks(ns, [str(n) for n in ns])
    right.set_xticks([], minor=True)  # no minor labels (3 x 10^1) over the plain ones
    right.set_xlabel("training set size n")
    right.set_ylabel("mean M over the training set (nats)")
    right.set_title("mean with a 95% interval (across examples)", fontsize=9)
    fig.suptitle(f"{suite}, {model}: leave-fold-out memorization score against n", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out, stem, formats)
