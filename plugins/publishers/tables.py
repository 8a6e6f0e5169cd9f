"""Leaderboard publishers for Markdown (GitHub), CSV and JSON."""
from __future__ import annotations

import csv
import html
import io
import json

from tabulate import tabulate

from benchbase import Publisher, hookimpl
from benchbase.leaderboard import Table, table_to_records

AT_TEXT = {"final": "final evaluation"}


def _md(text) -> str:
    """Escape for a GitHub Markdown table cell: HTML and the cell separator."""
    return html.escape(str(text), quote=False).replace("|", "\\|")


class Markdown(Publisher):
    """GitHub-flavoured Markdown: one table per suite and dataset, best value in bold."""

    name = "markdown"
    extension = "md"

    def render(self, tables: list[Table]) -> str:
        if not tables:
            return "_No results._\n"
        out = []
        for t in tables:
            primary = next((c for c in t.columns if c.key == t.primary), None)
            at = AT_TEXT.get(t.at, t.at)
            out.append(f"## {_md(t.title)}\n")
            ranked = f" · ranked by {_md(primary.header)}" if primary else ""
            out.append(f"{at.capitalize()} · feature space: {_md(t.feature_space)} · mean ± std over "
                       f"seeds (runs = seeds finished) · best per column in **bold**{ranked}\n")
            headers = ["rank", "model", "family", "framework", "n", "runs"] + [_md(c.header) for c in t.columns]
            rows = []
            for i, r in enumerate(t.rows):
                cells = []
                for c in t.columns:
                    cell = r.values.get(c.key)
                    text = cell.format() if cell else "n/a"
                    cells.append(f"**{text}**" if t.best.get(c.key) == i and cell else text)
                not_done = {k: v for k, v in r.statuses.items() if k != "done"}
                runs = f"{r.runs}" + (" (" + ", ".join(f"{v} {k}" for k, v in not_done.items()) + ")"
                                      if not_done else "")
                rows.append([r.rank if r.rank is not None else "–", _md(r.label), r.family, r.framework,
                             r.n if r.n is not None else "", runs] + cells)
            out.append(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
            out.append("")
        return "\n".join(out).rstrip() + "\n"


class CSV(Publisher):
    """One line per leaderboard row; each metric as <metric>[<ref>] mean and std columns."""

    name = "csv"
    extension = "csv"

    def render(self, tables: list[Table]) -> str:
        keys: list[str] = []
        for t in tables:
            keys += [c.key for c in t.columns if c.key not in keys]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["suite", "dataset", "rank", "model", "family", "framework", "n", "params", "runs"]
                   + [f"{k} {part}" for k in keys for part in ("mean", "std")])
        for t in tables:
            for rec in table_to_records(t):
                vals = []
                for k in keys:
                    m = rec["metrics"].get(k)
                    vals += [m["mean"], m["std"]] if m else ["", ""]
                w.writerow([rec["suite"], rec["dataset"], rec["rank"], rec["model"], rec["family"],
                            rec["framework"], rec["n"], json.dumps(rec["params"]), rec["runs"]]
                           + ["" if v is None else repr(v) for v in vals])
        return buf.getvalue()


class JSON(Publisher):
    """A list of row objects (schema in docs/leaderboards.md); stable for tools."""

    name = "json"
    extension = "json"

    def render(self, tables: list[Table]) -> str:
        rows = [rec for t in tables for rec in table_to_records(t)]
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"


@hookimpl
def benchbase_register_publishers(register):
    register(Markdown)
    register(CSV)
    register(JSON)
