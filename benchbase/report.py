"""``benchbase report``: a static site from stored results (HTML, CSS, PNG and SVG;
no scripts, no server needed to read it).

- ``index.html``: every leaderboard (linked to its runs) with a plot of it over
  training (``tables/<table>.png``), the tables in every
  publisher's format for download, conflicts between merged directories, all runs.
- ``runs/<run id>.html``: the run's metric curves over training, its last stored
  samples beside their nearest training examples, the stored values per step, and its
  provenance (resolved config, versions, plugins, git commit, device, dataset content
  hash, budget consumed).

Everything shown that came from a config or a plugin is escaped by the templates.
"""
from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from markupsafe import Markup

from benchbase import __version__
from benchbase.errors import BenchbaseInputError
from benchbase.leaderboard import Table
from benchbase.pages import anchor, render, render_table, stylesheet
from benchbase.records import RunRecord
from benchbase.resultset import ResultSet

RUNS_DIR = "runs"
TABLES_DIR = "tables"
MARKER = ".benchbase-report"  # a site we wrote, so we may replace its runs/


@dataclass
class ReportSummary:
    out: Path
    runs: int = 0
    pages: int = 0
    figures: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # things a reader should know (missing data)


# ---------------------------------------------------------------------- site


def run_href(run_id: str) -> str:
    return f"{RUNS_DIR}/{run_id}.html"


def build_report(results: ResultSet, tables: list[Table], out: Path, registry, max_images: int = 16,
                 curve_formats: tuple[str, ...] = ("png",), suite: str | None = None) -> ReportSummary:
    """Write the whole site into ``out`` (its runs/ and tables/ folders are replaced);
    run pages for every run, or for the runs of ``suite``."""
    t0 = time.monotonic()
    out = Path(out)
    summary = ReportSummary(out=out)
    if out.exists() and any(out.iterdir()) and not (out / MARKER).exists():
        raise BenchbaseInputError(f"{out}/ exists and is not a benchbase report; choose a new or empty "
                                  "directory for --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by benchbase report; rerunning replaces runs/ and the index\n")
    for generated in (RUNS_DIR, TABLES_DIR):
        if (out / generated).exists():
            shutil.rmtree(out / generated)
    (out / RUNS_DIR).mkdir()
    (out / "style.css").write_text(stylesheet(), encoding="utf-8")

    downloads = _write_downloads(tables, out, registry, summary)
    runs = results.runs(suite=suite)
    overviews = _write_table_figures(results, tables, out, runs, summary)
    data = _TrainingData(registry)
    onsets = _Onsets(results)
    for record in runs:
        _write_run_page(results, record, out, data, summary, max_images, curve_formats, onsets)
    summary.runs = len(runs)
    summary.notes += data.notes

    statuses = Counter(r.status for r in runs)
    suites = [{"name": s, "runs": [_run_link(r) for r in results.runs(suite=s)]}
              for s in ([suite] if suite else results.suites())]
    html = render("index.html.j2", version=__version__, directories=results.directories,
                  statuses=sorted(statuses.items()), conflicts=[c.describe() for c in results.conflicts],
                  toc=[{"anchor": anchor(t), "title": t.title} for t in tables],
                  tables=[{"html": Markup(render_table(t, run_href)), "figure": fig, "title": t.title}
                          for t, fig in zip(tables, overviews)],
                  downloads=downloads, suites=suites)
    (out / "index.html").write_text(html, encoding="utf-8")
    summary.pages += 1
    summary.seconds = time.monotonic() - t0
    return summary


def _write_table_figures(results: ResultSet, tables: list[Table], out: Path, runs: list[RunRecord],
                         summary: ReportSummary) -> list[str | None]:
    """Each leaderboard over training (tables/<anchor>.png); None where nothing to plot."""
    from benchbase.report_figures import save, table_curves_figure

    statuses = {r.run_id: r.status for r in runs}
    (out / TABLES_DIR).mkdir(exist_ok=True)
    written: list[str | None] = []
    for t in tables:
        fig = table_curves_figure(t, results.evals, statuses)
        if fig is None:
            written.append(None)
            continue
        summary.figures += len(save(fig, out / TABLES_DIR / anchor(t)))
        written.append(f"{TABLES_DIR}/{anchor(t)}.png")
    return written


def _run_link(record: RunRecord) -> dict:
    return {"href": run_href(record.run_id), "title": record.title, "status": record.status,
            "run_id": record.run_id}


