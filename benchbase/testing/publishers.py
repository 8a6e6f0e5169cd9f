"""``check_publisher``: a publisher renders leaderboard tables to text, the same text
for the same tables, without changing them, and escapes everything that comes from
configs or plugins for its format (a model label may hold markup, separators, quotes
and newlines)."""
from __future__ import annotations

import copy
import csv
import io
import json
from typing import Any

from benchbase.leaderboard import Cell, Column, Row, Table
from benchbase.testing.common import check_declaration, label, make_config
from benchbase.testing.violations import Checker, Report

HOSTILE = '<script>alert("x")</script> | 50% a,b & c_d\nnext'


def sample_tables() -> list[Table]:
    """A small table of every column direction, a missing cell and a hostile model label."""
    columns = [Column("fd", "test", "lower", feature_space="pixels"),
               Column("precision", "train", "higher", feature_space="pixels"),
               Column("novelty", "train", "target", target=1.0, feature_space="pixels")]
    rows = [Row(model="rectified_flow", name="rectified_flow", family="flow", framework="torch", n=512,
                params={}, runs=2, statuses={"done": 2},
                values={"fd[test]": Cell(0.125, 0.01, 2), "precision[train]": Cell(0.9, 0.02, 2),
                        "novelty[train]": Cell(1.1, 0.0, 2)}, rank=1, run_ids=["a", "b"]),
            Row(model=HOSTILE, name="evil", family="gan", framework="jax", n=512, params={"model.width": 64},
                runs=1, statuses={"done": 1, "failed": 1},
                values={"fd[test]": Cell(3.5, 0.0, 1)}, rank=2, run_ids=["c", "d"])]
    return [Table(suite="kit", dataset="toy", columns=columns, rows=rows, primary="fd[test]",
                  best={"fd[test]": 0, "precision[train]": 0, "novelty[train]": 0}, feature_space="pixels")]


def check_publisher(publisher_cls: Any, config: Any = None) -> Report:
    """Check a publisher plugin class; raise ContractViolation."""
    c = Checker(label("publisher", publisher_cls))
    check_declaration(c, "publisher", publisher_cls)
    ext = getattr(publisher_cls, "extension", "")
    c.require(isinstance(ext, str) and ext.isalnum(), "extension", f"extension is {ext!r}",
              "set `extension` to the file extension without a dot, e.g. 'md'")
    pub = publisher_cls(make_config(c, publisher_cls, config))
    tables = sample_tables()
    before = copy.deepcopy(tables)
    text = _render(c, pub, tables, "render(tables)")
    c.require(tables == before, "render.read_only", "render changed the tables it was given",
              "copy before sorting or formatting: several publishers render the same tables")
    c.require(_render(c, pub, sample_tables(), "render again") == text, "render.deterministic",
              "rendering the same tables twice gave different text",
              "no timestamps or random ids in the output (sort anything that comes from a set or dict)")
    c.require(bool(text.strip()), "render.nonempty", "render returned nothing for a non-empty table",
              "render every table")
    _render(c, pub, [], "render([])")
    _check_escaping(c, ext, text)
    return c.report


def _render(c: Checker, pub: Any, tables: list, what: str) -> str:
    with c.calling("render", what):
        out = pub.render(tables)
    c.require(isinstance(out, str), "render.str", f"{what} returned {type(out).__name__}", "return text (str)")
    return out


def _check_escaping(c: Checker, ext: str, text: str) -> None:
    fix = "escape everything that comes from configs or plugins for the target format"
    if ext in ("md", "html", "htm"):
        c.require("<script>" not in text, "escaping", "a model label '<script>...' appears as raw markup", fix)
    elif ext == "json":
        try:
            blob = json.dumps(json.loads(text))
        except ValueError as exc:
            c.fail("escaping", f"the output is not valid JSON: {exc}", fix)
        c.require(json.dumps(HOSTILE)[1:-1] in blob, "escaping", "the hostile model label did not survive "
                  "a JSON round trip", fix)
    elif ext == "csv":
        cells = [cell for row in csv.reader(io.StringIO(text)) for cell in row]
        c.require(any(HOSTILE in cell for cell in cells), "escaping",
                  "the model label with a comma, quote and newline is not one CSV field", fix)
    elif ext == "tex":
        c.require("50%" not in text.replace("50\\%", ""), "escaping",
                  "a '%' from a model label is unescaped (LaTeX would drop the rest of the line)", fix)
    else:
        c.skip("escaping", f"no escaping rule known for '.{ext}'")
        return
    c.passed("escaping")
