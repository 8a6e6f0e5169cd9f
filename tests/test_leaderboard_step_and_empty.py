"""A 0-byte results file is refused like a missing one (exit 2, nothing written): no
benchbase wrote it. ``--at step=N`` that finished runs were not evaluated at still
prints their rows without values (documented), and says on stderr which steps are stored."""
from __future__ import annotations

import warnings

import pytest
from support.published_results import fake_results
from support.suites import tiny_suite

from benchbase.cli import main
from benchbase.leaderboard import MissingStepWarning, build_tables
from benchbase.plugins import PluginPolicy, build_registry
from benchbase.resultset import ResultSet
from benchbase.store import DB_NAME


@pytest.mark.parametrize("command", [["leaderboard"], ["report", "--out", "site"]])
def test_an_empty_results_file_is_refused_like_a_missing_one(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / DB_NAME).write_bytes(b"")
    assert main([*command, "--results", "r"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "no results in r/" in line and "empty file" in line
    assert (tmp_path / "r" / DB_NAME).stat().st_size == 0 and not (tmp_path / "site").exists()
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [DB_NAME]


def test_a_step_no_run_has_says_which_are_stored(tmp_path):
    registry = build_registry(PluginPolicy(entry_points=False, strict=True))
    fake_results(tmp_path, registry, tiny_suite(eval={"schedule": "list", "steps": [10, 60], "n_samples": 100}),
                 lambda spec, step, metric, ref: 1.0, samples=False)
    with ResultSet([tmp_path]) as rs:
        with pytest.warns(MissingStepWarning, match=r"1 finished run\(s\) have no evaluation at step 999; "
                                                     r"stored steps: 0, 10, 60"):
            (table,) = build_tables(rs, at="step=999")
        assert {r.model: r.runs for r in table.rows} == {"rectified_flow": 0, "copy_train": 1}
        with warnings.catch_warnings():
            warnings.simplefilter("error", MissingStepWarning)
            build_tables(rs, at="step=60")  # every run has it: nothing to say
