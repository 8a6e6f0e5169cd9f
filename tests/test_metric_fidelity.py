"""fd, kid, swd and w2_exact against independent references on random data.

- fd: pytorch-fid's ``calculate_frechet_distance`` formula with scipy.linalg.sqrtm in
  float64, written out here because pytorch-fid imports torchvision at module level
  (not installable here). Tolerance 1e-6 relative.
- kid: torch-fidelity's ``mmd2`` loop over subsets, written out in float64 numpy on
  the same subset indices. Tolerance 1e-9 relative.
- swd: POT ``ot.sliced_wasserstein_distance`` with the same seed (same directions).
  Tolerance 1e-6 relative (our projections are float32, POT's float64).
- w2_exact: POT ``ot.emd2`` and, for equal sizes, scipy's linear_sum_assignment
  (an optimal matching is an optimal plan between uniform measures of equal size).
"""
from __future__ import annotations

import numpy as np
import ot
import pytest
from support.metric_contexts import gaussian, make_ctx
from scipy import linalg
from scipy.optimize import linear_sum_assignment

from benchbase_plugins.metrics import fidelity
from benchbase_plugins.metrics.fidelity import (FD, KID, SWD, W2Exact, KIDConfig, SWDConfig, W2ExactConfig,
                                                frechet_distance, gaussian_stats, kid_subsets, polynomial_mmd2,
                                                sliced_wasserstein)


