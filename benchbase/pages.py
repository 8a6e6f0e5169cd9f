"""HTML for people, shared by the HTML publisher and the report site: one Jinja
environment that escapes everything by default (labels, configs and plugin text may
hold markup; a model called ``<script>`` must show as text), the stylesheet, and the
leaderboard table fragment.
"""
from __future__ import annotations

import functools
from importlib.resources import files
from typing import TYPE_CHECKING, Callable

from benchbase.leaderboard import Table

if TYPE_CHECKING:
    import jinja2


@functools.lru_cache(maxsize=1)
def environment() -> "jinja2.Environment":
    import jinja2  # here: commands that render no HTML never load it

    return jinja2.Environment(
        loader=jinja2.PackageLoader("benchbase", "templates"),
        autoescape=True,  # every template, whatever its name
        undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )


def render(template: str, **context) -> str:
    return environment().get_template(template).render(**context)


def stylesheet() -> str:
    return (files("benchbase") / "templates" / "style.css").read_text(encoding="utf-8")


def anchor(table: Table) -> str:
    """A stable fragment id for a table (suite and dataset, URL-safe)."""
    text = f"{table.suite}-{table.dataset}".lower()
    return "lb-" + "".join(ch if ch.isalnum() else "-" for ch in text).strip("-")


def table_rows(table: Table, run_href: Callable[[str], str] | None = None) -> list[dict]:
    """Plain values for the template: text per cell, best flags, links to run pages."""
    rows = []
    for i, r in enumerate(table.rows):
        cells = []
        for c in table.columns:
            cell = r.values.get(c.key)
            cells.append({"text": cell.format() if cell else "n/a", "best": bool(cell) and table.is_best(c.key, i)})
        links = ([{"href": run_href(rid), "text": f"seed {r.seeds.get(rid, '?')}"} for rid in r.run_ids]
                 if run_href else [])
        rows.append({"rank": r.rank if r.rank is not None else "–", "label": r.label, "family": r.family,
                     "framework": r.framework, "n": r.n if r.n is not None else "", "runs": r.runs_text,
                     "cells": cells, "links": links})
    return rows


def render_table(table: Table, run_href: Callable[[str], str] | None = None, heading: str = "h2") -> str:
    """One leaderboard as an HTML <section> (escaped; optional links to run pages)."""
    return render("table.html.j2", table=table, rows=table_rows(table, run_href), anchor=anchor(table),
                  heading=heading)
