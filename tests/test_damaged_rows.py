"""A hand-damaged row in a healthy results file (a truncated run spec, unreadable eval
params) is refused like a damaged file: one line naming the file, the table and row and
what to do, exit 2 — not a JSONDecodeError traceback."""
from __future__ import annotations

import sqlite3

import pytest
from support.published_results import fake_results
from support.suites import tiny_suite

from benchbase.cli import main
from benchbase.plugins import PluginPolicy, build_registry
from benchbase.store import DB_NAME


@pytest.fixture
def results(tmp_path):
    registry = build_registry(PluginPolicy(entry_points=False, strict=True))
    fake_results(tmp_path, registry, tiny_suite(models=["copy_train"], metrics=["fd"]),
                 lambda spec, step, metric, ref: 1.0, samples=False)
    return tmp_path


@pytest.mark.parametrize("damage, says", [
    ("UPDATE runs SET spec = substr(spec, 1, 40)", "table runs, row run_id="),
    ("UPDATE runs SET spec = '{\"suite\": \"tiny\"}'", "spec is damaged (not a run spec"),
    ("UPDATE evals SET params = '{bad' WHERE rowid = (SELECT min(rowid) FROM evals)", "table evals, row run_id="),
])
def test_a_damaged_row_is_one_clear_line_and_exit_2(results, capsys, damage, says):
    with sqlite3.connect(results / DB_NAME) as conn:
        conn.execute(damage)
    assert main(["leaderboard", "--results", str(results)]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert str(results / DB_NAME) in line and says in line and "Restore the file from a copy" in line
    assert "Traceback" not in captured.err and captured.out == ""
