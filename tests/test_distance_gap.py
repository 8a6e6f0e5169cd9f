"""The train/test behaviour of distributional distances along training (benchbase.distance_gap)."""
from __future__ import annotations

import numpy as np
import pytest

from benchbase.distance_gap import DistanceSummary, distance_gap, format_summary, summarize
from benchbase.dynamics import Trajectory
from benchbase.verdicts import threshold_onset

STEPS = np.array([10, 30, 100, 300, 1000, 3000])


def _traj(train, test, metric="swd") -> Trajectory:
    return Trajectory(STEPS, {(metric, "train"): np.asarray(train, float), (metric, "test"): np.asarray(test, float)})


def _gap(traj, derived=None, metric="swd"):
    return distance_gap("r", 16, 0, traj, derived or {}, metric, 0.1, 1, threshold_onset)


def test_a_distance_that_falls_on_train_only_notices_at_the_crossing():
    test = np.full(6, 1.0)
    train = np.array([1.0, 1.0, 1.0, 0.95, 0.7, 0.5])  # relative gap 0, 0, 0, 0.05, 0.3, 0.5
    g = _gap(_traj(train, test), {"tau_mem_copy": 500.0, "tau_mem_loss": 100.0})
    assert g.separation == pytest.approx(0.5) and g.movement == pytest.approx(0.0)
    assert g.relative_gap_growth == pytest.approx(0.5)
    assert 300 < g.notice_step < 1000 and g.notice_censored is None
    # log-step interpolation between 300 (growth 0.05) and 1000 (0.3): a fifth of the way
    assert g.notice_step == pytest.approx(300 * (1000 / 300) ** (0.05 / 0.25))


def test_a_distance_that_moves_alike_on_both_splits_never_notices():
    falling = np.geomspace(2.0, 0.5, 6)
    g = _gap(_traj(falling * 1.2, falling))  # a constant finite-sample bias between the splits
    assert g.notice_step is None and g.notice_censored == "right"
    assert g.relative_gap_growth == pytest.approx(0.0, abs=1e-12)
    assert g.separation == pytest.approx(0.1) and g.movement == pytest.approx(1.5)


def test_missing_split_gives_none_and_summary_counts_unnoticed_copies():
    only_test = Trajectory(STEPS, {("fd", "test"): np.ones(6)})
    assert _gap(only_test, metric="fd") is None
    noticing = _gap(_traj([1, 1, 1, 0.95, 0.7, 0.5], np.ones(6)), {"tau_mem_copy": 500.0, "tau_mem_loss": 100.0})
    blind = _gap(_traj(np.geomspace(2, 0.5, 6) * 1.2, np.geomspace(2, 0.5, 6)), {"tau_mem_copy": 200.0})
    (s,) = summarize([noticing, blind])
    assert s.runs == 2 and s.noticed == 1 and s.copies_unnoticed == 1
    assert s.notice_over_copy_onset == pytest.approx(noticing.notice_step / 500.0)
    assert s.separation_over_movement == pytest.approx(0.1 / 1.5)  # the only run that moved
    assert "; 1 run copied without the distance noticing" in format_summary(s, 0.1)


def test_gap_growth_is_the_relative_gap_minus_its_first_value():
    from benchbase.distance_gap import gap_growth

    train = np.array([np.nan, 1.2, 1.2, 1.0, 0.7, 0.5])
    grown = gap_growth(_traj(train, np.full(6, 1.0)), "swd")
    assert np.isnan(grown[0])
    np.testing.assert_allclose(grown[1:], [0.0, 0.0, 0.2, 0.5, 0.7])
    assert gap_growth(Trajectory(STEPS, {("swd", "test"): np.ones(6)}), "swd") is None


def test_distance_gap_figure_is_drawn_for_runs_with_both_splits(registry, tmp_path):
    from support.dynamics_stores import fake_store

    from benchbase.derived import load_suite_data
    from benchbase.distance_figures import plot_distance_gaps
    from benchbase.store import Store

    fake_store(registry, tmp_path / "res", ns=(16, 32))
    with Store(tmp_path / "res") as store:
        data = load_suite_data(store, "fake")
    (tmp_path / "plots").mkdir()
    paths = plot_distance_gaps(data, tmp_path / "plots", ("png",))
    assert [p.name for p in paths] == ["fake.distance_gap.png"] and paths[0].stat().st_size > 10_000
    data.runs = []
    assert plot_distance_gaps(data, tmp_path / "plots", ("png",)) == []


def test_the_summary_counts_in_english_and_leaves_out_medians_of_no_run():
    empty = DistanceSummary("swd", 3, None, 0, None, None, 1)
    assert format_summary(empty, 0.05) == ("swd: over 3 runs, its relative train/test gap grew by 0.05 in 0 of 3 runs; "
                                           "1 run copied without the distance noticing")
    one = DistanceSummary("fd", 1, 0.5, 1, None, 2.0, 0)
    assert format_summary(one, 0.05) == (
        "fd: over 1 run, |fd[train] - fd[test]| at the end is 0.5 x the movement of fd[test] over training (median); "
        "its relative train/test gap grew by 0.05 in 1 of 1 run, at 2 x tau_mem (loss) (median); "
        "no run copied without the distance noticing")
