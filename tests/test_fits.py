"""Exponents with 95% intervals (benchbase.fits) and the multi-axis fits and collapse
comparison built on them (benchbase.exponents), on synthetic runs with known laws."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from benchbase.dynamics import Trajectory, format_fit, tau_fits
from benchbase.exponents import (PAPER_EXPONENTS, axis_fits, collapse_comparison, format_axis_fit,
                                 format_collapse_comparison)
from benchbase.fits import fit_log_linear, fit_power_law


def test_t_interval_matches_scipy_linregress():
    from scipy.stats import linregress, t

    rng = np.random.default_rng(1)
    n = np.repeat([32, 64, 128, 256, 512], 3).astype(float)
    tau = 50 * n ** 1.1 * np.exp(rng.normal(0, 0.2, len(n)))
    fit = fit_power_law(n, tau)
    ref = linregress(np.log(n), np.log(tau))
    half = t.ppf(0.975, len(n) - 2) * ref.stderr
    assert fit["ci95"] == pytest.approx([ref.slope - half, ref.slope + half])
    assert fit["dof"] == 13 and fit["distinct_x"] == 5 and fit["points"] == 15


def test_seed_bootstrap_covers_the_true_exponent_at_about_the_nominal_rate():
    """Coverage over 60 synthetic experiments (5 n x 3 seeds, noise 0.25 in log tau):
    the t interval is exact here, the stratified bootstrap somewhat narrower (3
    replicates per point); both cover far more often than not and agree in width."""
    covered_t = covered_b = 0
    widths = []
    for k in range(60):
        rng = np.random.default_rng(100 + k)
        n = np.repeat([32, 64, 128, 256, 512], 3).astype(float)
        tau = 80 * n ** 1.0 * np.exp(rng.normal(0, 0.25, len(n)))
        fit = fit_log_linear(n.reshape(-1, 1), tau, ["n"]).exponent("n")
        covered_t += fit.ci95[0] <= 1.0 <= fit.ci95[1]
        covered_b += fit.bootstrap95[0] <= 1.0 <= fit.bootstrap95[1]
        widths.append((fit.bootstrap95[1] - fit.bootstrap95[0]) / (fit.ci95[1] - fit.ci95[0]))
    assert covered_t >= 52 and covered_b >= 45
    assert 0.5 < np.median(widths) < 1.2


def test_bootstrap_is_reproducible_and_absent_without_replicates():
    n = np.repeat([32, 64, 128], 2).astype(float)
    tau = np.array([100, 120, 210, 190, 430, 380], dtype=float)
    a, b = fit_power_law(n, tau), fit_power_law(n, tau)
    assert a["bootstrap95"] == b["bootstrap95"] and a["bootstrap95"][0] < a["slope"] < a["bootstrap95"][1]
    single = fit_power_law([32, 64, 128], [100, 210, 430])
    assert single["bootstrap95"] is None and single["ci95"] is not None


def _run(run_id, n, seed, holdout=None, **sweep):
    """The fields of a RunRecord the fits read."""
    spec = SimpleNamespace(model=SimpleNamespace(label="flow", lr=sweep.get("model.lr", 1e-3)),
                           dataset=SimpleNamespace(label="digits"), budget=SimpleNamespace(
                               batch_size=sweep.get("budget.batch_size", 32)),
                           subset=SimpleNamespace(n=n, holdout=holdout), sweep={"n": n, **sweep}, trains=True,
                           identity=lambda: {"seed": seed, "subset": {"n": n}, "model": {"name": "flow", "config": {
                               "lr": sweep.get("model.lr", 1e-3)}}, "budget": {"batch_size": sweep.get("budget.batch_size", 32)}})
    return SimpleNamespace(run_id=run_id, seed=seed, n=n, spec=spec)


def _law(n, B, lr, noise=0.0):
    return 40.0 * n ** 1.0 * (B / 32) ** -0.5 * (lr / 1e-3) ** -1.0 * np.exp(noise)


def _grid(seeds=(0, 1, 2), noise=0.1):
    runs, records = [], {}
    rng = np.random.default_rng(7)
    for seed in seeds:
        for n in (32, 64, 128):
            for B in (32, 128):
                for lr in (5e-4, 1e-3, 2e-3):
                    rid = f"r{seed}-{n}-{B}-{lr}"
                    runs.append(_run(rid, n, seed, **{"budget.batch_size": B, "model.lr": lr}))
                    tau = _law(n, B, lr, rng.normal(0, noise))
                    records[rid] = {"tau_mem": tau, "tau_mem_copy": tau, "censored": None}
    return runs, records


def test_multi_axis_fit_recovers_the_exponents_with_intervals():
    runs, records = _grid()
    fits = axis_fits(runs, records)
    assert len(fits) == 1 and fits[0].axes == ["n", "batch_size", "lr"]
    fit = fits[0].fit
    for axis, true in (("n", 1.0), ("batch_size", -0.5), ("lr", -1.0)):
        c = fit.exponent(axis)
        assert c.ci95[0] < true < c.ci95[1] and c.bootstrap95[0] < true < c.bootstrap95[1]
        assert c.ci95[1] - c.ci95[0] < 0.2
    text = format_axis_fit(fits[0])
    assert "b_batch_size = -0.4" in text or "b_batch_size = -0.5" in text
    assert "95% CI" in text and "bootstrap over seeds" in text
    assert "the paper's normalization: b_n = 1, b_batch_size = -1, b_lr = -1" in text


def test_single_axis_tau_fit_prints_both_intervals():
    runs = [_run(f"r{s}-{n}", n, s) for s in (0, 1, 2) for n in (32, 64, 128, 256, 512)]
    rng = np.random.default_rng(3)
    records = {r.run_id: {"tau_mem": 30 * r.n * np.exp(rng.normal(0, 0.1)), "censored": None} for r in runs}
    (fit,) = tau_fits(runs, records)
    text = format_fit(fit)
    assert "slope 1.0" in text or "slope 0.9" in text
    assert "95% CI [" in text and "(t, 13 dof)" in text and "bootstrap over seeds [" in text
    assert "15 runs at 5 values of n" in text
    folds = [_run(f"f{s}-{n}", n, s, holdout=(1, 4), **{"subset.holdout": "1 of 4"}) for s in (0, 1) for n in (32, 64)]
    records.update({r.run_id: {"tau_mem": 1.0, "censored": None} for r in folds})
    (same,) = tau_fits(runs + folds, records)  # fold runs train on fewer than n: left out of the fit
    assert same["fit"]["slope"] == fit["fit"]["slope"] and same["runs"] == 15


def _trajectories(runs, records, law_exponents):
    """mem_ratio curves that rise in log step around each run's tau (a logistic in log
    step), tau from ``law_exponents``: the same curve up to a shift when the law holds."""
    steps = np.geomspace(10, 1e6, 60).astype(np.int64)
    out = {}
    for r in runs:
        tau = records[r.run_id]["tau_mem"]
        x = np.log10(steps) - np.log10(tau)
        out[r.run_id] = Trajectory(steps, {("mem_ratio", "train"): 1 / (1 + np.exp(-4 * x))})
    return out


def test_collapse_is_better_under_the_exponents_that_generated_the_curves():
    """Batch size enters as B^-0.5 (not the paper's B^-1): the measured exponents,
    fitted out of sample (other seeds), collapse the curves; the paper's do not."""
    runs, records = _grid(noise=0.02)
    trajs = _trajectories(runs, records, None)
    (cmp,) = collapse_comparison(runs, trajs, records, "mem_ratio")
    assert cmp.out_of_sample and cmp.seeds == 3 and cmp.axes == ["n", "batch_size", "lr"]
    assert cmp.spread_measured < 0.05 < cmp.spread_paper < cmp.spread_step
    assert all(abs(e["batch_size"] + 0.5) < 0.05 for e in cmp.exponents.values())
    assert "the measured exponents collapse the curves better" in format_collapse_comparison(cmp)
    assert PAPER_EXPONENTS["batch_size"] == -1.0


def test_local_exponents_find_a_learning_rate_that_turns_the_onset_around():
    """tau falls as lr^-1 up to 1e-3 and rises as lr^+1 beyond: the global exponent
    averages the two to about 0, the local ones recover -1 and +1 with intervals."""
    from benchbase.exponents import format_local_exponent, local_exponents

    runs, records = [], {}
    rng = np.random.default_rng(5)
    for seed in (0, 1, 2):
        for B in (16, 64):
            for lr in (2.5e-4, 1e-3, 4e-3):
                rid = f"r{seed}-{B}-{lr}"
                runs.append(_run(rid, 64, seed, **{"budget.batch_size": B, "model.lr": lr}))
                turn = (lr / 1e-3) ** (-1.0 if lr <= 1e-3 else 1.0)
                records[rid] = {"tau_mem": 500 * (B / 16) ** -0.5 * turn * np.exp(rng.normal(0, 0.05)),
                                "censored": None}
    (whole,) = axis_fits(runs, records)
    assert abs(whole.fit.exponent("lr").estimate) < 0.3
    local = local_exponents(runs, records)
    assert [(e.axis, e.lower, e.upper) for e in local] == [("lr", 2.5e-4, 1e-3), ("lr", 1e-3, 4e-3)]
    falling, rising = (e.fit.exponent("lr") for e in local)
    assert falling.ci95[0] < -1.0 < falling.ci95[1] and rising.ci95[0] < 1.0 < rising.ci95[1]
    assert abs(local[0].fit.exponent("batch_size").estimate + 0.5) < 0.1 and local[0].runs == 12
    assert "local b_lr between 0.00025 and 0.001: -1.0" in format_local_exponent(local[0]) \
        or "local b_lr between 0.00025 and 0.001: -0.9" in format_local_exponent(local[0])


def test_a_run_shared_with_another_suite_keeps_its_batch_size_and_learning_rate():
    """A run registered first by a width sweep is stored with that suite's sweep; in a
    batch/lr sweep it still sits at its own batch size and learning rate."""
    runs, records = _grid(noise=0.0)
    shared = [r for r in runs if r.spec.sweep["budget.batch_size"] == 32 and r.spec.sweep["model.lr"] == 1e-3]
    for r in shared:
        r.spec.sweep = {"n": r.n, "model.width": 256}
    (fit,) = axis_fits(runs, records)
    assert fit.axes == ["n", "batch_size", "lr"] and fit.fit.points == len(runs)
    assert fit.fit.exponent("batch_size").estimate == pytest.approx(-0.5)
