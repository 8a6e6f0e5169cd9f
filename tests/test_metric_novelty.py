"""dcr_overfit, novelty_ratio, proximity_auc and ct_test against independent references.

References: scikit-learn NearestNeighbors for distances, scikit-learn KMeans for
the cells, scipy.stats.mannwhitneyu for each cell's U statistic (Z from the normal
approximation with Meehan et al.'s continuity correction and without tie
correction), scikit-learn's roc_auc_score for proximity_auc. Fractions agree
exactly; C_T to 1e-6 relative.
"""
from __future__ import annotations

import numpy as np
import pytest
from support.metric_contexts import gaussian, make_ctx
from scipy.stats import mannwhitneyu
from sklearn.cluster import KMeans
from sklearn.neighbors import NearestNeighbors

from benchbase_plugins.metrics.novelty import (CTTest, CTTestConfig, DCROverfit, NoveltyRatio, c_t_statistic,
                                               mann_whitney_u, pca_projection)


def nn1(query, ref):
    d, _ = NearestNeighbors(n_neighbors=1).fit(ref.astype(np.float64)).kneighbors(query.astype(np.float64))
    return d[:, 0]


def test_dcr_overfit_matches_sklearn_on_equal_size_sets():
    train, test = gaussian(300, 4, 0), gaussian(300, 4, 1)
    gen = np.concatenate([train[:90] + gaussian(90, 4, 2, scale=0.01), gaussian(210, 4, 3)])
    expected = float((nn1(gen, train) < nn1(gen, test)).mean())
    out = DCROverfit().compute(make_ctx(gen, train, test))
    assert out["dcr_overfit"] == expected and out["dcr_overfit.n"] == 300


def test_dcr_overfit_subsamples_the_larger_set_and_scores_ties_half():
    train, test = gaussian(100, 3, 4), gaussian(400, 3, 5)
    out = DCROverfit().compute(make_ctx(train[:40], train, test))
    assert out["dcr_overfit.n"] == 100 and out["dcr_overfit"] == 1.0
    both = gaussian(50, 3, 6)
    assert DCROverfit().compute(make_ctx(both[:10], both, both))["dcr_overfit"] == 0.5


def test_novelty_ratio_matches_sklearn():
    train, test = gaussian(400, 6, 7), gaussian(200, 6, 8)
    gen = gaussian(250, 6, 9, scale=1.4)
    out = NoveltyRatio().compute(make_ctx(gen, train, test))
    expected = np.median(nn1(gen, train)) / np.median(nn1(test, train))
    assert out["novelty_ratio"] == pytest.approx(expected, rel=1e-9)
    assert NoveltyRatio().compute(make_ctx(train[:100], train, test))["novelty_ratio"] == 0.0


def test_mann_whitney_u_matches_scipy_with_ties():
    rng = np.random.default_rng(10)
    x, y = rng.integers(0, 20, 70).astype(float), rng.integers(0, 20, 55).astype(float)
    assert mann_whitney_u(x, y) == mannwhitneyu(x, y).statistic
    x, y = rng.random(40), rng.random(33)
    assert mann_whitney_u(x, y) == mannwhitneyu(x, y).statistic


def z_reference(gen_d, test_d):
    """Meehan et al.'s Zu: scipy's U of the generated distances, mean nm/2 - 0.5 (their
    continuity correction), no tie correction."""
    m, n = len(gen_d), len(test_d)
    u = mannwhitneyu(gen_d, test_d, alternative="less").statistic
    return (u - (m * n / 2 - 0.5)) / np.sqrt(m * n * (m + n + 1) / 12)


def test_c_t_skips_sparse_cells_without_misaligning_the_others():
    """Cell 1 has too few generated samples and cell 3 none: the weights of cells 0, 2
    and 4 must stay with their own Z (the reference code's misalignment bug)."""
    rng = np.random.default_rng(11)
    test_cells = np.repeat([0, 1, 2, 3, 4], [30, 40, 50, 20, 60])
    gen_cells = np.repeat([0, 1, 2, 4], [25, 3, 40, 35])
    test_d, gen_d = rng.random(len(test_cells)), rng.random(len(gen_cells)) * 0.8
    value, z, used = c_t_statistic(test_d, test_cells, gen_d, gen_cells, n_cells=5, min_gen=20)
    assert used.tolist() == [True, False, True, False, True]
    expected_z = {c: z_reference(gen_d[gen_cells == c], test_d[test_cells == c]) for c in (0, 2, 4)}
    for c, zc in expected_z.items():
        assert z[c] == pytest.approx(zc, rel=1e-12)
    assert np.isnan(z[1]) and np.isnan(z[3])
    weights = {0: 30 / 200, 2: 50 / 200, 4: 60 / 200}
    expected = sum(weights[c] * expected_z[c] for c in weights) / sum(weights.values())
    assert value == pytest.approx(expected, rel=1e-12)


def test_c_t_is_nan_when_no_cell_has_enough_samples():
    value, _, used = c_t_statistic(np.ones(10), np.zeros(10, int), np.ones(5), np.zeros(5, int), 3, 20)
    assert np.isnan(value) and not used.any()


