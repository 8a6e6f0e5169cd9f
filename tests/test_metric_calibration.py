"""Calibration: the oracles pin both ends of every memorization/novelty metric and
the bottom of the fidelity metrics, through the whole core (suite -> run -> store).

copy_train (a perfect memorizer), true_sampler (a perfect generalizer: gmm2d's exact
sampler; on digits, unseen test-split points) and noise (uniform over the value
range). Tolerances are sampling error: ~3 standard deviations at these sizes.

mem_ratio's chance level for fresh samples is threshold^d in d (intrinsic)
dimensions: (1/3)^2 = 1/9 on gmm2d, which this test checks as such; the "<= 0.02"
calibration of true_sampler is checked on digits (64-d), where chance is ~0.
"""
from __future__ import annotations

import pytest
from support.suites import tiny_suite

from benchbase.config import build_suite
from benchbase.driver import run_suite
from benchbase.progress import Reporter
from benchbase.store import Store

ORACLES = ["copy_train", "true_sampler", "noise"]


def run_oracles(registry, results_dir, dataset: dict, metrics: list, n_samples: int) -> dict:
    suite = build_suite(tiny_suite(datasets=[dataset], models=ORACLES, metrics=metrics,
                                   eval={"points": 1, "n_samples": n_samples}), "<test>", registry=registry)
    with Store(results_dir) as store:
        result = run_suite(suite, store, registry, reporter=Reporter(quiet=True))
        assert result.ok, result.statuses
        values = {}
        for run in store.runs(suite="tiny"):
            values[run.spec.model.name] = {f"{e['metric']}[{e['ref']}]": e["value"] for e in store.evals(run.run_id)}
    return values


@pytest.fixture(scope="module")
def gmm(tmp_path_factory):
    from benchbase.plugins import PluginPolicy, build_registry

    registry = build_registry(PluginPolicy(entry_points=False, strict=True))
    metrics = ["mem_ratio", "copy_cosine", "authenticity", "ct_test", "novelty_ratio", "dcr_overfit",
               "fd", "swd", "precision"]
    dataset = {"name": "gmm2d", "n": 500, "config": {"train_size": 2000, "test_size": 2000}}
    return run_oracles(registry, tmp_path_factory.mktemp("gmm"), dataset, metrics, n_samples=500)


def test_copy_train_is_a_perfect_memorizer_on_gmm2d(gmm):
    v = gmm["copy_train"]
    assert v["mem_ratio[train]"] == 1.0
    assert v["copy_cosine[train]"] == 1.0
    assert v["authenticity[train]"] == 0.0
    assert v["novelty_ratio[train]"] == 0.0
    assert v["dcr_overfit[train]"] == 1.0
    assert v["ct_test[train]"] < -8  # every sample at distance 0: U = 0 in every cell


def test_true_sampler_generalizes_on_gmm2d(gmm):
    v = gmm["true_sampler"]
    assert abs(v["ct_test[train]"]) < 3  # a weighted mean of N(0, 1) cell statistics
    assert v["novelty_ratio[train]"] == pytest.approx(1.0, abs=0.12)
    assert v["dcr_overfit[train]"] == pytest.approx(0.5, abs=0.07)
    assert v["authenticity[train]"] > 0.25
    # 2-D: the 1/3 ratio test fires by chance with probability (1/3)^2
    assert v["mem_ratio[train]"] == pytest.approx(1 / 9, abs=0.045)


def test_noise_has_the_worst_fidelity_on_gmm2d(gmm):
    for metric in ("fd[test]", "swd[test]", "fd[train]", "swd[train]"):
        assert gmm["noise"][metric] > 2 * max(gmm["copy_train"][metric], gmm["true_sampler"][metric])
    # in 2-D uniform noise still lands in the data's k-NN balls now and then
    assert gmm["noise"]["precision[test]"] < 0.2 < 0.9 < gmm["true_sampler"]["precision[test]"]


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    from benchbase.plugins import PluginPolicy, build_registry

    registry = build_registry(PluginPolicy(entry_points=False, strict=True))
    metrics = ["mem_ratio", "copy_cosine", "authenticity", "fd", "swd", "precision"]
    return run_oracles(registry, tmp_path_factory.mktemp("digits"), {"name": "digits", "n": 800}, metrics,
                       n_samples=400)


def test_oracles_on_digits(digits):
    copy, fresh, noise = digits["copy_train"], digits["true_sampler"], digits["noise"]
    assert copy["mem_ratio[train]"] == 1.0 and copy["copy_cosine[train]"] == 1.0
    assert copy["authenticity[train]"] == 0.0
    assert fresh["mem_ratio[train]"] <= 0.02  # 64-d: chance level ~0
    assert noise["mem_ratio[train]"] == 0.0
    assert noise["precision[test]"] < 0.01 and fresh["precision[test]"] > 0.5
    for metric in ("fd[test]", "swd[test]"):
        assert noise[metric] > 5 * max(copy[metric], fresh[metric])
