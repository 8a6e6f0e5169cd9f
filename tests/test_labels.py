"""A label is display data: it names a run but is not part of what the run is. Renaming
it renames the stored run (nothing is trained again); two entries that differ only in
their labels are refused, since they would be one run under one of the names."""
from __future__ import annotations

import pytest
from support.suites import tiny_suite

from benchbase.config import build_suite
from benchbase.driver import run_suite
from benchbase.errors import ConfigError
from benchbase.leaderboard import build_tables
from benchbase.progress import Reporter
from benchbase.resultset import ResultSet
from benchbase.store import Store


def _oracles(model_label: str, dataset_label: str = "gmm") -> dict:
    suite = tiny_suite(name="labels", metrics=["mem_ratio", "fd"])
    suite["models"] = [{"name": "copy_train", "label": model_label}, "true_sampler"]
    suite["datasets"][0]["label"] = dataset_label
    return suite


def _run(suite: dict, registry, results):
    built = build_suite(suite, "<test>", registry=registry)
    with Store(results) as store:
        result = run_suite(built, store, registry, reporter=Reporter(quiet=True))
    return built, result


def test_a_renamed_label_renames_the_stored_run_without_training_it_again(registry, results_dir):
    before, first = _run(_oracles("copier"), registry, results_dir)
    with Store(results_dir) as store:
        evals_before = {r.run_id: store.evals(r.run_id) for r in store.runs()}
    after, second = _run(_oracles("memorizer", "two_moons_ish"), registry, results_dir)
    assert [s.run_id for s in after.runs] == [s.run_id for s in before.runs], "labels are not identity"
    assert second.planned == 0 and second.skipped == len(after.runs), "nothing is trained again"
    with Store(results_dir) as store:
        runs = store.runs()
        assert {r.model_label for r in runs} == {"memorizer", "true_sampler"}
        assert {r.dataset_label for r in runs} == {"two_moons_ish"}
        assert {row[0] for row in store.conn.execute("SELECT model_label FROM runs")} == {"memorizer", "true_sampler"}
        assert {r.run_id: store.evals(r.run_id) for r in runs} == evals_before
    with ResultSet([results_dir]) as results:
        rows = [row.model for table in build_tables(results, suite="labels") for row in table.rows]
    assert sorted(rows) == ["memorizer", "true_sampler"]


def test_two_entries_that_differ_only_in_their_labels_are_refused(registry):
    suite = _oracles("copier")
    suite["models"].append({"name": "copy_train", "label": "copier_again"})
    with pytest.raises(ConfigError) as err:
        build_suite(suite, "<test>", registry=registry)
    assert err.value.problems == [("models[2]", err.value.problems[0][1])]
    message = str(err.value)
    assert "'copier_again' plans the same runs as 'copier' (models[0])" in message


def test_the_same_entry_twice_under_one_label_is_refused(registry):
    """It was merged into one run without a word (`models: [copy_train, copy_train]`)."""
    suite = _oracles("copier")
    suite["models"].append({"name": "copy_train", "label": "copier"})
    with pytest.raises(ConfigError) as err:
        build_suite(suite, "<test>", registry=registry)
    assert err.value.problems == [("models[2]", "repeats models[0] ('copier'): the same entry plans the same "
                                                "runs once; remove one")]