def ct_reference(gen, train, test, n_cells, more_than=20):
    """Meehan et al.'s reference pipeline: k-means cells of T; in each cell the distances
    of generated and test points to the training points of that cell; cells with more
    than 20 generated samples; weights P_S(cell)."""
    km = KMeans(n_clusters=n_cells, n_init=10, random_state=0).fit(train.astype(np.float64))
    train_cells = km.predict(train.astype(np.float64))
    test_cells, gen_cells = km.predict(test.astype(np.float64)), km.predict(gen.astype(np.float64))
    num = den = 0.0
    for c in range(n_cells):
        t = train[train_cells == c]
        g, s = gen[gen_cells == c], test[test_cells == c]
        if len(g) > more_than and len(s) > 0:
            num += len(s) / len(test) * z_reference(nn1(g, t), nn1(s, t))
            den += len(s) / len(test)
    return num / den


def test_ct_test_matches_the_reference_pipeline():
    train, test = gaussian(500, 3, 12), gaussian(300, 3, 13)
    gen = np.concatenate([train[:100] + gaussian(100, 3, 14, scale=0.02), gaussian(200, 3, 15)])
    out = CTTest(CTTestConfig(n_cells=4, pca_dim=0, seed=0)).compute(make_ctx(gen, train, test))
    assert out["ct_test"] == pytest.approx(ct_reference(gen, train, test, 4), rel=1e-6)
    assert out["ct_test"] < -2  # a third of the samples are near-copies


def test_ct_test_measures_distances_within_the_cell():
    """Two clusters: test points of cell A whose nearest training point overall lies in
    cell B must be measured to A's training points (as the reference code does)."""
    rng = np.random.default_rng(30)
    centres = np.array([[-1.0, 0.0], [1.0, 0.0]])
    train = np.concatenate([c + 0.3 * rng.standard_normal((150, 2)) for c in centres]).astype(np.float32)
    test = np.concatenate([c + 0.3 * rng.standard_normal((100, 2)) for c in centres]).astype(np.float32)
    gen = np.concatenate([c + 0.3 * rng.standard_normal((120, 2)) for c in centres]).astype(np.float32)
    out = CTTest(CTTestConfig(n_cells=2, pca_dim=0, seed=0)).compute(make_ctx(gen, train, test))
    assert out["ct_test"] == pytest.approx(ct_reference(gen, train, test, 2), rel=1e-6)
    assert out["ct_test.cells_used"] == 2.0


def test_ct_test_uses_cells_of_more_than_20_samples():
    train, test = gaussian(400, 2, 31), gaussian(300, 2, 32)
    gen = gaussian(63, 2, 33)  # about 21 per cell over 3 cells: some cells at or under 20
    cfg = CTTestConfig(n_cells=3, pca_dim=0, seed=0)
    out = CTTest(cfg).compute(make_ctx(gen, train, test))
    if out["ct_test.single_cell"] == 0.0:
        assert out["ct_test"] == pytest.approx(ct_reference(gen, train, test, 3), rel=1e-6)
    assert CTTestConfig().min_gen_per_cell == 21


def test_proximity_auc_is_the_roc_auc_of_nearest_training_distances():
    from sklearn.metrics import roc_auc_score

    from benchbase_plugins.metrics.novelty import ProximityAUC

    train, test = gaussian(300, 4, 34), gaussian(200, 4, 35)
    gen = np.concatenate([train[:60] + gaussian(60, 4, 36, scale=0.1), gaussian(140, 4, 37)])
    out = ProximityAUC().compute(make_ctx(gen, train, test))
    d_gen, d_test = nn1(gen, train), nn1(test, train)
    labels = np.r_[np.zeros(len(gen)), np.ones(len(test))]  # test points "positive": the farther ones
    assert out["proximity_auc"] == pytest.approx(roc_auc_score(labels, np.r_[d_gen, d_test]), rel=1e-12)
    assert out["proximity_auc"] > 0.55
    assert ProximityAUC().compute(make_ctx(train[:50], train, test))["proximity_auc"] == 1.0


def test_pca_projection_keeps_the_leading_axes():
    rng = np.random.default_rng(16)
    x = rng.standard_normal((400, 10)) * np.array([10, 5, 1, 1, 1, 1, 1, 1, 1, 0.1])
    mean, comps = pca_projection(x, 2)
    assert comps.shape == (10, 2)
    assert np.abs(np.abs(comps[:2, :]) - np.eye(2)).max() < 0.05
    assert pca_projection(x, 10) is None and pca_projection(x, 0) is None


def test_ct_test_falls_back_to_one_cell_when_samples_are_too_few():
    """Tiny evaluations (fewer samples than min_gen_per_cell in every cell): the global
    Mann-Whitney Z of samples vs test points, flagged, never NaN."""
    train, test = gaussian(200, 3, 21), gaussian(100, 3, 22)
    gen = train[:8] + gaussian(8, 3, 23, scale=0.01)
    out = CTTest(CTTestConfig(n_cells=4, pca_dim=0)).compute(make_ctx(gen, train, test))
    assert out["ct_test.single_cell"] == 1.0
    assert out["ct_test"] == pytest.approx(z_reference(nn1(gen, train), nn1(test, train)), rel=1e-9)
    assert out["ct_test"] < 0
