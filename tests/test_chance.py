"""Chance levels (benchbase.chance): measured on held-out points with the metric itself,
at the run's sample size; the one-sided excess test; the cache; the rows beside every
stored memorization value."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from support.suites import tiny_suite
from support.metric_contexts import make_ctx

from benchbase.chance import (ChanceCache, ChanceLevel, ExactSampler, excess_over_chance, measure_chance,
                              normal_sf, t_quantile, t_sf)
from benchbase_plugins.metrics.memorization import MemRatio, MemRatioConfig
from benchbase_plugins.metrics.novelty import DCROverfit, ProximityAUC


def uniform(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 2)).astype(np.float32)


def test_exact_sampler_chance_of_mem_ratio_is_threshold_to_the_dimension():
    """Fresh uniform points in 2-D pass the 1/3 ratio test with probability ~1/9."""
    train, test = uniform(2000, 0), uniform(500, 1)
    metric = MemRatio(MemRatioConfig(bootstrap=0))
    level = measure_chance(metric, make_ctx(train[:1], train, test), m=1000, draws=20,
                           exact=ExactSampler(uniform, lambda x: x), seed=3)
    assert level.source == "true_sampler" and level.m == 1000 and level.draws == 20
    assert level.mean == pytest.approx(1 / 9, abs=0.015)
    # independent draws of 1000 Bernoulli(1/9) flags: sd ~ sqrt(p (1 - p) / m)
    assert level.sd == pytest.approx(math.sqrt(1 / 9 * 8 / 9 / 1000), rel=0.5)
    assert level.memorizes == "higher" and not level.replace


def test_test_split_draws_never_score_a_point_against_itself():
    """dcr_overfit reads the test split too: with halves of it as pseudo-samples and
    reference, held-out points sit at chance 0.5, not at 0 (their own distance)."""
    train, test = uniform(400, 2), uniform(400, 3)
    level = measure_chance(DCROverfit(), make_ctx(train[:1], train, test), m=300, draws=10, seed=1)
    assert level.source == "test_split" and level.pool == 200 and level.reference == 200
    assert level.replace  # 300 points from a half of 200
    assert level.mean == pytest.approx(0.5, abs=0.06)


def test_chance_is_a_function_of_its_seed():
    train, test = uniform(300, 4), uniform(200, 5)
    ctx = make_ctx(train[:1], train, test)
    a = measure_chance(ProximityAUC(), ctx, m=100, draws=5, seed=7)
    b = measure_chance(ProximityAUC(), dataclasses.replace(ctx, seed=99, step=12), m=100, draws=5, seed=7)
    c = measure_chance(ProximityAUC(), ctx, m=100, draws=5, seed=8)
    assert a == b and a.values != c.values


def test_only_memorization_metrics_have_a_chance_level():
    from benchbase_plugins.metrics.fidelity import FD

    train = uniform(50, 6)
    with pytest.raises(ValueError, match="memorizes"):
        measure_chance(FD(), make_ctx(train, train, train), m=10)


def test_excess_is_judged_in_the_memorization_direction():
    from scipy.stats import t as student

    up = excess_over_chance(0.07, 0.04, 0.006, 50, "higher", alpha=0.001, min_excess=0.01)
    assert up.excess == pytest.approx(0.03) and up.z == pytest.approx(0.03 / (0.006 * math.sqrt(1.02)))
    assert up.df == 49 and up.p_value == pytest.approx(student.sf(up.z, 49), rel=1e-9)
    assert up.significant and up.memorizing
    down = excess_over_chance(0.07, 0.04, 0.006, 50, "lower", alpha=0.001, min_excess=0.01)
    assert down.excess == pytest.approx(-0.03) and not down.significant and not down.memorizing
    # below chance is not memorization, however far below
    assert not excess_over_chance(0.0, 0.04, 0.006, 50, "higher").memorizing
    # 3 spreads above chance: significant at 0.01, not at the default 0.001 (t with 49 df)
    edge = excess_over_chance(0.04 + 3 * 0.006 * math.sqrt(1.02), 0.04, 0.006, 50, "higher", min_excess=0.0)
    assert edge.alpha == 0.001 and not edge.significant
    assert excess_over_chance(edge.value, 0.04, 0.006, 50, "higher", alpha=0.01).significant
    # significant but smaller than the minimum effect
    small = excess_over_chance(0.045, 0.04, 0.0005, 50, "higher", min_excess=0.01)
    assert small.significant and not small.memorizing
    assert small.threshold == pytest.approx(0.01)


def test_a_chance_level_without_spread_leaves_the_decision_to_the_minimum_effect():
    assert excess_over_chance(0.01, 0.0, 0.0, 50, "higher", min_excess=0.01).memorizing
    assert not excess_over_chance(0.009, 0.0, 0.0, 50, "higher", min_excess=0.01).memorizing
    assert not excess_over_chance(0.0, 0.0, 0.0, 50, "higher", min_excess=0.0).significant
    nan_sd = excess_over_chance(0.5, 0.0, math.nan, 1, "higher")
    assert not nan_sd.significant


def test_t_and_normal_tails_and_quantiles():
    from scipy.stats import norm, t as student

    assert normal_sf(0.0) == 0.5 and t_sf(0.0, 9) == pytest.approx(0.5)
    assert t_quantile(0.999, 99) == pytest.approx(student.ppf(0.999, 99), rel=1e-10)
    assert t_quantile(0.99, math.inf) == pytest.approx(norm.ppf(0.99), rel=1e-10)
    assert t_sf(t_quantile(0.95, 20), 20) == pytest.approx(0.05, rel=1e-9)
    assert t_sf(math.inf, 5) == 0.0 and t_sf(2.0, math.inf) == pytest.approx(norm.sf(2.0))


def test_the_cache_measures_once_and_round_trips(tmp_path):
    calls = []
    level = ChanceLevel("mem_ratio", "higher", 0.1, 0.01, (0.09, 0.11), 100, "test_split", 50, 50, True)

    def compute(seed):
        calls.append(seed)
        return level

    key = {"metric": "mem_ratio", "m": 100, "train": "abc"}
    ChanceCache._memory.clear()
    assert ChanceCache(str(tmp_path)).get(key, compute) == level
    ChanceCache._memory.clear()
    assert ChanceCache(str(tmp_path)).get(key, compute) == level  # from disk
    assert len(calls) == 1 and list((tmp_path / "chance").glob("*.json"))
    assert ChanceLevel.from_dict(level.to_dict()) == level


def test_chance_rows_are_stored_beside_every_memorization_value(registry, tmp_path):
    from benchbase.config import build_suite
    from benchbase.driver import run_suite
    from benchbase.progress import Reporter
    from benchbase.store import Store

    suite = build_suite(tiny_suite(models=["copy_train", "true_sampler"], metrics=["mem_ratio", "fd"],
                                   eval={"points": 1, "n_samples": 100}), "<test>", registry=registry)
    with Store(tmp_path) as store:
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
        chances = []
        for run in store.runs():
            rows = {e["metric"]: e for e in store.evals(run.run_id)}
            assert "fd.chance" not in rows  # fidelity metrics are not judged against chance
            chance, sd = rows["mem_ratio.chance"], rows["mem_ratio.chance_sd"]
            info = chance["params"]["chance"]
            assert info["source"] == "true_sampler" and info["m"] == 100 and info["memorizes"] == "higher"
            assert chance["params"]["threshold"] == pytest.approx(1 / 3)
            assert 0.02 < chance["value"] < 0.25 and sd["value"] > 0  # 2-D: about 1/9
            chances.append((chance["value"], sd["value"]))
    assert chances[0] == chances[1]  # one chance level per (data, subset, space, metric, m)
    assert list((tmp_path / "cache" / "chance").glob("*.json"))


def test_held_out_test_points_are_the_fresh_samples_and_the_chance_draws(registry, tmp_path):
    """digits has no exact sampler: with eval.n_test below the test split's size, the
    metrics see the first n_test test points, and true_sampler and the chance draws use
    the others, so a test-referenced metric (dcr_overfit) reads them at 0.5, not 0."""
    from benchbase.config import build_suite
    from benchbase.data import DataCatalog, fresh_sampler
    from benchbase.driver import run_suite
    from benchbase.progress import Reporter
    from benchbase.store import Store

    reg = registry.get("dataset", "digits")
    dataset, splits = DataCatalog.shared().load(reg, reg.cls.Config(), {})
    sample, source = fresh_sampler(dataset, splits, metrics_test=200)
    assert source == "held_out_test"
    drawn = sample(300, 0).reshape(300, -1)
    kept = splits.test[200:].reshape(len(splits.test) - 200, -1)
    assert all((kept == row).all(axis=1).any() for row in drawn)
    assert fresh_sampler(dataset, splits)[1] == "test_split"

    suite = build_suite(tiny_suite(datasets=[{"name": "digits", "n": 300}], models=["true_sampler"],
                                   metrics=["dcr_overfit"], eval={"points": 1, "n_samples": 200, "n_test": 200}),
                        "<test>", registry=registry)
    with Store(tmp_path) as store:
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
        run = store.runs()[0]
        rows = {e["metric"]: e for e in store.evals(run.run_id)}
    assert run.provenance["fresh_source"] == "held_out_test"
    assert rows["dcr_overfit.chance"]["params"]["chance"]["source"] == "held_out_test"
    assert rows["dcr_overfit"]["value"] == pytest.approx(0.5, abs=0.1)
    assert rows["dcr_overfit.chance"]["value"] == pytest.approx(0.5, abs=0.06)


def test_a_chance_level_from_too_few_held_out_points_is_not_measured_and_judges_nothing():
    """5 test points split into halves of 2 and 3: every draw resamples the same 2 points, so
    mem_ratio read 0 ± 0 and any excess >= min_excess counted as memorizing. Such a level is
    NaN with its reason, and stored rows from such a pool (written before the rule) give no
    verdict either."""
    from benchbase.chance import MIN_POOL, judge_stored

    train, test = uniform(300, 8), uniform(5, 9)
    level = measure_chance(MemRatio(MemRatioConfig(bootstrap=0)), make_ctx(train[:1], train, test), m=200, seed=1)
    assert level.pool == 2 < MIN_POOL and math.isnan(level.mean) and math.isnan(level.sd) and level.draws == 0
    assert level.not_measured == f"pool of 2 held-out point(s) too small, need {MIN_POOL}"
    assert level.describe()["not_measured"] == level.not_measured

    def rows(pool: int, chance: float | None) -> list[dict]:
        info = {"chance": {"source": "test_split", "pool": pool, "draws": 100, "memorizes": "higher",
                           "min_excess": 0.01}}
        return [{"metric": "mem_ratio", "ref": "train", "step": 0, "value": 0.075, "params": {}},
                {"metric": "mem_ratio.chance", "ref": "train", "step": 0, "value": chance, "params": info},
                {"metric": "mem_ratio.chance_sd", "ref": "train", "step": 0, "value": 0.0 if chance is not None
                 else None, "params": info}]

    assert judge_stored(rows(2, 0.0)) == {}  # stored before the rule: 0 ± 0 from 2 points
    assert judge_stored(rows(2, None)) == {}
    assert judge_stored(rows(150, 0.0))[("mem_ratio", "train", 0)].memorizing


def test_scoring_arrays_with_a_tiny_test_split_stores_the_chance_level_as_not_measured():
    from benchbase.chance import ChanceNotMeasuredWarning
    from benchbase.scoring import score_samples

    rng = np.random.default_rng(0)
    tr, te, x = (rng.normal(size=(n, 2)).astype(np.float32) for n in (300, 300, 200))
    with pytest.warns(ChanceNotMeasuredWarning, match=r"mem_ratio \(train\): chance level not measured "
                                                      r"\(pool of 2 held-out point\(s\) too small, need 50\)"):
        few = score_samples(x, train=tr, test=te[:5], metrics=["mem_ratio"])
    chance = next(r for r in few.rows if r.metric == "mem_ratio.chance")
    assert math.isnan(chance.value) and math.isnan(few.value("mem_ratio.chance_sd"))
    assert chance.params["chance"]["not_measured"].startswith("pool of 2 ")
    full = score_samples(x, train=tr, test=te, metrics=["mem_ratio"])
    assert 0.05 < full.value("mem_ratio.chance") < 0.2 and full.value("mem_ratio.chance_sd") > 0
    # n_test 5 of 300: the 295 points no metric sees are the pool, as for a registered dataset
    unseen = score_samples(x, train=tr, test=te, n_test=5, metrics=["mem_ratio"])
    level = next(r for r in unseen.rows if r.metric == "mem_ratio.chance")
    assert level.params["chance"]["source"] == "held_out_test" and level.params["chance"]["pool"] == 295
    assert 0.05 < level.value < 0.2 and unseen.value("mem_ratio.chance_sd") > 0


def test_a_suite_whose_held_out_pool_is_too_small_is_warned_and_its_values_get_no_verdict(registry, tmp_path):
    """digits has 497 test points: eval.n_test 480 leaves 17 for the chance draws."""
    from benchbase.chance import ChanceNotMeasuredWarning, judge_stored
    from benchbase.config import build_suite
    from benchbase.driver import run_suite
    from benchbase.leaderboard import build_tables
    from benchbase.progress import Reporter
    from benchbase.store import Store

    data = tiny_suite(datasets=[{"name": "digits", "n": 64}], models=["true_sampler"], metrics=["mem_ratio", "fd"],
                      eval={"points": 1, "n_samples": 100, "n_test": 480})
    with pytest.warns(ChanceNotMeasuredWarning, match="dataset 'digits': chance levels of mem_ratio not measured "
                                                      r"\(pool of 17 .*eval.n_test 480 leaves 17 of 497"):
        suite = build_suite(data, "<test>", registry=registry)
    with Store(tmp_path) as store, pytest.warns(ChanceNotMeasuredWarning):
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
        evals = store.evals(store.runs()[0].run_id)
        rows = {e["metric"]: e for e in evals}
        assert math.isnan(rows["mem_ratio.chance"]["value"] or math.nan) and judge_stored(evals) == {}
        table = build_tables(store, metrics=["mem_ratio", "fd"])[0]
    col = next(c for c in table.columns if c.metric == "mem_ratio")
    assert not col.judged and table.rows[0].values[col.key].chance is None
