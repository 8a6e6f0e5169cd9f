"""`benchbase chance`: runs stored before chance levels get them, measured exactly as a
run measures them, and their copy criterion back."""
from __future__ import annotations

import shutil

import pytest
from support.suites import tiny_suite

from benchbase.backfill import BackfillSummary
from benchbase.chance import ChanceCache
from benchbase.cli import main
from benchbase.config import build_suite
from benchbase.driver import run_suite
from benchbase.progress import Reporter
from benchbase.store import Store


def test_old_stores_get_the_chance_levels_a_run_would_have_stored(registry, tmp_path, capsys):
    suite = build_suite(tiny_suite(models=["copy_train", "true_sampler"], metrics=["mem_ratio", "proximity_auc", "fd"],
                                   eval={"points": 1, "n_samples": 100}), "<t>", registry=registry)
    ChanceCache._memory.clear()  # levels measured by earlier tests would not be written here
    with Store(tmp_path) as store:
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
        before = {r.run_id: store.evals(r.run_id) for r in store.runs()}
        # what a store written before chance levels holds: the values without their chance rows
        store.conn.execute("DELETE FROM evals WHERE metric LIKE '%.chance%'")
        assert all(d["tau_mem_copy_censored"] == "unavailable" for d in _derive(store, suite.name).values())
    shutil.rmtree(tmp_path / "cache" / "chance")  # measured again, not read back
    ChanceCache._memory.clear()
    assert main(["chance", "--results", str(tmp_path), "--suite", suite.name]) == 0
    with Store(tmp_path) as store:
        for run_id, rows in before.items():
            after = {(e["metric"], e["ref"], e["step"]): e for e in store.evals(run_id)}
            for e in rows:
                key = (e["metric"], e["ref"], e["step"])
                assert after[key]["value"] == pytest.approx(e["value"], rel=1e-12, abs=1e-15), key
        derived = store.derived(suite.name)
        models = {r.run_id: r.spec.model.name for r in store.runs()}
    assert {models[k]: d["censored"] for k, d in derived.items()} == {"copy_train": "left", "true_sampler": "right"}
    capsys.readouterr()
    assert main(["chance", "--results", str(tmp_path)]) == 0  # nothing left to do
    assert capsys.readouterr().out == "every finished run already has its chance levels (2 runs); nothing stored\n"


def _derive(store, suite):
    from benchbase.derived import derive_suite

    return derive_suite(store, suite)


@pytest.mark.parametrize("summary, line", [
    (BackfillSummary(runs=1, rows=3, current=2), "stored 3 chance rows for 1 run; 2 runs already had theirs"),
    (BackfillSummary(skipped=["r1: boom"]), "stored 0 chance rows for 0 runs; 1 run skipped"),
    (BackfillSummary(current=1, unfinished=["failed"]),
     "every finished run already has its chance levels (1 run; unfinished: 1 run failed); nothing stored"),
    (BackfillSummary(unfinished=["timeout", "timeout"]),
     "no finished run to measure chance levels for (2 runs timed out); nothing stored"),
])
def test_the_summary_says_why_nothing_was_stored(summary, line):
    assert summary.text() == line
