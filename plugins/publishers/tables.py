"""Leaderboard publishers for Markdown (GitHub), CSV and JSON."""
from __future__ import annotations

import csv
import io
import json

from tabulate import tabulate

from benchbase import Publisher, hookimpl
from benchbase.leaderboard import Table, table_to_records
from benchbase.mdtext import md_escape as _md


class Markdown(Publisher):
    """GitHub-flavoured Markdown: one table per suite and dataset, best value in bold."""

    name = "markdown"
    extension = "md"

    def render(self, tables: list[Table]) -> str:
        if not tables:
            return "_No results._\n"
        out = []
        for t in tables:
            out.append(f"## {_md(t.title)}\n")
            out.append(t.caption("in **bold**", escape=_md) + "\n")
            headers = ["rank", "model", "family", "framework", "n", "runs"] + [_md(c.header) for c in t.columns]
            rows = []
            for i, r in enumerate(t.rows):
                cells = []
                for c in t.columns:
                    cell = r.values.get(c.key)
                    text = cell.format() if cell else "n/a"
                    cells.append(f"**{text}**" if cell and t.is_best(c.key, i) else text)
                rows.append([r.rank if r.rank is not None else "–", _md(r.label), _md(r.family),
                             _md(r.framework), r.n if r.n is not None else "", _md(r.runs_text)] + cells)
            out.append(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
            out.append("")
        return "\n".join(out).rstrip() + "\n"


def _csv_text(value) -> str:
    """Text a spreadsheet must not run as a formula (CSV injection): prefix with '."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


class CSV(Publisher):
    """One line per leaderboard row; each metric as <metric>[<ref>] mean and std columns (and chance)."""

    name = "csv"
    extension = "csv"

    def render(self, tables: list[Table]) -> str:
        keys: list[str] = []
        judged: set[str] = set()
        for t in tables:
            keys += [c.key for c in t.columns if c.key not in keys]
            judged |= {c.key for c in t.columns if c.judged}
        parts = {k: ("mean", "std", "chance") if k in judged else ("mean", "std") for k in keys}
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["suite", "dataset", "at", "rank", "model", "family", "framework", "n", "params", "runs"]
                   + [f"{k} {part}" for k in keys for part in parts[k]])
        for t in tables:
            for rec in table_to_records(t):
                vals = []
                for k in keys:
                    m = rec["metrics"].get(k)
                    vals += [m.get(part) for part in parts[k]] if m else [""] * len(parts[k])
                w.writerow([_csv_text(rec["suite"]), _csv_text(rec["dataset"]), rec["at"], rec["rank"],
                            _csv_text(rec["model"]), rec["family"], rec["framework"], rec["n"],
                            _csv_text(json.dumps(rec["params"])) if rec["params"] else "", rec["runs"]]
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
