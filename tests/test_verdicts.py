"""The onset rule (benchbase.verdicts): where a curve first crosses a threshold, confirmed
and interpolated in log step, and the leaderboard's memorization onset of a run."""
from __future__ import annotations

import math

import numpy as np
import pytest

from benchbase.verdicts import memorization_onset, onset


def test_onset_interpolates_in_log_step():
    steps = np.array([100, 1000, 10000])
    # crosses 0.1 a quarter of the way (in value) from step 1000 to 10000
    on = onset(steps, np.array([0.0, 0.0, 0.4]), threshold=0.1, confirm=0)
    assert on.eval_step == 10000 and on.index == 2 and on.censored is None
    assert on.step == pytest.approx(10 ** 3.25)


def test_onset_needs_confirmation_by_later_evals():
    steps = np.array([10, 20, 40, 80, 160])
    values = np.array([0.0, 0.2, 0.0, 0.3, 0.5])  # a one-eval blip at step 20
    assert onset(steps, values, 0.1, confirm=1).eval_step == 80
    assert onset(steps, values, 0.1, confirm=0).eval_step == 20
    # at the end of the run fewer later evaluations exist: the last one alone is enough
    assert onset(steps, np.array([0, 0, 0, 0, 0.5]), 0.1, confirm=2).eval_step == 160


def test_onset_censoring_and_missing_values():
    steps = np.array([10, 20, 40])
    left = onset(steps, np.array([0.9, 0.9, 1.0]), 0.1)
    assert left.censored == "left" and left.step == 10
    right = onset(steps, np.array([0.0, 0.05, 0.09]), 0.1)
    assert right.censored == "right" and right.step is None and right.eval_step is None
    assert onset(steps, np.array([np.nan, np.nan, 0.5]), 0.1, confirm=0).eval_step == 40


def test_onset_after_an_evaluation_at_step_zero_interpolates_linearly():
    on = onset(np.array([0, 100]), np.array([0.0, 1.0]), 0.25, confirm=0)
    assert on.step == pytest.approx(25.0)


# --------------------------------------------------------------- other quantities



def test_memorization_onset_rule():
    evals = [{"step": s, "metric": "mem_ratio", "ref": "train", "value": v}
             for s, v in [(10, 0.0), (20, float("nan")), (30, 0.2), (40, 0.05)]]
    assert memorization_onset({}, evals, 0.1) == 30
    assert memorization_onset({}, evals, 0.3) is None
    assert memorization_onset({"criterion": "loss", "tau_mem": 12.5}, evals) == 12.5
    assert memorization_onset({"criterion": "copy", "censored": "left"}, evals) == -math.inf
    assert memorization_onset({"criterion": None}, evals, 0.1) == 30  # nothing derived
    with pytest.raises(LookupError):
        memorization_onset({}, [{"step": 1, "metric": "fd", "ref": "test", "value": 1.0}])