def _write_downloads(tables: list[Table], out: Path, registry, summary: ReportSummary) -> list[dict]:
    """The tables in every registered publisher's format (a broken publisher is a note)."""
    written = []
    taken: set[str] = set()
    for reg in registry.all("publisher"):
        try:
            text = reg.cls().render(tables)
        except Exception as exc:  # a third-party publisher must not break the report
            summary.notes.append(f"publisher '{reg.name}' failed: {type(exc).__name__}: {exc}")
            continue
        ext = "".join(ch for ch in str(getattr(reg.cls, "extension", "txt")) if ch.isalnum()) or "txt"
        name = f"leaderboard.{ext}" if f"leaderboard.{ext}" not in taken else f"leaderboard-{reg.name}.{ext}"
        taken.add(name)
        (out / name).write_text(text, encoding="utf-8")
        written.append({"href": name, "format": reg.name})
    return written


class _TrainingData:
    """The exact training subset of a run, reloaded through its dataset plugin and
    checked against the run's stored content hash (cached per dataset and subset)."""

    def __init__(self, registry):
        self.registry = registry
        self.cache: dict[str, np.ndarray | None] = {}
        self.notes: list[str] = []

    def get(self, record: RunRecord) -> tuple[np.ndarray | None, str]:
        from benchbase.data import DataCatalog, select_subset
        from benchbase.structured import plugin_config

        spec = record.spec
        key = json.dumps([spec.dataset.to_dict(), spec.subset.to_dict()], sort_keys=True, default=str)
        expected = record.provenance.get("dataset_content_hash")
        if key not in self.cache:
            try:
                reg = self.registry.get("dataset", spec.dataset.name)
                cfg, _ = plugin_config(reg, spec.dataset.config, "<stored run spec>", "dataset.config")
                _, splits = DataCatalog.shared().load(reg, cfg, spec.dataset.config)
                subset = select_subset(splits, spec.subset)
                self.cache[key] = subset.x if subset.content_hash == expected or expected is None else None
                if self.cache[key] is None:
                    self.notes.append(f"dataset '{spec.dataset.label}' here differs from the one the runs "
                                      f"saw (content hash {subset.content_hash} vs {expected}): no neighbours")
            except Exception as exc:  # missing plugin or data: the page shows samples alone
                self.cache[key] = None
                self.notes.append(f"dataset '{spec.dataset.label}' could not be loaded here "
                                  f"({type(exc).__name__}: {exc}): samples shown without neighbours")
        x = self.cache[key]
        return x, "" if x is not None else "the training data could not be reloaded here, so no neighbours"


class _Onsets:
    """Each run's memorization onset per suite, by the rule every command shares
    (benchbase.verdicts.onset_summary: the stored dynamics record, else the copy
    criterion with the suite's settings), so the pages say what the leaderboard says."""

    def __init__(self, results: ResultSet):
        self.results = results
        self._suites: dict[str, tuple] = {}

    def of(self, run_id: str, evals: list[dict]) -> list[dict]:
        from benchbase.derived import suite_dynamics
        from benchbase.verdicts import onset_summary

        out = []
        for suite in self.results.suites_of(run_id):
            if suite not in self._suites:
                self._suites[suite] = (self.results.derived(suite), suite_dynamics(self.results, suite))
            derived, settings = self._suites[suite]
            out.append({"suite": suite, **onset_summary(derived.get(run_id), evals, settings)})
        return out


def onset_text(onset: dict) -> str:
    """One sentence for a run page: when the run started to memorize, and by which rule."""
    how = {"copy": f"copy criterion: {onset.get('metric') or 'a memorization metric'} significantly above "
                   "its chance level by at least its minimum excess",
           "loss": "loss criterion: the relative held-out gap opened"}.get(onset.get("criterion") or "", "")
    if onset.get("censored") == "unavailable":
        return "not judged (no memorization metric with a stored chance level, no held-out losses)"
    if onset.get("censored") == "left":
        return f"from the first evaluation, step {onset['tau_mem']:g} ({how})"
    if onset.get("tau_mem") is None:
        return f"none within the budget ({how.split(':')[0]})"
    return f"step {onset['tau_mem']:.0f} ({how})"


