"""mem_ratio, copy_cosine and authenticity against independent references.

References: scikit-learn's exact NearestNeighbors (float64 inputs) for the distance
based flags, a direct float64 numpy cosine matrix for copy_cosine. On continuous
random data the flags must agree exactly (the tests keep every ratio away from the
threshold by more than the 1e-6 distance tolerance); fractions agree exactly.
"""
from __future__ import annotations

import numpy as np
import pytest
from support.metric_contexts import gaussian, make_ctx
from sklearn.neighbors import NearestNeighbors

from benchbase_plugins.metrics.memorization import (Authenticity, AuthenticityConfig, CopyCosine, CopyCosineConfig,
                                                    MemRatio, MemRatioConfig, bootstrap_mean_ci)


def nn_sklearn(query, ref, k):
    return NearestNeighbors(n_neighbors=k).fit(ref.astype(np.float64)).kneighbors(query.astype(np.float64))


@pytest.mark.parametrize("threshold", [1 / 3, 0.6])
def test_mem_ratio_matches_sklearn(threshold):
    train = gaussian(600, 3, 0)
    gen = np.concatenate([train[:40] + gaussian(40, 3, 1, scale=1e-3), gaussian(260, 3, 2)])
    d, _ = nn_sklearn(gen, train, 2)
    ratio = d[:, 0] / d[:, 1]
    assert np.abs(ratio - threshold).min() > 1e-6  # no flag decided by rounding
    expected = float((ratio < threshold).mean())
    out = MemRatio(MemRatioConfig(threshold=threshold, bootstrap=200)).compute(make_ctx(gen, train))
    assert out["mem_ratio"] == expected
    assert out["mem_ratio.ci_low"] <= expected <= out["mem_ratio.ci_high"]


def test_mem_ratio_counts_copies_of_duplicated_training_points():
    train = gaussian(50, 4, 3)
    train = np.concatenate([train, train[:5]])  # duplicates: d1 = d2 = 0 for their copies
    out = MemRatio().compute(make_ctx(train[:5].copy(), train))
    assert out["mem_ratio"] == 1.0


def test_bootstrap_ci_matches_resampling_the_flags():
    """The binomial shortcut has the distribution of resampled means of 0/1 flags."""
    flags = (np.random.default_rng(4).random(400) < 0.3).astype(float)
    lo, hi = bootstrap_mean_ci(flags, np.random.default_rng(5), 4000, 0.95)
    idx = np.random.default_rng(6).integers(0, 400, size=(4000, 400))
    ref_lo, ref_hi = np.quantile(flags[idx].mean(1), [0.025, 0.975])
    assert lo == pytest.approx(ref_lo, abs=0.01) and hi == pytest.approx(ref_hi, abs=0.01)
    assert lo < flags.mean() < hi
    assert np.isnan(bootstrap_mean_ci(flags, np.random.default_rng(0), 0, 0.95)[0])


def test_copy_cosine_matches_float64_numpy():
    train = gaussian(500, 32, 7)
    gen = np.concatenate([train[:30] * 2.5, gaussian(170, 32, 8)])  # scaled copies: cosine 1
    a = gen.astype(np.float64) / np.linalg.norm(gen, axis=1, keepdims=True)
    b = train.astype(np.float64) / np.linalg.norm(train, axis=1, keepdims=True)
    s = (a @ b.T).max(1)
    tau = 0.45
    assert np.abs(s - tau).min() > 1e-6
    out = CopyCosine(CopyCosineConfig(tau=tau)).compute(make_ctx(gen, train))
    assert out["copy_cosine"] == float((s > tau).mean())
    assert out["copy_cosine.p95"] == pytest.approx(float(np.quantile(s, 0.95)), abs=1e-7)
    assert out["copy_cosine"] >= 30 / 200


def test_copy_cosine_zero_vectors_have_similarity_zero():
    train = gaussian(20, 4, 9)
    out = CopyCosine(CopyCosineConfig(tau=0.1)).compute(make_ctx(np.zeros((5, 4)), train))
    assert out["copy_cosine"] == 0.0 and out["copy_cosine.p95"] == 0.0


def authenticity_reference(gen, train):
    """Alaa et al. 2022, per generated sample, with sklearn neighbours."""
    d_gen, idx = nn_sklearn(gen, train, 1)
    d_train, _ = nn_sklearn(train, train, 2)  # column 0 is the point itself
    return float((d_gen[:, 0] > d_train[idx[:, 0], 1]).mean())


def test_authenticity_matches_sklearn_per_generated_sample():
    train = gaussian(400, 5, 10)
    gen = np.concatenate([train[:60] + gaussian(60, 5, 11, scale=0.01), gaussian(240, 5, 12, scale=1.3)])
    value = Authenticity(AuthenticityConfig()).compute(make_ctx(gen, train))["authenticity"]
    assert value == authenticity_reference(gen, train)
    # the per-real-sample variant (a known bug) gives a different number here
    d_train, _ = nn_sklearn(train, train, 2)
    d_real_to_gen, _ = nn_sklearn(train, gen, 1)
    per_real = float((d_real_to_gen[:, 0] > d_train[:, 1]).mean())
    assert per_real != value


def test_exact_copies_are_never_authentic():
    train = gaussian(100, 3, 13)
    assert Authenticity().compute(make_ctx(train[:50], train))["authenticity"] == 0.0


@pytest.mark.parametrize("config, message", [
    (dict(threshold=-1), r"threshold must be in \(0, 1\], got -1"),
    (dict(threshold=5), r"threshold must be in \(0, 1\], got 5"),
    (dict(bootstrap=-1), "bootstrap must be >= 0"),
    (dict(confidence=1.5), r"confidence must be in \(0, 1\)"),
])
def test_mem_ratio_refuses_nonsense_configs(config, message):
    """d1 <= d2: a threshold above 1 would call every sample a copy, one below 0 none."""
    with pytest.raises(ValueError, match=message):
        MemRatioConfig(**config)
    assert MemRatioConfig(threshold=1.0).threshold == 1.0


def test_copy_cosine_tau_is_a_cosine():
    with pytest.raises(ValueError, match=r"tau must be a cosine similarity in \[-1, 1\]"):
        CopyCosineConfig(tau=2.0)


def test_nearest_neighbour_ratios_declare_two_training_points():
    assert MemRatio().min_points() == 2 and Authenticity().min_points() == 2
