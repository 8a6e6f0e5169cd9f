"""benchbase.neighbors against scikit-learn's exact NearestNeighbors and brute float64.

Tolerances: distances agree with a float64 brute-force computation to 1e-9 relative
(both measure the difference vector in float64); sklearn's own float64 kneighbors
uses the GEMM expansion, so against it we allow 1e-6 absolute. Indices must match
exactly on continuous random data (no ties).
"""
from __future__ import annotations

import numpy as np
import pytest
from support.metric_contexts import gaussian
from sklearn.neighbors import NearestNeighbors

from benchbase import neighbors
from benchbase.neighbors import count_within, knn, knn_radii


def brute(query, ref):
    q, r = query.astype(np.float64), ref.astype(np.float64)
    return np.sqrt(((q[:, None, :] - r[None, :, :]) ** 2).sum(-1))


@pytest.mark.parametrize("d", [2, 64, 300])
def test_knn_matches_sklearn(d):
    ref, query = gaussian(1500, d, 0), gaussian(400, d, 1)
    dist, idx = knn(query, ref, k=3)
    sk_d, sk_i = NearestNeighbors(n_neighbors=3).fit(ref.astype(np.float64)).kneighbors(query.astype(np.float64))
    np.testing.assert_array_equal(idx, sk_i)
    np.testing.assert_allclose(dist, sk_d, rtol=0, atol=1e-6)
    np.testing.assert_allclose(dist, np.sort(brute(query, ref), 1)[:, :3], rtol=1e-9)


def test_exclude_self_matches_sklearn_without_the_point_itself():
    x = gaussian(800, 16, 2)
    dist, idx = knn(x, x, k=2, exclude_self=True)
    sk_d, sk_i = NearestNeighbors(n_neighbors=3).fit(x.astype(np.float64)).kneighbors(x.astype(np.float64))
    assert (sk_i[:, 0] == np.arange(len(x))).all()
    np.testing.assert_array_equal(idx, sk_i[:, 1:])
    np.testing.assert_allclose(dist, sk_d[:, 1:], atol=1e-6)


def test_tiny_distances_are_exact_where_float32_gemm_is_not():
    """A near-copy at distance 1e-4 of a point with norm ~ 30: the float32 expansion
    ||q||^2 + ||r||^2 - 2 q.r has rounding ~1e-4 in d^2, so only refinement gets d1."""
    ref = gaussian(500, 900, 3)
    query = ref[:20].copy()
    query[:, 0] += 1e-4
    dist, idx = knn(query, ref, k=2)
    np.testing.assert_array_equal(idx[:, 0], np.arange(20))
    exact = np.abs(query[:, 0].astype(np.float64) - ref[:20, 0].astype(np.float64))
    np.testing.assert_allclose(dist[:, 0], exact, rtol=1e-9)


def test_blocking_over_queries_and_reference_gives_the_same_answer(monkeypatch):
    ref, query = gaussian(1000, 8, 4), gaussian(300, 8, 5)
    expected = knn(query, ref, k=4)
    monkeypatch.setattr(neighbors, "REF_BLOCK", 97)
    monkeypatch.setattr(neighbors, "BLOCK_BYTES", 4 * 97 * 13)
    got = knn(query, ref, k=4)
    np.testing.assert_array_equal(got[1], expected[1])
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-12)
    x = gaussian(250, 8, 6)
    d_self, i_self = knn(x, x, k=2, exclude_self=True)
    assert not (i_self == np.arange(len(x))[:, None]).any()
    np.testing.assert_allclose(d_self, np.sort(brute(x, x) + np.diag(np.full(len(x), np.inf)), 1)[:, :2],
                               rtol=1e-9)


def test_duplicates_are_neighbours_at_distance_zero():
    x = gaussian(50, 5, 7)
    x = np.concatenate([x, x[:10]])
    dist, idx = knn(x, x, k=1, exclude_self=True)
    assert (dist[:10, 0] == 0).all() and (idx[:10, 0] == np.arange(50, 60)).all()


def test_k_larger_than_reference_is_an_error():
    with pytest.raises(ValueError, match="k=3"):
        knn(gaussian(5, 2, 0), gaussian(2, 2, 1), k=3)
    with pytest.raises(ValueError, match="k=2"):
        knn(gaussian(2, 2, 0), gaussian(2, 2, 0), k=2, exclude_self=True)