def pytorch_fid_reference(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid calculate_frechet_distance, transcribed (scipy sqrtm, float64)."""
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("d,n,shift", [(8, 500, 0.3), (64, 1000, 0.0), (200, 2000, 0.05)])
def test_fd_matches_pytorch_fid_formula(d, n, shift):
    rng = np.random.default_rng(d)
    a = gaussian(n, d, 1) @ rng.standard_normal((d, d)).astype(np.float32) / np.sqrt(d)
    b = gaussian(n, d, 2, shift=shift) * 1.2
    mu1, s1 = gaussian_stats(a)
    mu2, s2 = gaussian_stats(b)
    ref = pytorch_fid_reference(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-6)
    value = FD().compute(make_ctx(a, b, ref_name="train"))["fd"]
    assert value == pytest.approx(ref, rel=1e-6)


def test_fd_with_singular_covariance_matches_reference():
    """Fewer samples than dimensions (the eigh path): still the reference value."""
    a, b = gaussian(30, 50, 3), gaussian(40, 50, 4, shift=0.2)
    mu1, s1 = gaussian_stats(a)
    mu2, s2 = gaussian_stats(b)
    assert np.linalg.matrix_rank(s1) < 50
    ref = pytorch_fid_reference(mu1, s1, mu2, s2)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(ref, rel=1e-6)


def test_fd_of_identical_sets_is_zero_and_stats_are_unbiased():
    x = gaussian(300, 10, 5)
    mu, s = gaussian_stats(x)
    np.testing.assert_allclose(s, np.cov(x.astype(np.float64), rowvar=False, ddof=1))
    assert abs(frechet_distance(mu, s, mu, s)) < 1e-9


def kid_reference(f1, f2, gen_idx, ref_idx, degree=3, coef0=1.0):
    """torch-fidelity's kid loop (mmd2 per subset, polynomial kernel), float64 numpy."""
    f1, f2 = f1.astype(np.float64), f2.astype(np.float64)
    d = f1.shape[1]
    out = []
    for gi, ri in zip(gen_idx, ref_idx):
        x, y = f1[gi], f2[ri]
        m = len(x)
        k11 = (x @ x.T / d + coef0) ** degree
        k22 = (y @ y.T / d + coef0) ** degree
        k12 = (x @ y.T / d + coef0) ** degree
        value = ((k11.sum() - np.trace(k11)) + (k22.sum() - np.trace(k22))) / (m * (m - 1))
        out.append(value - 2 * k12.sum() / m**2)
    return np.array(out)


@pytest.mark.parametrize("max_gram", [1 << 25, 1000])  # full Gram path, then per-subset blocks
def test_kid_matches_torch_fidelity_formula(max_gram):
    gen, ref = gaussian(300, 12, 6, shift=0.1), gaussian(450, 12, 7)
    gi, ri = kid_subsets(len(gen), len(ref), subsets=7, subset_size=200, rng=np.random.default_rng(0))
    assert gi.shape == ri.shape == (7, 200)
    assert all(len(set(row)) == 200 for row in gi)  # without replacement within a subset
    ours = polynomial_mmd2(gen, ref, gi, ri, max_gram=max_gram)
    np.testing.assert_allclose(ours, kid_reference(gen, ref, gi, ri), rtol=1e-9)


def test_kid_metric_adapts_subset_size_to_small_sets():
    gen, ref = gaussian(120, 5, 8), gaussian(90, 5, 9, shift=0.5)
    out = KID(KIDConfig(subsets=10, subset_size=1000)).compute(make_ctx(gen, ref))
    assert out["kid.subset_size"] == 90
    assert out["kid"] > 0.01  # shifted: clearly positive
    # both sets covered entirely: one exact subset, no spread
    same = KID().compute(make_ctx(gen[:90], ref))
    gi, ri = np.arange(90)[None], np.arange(90)[None]
    assert same["kid.std"] == 0.0
    assert same["kid"] == pytest.approx(kid_reference(gen[:90], ref, gi, ri)[0], rel=1e-9)


@pytest.mark.parametrize("n,m", [(300, 300), (250, 170)])
def test_swd_matches_pot(n, m):
    x, y = gaussian(n, 20, 10), gaussian(m, 20, 11, shift=0.3, scale=1.5)
    ref = ot.sliced_wasserstein_distance(x.astype(np.float64), y.astype(np.float64), n_projections=64, p=2,
                                         seed=3)
    assert sliced_wasserstein(x, y, n_projections=64, p=2, seed=3) == pytest.approx(float(ref), rel=1e-6)
    ref1 = ot.sliced_wasserstein_distance(x.astype(np.float64), y.astype(np.float64), n_projections=16, p=1,
                                          seed=4)
    assert sliced_wasserstein(x, y, n_projections=16, p=1, seed=4) == pytest.approx(float(ref1), rel=1e-6)


def test_swd_metric_uses_config_and_subsamples():
    x, y = gaussian(500, 4, 12), gaussian(400, 4, 13, shift=1.0)
    out = SWD(SWDConfig(n_projections=32, max_points=10_000)).compute(make_ctx(x, y))
    ref = ot.sliced_wasserstein_distance(x.astype(np.float64), y.astype(np.float64), n_projections=32, seed=0)
    assert out["swd"] == pytest.approx(float(ref), rel=1e-6)
    small = SWD(SWDConfig(n_projections=32, max_points=100)).compute(make_ctx(x, y))["swd"]
    assert small != out["swd"] and small == pytest.approx(out["swd"], rel=0.5)


def test_w2_exact_matches_pot_and_an_optimal_matching():
    x, y = gaussian(60, 7, 14), gaussian(60, 7, 15, shift=0.4)
    cost = ((x.astype(np.float64)[:, None] - y.astype(np.float64)[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    matching = np.sqrt(cost[rows, cols].mean())
    pot = np.sqrt(ot.emd2(ot.unif(60), ot.unif(60), cost))
    out = W2Exact().compute(make_ctx(x, y))
    assert out["w2_exact"] == pytest.approx(matching, rel=1e-9)
    assert out["w2_exact"] == pytest.approx(pot, rel=1e-9)
    # unequal sizes: POT on the same cost
    z = gaussian(45, 7, 16)
    cost_xz = ((x.astype(np.float64)[:, None] - z.astype(np.float64)[None]) ** 2).sum(-1)
    ref = np.sqrt(ot.emd2(ot.unif(60), ot.unif(45), cost_xz))
    assert W2Exact(W2ExactConfig(max_points=100)).compute(make_ctx(x, z))["w2_exact"] == pytest.approx(ref, rel=1e-9)


def test_subsample_is_deterministic_and_bounded():
    x = gaussian(100, 3, 17)
    a = fidelity.subsample(x, 10, np.random.default_rng(1))
    b = fidelity.subsample(x, 10, np.random.default_rng(1))
    assert a.shape == (10, 3) and np.array_equal(a, b)
    assert fidelity.subsample(x, 1000, np.random.default_rng(1)).shape == (100, 3)


@pytest.mark.parametrize("config, message", [
    (lambda: SWDConfig(n_projections=0), "n_projections must be at least 1, got 0"),
    (lambda: SWDConfig(n_projections=-3), "n_projections must be at least 1, got -3"),
    (lambda: SWDConfig(p=0), "p must be at least 1"),
    (lambda: KIDConfig(subset_size=1), "subset_size >= 2"),
    (lambda: W2ExactConfig(num_iter_max=0), "num_iter_max must be at least 1"),
])
def test_nonsense_configs_are_refused(config, message):
    """A config no evaluation can use (no direction, no iteration) is refused when the suite is read."""
    with pytest.raises(ValueError, match=message):
        config()


def test_fd_and_kid_declare_the_points_they_need():
    """Two points per set (a covariance, a leave-one-out estimator): the planner checks the suite's sizes."""
    assert FD().min_points() == 2 and KID().min_points() == 2 and SWD().min_points() == 1