def _write_run_page(results: ResultSet, record: RunRecord, out: Path, data: _TrainingData, summary: ReportSummary,
                    max_images: int, curve_formats: tuple[str, ...], onsets: _Onsets) -> None:
    from benchbase.report_figures import curves_figure, image_grid_png, save, scatter_figure

    run_id = record.run_id
    spec = record.spec
    fig_dir = out / RUNS_DIR / run_id
    fig_dir.mkdir(parents=True, exist_ok=True)
    evals = results.evals(run_id)
    directions = {m.name: m.direction for m in spec.metrics}
    run_onsets = onsets.of(run_id, evals) if record.status == "done" else []

    curves = None
    first = next((o for o in run_onsets if o["tau_mem"] is not None), None)
    fig = curves_figure(evals, directions, onset=first["tau_mem"] if first else None)
    if fig is not None:
        summary.figures += len(save(fig, fig_dir / "curves", curve_formats))
        curves = {fmt: f"{run_id}/curves.{fmt}" for fmt in curve_formats}

    samples = None
    stored = results.samples(run_id)
    if stored is not None and len(stored[1]):
        step, array = stored
        train, why_not = data.get(record)
        image = array.ndim == 4
        if image:
            facts = image_grid_png(array, train, fig_dir / "samples.png", max_images=max_images)
            summary.figures += 1
        else:
            fig, facts = scatter_figure(array, train)
            summary.figures += len(save(fig, fig_dir / "samples", formats=("png",)))
        samples = {"png": f"{run_id}/samples.png", "step": step, "shown": facts["shown"],
                   "per_row": facts.get("per_row"), "stored": len(array), "image": image,
                   "median_distance": facts.get("median_distance"), "why_not": why_not}

    html = render("run.html.j2", version=__version__, run=record, title=record.title,
                  suites=results.suites_of(run_id), curves=curves, samples=samples,
                  onsets=[{"suite": o["suite"], "text": onset_text(o)} for o in run_onsets],
                  values=_values_table(evals), provenance=_provenance(record),
                  config=json.dumps(spec.to_dict(), indent=2, sort_keys=True, default=str),
                  conflict=record.conflict.describe() if record.conflict else None,
                  error=(record.error or "")[-4000:])
    (out / RUNS_DIR / f"{run_id}.html").write_text(html, encoding="utf-8")
    summary.pages += 1


def _values_table(evals: list[dict]) -> dict:
    """Headline values per evaluation step (details and training logs left out)."""
    keys = sorted({(e["metric"], e["ref"]) for e in evals if "." not in e["metric"] and "/" not in e["metric"]})
    by_step: dict[int, dict] = {}
    examples: dict[int, int] = {}
    for e in evals:
        by_step.setdefault(e["step"], {})[(e["metric"], e["ref"])] = e["value"]
        examples[e["step"]] = e["examples"]
    rows = [{"step": step, "examples": examples[step],
             "values": [_fmt(by_step[step].get(k)) for k in keys]} for step in sorted(by_step)]
    return {"columns": [f"{m} ({r})" if r else m for m, r in keys], "rows": rows}


def _fmt(value) -> str:
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:.4g}"


def _provenance(record: RunRecord) -> list[tuple[str, str]]:
    """(label, text) pairs; values stay plain text (the template escapes them)."""
    spec, prov, summ = record.spec, record.provenance, record.summary
    model, dataset, budget = spec.model, spec.dataset, spec.budget
    plugins = prov.get("plugins") or {}
    consumed = ", ".join(f"{k.replace('_', ' ')} {summ[k]}" for k in
                         ("steps", "examples", "wall_time", "train_time", "eval_time", "examples_per_s",
                          "param_count") if summ.get(k) is not None)
    items = [
        ("run id", record.run_id),
        ("status", record.status + (f" ({summ['reason']})" if summ.get("reason") else "")),
        ("model", f"{model.label}: {model.name} v{model.version} ({model.family}, "
                  f"{model.framework}) from {plugins.get('model', '?')}"),
        ("dataset", f"{dataset.label}: {dataset.name} v{dataset.version} from "
                    f"{plugins.get('dataset', '?')}"),
        ("dataset content hash", prov.get("dataset_content_hash") or "not recorded"),
        ("training subset", json.dumps(prov.get("subset") or spec.subset.to_dict(), sort_keys=True)),
        ("seed", str(spec.seed)),
        ("budget", f"{budget.steps} steps of {budget.batch_size} ({budget.examples} examples)"),
        ("budget consumed", consumed or "not recorded"),
        ("device", prov.get("device") or "not recorded"),
        ("numerics", json.dumps(prov["numerics"], sort_keys=True) if prov.get("numerics") else "not recorded"),
        ("host", f"{prov.get('host', '?')} · {prov.get('platform', '?')}"),
        ("git commit", prov.get("git_commit") or "not recorded"),
        ("package versions", ", ".join(f"{k} {v}" for k, v in sorted((prov.get("versions") or {}).items()))
         or "not recorded"),
        ("plugins", "; ".join(f"{k}: {json.dumps(v, sort_keys=True) if isinstance(v, dict) else v}"
                              for k, v in sorted(plugins.items())) or "not recorded"),
        ("metric versions", ", ".join(f"{m.name} v{m.version}" for m in spec.metrics)),
        ("feature space", f"{spec.eval.features.name} v{spec.eval.features.version}"),
        ("fresh samples from", prov.get("fresh_source") or "not recorded"),
        ("command", " ".join(prov.get("argv") or []) or "not recorded"),
        ("results directory", record.source),
    ]
    return items
