"""The static report site: every page and figure is written, every local link and
image resolves, everything from configs and plugins is escaped (no script anywhere),
run pages carry curves, samples beside their nearest training examples and the
provenance. The browser check is in test_report_browser.py."""
from __future__ import annotations

import html
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from support.suites import tiny_suite
from PIL import Image
from support.published_results import INJECTED, fake_results, quickstart_results

from benchbase.cli import main
from benchbase.errors import BenchbaseInputError
from benchbase.leaderboard import build_tables
from benchbase.plugins import PluginPolicy, build_registry
from benchbase.report import build_report
from benchbase.resultset import ResultSet

SUITE = tiny_suite(
    seeds=[0, 1],
    datasets=[{"name": "gmm2d", "n": 64, "config": {"train_size": 500, "test_size": 200}},
              {"name": "digits", "n": 64}],
    models=[{"name": "rectified_flow", "label": INJECTED, "config": {"width": 16}}, "copy_train"],
    metrics=["mem_ratio", "fd"],
    budget={"batch_size": 32, "steps": 20},
    eval={"schedule": "list", "steps": [5, 10, 20], "n_samples": 100},
)


def value(spec, step, metric, ref):
    if metric == "mem_ratio":
        return 1.0 if spec.model.name == "copy_train" else step / 100
    return 10.0 / (1 + step) + spec.seed


def failing_seed_1(spec):
    return "failed" if spec.model.name == "rectified_flow" and spec.seed == 1 else "done"


class Page(HTMLParser):
    """Links, image sources, element ids, tags and text of one HTML page."""

    def __init__(self, text: str):
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        for key in ("href", "src"):
            if attrs.get(key):
                self.refs.append(attrs[key])

    def handle_data(self, data):
        self.text.append(data)


