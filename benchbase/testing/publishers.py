"""``check_publisher``: a publisher renders leaderboard tables to text, the same text
for the same tables, without changing them, and escapes everything that comes from
configs or plugins for its format (a model label may hold markup, separators, quotes
and newlines)."""
from __future__ import annotations

import copy
import csv
import functools
import io
import json
import tempfile
from typing import Any

from benchbase.testing.common import check_declaration, label, make_config
from benchbase.testing.kit_plugins import KIT_PLUGINS
from benchbase.testing.violations import Checker, Report

HOSTILE = '<script>alert("x")</script> | 50% a,b & c_d\nnext'


@functools.lru_cache(maxsize=1)
def _leaderboard() -> tuple:
    """Tables of a real (tiny) suite through the store and the leaderboard code, so the
    check follows the Table structure wherever it goes: two seeds, a failing model, a
    hostile model label, and metrics of every direction."""
    from benchbase.config import build_suite
    from benchbase.driver import run_suite
    from benchbase.leaderboard import build_tables
    from benchbase.plugins import PluginPolicy, build_registry
    from benchbase.progress import Reporter
    from benchbase.store import Store

    registry = build_registry(PluginPolicy(entry_points=False, strict=True, extra=(KIT_PLUGINS,)))
    suite = build_suite({
        "name": "kit_publisher_check", "seeds": [0, 1], "device": "cpu",
        "datasets": [{"name": "kit_vectors", "n": 64}],
        "models": [{"name": "kit_mean", "label": HOSTILE}, "copy_train",
                   {"name": "kit_mean", "label": "broken", "config": {"fail": True}}],
        "metrics": ["fd", "kit_spread", "kit_centre"],
        "budget": {"batch_size": 16, "steps": 10},
        "eval": {"points": 2, "n_samples": 32, "keep_samples": 0},
    }, "<publisher check>", registry=registry)
    with tempfile.TemporaryDirectory(prefix="benchbase-publisher-check-") as tmp:
        with Store(tmp) as store:
            run_suite(suite, store, registry, reporter=Reporter(quiet=True))
            return tuple(build_tables(store, suite=suite.name, registry=registry))


def sample_tables() -> list:
    """A fresh copy of the check's leaderboard tables (publishers must not change them)."""
    return copy.deepcopy(list(_leaderboard()))


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
