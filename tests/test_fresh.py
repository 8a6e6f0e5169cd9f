"""`--fresh` never deletes what another live driver is writing, and a run is never
marked done while any of its scheduled evaluations is missing from the store."""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
from support.suites import tiny_suite

from benchbase.cli import main
from benchbase.config import build_suite
from benchbase.driver import run_suite
from benchbase.errors import BenchbaseInputError
from benchbase.progress import Reporter
from benchbase.store import Store

ORACLES = tiny_suite(name="fresh", models=["copy_train", "true_sampler"], metrics=["mem_ratio", "fd"])


def _rows(results) -> dict:
    """Every table's rows (leases and timestamps aside), to show that nothing changed."""
    conn = sqlite3.connect(results / "benchbase.sqlite")
    out = {
        "runs": conn.execute("SELECT run_id, status, summary FROM runs ORDER BY run_id").fetchall(),
        "evals": conn.execute("SELECT * FROM evals ORDER BY run_id, step, metric, ref").fetchall(),
        "samples": conn.execute("SELECT run_id, step, length(data) FROM samples ORDER BY 1, 2").fetchall(),
        "checkpoints": conn.execute("SELECT run_id, step FROM checkpoints ORDER BY 1").fetchall(),
        "suites": conn.execute("SELECT name, source, resolved FROM suites ORDER BY 1").fetchall(),
    }
    conn.close()
    return out


def _hold(results, run_id: str, pid: int, heartbeat: float | None = None) -> None:
    """Another driver's claim on ``run_id``, as a live driver leaves it in the store."""
    now = time.time() if heartbeat is None else heartbeat
    conn = sqlite3.connect(results / "benchbase.sqlite")
    conn.execute("INSERT OR REPLACE INTO leases VALUES (?,?,?,?,?,?)",
                 (run_id, "another-driver", socket.gethostname(), pid, now, now))
    conn.execute("UPDATE runs SET status='running' WHERE run_id=?", (run_id,))
    conn.commit()
    conn.close()


@pytest.fixture
def finished(tmp_path, registry):
    """A results directory in which the oracle suite ran to the end, and its suite."""
    suite = build_suite(ORACLES, "<test>", registry=registry)
    results = tmp_path / "results"
    with Store(results) as store:
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
    return results, suite


def test_fresh_refuses_while_another_live_driver_holds_a_run(finished, registry):
    results, suite = finished
    held = suite.runs[1].run_id
    _hold(results, held, os.getpid())  # this test's own process: alive
    before = _rows(results)
    with Store(results) as store, pytest.raises(BenchbaseInputError) as err:
        run_suite(suite, store, registry, reporter=Reporter(quiet=True), fresh=True)
    message = str(err.value)
    assert "--fresh" in message and f"pid {os.getpid()}" in message and "1 run" in message
    assert "\n" not in message
    assert _rows(results) == before, "a refused --fresh changed the store"


def test_fresh_refusal_on_the_command_line_is_one_line_and_exit_2(finished, tmp_path, capsys):
    results, suite = finished
    _hold(results, suite.runs[0].run_id, os.getpid())
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps(ORACLES))
    before = _rows(results)
    code = main(["run", str(path), "--results", str(results), "--fresh", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "another benchbase process" in err, err
    assert _rows(results) == before


def test_fresh_takes_over_the_runs_of_a_driver_that_is_gone(finished, registry):
    results, suite = finished
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs: its driver was killed
    _hold(results, suite.runs[0].run_id, dead.pid)
    _hold(results, suite.runs[1].run_id, os.getpid(), heartbeat=time.time() - 3600)  # stopped beating
    before = _rows(results)
    with Store(results) as store:
        result = run_suite(suite, store, registry, reporter=Reporter(quiet=True), fresh=True)
    assert result.ok and result.planned == len(suite.runs)
    after = _rows(results)
    assert after["evals"] == before["evals"] and after["samples"] == before["samples"]
    assert {status for _, status, _ in after["runs"]} == {"done"}


def test_a_run_with_a_missing_evaluation_is_never_marked_done(finished):
    results, suite = finished
    spec = suite.runs[0]
    steps = spec.eval.steps
    with Store(results) as store:
        store.conn.execute("UPDATE runs SET status='running' WHERE run_id=?", (spec.run_id,))
        store.conn.execute("DELETE FROM evals WHERE run_id=? AND step=?", (spec.run_id, steps[0]))
        store.conn.execute("DELETE FROM samples WHERE run_id=? AND step=?", (spec.run_id, steps[0]))
        status, summary = store.finish_run(spec.run_id, "done", {"steps": 0}, require_all_evaluations=True)
        (recorded, stored), = store.conn.execute("SELECT status, summary FROM runs WHERE run_id=?",
                                                 (spec.run_id,)).fetchall()
    assert status == recorded == "failed"
    assert json.loads(stored) == summary and f"step {steps[0]}" in summary["reason"]


def test_a_complete_run_is_marked_done(finished):
    results, suite = finished
    spec = suite.runs[0]
    with Store(results) as store:
        assert store.finish_run(spec.run_id, "done", {"steps": 0}, require_all_evaluations=True) == \
            ("done", {"steps": 0})


def test_fresh_says_which_runs_of_the_suite_it_drops(tmp_path, capsys):
    """Two files share `name:`; `--fresh` on one makes the suite that file's plan, and says so
    (it dropped the other file's run, and a seed an override left out, without a word)."""
    results = tmp_path / "results"
    a = tmp_path / "A.yaml"
    b = tmp_path / "B.yaml"
    a.write_text(json.dumps(tiny_suite(name="shared", models=["copy_train"], metrics=["mem_ratio"])))
    b.write_text(json.dumps(tiny_suite(name="shared", models=["true_sampler"], metrics=["mem_ratio"])))
    for path in (a, b):
        assert main(["run", str(path), "--results", str(results), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["run", str(a), "seeds=[1]", "--results", str(results), "--fresh", "--quiet"]) == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "--fresh: dropped" in x)
    assert "2 run(s) of suite 'shared'" in line
    assert "copy_train · gmm2d · n=64 · seed 0" in line and "true_sampler · gmm2d · n=64 · seed 0" in line
    capsys.readouterr()
    assert main(["run", str(a), "seeds=[1]", "--results", str(results), "--fresh", "--quiet"]) == 0
    assert "--fresh: dropped" not in capsys.readouterr().err, "nothing left the suite this time"