def check_site(site: Path) -> dict[Path, Page]:
    """Every local reference of every page resolves (files and #fragments); returns pages."""
    pages = {p: Page(p.read_text(encoding="utf-8")) for p in site.rglob("*.html")
             if p.name != "leaderboard.html"}
    broken = []
    for path, page in pages.items():
        for ref in page.refs:
            parts = urlsplit(ref)
            if parts.scheme in ("data", "http", "https"):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if not target.is_file():
                broken.append(f"{path.name}: {ref}")
            elif parts.fragment and parts.fragment not in pages[target].ids:
                broken.append(f"{path.name}: {ref} (no such id)")
    assert not broken, broken
    return pages


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One site for the read-only checks (building it is the slow part)."""
    registry = build_registry(PluginPolicy(entry_points=False, strict=True))
    root = tmp_path_factory.mktemp("report")
    fake_results(root / "r", registry, SUITE, value, status=failing_seed_1)
    with ResultSet([root / "r"]) as rs:
        summary = build_report(rs, build_tables(rs, primary="fd"), root / "site", registry,
                               curve_formats=("png", "svg"))
    return root / "site", summary


def test_site_has_index_run_pages_figures_and_downloads(site):
    path, summary = site
    assert summary.runs == 8 and summary.pages == 9 and summary.notes == []
    pages = check_site(path)
    assert len(pages) == 9
    for name in ("leaderboard.md", "leaderboard.json", "leaderboard.csv", "leaderboard.tex", "leaderboard.html"):
        assert (path / name).stat().st_size > 0, name
    for png in path.glob("runs/*/*.png"):
        with Image.open(png) as img:
            assert img.width > 50 and img.height > 50, png
    index = pages[path / "index.html"]
    assert index.tags.count("table") >= 2 + 1  # two leaderboards, the runs list
    assert len([r for r in index.refs if r.startswith("runs/")]) == 2 * 8  # seed links + runs list
    assert sorted(r for r in index.refs if r.startswith("tables/")) == ["tables/lb-tiny-digits.png",
                                                                        "tables/lb-tiny-gmm2d.png"]


def test_nothing_from_configs_or_plugins_can_run_as_script(site):
    path, _ = site
    pages = check_site(path)
    for p, page in pages.items():
        assert "script" not in page.tags, p
    index_text = (path / "index.html").read_text(encoding="utf-8")
    assert html.escape(INJECTED) in index_text and INJECTED not in index_text
    assert INJECTED in "".join(pages[path / "index.html"].text)  # shown as text


def test_run_page_has_curves_samples_neighbours_and_provenance(site):
    path, _ = site
    pages = check_site(path)
    flow = [p for p, page in pages.items() if "runs" in p.parts and INJECTED in "".join(page.text)
            and "digits" in "".join(page.text) and "status done" in " ".join("".join(page.text).split())]
    assert flow, "no finished flow run page on digits"
    page = pages[flow[0]]
    text = " ".join(" ".join(page.text).split())
    run_id = flow[0].stem
    assert f"{run_id}/curves.png" in page.refs and f"{run_id}/curves.svg" in page.refs
    assert f"{run_id}/samples.png" in page.refs
    for needle in ("run id", "git commit 0123abc", "device cpu", "dataset content hash", "budget consumed",
                   "package versions", "numpy", "Resolved configuration", '"seed": 0', "nearest training",
                   "Median distance to the nearest training example"):
        assert needle in text, needle
    with Image.open(path / "runs" / run_id / "samples.png") as img:
        assert img.mode == "L"  # digits: a grayscale grid


def test_a_run_evaluated_once_has_no_curve_but_its_values(site):
    path, _ = site
    pages = check_site(path)
    once = [p for p, page in pages.items() if "runs" in p.parts and "copy_train" in " ".join(page.text)]
    assert len(once) == 4
    text = " ".join(" ".join(pages[once[0]].text).split())
    assert "Evaluated once, at step 0" in text and f"{once[0].stem}/curves.png" not in pages[once[0]].refs


def test_vector_data_gets_a_scatter_and_failed_runs_show_their_error(site):
    path, _ = site
    pages = check_site(path)
    texts = {p: " ".join(" ".join(page.text).split()) for p, page in pages.items() if "runs" in p.parts}
    failed = [p for p, t in texts.items() if "status failed" in t]
    assert len(failed) == 2 and all("RuntimeError: boom" in texts[p] for p in failed)
    gmm = next(p for p, t in texts.items() if "gmm2d" in t and "status done" in t and "joined" in t)
    with Image.open(path / "runs" / gmm.stem / "samples.png") as img:
        assert img.mode == "RGBA"  # matplotlib scatter


def test_changed_training_data_means_no_neighbours_and_a_note(tmp_path, registry):
    fake_results(tmp_path / "r", registry, {**SUITE, "datasets": SUITE["datasets"][1:], "seeds": [0],
                                            "models": SUITE["models"][:1]}, value,
                 provenance={"dataset_content_hash": "0000000000000000"})
    with ResultSet([tmp_path / "r"]) as rs:
        summary = build_report(rs, build_tables(rs), tmp_path / "site", registry)
    assert any("differs from the one the runs saw" in n for n in summary.notes)
    text = next((tmp_path / "site" / "runs").glob("*.html")).read_text(encoding="utf-8")
    assert "could not be reloaded here" in text and "Median distance" not in text


def test_report_refuses_a_foreign_directory_and_rewrites_its_own(tmp_path, registry):
    suite = {**SUITE, "datasets": SUITE["datasets"][:1], "models": ["copy_train"]}
    fake_results(tmp_path / "r", registry, suite, value)
    path = tmp_path / "site"
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with ResultSet([tmp_path / "r"]) as rs:
        build_report(rs, build_tables(rs), path, registry)
        with pytest.raises(BenchbaseInputError, match="not a benchbase report"):
            build_report(rs, build_tables(rs), foreign, registry)
        stale = path / "runs" / "stale.html"
        stale.write_text("old")
        build_report(rs, build_tables(rs), path, registry)
    assert not stale.exists() and (foreign / "thesis.tex").read_text() == "precious"


def test_report_command(tmp_path, registry, capsys):
    fake_results(tmp_path / "r", registry, {**SUITE, "seeds": [0], "datasets": SUITE["datasets"][:1]}, value)
    fake_results(tmp_path / "r", registry, {**SUITE, "name": "other", "seeds": [5], "models": ["copy_train"],
                                            "datasets": SUITE["datasets"][:1]}, value)
    code = main(["report", "--results", str(tmp_path / "r"), "--out", str(tmp_path / "site"), "--at", "step=10",
                 "--suite", "tiny"])
    out = capsys.readouterr().out
    assert code == 0 and "wrote" in out and "1 leaderboard(s), 2 run page(s)" in out
    assert "Suite other" not in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "Evaluation at step 10" in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    with pytest.raises(SystemExit) as exc:
        main(["report", "--results", str(tmp_path / "r")])  # --out is required
    assert exc.value.code == 2


@pytest.mark.slow
def test_report_of_the_quickstart_results(tmp_path_factory, registry, tmp_path):
    results = quickstart_results(tmp_path_factory)
    t0 = time.perf_counter()
    with ResultSet([results]) as rs:
        summary = build_report(rs, build_tables(rs), tmp_path / "site", registry)
    seconds = time.perf_counter() - t0
    pages = check_site(tmp_path / "site")
    assert summary.runs == 16 and len(pages) == 17 and summary.notes == []
    print(f"report of {summary.runs} quickstart runs: {seconds:.1f}s, {summary.figures} figure files")
