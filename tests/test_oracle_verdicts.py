"""On every built-in dataset that needs no download, with the default dynamics settings: the perfect generalizer (true_sampler) and data-blind
noise never get a memorization onset; the perfect memorizer (copy_train) gets one at
its first evaluation."""
from __future__ import annotations

import pytest
from support.suites import tiny_suite

from benchbase.config import build_suite
from benchbase.driver import run_suite
from benchbase.progress import Reporter
from benchbase.store import Store

SMALL = {"train_size": 2000, "test_size": 1000}
DATASETS = [
    {"name": "gmm2d", "n": 512, "config": SMALL}, {"name": "two_moons", "n": 512, "config": SMALL},
    {"name": "swiss_roll", "n": 512, "config": SMALL}, {"name": "checkerboard", "n": 512, "config": SMALL},
    {"name": "gmm", "n": 512, "config": SMALL}, {"name": "manifold", "n": 512, "config": SMALL},
    {"name": "calpha_images", "n": 512, "config": {"size": 16, **SMALL}}, {"name": "digits", "n": 512},
]
# the quickstart's two and the one whose minimum excess was set against noise (dcr_overfit);
# all of them in leaderboards/metric_calibration.md (true_sampler and noise rows)
MEMORIZATION = ["mem_ratio", "proximity_auc", "dcr_overfit"]


@pytest.mark.slow
def test_oracles_get_the_onsets_their_definitions_say_on_every_builtin_dataset(registry, tmp_path):
    suite = build_suite(tiny_suite(name="oracle_verdicts", datasets=DATASETS, seeds=[0, 1],
                                   models=["copy_train", "true_sampler", "noise"], metrics=MEMORIZATION,
                                   budget={"steps": 1}, eval={"n_samples": 300}), "<test>", registry=registry)
    with Store(tmp_path) as store:
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
        derived = store.derived(suite.name)
        runs = store.runs(suite=suite.name)
    assert len(runs) == len(DATASETS) * 3 * 2
    for run in runs:
        rec = derived[run.run_id]
        where = (run.spec.dataset.name, run.spec.model.name, run.seed, rec.get("tau_mem_copy_metric"))
        assert rec["criterion"] == "copy" and sorted(rec["copy_metrics"]) == sorted(MEMORIZATION), where
        if run.spec.model.name == "copy_train":
            assert rec["tau_mem"] == 0 and rec["censored"] == "left", where
        else:
            assert rec["tau_mem"] is None and rec["censored"] == "right", where
