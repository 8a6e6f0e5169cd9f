"""``check_tracker``: a tracker is built cheaply (its library is imported only when a
suite opens it), follows a whole suite without raising (runs that finish, a run that
fails, the leaderboard at the end), and writes nothing outside the results directory
by default.

The check runs the executor check's tiny suite of kit plugins (a broken model and a
working one, two seeds each) with the tracker attached, in an empty working
directory. It cannot read back what a tool stored (each has its own format): test
that with the tool's reader, as benchbase's own tests do for the built-ins.
"""
from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

from benchbase.testing.common import check_declaration, label, make_config
from benchbase.testing.executors import kit_suite
from benchbase.testing.kit_plugins import KIT_PLUGINS
from benchbase.testing.violations import Checker, Report


def check_tracker(tracker_cls: Any, config: Any = None) -> Report:
    """Check a tracker plugin class; raise ContractViolation. A tracker whose library
    is not installed raises BenchbaseInputError (skip on it)."""
    from benchbase.config import build_suite
    from benchbase.driver import run_suite
    from benchbase.errors import BenchbaseInputError
    from benchbase.plugins import PluginPolicy, Registered, build_registry
    from benchbase.progress import Reporter
    from benchbase.store import Store
    from benchbase.tracking import TrackerWarning

    c = Checker(label("tracker", tracker_cls))
    check_declaration(c, "tracker", tracker_cls)
    cfg = make_config(c, tracker_cls, config)
    loaded = set(sys.modules)
    with c.calling("init", f"{tracker_cls.__name__}(config)",
                   "keep __init__ cheap: store the config; connect and import in open()"):
        tracker = tracker_cls(cfg)
    with c.calling("requirements", "requirements()"):
        needs = tracker.requirements()
    c.require(isinstance(needs, tuple) and all(isinstance(m, str) and m for m in needs), "requirements",
              f"requirements() returned {needs!r}", "return a tuple of importable module names")
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        raise BenchbaseInputError(f"tracker '{tracker_cls.name}' needs {', '.join(missing)}, which is not "
                                  f"installed: pip install {tracker_cls.install or ' '.join(missing)}")
    imported = sorted(m for m in needs if m in sys.modules and m not in loaded)
    c.require(not imported, "init.no_import", f"building the tracker imported {', '.join(imported)}",
              "import the tool's library in open(), not at module level or in __init__: validating a "
              "suite builds every tracker it names")

    registry = build_registry(PluginPolicy(entry_points=False, strict=True, extra=(KIT_PLUGINS,)))
    name = tracker_cls.name
    known = registry.components["tracker"].get((name,))
    if known is None or known.cls is not tracker_cls:  # a class under test need not be installed
        registry.components["tracker"][(name,)] = Registered("tracker", name, tracker_cls, "check", "check")
    plain = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else {}
    suite = build_suite({**kit_suite("local"), "name": "kit_tracker_check",
                         "trackers": [{"name": name, "config": plain}]}, "<tracker check>", registry=registry)
    with tempfile.TemporaryDirectory(prefix="benchbase-tracker-check-") as tmp:
        cwd = Path(tmp) / "cwd"
        cwd.mkdir()
        with contextlib.chdir(cwd), warnings.catch_warnings(record=True) as caught, \
                Store(cwd / "results") as store:
            warnings.simplefilter("always", TrackerWarning)
            result = run_suite(suite, store, registry, reporter=Reporter(quiet=True))
        problems = [str(w.message) for w in caught if issubclass(w.category, TrackerWarning)]
        c.require(not problems, "hooks.no_failures",
                  f"following a 4-run suite (two runs done, two failed) it warned: {problems[:1]}",
                  "handle every method for runs that finish and runs that fail (status 'failed', a "
                  "summary with a 'reason'); a tracker that raises loses what it was logging")
        c.require(sorted(result.statuses.values()) == ["done", "done", "failed", "failed"], "hooks.runs_unchanged",
                  f"the suite's runs ended {sorted(result.statuses.values())}", "a tracker must not change runs")
        strays = sorted(p.name for p in cwd.iterdir() if p.name != "results")
        c.require(not strays, "writes.results_dir_only",
                  f"with its default config it wrote {strays} into the working directory",
                  "write under the results_dir that open() receives unless the user configured a location")
    return c.report
