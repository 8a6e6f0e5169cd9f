"""Every publisher renders leaderboards: escaped, best values marked, parseable; the
LaTeX compiles with pdflatex when a toolchain is present; every format renders the
quickstart suite's results (a shrunken run, marked slow)."""
from __future__ import annotations

import csv
import html
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from support.suites import tiny_suite
from support.published_results import INJECTED, REPO, fake_results, quickstart_results

from benchbase.leaderboard import build_tables
from benchbase.resultset import ResultSet
from benchbase_plugins.publishers.latex import latex_escape, latex_number

FORMATS = ("markdown", "latex", "csv", "json", "html")
NASTY = "a|b_c*d `e` [f](g) & 100% $x$ #1 {y} ~z^ \\w"

SUITE = tiny_suite(
    seeds=[0, 1],
    models=[{"name": "rectified_flow", "label": INJECTED, "config": {"width": 16}},
            {"name": "vae", "label": NASTY}, {"name": "copy_train", "label": "=HYPERLINK(1)"}],
    metrics=["mem_ratio", "fd"],
    budget={"batch_size": 32, "steps": 20},
    eval={"schedule": "list", "steps": [20], "n_samples": 100},
)
FD = {INJECTED: 2.0, NASTY: 3.0, "=HYPERLINK(1)": 0.5}


def value(spec, step, metric, ref):
    if metric == "fd":
        return FD[spec.model.label] + 0.1 * spec.seed
    return 1.0 if spec.model.name == "copy_train" else 0.0


@pytest.fixture
def tables(tmp_path, registry):
    fake_results(tmp_path / "r", registry, SUITE, value, samples=False)
    with ResultSet([tmp_path / "r"]) as rs:
        return build_tables(rs, primary="fd")


def render(registry, fmt, tables) -> str:
    return registry.get("publisher", fmt).cls().render(tables)


def test_every_format_is_registered_with_a_summary(registry):
    for fmt in FORMATS:
        reg = registry.get("publisher", fmt)
        assert reg.describe()["summary"], fmt


def test_markdown_escapes_labels_and_bolds_the_best(registry, tables):
    text = render(registry, "markdown", tables)
    assert "<script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    vae_line = next(line for line in text.splitlines() if "100%" in line)
    assert "a\\|b_c\\*d \\`e\\` \\[f\\](g) &amp; 100%" in vae_line
    # every row keeps the column count: escaped pipes do not split cells
    table_lines = [line for line in text.splitlines() if line.startswith("|")]
    assert len({line.count("|") - line.count("\\|") for line in table_lines}) == 1
    copy_line = next(line for line in text.splitlines() if "HYPERLINK" in line)
    assert "**0.55 ± 0.071**" in copy_line  # best (lowest) fd, bold
    assert "fd (test) ↓" in text and "ranked by fd (test) ↓" in text


def test_csv_parses_and_defuses_formulas(registry, tables):
    rows = list(csv.DictReader(io.StringIO(render(registry, "csv", tables))))
    by_model = {r["model"]: r for r in rows}
    assert set(by_model) == {INJECTED, NASTY, "'=HYPERLINK(1)"}  # a spreadsheet must not run it
    assert float(by_model[INJECTED]["fd[test] mean"]) == pytest.approx(2.05)
    assert by_model["'=HYPERLINK(1)"]["rank"] == "1" and by_model[INJECTED]["at"] == "final"


def _documented_fields(heading: str) -> list[str]:
    """Field names of the first table after ``heading`` in docs/leaderboards.md."""
    text = (REPO / "docs" / "leaderboards.md").read_text(encoding="utf-8")
    section = text.split(heading, 1)[1]
    fields = []
    for line in section.splitlines():
        if line.startswith("| `"):
            fields.append(line.split("`")[1])
        elif fields and not line.startswith("|"):
            break
    return fields


def test_json_schema_matches_the_documentation(registry, tables):
    rows = json.loads(render(registry, "json", tables))
    assert sorted(rows[0]) == sorted(_documented_fields("## JSON row schema"))
    cell = next(iter(rows[0]["metrics"].values()))
    assert sorted(cell) == sorted(_documented_fields("Each cell of `metrics`"))


