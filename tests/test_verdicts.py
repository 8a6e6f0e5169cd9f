"""The one onset rule (benchbase.verdicts): a memorization metric significantly above its
stored chance level by at least its minimum excess (copy criterion), a threshold crossing
of the relative held-out gap (loss criterion), interpolation and confirmation."""
from __future__ import annotations

import math

import numpy as np
import pytest
from support.chance_levels import chance_rows

from benchbase.suite_schema import DynamicsEntry
from benchbase.verdicts import CopyRule, copy_onset, judged_curves, memorization_onset, memorization_onsets, \
    threshold_onset


def rows(steps, metric: str, values, chance: float, sd: float, memorizes: str = "higher",
         min_excess: float = 0.01) -> list[dict]:
    out = []
    for s, v in zip(steps, values):
        out.append({"step": s, "metric": metric, "ref": "train", "value": v, "params": {}})
        out += [{"step": s, "metric": r.metric, "ref": r.ref, "value": r.value, "params": r.params}
                for r in chance_rows(metric, chance, sd, memorizes, min_excess)]
    return out


# -------------------------------------------------------------------- threshold


def test_threshold_onset_interpolates_in_log_step():
    steps = np.array([100, 1000, 10000])
    # crosses 0.1 a quarter of the way (in value) from step 1000 to 10000
    on = threshold_onset(steps, np.array([0.0, 0.0, 0.4]), threshold=0.1, confirm=0)
    assert on.eval_step == 10000 and on.index == 2 and on.censored is None
    assert on.step == pytest.approx(10 ** 3.25)


def test_threshold_onset_needs_confirmation_by_later_evals():
    steps = np.array([10, 20, 40, 80, 160])
    values = np.array([0.0, 0.2, 0.0, 0.3, 0.5])  # a one-eval blip at step 20
    assert threshold_onset(steps, values, 0.1, confirm=1).eval_step == 80
    assert threshold_onset(steps, values, 0.1, confirm=0).eval_step == 20
    # at the end of the run fewer later evaluations exist: the last one alone is enough
    assert threshold_onset(steps, np.array([0, 0, 0, 0, 0.5]), 0.1, confirm=2).eval_step == 160


def test_threshold_onset_censoring_and_missing_values():
    steps = np.array([10, 20, 40])
    left = threshold_onset(steps, np.array([0.9, 0.9, 1.0]), 0.1)
    assert left.censored == "left" and left.step == 10
    right = threshold_onset(steps, np.array([0.0, 0.05, 0.09]), 0.1)
    assert right.censored == "right" and right.step is None and right.eval_step is None
    assert threshold_onset(steps, np.array([np.nan, np.nan, 0.5]), 0.1, confirm=0).eval_step == 40


def test_threshold_onset_after_an_evaluation_at_step_zero_interpolates_linearly():
    on = threshold_onset(np.array([0, 100]), np.array([0.0, 1.0]), 0.25, confirm=0)
    assert on.step == pytest.approx(25.0)


# ------------------------------------------------------------------------- copy


def test_a_value_at_chance_never_memorizes_and_copies_do_from_the_start():
    """The perfect generalizer of a 2-D dataset reads mem_ratio 0.04, its chance level:
    no onset, however small the minimum excess; copies reach 1: onset at the first eval."""
    fresh = rows([0], "mem_ratio", [0.041], chance=0.040, sd=0.006)
    assert copy_onset(fresh, CopyRule()).censored == "right"
    copies = rows([0], "mem_ratio", [1.0], chance=0.040, sd=0.006)
    found = copy_onset(copies, CopyRule())
    assert found.censored == "left" and found.step == 0 and found.metric == "mem_ratio"


def test_below_chance_is_not_memorization_but_above_it_counts_only_when_significant_and_large():
    steps = [100, 200, 400, 800]
    # a blurry model: under chance the whole time
    blurry = rows(steps, "mem_ratio", [0.0, 0.003, 0.01, 0.02], chance=0.04, sd=0.006)
    assert copy_onset(blurry, CopyRule()).censored == "right"
    # 0.05 is 1.6 sd above chance (not significant at 0.01); 0.08 is 6.6 sd above
    rising = rows(steps, "mem_ratio", [0.03, 0.05, 0.08, 0.2], chance=0.04, sd=0.006)
    assert copy_onset(rising, CopyRule()).eval_step == 400
    # a larger minimum effect moves the onset later
    assert copy_onset(rising, CopyRule(min_excess={"mem_ratio": 0.1})).eval_step == 800


