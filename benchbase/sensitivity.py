"""How much copying each memorization metric sees: detection rates against the degree
of copying, from a suite's stored runs (``benchbase sensitivity``).

Every stored memorization value is judged against the chance level stored beside it
(benchbase.chance: one-sided test at ``alpha`` plus the metric's minimum effect). A
suite that sweeps a model key (the copying level of a controlled memorizer, e.g.
``model.sigma`` or ``model.rho``) over many seeds then gives, per dataset, metric,
model and swept value, the share of seeds flagged: the detection rate. For a model
with no swept key (fresh samples, noise) that share is a false-positive rate.
Outputs: a Markdown report with the values each metric detects with at least
``power``, the rate tables, a JSON file and one figure per swept key (rate against
value, one line per metric, one panel per dataset).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchbase.chance import DEFAULT_ALPHA, judge_stored
from benchbase.mdtext import md_escape

DEFAULT_POWER = 0.95
FORMATS = ("png", "svg")


@dataclass(frozen=True)
class DetectionRate:
    """Seeds flagged as memorizing, for one (dataset, metric, model, swept value)."""

    dataset: str
    metric: str
    model: str
    key: str | None  # the swept key ("model.sigma"); None for a model without one
    value: float | None
    detected: int
    runs: int

    @property
    def rate(self) -> float:
        return self.detected / self.runs if self.runs else math.nan

    def interval(self, z: float = 1.959964) -> tuple[float, float]:
        """Wilson score interval of the rate (95% by default)."""
        n, p = self.runs, self.rate
        if not n:
            return math.nan, math.nan
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class Sensitivity:
    suite: str
    alpha: float
    power: float
    sample_sizes: list[int]  # n_samples of the runs
    seeds: int  # most seeds behind one cell
    rates: list[DetectionRate] = field(default_factory=list)
    skipped: int = 0  # runs without stored chance levels (older stores)

    def datasets(self) -> list[str]:
        return _unique(r.dataset for r in self.rates)

    def metrics(self) -> list[str]:
        return _unique(r.metric for r in self.rates)

    def sweeps(self) -> list[tuple[str, str]]:
        """(model, key) pairs with a swept key."""
        return _unique((r.model, r.key) for r in self.rates if r.key is not None)

    def references(self) -> list[str]:
        """Models without a swept key (their rates are false-positive or reference rates)."""
        return _unique(r.model for r in self.rates if r.key is None)

    def curve(self, dataset: str, metric: str, model: str, key: str | None) -> list[DetectionRate]:
        return sorted((r for r in self.rates if (r.dataset, r.metric, r.model, r.key) == (dataset, metric, model, key)),
                      key=lambda r: (r.value is None, r.value))

    def to_json(self) -> dict:
        out = asdict(self)
        out["rates"] = [{**asdict(r), "rate": r.rate, "interval95": list(r.interval())} for r in self.rates]
        out["detected_with_power"] = [
            {"dataset": d, "metric": m, "model": model, "key": key,
             "values": detected_values(self.curve(d, m, model, key), self.power),
             "summary": detected_range(self.curve(d, m, model, key), self.power)}
            for d in self.datasets() for m in self.metrics() for model, key in self.sweeps()
            if self.curve(d, m, model, key)]
        return out


def _unique(items) -> list:
    seen: list = []
    for it in items:
        if it not in seen:
            seen.append(it)
    return seen


# ----------------------------------------------------------------------- compute


def sensitivity(results, suite: str, alpha: float = DEFAULT_ALPHA, power: float = DEFAULT_POWER,
                min_excess: dict[str, float] | None = None) -> Sensitivity:
    """Detection rates of every judged memorization metric over the finished runs of ``suite``
    (each run at its last evaluation; reference split ``train``)."""
    counts: dict[tuple, list[int]] = {}
    sizes: set[int] = set()
    skipped = 0
    for run in results.runs(suite=suite):
        if run.status != "done":
            continue
        evals = results.evals(run.run_id)
        if not evals:
            continue
        last = max(int(e["step"]) for e in evals)
        judged = {metric: v for (metric, ref, step), v in judge_stored(evals, alpha, min_excess).items()
                  if step == last and ref == "train"}
        if not judged:
            skipped += 1
            continue
        sizes.add(int(run.spec.eval.n_samples))
        swept = {k: v for k, v in (run.spec.sweep or {}).items() if k != "n"}
        key, value = _swept(swept)
        for metric, verdict in judged.items():
            cell = counts.setdefault((run.dataset_label, metric, run.model_label, key, value), [0, 0])
            cell[0] += int(verdict.memorizing)
            cell[1] += 1
    rates = [DetectionRate(d, m, model, key, value, hit, n) for (d, m, model, key, value), (hit, n) in counts.items()]
    return Sensitivity(suite=suite, alpha=alpha, power=power, sample_sizes=sorted(sizes),
                       seeds=max((r.runs for r in rates), default=0), rates=rates, skipped=skipped)


def _swept(swept: dict) -> tuple[str | None, float | None]:
    """The one swept key of a run and its value (several keys: their joint label, no value)."""
    if not swept:
        return None, None
    if len(swept) == 1:
        (key, value), = swept.items()
        try:
            return key, float(value)
        except (TypeError, ValueError):
            return f"{key}={value}", None
    return ", ".join(f"{k}={v}" for k, v in sorted(swept.items())), None


def detected_values(curve: list[DetectionRate], power: float) -> list[float]:
    return [r.value for r in curve if r.value is not None and r.rate >= power]


def detected_range(curve: list[DetectionRate], power: float) -> str:
    """The swept values detected with at least ``power``, as a reader wants them: "≥ v"
    when detection holds from v to the top of the grid, "≤ v" when it holds from the
    bottom up to v, "all", "none", else the list."""
    points = [r for r in curve if r.value is not None]
    if not points:
        return "–"
    hit = [r.rate >= power for r in points]
    values = [r.value for r in points]
    if all(hit):
        return "all"
    if not any(hit):
        return "none"
    top = next(i for i in range(len(hit)) if all(hit[i:]))  if hit[-1] else None
    bottom = max(i for i in range(len(hit)) if all(hit[:i + 1])) if hit[0] else None
    if top is not None and bottom is None:
        return f"≥ {values[top]:g}"
    if bottom is not None and top is None:
        return f"≤ {values[bottom]:g}"
    return ", ".join(f"{v:g}" for v, h in zip(values, hit) if h)


# ------------------------------------------------------------------------ output


def _short(key: str) -> str:
    return key.split(".", 1)[-1]


def markdown(s: Sensitivity) -> str:
    m = "/".join(str(v) for v in s.sample_sizes) or "?"
    lines = [f"# {md_escape(s.suite)}: what each memorization metric detects", "",
             f"Every run is judged against its metric's chance level (held-out data scored against the same "
             f"training subset at the same sample size): memorizing = one-sided t-test at alpha = {s.alpha:g} "
             f"**and** an excess of at least the metric's minimum effect (docs/metrics.md). Detection rate = "
             f"share of seeds flagged; m = {m} samples per run; up to {s.seeds} seeds per cell. "
             f"\"Detected\" = a rate of at least {s.power:.0%}.", ""]
    refs = s.references()
    for d in s.datasets():
        lines += [f"## {md_escape(d)}", ""]
        head = ["metric"] + [f"{model}: {_short(key)} detected" for model, key in s.sweeps()]
        head += [f"{model}: flagged" for model in refs]
        rows = []
        for metric in s.metrics():
            row = [metric]
            for model, key in s.sweeps():
                row.append(detected_range(s.curve(d, metric, model, key), s.power))
            for model in refs:
                cell = s.curve(d, metric, model, None)
                row.append(f"{cell[0].detected}/{cell[0].runs}" if cell else "–")
            rows.append(row)
        lines += _table(head, rows) + [""]
    for model, key in s.sweeps():
        values = sorted({r.value for r in s.rates if (r.model, r.key) == (model, key) and r.value is not None})
        lines += [f"## Detection rate against {md_escape(_short(key))} ({md_escape(model)})", ""]
        for d in s.datasets():
            lines += [f"**{md_escape(d)}**", ""]
            rows = []
            for metric in s.metrics():
                by_value = {r.value: r for r in s.curve(d, metric, model, key)}
                rows.append([metric] + [f"{by_value[v].detected}/{by_value[v].runs}" if v in by_value else "–"
                                        for v in values])
            lines += _table([f"metric \\ {_short(key)}"] + [f"{v:g}" for v in values], rows) + [""]
    if s.skipped:
        lines += [f"{s.skipped} run(s) have no stored chance levels (results from before chance levels were "
                  "stored) and are left out.", ""]
    return "\n".join(lines)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(md_escape(h) for h in head) + " |", "|" + "---|" * len(head)]
            + ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in rows])


def figures(s: Sensitivity, out: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    """One figure per swept (model, key): rate against value, a line per metric, a panel
    per dataset, the power line dashed."""
    from matplotlib.figure import Figure

    from benchbase.report_figures import save

    paths: list[Path] = []
    names = [_short(key) for _, key in s.sweeps()]
    for model, key in s.sweeps():
        datasets = s.datasets()
        fig = Figure(figsize=(4.2 * len(datasets) + 1.8, 3.6))
        axes = fig.subplots(1, len(datasets), sharey=True, squeeze=False)[0]
        for ax, d in zip(axes, datasets):
            for metric in s.metrics():
                curve = [r for r in s.curve(d, metric, model, key) if r.value is not None]
                if curve:
                    ax.plot([r.value for r in curve], [r.rate for r in curve], "o-", ms=3.5, lw=1.3, label=metric)
            ax.axhline(s.power, color="0.4", ls="--", lw=0.8)
            ax.set_title(d, fontsize=10)
            ax.set_xlabel(_short(key))
            ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("detection rate (share of seeds)")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False)
        fig.suptitle(f"{s.suite}: {model}, detection rate against {_short(key)} "
                     f"(alpha {s.alpha:g}, dashed: {s.power:.0%})", fontsize=10)
        fig.tight_layout(rect=(0, 0, 1 - 1.6 / (4.2 * len(datasets) + 1.8), 0.94))
        name = _short(key) if names.count(_short(key)) == 1 else f"{model}_{_short(key)}"
        paths += save(fig, out / f"{s.suite}.detection_{name}", formats)
    return paths


def write_all(s: Sensitivity, out: Path, formats: tuple[str, ...] = FORMATS) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    md = out / f"{s.suite}.md"
    md.write_text(markdown(s), encoding="utf-8")
    js = out / f"{s.suite}.json"
    js.write_text(json.dumps(s.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return [md, js] + figures(s, out, formats)
