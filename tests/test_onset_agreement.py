"""Leaderboard, `benchbase dynamics`, the per-run records `benchbase plot` draws and the report
agree on every run's memorization onset (they all ask benchbase.verdicts): on a small run
of the quickstart suite (copy criterion: the perfect generalizer never memorizes, the
perfect memorizer does from its only evaluation) and, marked slow, on a shrunk run of
memorization_transition, whose headline is the loss criterion."""
from __future__ import annotations

import pytest
from support.dynamics_stores import ensure_heldout_gap
from support.onset_agreement import disagreements, onsets_by_command
from support.published_results import INJECTED, REPO, quickstart_results

from benchbase.config import load_suite
from benchbase.driver import run_suite
from benchbase.progress import Reporter
from benchbase.store import Store


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return quickstart_results(tmp_path_factory)


def test_leaderboard_dynamics_plot_and_report_agree_on_every_onset(results, tmp_path, registry):
    found = onsets_by_command(results, "quickstart", tmp_path, plot="data")
    assert found and disagreements(found) == []
    for rid, got in found.items():
        onset = got["leaderboard"]
        assert onset["source"] == "dynamics" and onset["criterion"] == "copy"
        if got["model"] == "true_sampler":
            assert onset["tau_mem"] is None and onset["censored"] == "right", got["dataset"]
        if got["model"] == INJECTED:  # copy_train
            assert onset["tau_mem"] == 0 and onset["censored"] == "left", got["dataset"]


def test_a_disagreement_is_reported():
    onset = {"tau_mem": None, "censored": "right", "criterion": "copy", "metric": None}
    page = "<p>none within the budget (copy criterion)</p>"
    agreeing = {"model": "true_sampler", "dataset": "gmm2d", "leaderboard": onset, "dynamics": dict(onset),
                "plot": dict(onset), "page": page}
    assert disagreements({"a": agreeing}) == []
    moved = {**agreeing, "dynamics": {**onset, "tau_mem": 123.0, "censored": None}}
    assert disagreements({"b": moved}) == ["b (true_sampler on gmm2d): leaderboard None/right/copy vs dynamics "
                                           "123.0/None/copy", "b (true_sampler on gmm2d): plot None/right vs "
                                           "dynamics 123.0/None"]
    assert "report page" in disagreements({"c": {**agreeing, "page": "<p>step 5</p>"}})[0]


@pytest.mark.slow
def test_a_loss_criterion_suite_agrees_too(registry, tmp_path):
    registry = ensure_heldout_gap(registry)
    suite = load_suite(REPO / "suites" / "memorization_transition.yaml",
                       ["sweep.n=[32,64]", "budget.steps=300", "eval.points=4", "eval.n_samples=50",
                        "eval.keep_samples=8", "models.0.config.width=32", "models.0.config.sample_steps=4"],
                       registry=registry)
    with Store(tmp_path / "res") as store:
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
    found = onsets_by_command(tmp_path / "res", "memorization_transition", tmp_path)
    assert len(found) == 2 and disagreements(found) == []
    assert {got["leaderboard"]["criterion"] for got in found.values()} == {"loss"}