@pytest.mark.parametrize("d", [1, 3, 128])
def test_count_within_matches_brute_force(d):
    centers, query = gaussian(700, d, 8), gaussian(300, d, 9)
    radii = knn_radii(centers, 3)
    expected = (brute(query, centers) <= radii[None, :]).sum(1)
    np.testing.assert_array_equal(count_within(query, centers, radii), expected)


def test_count_within_decides_boundary_pairs_in_float64():
    """Radii within 1e-9 (relative) of the exact distance: float32 cannot tell inside
    from outside there, the float64 re-check must."""
    centers, query = gaussian(200, 50, 10), gaussian(40, 50, 11)
    exact = brute(query[7:8], centers)[0]
    assert count_within(query[7:8], centers, exact * (1 + 1e-9))[0] == 200
    assert count_within(query[7:8], centers, exact * (1 - 1e-9))[0] == 0
    half = np.where(np.arange(200) % 2 == 0, exact * (1 + 1e-9), exact * (1 - 1e-9))
    assert count_within(query[7:8], centers, half)[0] == 100


def test_knn_radii_are_kth_neighbour_distances_and_memoised(monkeypatch):
    x = gaussian(300, 6, 12)
    sk_d, _ = NearestNeighbors(n_neighbors=4).fit(x.astype(np.float64)).kneighbors(x.astype(np.float64))
    np.testing.assert_allclose(knn_radii(x, 3), sk_d[:, 3], atol=1e-6)
    calls = []
    monkeypatch.setattr(neighbors, "knn", lambda *a, **k: calls.append(1))
    knn_radii(x, 3)  # same content: from the memo
    knn_radii(x.copy(), 3)  # another array with the same content: from the memo too
    assert calls == []


def test_memo_follows_content_when_an_array_changes_in_place():
    """A reference array overwritten in place between calls (a reused buffer) must give
    the values of its new content, for radii and for every memoised metric statistic."""
    from benchbase.contracts import DataSpec, EvalContext
    from benchbase_plugins.metrics.fidelity import FD
    from benchbase_plugins.metrics.manifold import Precision

    rng = np.random.default_rng(0)
    gen = rng.standard_normal((300, 8)).astype(np.float32)
    near, far = gen[::-1].copy() + 0.01, rng.standard_normal((300, 8)).astype(np.float32) + 6.0

    def scores(ref):
        ctx = EvalContext(gen=gen, train=ref, test=ref, samples=gen, train_data=ref, test_data=ref,
                          spec=DataSpec(shape=(8,)), feature_space="pixels", step=0, seed=0, device="cpu",
                          ref=ref, ref_name="train")
        return FD().compute(ctx)["fd"], Precision().compute(ctx)["precision"], knn_radii(ref, 3).copy()

    fresh_far = scores(far.copy())
    buffer = near.copy()
    scores(buffer)
    buffer[...] = far  # same object, new content
    changed = scores(buffer)
    assert changed[0] == fresh_far[0] and changed[1] == fresh_far[1]
    np.testing.assert_array_equal(changed[2], fresh_far[2])
    assert changed[0] > 50 and changed[1] < 0.1  # far away: not the near set's fd ~ 0 and precision ~ 1


def test_frozen_arrays_are_hashed_once(monkeypatch):
    x = gaussian(200, 4, 3)
    x.flags.writeable = False
    memo = neighbors.ReferenceMemo()
    hashed = []
    real = neighbors.content_digest
    monkeypatch.setattr(neighbors, "content_digest", lambda a: hashed.append(1) or real(a))
    assert memo.get(x, ("k",), lambda: 1) == 1
    assert memo.get(x, ("k",), lambda: 2) == 1
    assert len(hashed) == 1
    y = x.copy()  # writeable: hashed at every call
    memo.get(y, ("k",), lambda: 3)
    memo.get(y, ("k",), lambda: 4)
    assert len(hashed) == 3


def test_memo_entries_die_with_their_arrays():
    memo = neighbors.ReferenceMemo()
    x = gaussian(50, 4, 5)
    memo.get(x, ("k",), lambda: 1)
    del x
    memo.get(gaussian(50, 4, 6), ("k",), lambda: 2)
    assert len(memo.items) == 1
