"""The kde baseline: exact density, denoiser and samples, and a run on a real suite."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

from benchbase import Batch
from benchbase.store import Store
from benchbase.testing import make_train_data, run_suite_quietly
from benchbase_plugins.models.kde import KDE, KDEConfig


@pytest.fixture
def fitted():
    model = KDE(KDEConfig(bandwidth=0.3))
    data = make_train_data("numpy", "vector", n=50)
    return model, model.init(data, 0), data


def test_log_prob_is_the_gaussian_mixture_over_the_training_points(fitted):
    model, state, data = fitted
    x = np.random.default_rng(1).normal(size=(7, 2)).astype(np.float32)
    h2 = 0.3 ** 2
    d2 = ((x[:, None, :].astype(np.float64) - data.x_numpy[None].astype(np.float64)) ** 2).sum(-1)
    expected = logsumexp(-d2 / (2 * h2), axis=1) - np.log(50) - np.log(2 * np.pi * h2)
    np.testing.assert_allclose(model.log_prob(state, x), expected, rtol=1e-6)
    assert model.heldout_loss(state, Batch(x)) == pytest.approx(-expected.mean() / 2, rel=1e-6)


def test_denoise_is_the_posterior_mean_and_tends_to_the_empirical_denoiser(fitted):
    model, state, data = fitted
    y = np.random.default_rng(2).normal(size=(5, 2)).astype(np.float32)
    train = data.x_numpy.astype(np.float64)
    for sigma in (0.05, 0.5, 3.0):
        var = 0.09 + sigma ** 2
        logits = -((y[:, None, :] - train[None]) ** 2).sum(-1) / (2 * var)
        w = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
        expected = w @ train + 0.09 / var * (y - w @ train)
        np.testing.assert_allclose(model.denoise(state, y, sigma), expected, rtol=1e-5, atol=1e-6)
    tiny = KDE(KDEConfig(bandwidth=1e-6))
    sharp = tiny.denoise(tiny.init(data, 0), y, 0.2)
    logits = -((y[:, None, :] - train[None]) ** 2).sum(-1) / (2 * 0.04)
    np.testing.assert_allclose(sharp, np.exp(logits - logsumexp(logits, 1, keepdims=True)) @ train, atol=1e-5)


def test_samples_are_training_points_plus_bandwidth_noise():
    data = make_train_data("numpy", "vector", n=8)
    model = KDE(KDEConfig(bandwidth=0.01))
    state = model.init(data, 0)
    x = model.sample(state, 4000, np.random.default_rng(3))
    gaps = np.abs(x[:, None, :] - data.x_numpy[None]).max(-1).min(1)
    offsets = x - data.x_numpy[np.abs(x[:, None, :] - data.x_numpy[None]).max(-1).argmin(1)]
    assert gaps.max() < 0.06 and offsets.std() == pytest.approx(0.01, rel=0.05)
    assert model.param_count(state) == 16  # the 8 x 2 values it keeps


def test_bandwidth_must_be_positive():
    with pytest.raises(ValueError, match="bandwidth must be > 0"):
        KDE(KDEConfig(bandwidth=0.0))


def test_a_small_bandwidth_memorizes_and_a_large_one_blurs(registry, tmp_path):
    suite = {
        "name": "kde", "seeds": [0], "device": "cpu",
        "datasets": [{"name": "digits", "n": 256}],
        "models": [{"name": "kde", "label": "kde_0.05", "config": {"bandwidth": 0.05}},
                   {"name": "kde", "label": "kde_0.5", "config": {"bandwidth": 0.5}}],
        "metrics": ["mem_ratio", "fd", {"name": "heldout_gap", "config": {"min_evaluations": 256}}],
        "budget": {"batch_size": 32, "steps": 10},
        "eval": {"n_samples": 300},
    }
    run = run_suite_quietly(suite, tmp_path, registry=registry)
    assert run.result.ok
    rows = {r["model"]: r for r in run.rows}
    sharp, blurred = rows["kde_0.05"]["metrics"], rows["kde_0.5"]["metrics"]
    assert sharp["mem_ratio[train]"]["mean"] > 0.9 > 0.1 > blurred["mem_ratio[train]"]["mean"]
    assert sharp["heldout_gap[test]"]["mean"] > blurred["heldout_gap[test]"]["mean"] > 0
    assert rows["kde_0.05"]["family"] == "nonparametric"
    with Store(tmp_path) as store:
        assert {r.summary["param_count"] for r in store.runs()} == {256 * 64}  # the values it keeps
