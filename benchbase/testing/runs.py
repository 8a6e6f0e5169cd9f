"""Run a suite from a test, quietly, into a results directory, and read back the
leaderboard rows: the last step of "does my plugin work in a real suite"."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class SuiteRun:
    """What a suite run left: the driver's result and the leaderboard rows (JSON schema)."""

    result: Any  # benchbase.driver.SuiteResult
    rows: list[dict]
    results_dir: Path


def run_suite_quietly(suite: str | Path | dict, results_dir: str | Path, registry: Any = None,
                      overrides: list[str] = ()) -> SuiteRun:
    """``suite``: a YAML path (with dotlist ``overrides``) or a suite dict."""
    from benchbase.config import build_suite, load_suite
    from benchbase.driver import run_suite
    from benchbase.leaderboard import build_tables, table_to_records
    from benchbase.plugins import build_registry
    from benchbase.progress import Reporter
    from benchbase.store import Store

    registry = registry or build_registry()
    if isinstance(suite, dict):
        spec = build_suite(suite, "<test suite>", registry=registry)
    else:
        spec = load_suite(suite, list(overrides), registry=registry)
    with Store(results_dir) as store:
        result = run_suite(spec, store, registry, reporter=Reporter(quiet=True))
        rows = [r for t in build_tables(store, suite=spec.name, registry=registry) for r in table_to_records(t)]
    return SuiteRun(result, rows, Path(results_dir))
