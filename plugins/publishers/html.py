"""Leaderboard publisher for a standalone HTML page."""
from __future__ import annotations

from markupsafe import Markup

from benchbase import Publisher, __version__, hookimpl
from benchbase.leaderboard import Table
from benchbase.pages import render, render_table, stylesheet


class HTML(Publisher):
    """A standalone HTML page (inline style, no scripts): one escaped table per suite and dataset."""

    name = "html"
    extension = "html"

    def render(self, tables: list[Table]) -> str:
        suites = sorted({t.suite for t in tables})
        title = "Leaderboard" + (f": {', '.join(suites)}" if suites else "")
        # render_table's output is already escaped HTML; Markup keeps the page from escaping it twice
        fragments = [Markup(render_table(t)) for t in tables]
        return render("standalone.html.j2", title=title, css=Markup(stylesheet()), tables=tables,
                      fragments=fragments, version=__version__)


@hookimpl
def benchbase_register_publishers(register):
    register(HTML)