def test_json_rows_follow_the_schema(registry, tables):
    rows = json.loads(render(registry, "json", tables))
    assert isinstance(rows, list) and len(rows) == 3
    top = min(rows, key=lambda r: r["rank"])
    assert top["model"] == "=HYPERLINK(1)" and top["metrics"]["fd[test]"]["best"] is True
    assert top["schema_version"] == 2 and top["primary"] == "fd[test]"


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.strong = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_a_standalone_escaped_page(registry, tables):
    text = render(registry, "html", tables)
    parsed = _Collect()
    parsed.feed(text)
    assert text.startswith("<!DOCTYPE html>") and "script" not in parsed.tags
    assert parsed.tags.count("table") == 1 and parsed.tags.count("strong") >= 2
    content = "".join(parsed.text)
    assert INJECTED in content and NASTY in content  # shown as text
    assert html.escape(INJECTED) in text


def test_latex_escape_and_numbers():
    assert latex_escape(NASTY) == (r"a\textbar{}b\_c*d `e` [f](g) \& 100\% \$x\$ \#1 \{y\} "
                                   r"\textasciitilde{}z\textasciicircum{} \textbackslash{}w")
    assert latex_escape("<script>") == r"\textless{}script\textgreater{}"
    assert latex_number(1.5e-5, 2) == r"$1.5\times10^{-5}$" and latex_number(0.25, 4) == "0.25"
    assert latex_number(float("nan"), 4) == "n/a"


def test_latex_uses_booktabs_and_bolds_the_best(registry, tables):
    text = render(registry, "latex", tables)
    for needle in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{tabular}", r"\label{tab:tiny-gmm2d}",
                   r"\textbf{0.55}", r"\textless{}script\textgreater{}alert(1)\textless{}/script\textgreater{}",
                   r"fd (test) $\downarrow$"):
        assert needle in text, needle
    assert "<script>" not in text


def _compile_latex(body: str, workdir) -> None:
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not found: install a LaTeX toolchain (Debian: texlive-latex-base "
                    "texlive-latex-recommended) to compile the LaTeX leaderboard")
    (workdir / "table.tex").write_text(body, encoding="utf-8")
    (workdir / "doc.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
                                     "\\begin{document}\n\\input{table.tex}\n\\end{document}\n", encoding="utf-8")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=workdir,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (workdir / "doc.pdf").stat().st_size > 1000


def test_latex_compiles_in_a_minimal_document(registry, tables, tmp_path):
    _compile_latex(render(registry, "latex", tables), tmp_path)


def test_no_results_render_without_error(registry):
    for fmt in FORMATS:
        assert isinstance(render(registry, fmt, []), str)


# ------------------------------------------------------- quickstart results


@pytest.fixture(scope="module")
def quickstart_tables(tmp_path_factory):
    with ResultSet([quickstart_results(tmp_path_factory)]) as rs:
        return build_tables(rs)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_the_quickstart_results(registry, quickstart_tables, fmt):
    assert [t.dataset for t in quickstart_tables] == ["gmm2d", "digits"]
    text = render(registry, fmt, quickstart_tables)
    for label in ("rectified_flow", "vae", "true_sampler"):
        assert label.replace("_", r"\_" if fmt == "latex" else "_") in text, (fmt, label)
    assert "<script>" not in text or fmt in ("csv", "json")  # data formats carry the raw label
    if fmt == "json":
        rows = json.loads(text)
        assert len(rows) == 8 and all(r["runs"] == 2 for r in rows)
        assert {r["model"] for r in rows} >= {INJECTED}
        assert all(r["metrics"]["fd[test]"]["mean"] is not None for r in rows)


@pytest.mark.slow
def test_quickstart_latex_compiles(registry, quickstart_tables, tmp_path):
    _compile_latex(render(registry, "latex", quickstart_tables), tmp_path)