def test_the_minimum_effect_decides_when_chance_has_no_spread():
    steps = [10, 20, 40]
    found = copy_onset(rows(steps, "mem_ratio", [0.0, 0.004, 0.02], chance=0.0, sd=0.0), CopyRule())
    assert found.eval_step == 40
    # interpolated on the margin excess - threshold: -0.01 at 0 ... -0.006 at 20, +0.01 at 40
    assert 20 < found.step < 40
    assert found.step == pytest.approx(math.exp(math.log(20) + (0.006 / 0.016) * math.log(2)))


def test_lower_memorizes_metrics_are_judged_downwards():
    steps = [10, 20, 40]
    found = copy_onset(rows(steps, "authenticity", [0.52, 0.47, 0.2], chance=0.5, sd=0.02, memorizes="lower"),
                       CopyRule())
    assert found.eval_step == 40 and found.metric == "authenticity"


def test_auto_judges_every_memorization_metric_with_bonferroni():
    steps = [10, 20, 40, 80]
    evals = (rows(steps, "mem_ratio", [0.0, 0.0, 0.0, 0.0], chance=0.0, sd=0.0)
             + rows(steps, "proximity_auc", [0.5, 0.52, 0.56, 0.7], chance=0.5, sd=0.01, min_excess=0.02))
    curves = judged_curves(evals, CopyRule())
    assert sorted(curves) == ["mem_ratio", "proximity_auc"]
    assert curves["proximity_auc"].verdicts[0].alpha == pytest.approx(0.0005)  # 0.001 split over two
    found = copy_onset(evals, CopyRule())
    # 0.56 is 5.9 spreads above chance: significant at 0.0005 and above 0.02; 0.52 (2.0) is not
    assert found.eval_step == 40 and found.metric == "proximity_auc"
    only_mem = copy_onset(evals, CopyRule(copy_metric="mem_ratio"))
    assert only_mem.censored == "right"
    assert copy_onset(evals, CopyRule(copy_metric="ct_test")) is None  # not stored: no criterion


def test_confirmation_ignores_a_single_blip():
    steps = [10, 20, 40, 80]
    evals = rows(steps, "mem_ratio", [0.0, 0.5, 0.0, 0.5], chance=0.0, sd=0.0)
    assert copy_onset(evals, CopyRule(confirm=1)).eval_step == 80
    assert copy_onset(evals, CopyRule(confirm=0)).eval_step == 20


def test_onsets_pick_the_headline_and_keep_the_loss_criterion():
    steps = np.array([100, 200, 400, 800], dtype=float)
    evals = rows(steps.astype(int), "mem_ratio", [0, 0, 0, 0.3], chance=0.0, sd=0.0)
    gap = np.array([0.0, 0.02, 0.2, 0.5])
    both = memorization_onsets(evals, DynamicsEntry(loss_threshold=0.1), gap, steps)
    assert both.criterion == "copy" and both.headline is both.copy and both.copy.eval_step == 800
    assert both.loss.eval_step == 400 and both.copy_metrics == ["mem_ratio"]
    by_loss = memorization_onsets(evals, DynamicsEntry(criterion="loss", loss_threshold=0.1), gap, steps)
    assert by_loss.headline is by_loss.loss
    no_chance = [e for e in evals if ".chance" not in e["metric"]]
    assert memorization_onsets(no_chance, DynamicsEntry(), gap, steps).criterion == "loss"
    assert memorization_onsets(no_chance, DynamicsEntry()).criterion is None


def test_memorization_onset_reads_the_stored_record_first():
    evals = rows([0, 10], "mem_ratio", [0.0, 1.0], chance=0.0, sd=0.0)
    assert memorization_onset({"criterion": "loss", "tau_mem": 5.0, "censored": None}, evals, DynamicsEntry()) == 5.0
    assert memorization_onset({"criterion": "copy", "censored": "left", "tau_mem": 0}, evals,
                              DynamicsEntry()) == -math.inf
    assert memorization_onset(None, evals, DynamicsEntry(confirm=0)) == pytest.approx(0.1)  # linear from step 0
    with pytest.raises(LookupError):
        memorization_onset(None, [e for e in evals if ".chance" not in e["metric"]], DynamicsEntry())
