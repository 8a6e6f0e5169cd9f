"""Pictures of training dynamics from a results store (``benchbase plot``).

Reads only the store (metric values at every evaluation, kept samples, the derived
quantities of benchbase.dynamics) and writes PNG and SVG with matplotlib's Agg
backend: metric curves against step and normalized step per n, tau_mem against n
on log-log axes with the fitted slope, tau_mem against every other swept axis and the
curves under each normalization (benchbase.axis_figures), when distances notice
memorization (benchbase.distance_figures), a phase diagram over (n, a
swept model key),
generated samples beside their nearest training images, and twin samples side by
side. Every figure's file name starts with the suite name.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from benchbase.axis_figures import plot_normalizations, plot_tau_axes
from benchbase.derived import RunData, SuiteData, load_suite_data
from benchbase.distance_figures import plot_distance_gaps
from benchbase.dynamics import group_label, relative_gap
from benchbase.dynamics_report import dynamics_json, dynamics_table
from benchbase.figure_kit import as_images as _as_images
from benchbase.figure_kit import image_rows as _image_rows
from benchbase.figure_kit import pyplot as _plt
from benchbase.figure_kit import save_figure as _save
from benchbase.memscore_figures import plot_memorization_scores
from benchbase.verdicts import CopyRule

FORMATS = ("png", "svg")
CRITERIA_STYLE = {"copy": ("o", "copy criterion"), "loss": ("s", "loss criterion")}


# ------------------------------------------------------------------- plumbing


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:60]


def _n_colors(ns: list[int]):
    import matplotlib

    ns = sorted(set(ns))
    cmap = matplotlib.colormaps["viridis"]
    if len(ns) == 1:
        return {ns[0]: cmap(0.4)}
    lo, hi = np.log(ns[0]), np.log(ns[-1])
    return {n: cmap(0.9 * (np.log(n) - lo) / (hi - lo)) for n in ns}


def _judged(runs: list[RunData]) -> set[str]:
    """Metrics stored with a chance level (memorization metrics)."""
    return {m[: -len(".chance")] for r in runs for m, _ in r.traj.series if m.endswith(".chance")}


def _panels(runs: list[RunData], wanted: list[str] | None, cfg) -> list[tuple[str, list]]:
    """(title, [(metric, ref, line style)]) per panel: the memorization metrics (judged
    against chance), the held-out losses and their relative gap, then the suite's other
    headline metrics in suite order."""
    keys = {k for r in runs for k in r.traj.series}
    order = [m.name for m in runs[0].spec.metrics] if runs else []
    judged = _judged(runs)
    headline = sorted({m for m, _ in keys if "." not in m and "/" not in m},
                      key=lambda m: (m not in judged, order.index(m) if m in order else len(order), m))
    panels = []
    loss = cfg.loss_metric
    for metric in headline:
        if wanted and metric not in wanted:
            continue
        if metric == loss:
            continue  # shown as the two losses and their relative gap
        refs = sorted({ref for m, ref in keys if m == metric})
        panels.append((metric, [(metric, ref, "--" if ref == "train" and len(refs) > 1 else "-") for ref in refs]))
    if any(m == f"{loss}.train" for m, _ in keys) and (not wanted or loss in wanted):
        at = sum(1 for title, _ in panels if title in judged)
        panels[at:at] = [("held-out loss", [(f"{loss}.train", None, "--"), (f"{loss}.test", None, "-")]),
                         ("relative gap (L_test - L_train) / L_test, minus its first value", [("__gap__", None, "-")])]
    return panels


# ------------------------------------------------------------------------ curves


def plot_curves(data: SuiteData, out: Path, formats=FORMATS, wanted: list[str] | None = None) -> list[Path]:
    plt = _plt()
    cfg = data.settings
    paths = []
    for gkey, runs in data.groups().items():
        runs = [r for r in runs if (r.traj.steps > 0).any()]  # oracles are evaluated at step 0 only
        panels = _panels(runs, wanted, cfg)
        if not runs or not panels:
            continue
        colors = _n_colors([r.n for r in runs])
        judged = _judged(runs)
        suffix = "" if len(data.groups()) == 1 else "." + _slug(group_label(gkey, data.groups()))
        for axis in ("step", "normalized"):
            cols = min(3, len(panels))
            rows = -(-len(panels) // cols)
            fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
            labelled = set()
            for ax, (title, lines) in zip(axes.flat, panels):
                for r in runs:
                    factor = r.derived.get("norm_factor", 1.0) if axis == "normalized" else 1.0
                    keep = r.traj.steps > 0
                    x = r.traj.steps[keep] * factor
                    for metric, ref, style in lines:
                        y = relative_gap(r.traj, cfg.loss_metric) if metric == "__gap__" else r.traj.get(metric, ref)
                        if y is None:
                            continue
                        label = f"n={r.n}" if r.n not in labelled else None
                        labelled.add(r.n)
                        ax.plot(x, y[keep], style, color=colors[r.n], lw=1.4, marker=".", ms=4, label=label)
                        chance = r.traj.get(f"{metric}.chance", ref) if metric != "__gap__" else None
                        if chance is not None:
                            ax.plot(x, chance[keep], ":", color=colors[r.n], lw=0.9)
                    _mark_onset(ax, r, title, cfg, factor)
                ax.set_xscale("log")
                ax.set_title(_panel_title(title, lines) + (" (dotted: chance)" if title in judged else ""))
                ax.set_xlabel("normalized step  step·(B/B0)·(lr/lr0)/(n/n0)" if axis == "normalized" else "step")
                ax.grid(True, which="both", alpha=0.25)
            for ax in list(axes.flat)[len(panels):]:
                ax.axis("off")
            if axes.flat[0].get_legend_handles_labels()[0]:
                axes.flat[0].legend(loc="best")
            fig.suptitle(f"{data.name}: {group_label(gkey, data.groups())}, metrics vs "
                         f"{'normalized step' if axis == 'normalized' else 'training step'}", fontsize=11)
            fig.tight_layout()
            paths += _save(fig, out, f"{data.name}.curves_{axis}{suffix}", formats)
    return paths


def _panel_title(title: str, lines: list) -> str:
    if len(lines) < 2:
        return title
    names = [ref or metric.rsplit(".", 1)[-1] for metric, ref, _ in sorted(lines, key=lambda t: t[2] == "--")]
    return f"{title} (solid: {names[0]}, dashed: {names[1]})"


def _mark_onset(ax, r: RunData, title: str, cfg, factor: float) -> None:
    """A black ring where the run's onset lies (benchbase.verdicts, as stored in its
    dynamics record): on the curve of the memorization metric that crossed, and at the
    loss threshold on the relative gap."""
    tau = r.derived.get("tau_mem_copy")
    if tau and title == r.derived.get("tau_mem_copy_metric"):
        values = r.traj.get(title, "train")
        keep = (r.traj.steps > 0) & np.isfinite(values) if values is not None else None
        if keep is not None and keep.any():
            y = np.interp(np.log(tau), np.log(r.traj.steps[keep]), values[keep])
            ax.plot([tau * factor], [y], "o", mfc="none", mec="k", ms=7)
    if title.startswith("relative gap") and r.derived.get("tau_mem_loss"):
        ax.plot([r.derived["tau_mem_loss"] * factor], [cfg.loss_threshold], "s", mfc="none", mec="k", ms=7)


# ------------------------------------------------------------------- tau vs n


def plot_tau(data: SuiteData, out: Path, formats=FORMATS) -> list[Path]:
    plt = _plt()
    if not any(r.derived.get(f"tau_mem_{c}") is not None and r.derived.get(f"tau_mem_{c}_censored") != "left"
               for r in data.runs for c in CRITERIA_STYLE):
        return []  # nothing memorized during training (oracles "memorize" at step 0)
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    groups = data.groups()
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    all_n = []
    for gi, (gkey, runs) in enumerate(groups.items()):
        for ci, (crit, (marker, crit_label)) in enumerate(CRITERIA_STYLE.items()):
            pts = [(r.n, r.derived.get(f"tau_mem_{crit}")) for r in runs
                   if r.derived.get(f"tau_mem_{crit}_censored") != "left"]
            if not any(t is not None for _, t in pts):
                continue
            color = palette[(2 * gi + ci) % len(palette)]
            fit = next((f for f in data.fits if f["quantity"] == f"tau_mem_{crit}"
                        and f["group"] == group_label(gkey, data.groups())), None)
            reached = [(n, t) for n, t in pts if t is not None]
            label = f"{crit_label}" + (f", {group_label(gkey, data.groups())}" if len(groups) > 1 else "")
            if fit and fit["fit"]:
                f = fit["fit"]
                band = f.get("bootstrap95") or f.get("ci95")
                err = f" [{band[0]:.2f}, {band[1]:.2f}]" if band else ""
                label += f": slope {f['slope']:.2f}{err}, R² {f['r2']:.3f}"
                xs = np.geomspace(min(n for n, _ in reached), max(n for n, _ in reached), 50)
                ax.plot(xs, np.exp(f["intercept"]) * xs ** f["slope"], "-", color=color, lw=1.2)
            ax.plot([n for n, _ in reached], [t for _, t in reached], marker, color=color, ms=6, ls="none",
                    label=label)
            all_n += [n for n, _ in reached]
            censored = [(r.n, r.derived.get("final_step")) for r in runs
                        if r.derived.get(f"tau_mem_{crit}") is None and r.derived.get("final_step")]
            if censored:
                ax.plot([n for n, _ in censored], [s for _, s in censored], "^", mfc="none", color=color, ms=7,
                        ls="none", label=f"{crit_label}: not reached by the last step")
    if all_n:
        ns = np.geomspace(min(all_n), max(all_n), 10)
        ys = [r.derived.get("tau_mem") for r in data.runs if r.derived.get("tau_mem")]
        if ys:
            mid = np.exp(np.mean(np.log(ys))) / np.exp(np.mean(np.log(all_n)))
            ax.plot(ns, mid * ns, ":", color="grey", lw=1, label="slope 1 (linear in n)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax, sorted({r.n for r in data.runs}))
    ax.set_xlabel("training set size n")
    ax.set_ylabel("tau_mem (training steps)")
    ax.set_title(f"{data.name}: memorization onset vs n")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=7, frameon=False)
    fig.tight_layout()
    return _save(fig, out, f"{data.name}.tau_vs_n", formats)


def _plain_log_ticks(ax, values: list) -> None:
    """Ticks at the swept values, written plainly (32, not 3.2x10^1)."""
    from matplotlib.ticker import NullFormatter

    ax.set_xticks(values, [str(v) for v in values])
    ax.xaxis.set_minor_formatter(NullFormatter())


# ----------------------------------------------------------------- phase diagram


def _phase_axis(runs: list[RunData]) -> str | None:
    keys = {k for r in runs for k in r.spec.sweep if k not in ("n", "subset.split", "subset.holdout")}
    for k in ("model.width", "model.channels", "model.base_channels"):
        if k in keys:
            return k
    model_keys = sorted(k for k in keys if k.startswith("model."))
    return model_keys[0] if model_keys else (sorted(keys)[0] if keys else None)


def plot_phase(data: SuiteData, out: Path, formats=FORMATS) -> list[Path]:
    plt = _plt()
    if not data.runs:
        return []
    axis = _phase_axis(data.runs)
    cells: dict[tuple, list[RunData]] = {}
    for r in data.runs:
        y = r.spec.sweep.get(axis) if axis else r.spec.model.label
        cells.setdefault((r.n, json.dumps(y, default=str)), []).append(r)
    ns = sorted({k[0] for k in cells})
    ys = sorted({k[1] for k in cells}, key=lambda v: (not isinstance(json.loads(v), (int, float)),
                                                     json.loads(v) if isinstance(json.loads(v), (int, float)) else 0, v))
    grid = np.full((len(ys), len(ns)), np.nan)
    # the phase is about copies: the copy criterion when it was measured, else the headline
    key = "tau_mem_copy" if any(r.derived.get("tau_mem_copy_censored") != "unavailable" for r in data.runs) \
        else "tau_mem"
    fig, ax = plt.subplots(figsize=(1.25 * len(ns) + 3.2, 0.8 * len(ys) + 2.0))
    for (n, y), runs in cells.items():
        i, j = ys.index(y), ns.index(n)
        memorized = [r.derived.get(key) is not None for r in runs]
        grid[i, j] = float(np.mean(memorized))
        finals = [r.derived.get("mem_final") for r in runs if r.derived.get("mem_final") is not None]
        text = "memorized" if all(memorized) else ("generalized" if not any(memorized) else
                                                   f"{sum(memorized)}/{len(runs)} mem.")
        if finals:
            text += f"\nfinal f_mem {np.mean(finals):.2f}"
        ax.text(j, i, text, ha="center", va="center", fontsize=7,
                color="white" if grid[i, j] > 0.6 or grid[i, j] < 0.4 else "black")
    im = ax.imshow(grid, cmap="coolwarm", vmin=0, vmax=1, aspect="auto", origin="lower")
    ax.set_xticks(range(len(ns)), [str(n) for n in ns])
    ax.set_yticks(range(len(ys)), [str(json.loads(y)) for y in ys])
    ax.set_xlabel("training set size n")
    ax.set_ylabel(axis.split(".", 1)[-1] if axis else "model")
    if key == "tau_mem_copy":
        judged = sorted({m for r in data.runs for m in r.derived.get("copy_metrics") or []})
        how = f"{CopyRule.of(data.settings).describe(judged)}, within the budget"
    else:
        how = "tau_mem reached within the budget (" + "/".join(
            sorted({r.derived.get("criterion") or "no" for r in data.runs})) + " criterion)"
    ax.set_title(f"{data.name}: memorized = {how}", fontsize=9)
    cb = fig.colorbar(im, ax=ax, fraction=0.04, pad=0.03)
    cb.set_label("fraction of seeds memorized", fontsize=8)
    fig.tight_layout()
    return _save(fig, out, f"{data.name}.phase", formats)


# ------------------------------------------------------------------------ images


def _one_per_n(runs: list[RunData]) -> list[RunData]:
    """The lowest seed (and first split part) of each n among ``runs``."""
    chosen: dict[int, RunData] = {}
    for r in sorted(runs, key=lambda r: (r.run.seed, r.spec.subset.holdout is not None, (r.spec.subset.split or [0])[0])):
        chosen.setdefault(r.n, r)
    return [chosen[n] for n in sorted(chosen)]


def plot_samples(store, data: SuiteData, out: Path, formats=FORMATS, per_row: int = 10, registry=None) -> list[Path]:
    """One grid per group of runs whose kept samples are images: the samples of each n
    (lowest seed) over their nearest training images, with the d1/d2 ratio."""
    from benchbase.neighbors import knn
    from benchbase.twins import training_set

    groups = data.groups()
    paths: list[Path] = []
    for gkey, runs in groups.items():
        rows, step_seen = [], set()
        for r in _one_per_n(runs):
            got = store.samples(r.run.run_id)
            if got is None:
                continue
            step, x = got
            imgs = _as_images(x[:per_row])
            if imgs is None:  # vectors: no grid for this group
                break
            if registry is None:
                from benchbase.plugins import build_registry

                registry = build_registry()
            train = training_set(r.spec, registry)
            k = 2 if len(train) > 1 else 1
            d, idx = knn(x[:per_row], train, k=k)
            ratio = d[:, 0] / np.maximum(d[:, 1], 1e-12) if k == 2 else np.full(len(d), np.nan)
            notes = [f"{q:.2f}" + (" copy" if q < 1 / 3 else "") for q in ratio]
            rows.append((f"n={r.n}\ngenerated", imgs, notes))
            rows.append(("nearest\ntraining", _as_images(train[idx[:, 0]]), None))
            step_seen.add(step)
        if not rows:
            continue
        steps = ", ".join(str(s) for s in sorted(step_seen))
        suffix = "" if len(groups) == 1 else "." + _slug(group_label(gkey, data.groups()))
        fig = _image_rows(_plt(), rows, f"{data.name}: {group_label(gkey, data.groups())}, samples at step {steps} over their "
                                        f"nearest training images (pixel L2; number = d1/d2, a copy below 1/3)")
        paths += _save(fig, out, f"{data.name}.samples{suffix}", formats)
    return paths


def plot_twins(store, data: SuiteData, out: Path, formats=FORMATS, per_row: int = 10) -> list[Path]:
    from benchbase.twins import paired_cosine

    plt = _plt()
    with_twins = [r for r in data.runs if r.derived.get("twin")]
    if not with_twins:
        return []
    by_id = {r.run.run_id: r for r in data.runs}
    rows, done = [], set()
    for r in _one_per_n(with_twins):
        partner = by_id.get(r.derived["twin"]["partners"][0])
        if partner is None or r.run.run_id in done:
            continue
        done |= {r.run.run_id, partner.run.run_id}
        a, b = store.samples(r.run.run_id), store.samples(partner.run.run_id)
        if a is None or b is None:
            continue
        xa, xb = a[1][:per_row], b[1][:per_row]
        ia, ib = _as_images(xa), _as_images(xb)
        if ia is None or ib is None:
            return []
        sims = paired_cosine(xa, xb)
        rows.append((f"n={r.n}\n{r.derived['twin']['split']}", ia, [f"cos {s:.2f}" for s in sims]))
        rows.append((f"n={partner.n}\n{partner.derived['twin']['split']}", ib, None))
    paths = []
    if rows:
        fig = _image_rows(plt, rows, f"{data.name}: twin models (disjoint training halves, same seed) "
                                     f"sampled from the same noise")
        paths += _save(fig, out, f"{data.name}.twins", formats)
    paths += _plot_twin_curve(plt, data, with_twins, out, formats)
    return paths


def _plot_twin_curve(plt, data: SuiteData, runs: list[RunData], out: Path, formats) -> list[Path]:
    by_n: dict[int, dict[str, list]] = {}
    for r in runs:
        t = r.derived["twin"]
        slot = by_n.setdefault(r.n, {"twin": [], "near": []})
        slot["twin"].append(t["twin_similarity"])
        if t.get("nearest_train_similarity") is not None:
            slot["near"].append(t["nearest_train_similarity"])
    ns = sorted(by_n)
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ax.plot(ns, [np.mean(by_n[n]["twin"]) for n in ns], "o-", label="twin similarity (paired samples)")
    near = [(n, np.mean(by_n[n]["near"])) for n in ns if by_n[n]["near"]]
    if near:
        ax.plot([n for n, _ in near], [v for _, v in near], "s--", label="similarity to nearest training image")
    ax.set_xscale("log")
    _plain_log_ticks(ax, ns)
    ax.set_xlabel("training set size n (each twin)")
    ax.set_ylabel("cosine similarity (mean-centred pixels)")
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.02)
    ax.set_title(f"{data.name}: twin similarity and copying vs n (last evaluation)")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="best")
    fig.tight_layout()
    return _save(fig, out, f"{data.name}.twin_similarity", formats)


def write_all(store, suite: str, out: Path, formats=FORMATS, wanted: list[str] | None = None,
              registry=None) -> tuple[list[Path], SuiteData]:
    from benchbase.names import output_path

    md, js = output_path(out, f"{suite}.dynamics.md"), output_path(out, f"{suite}.dynamics.json")
    out.mkdir(parents=True, exist_ok=True)
    data = load_suite_data(store, suite, registry)
    paths = []
    paths += plot_curves(data, out, formats, wanted)
    paths += plot_tau(data, out, formats)
    paths += plot_tau_axes(data, out, formats)
    paths += plot_normalizations(data, out, formats)
    paths += plot_distance_gaps(data, out, formats)
    paths += plot_phase(data, out, formats)
    paths += plot_samples(store, data, out, formats, registry=registry)
    paths += plot_twins(store, data, out, formats)
    paths += plot_memorization_scores(store, data, out, formats, registry)
    md.write_text(dynamics_table(data), encoding="utf-8")
    js.write_text(json.dumps(dynamics_json(data), indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return paths + [md, js], data
