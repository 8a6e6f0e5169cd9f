"""vendi against a direct float64 numpy computation (eigenvalues of K/n), tolerance
1e-9 relative, and its two limits (identical samples: 1; orthogonal: n)."""
from __future__ import annotations

import numpy as np
import pytest
from support.metric_contexts import gaussian, make_ctx

from benchbase_plugins.metrics.diversity import Vendi, VendiConfig, median_distance, vendi_score


def vendi_reference(x, kernel, bandwidth=1.0):
    x = x.astype(np.float64)
    if kernel == "cosine":
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        k = u @ u.T
    else:
        d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
        k = np.exp(-d2 / (2 * bandwidth**2))
    lam = np.linalg.eigvalsh(k / len(x))
    lam = lam[lam > 1e-15]
    return float(np.exp(-(lam * np.log(lam)).sum()))


@pytest.mark.parametrize("n,d", [(50, 200), (300, 10)])  # both Gram orientations
def test_vendi_cosine_matches_numpy(n, d):
    x = gaussian(n, d, 0, shift=0.3)
    assert vendi_score(x, "cosine") == pytest.approx(vendi_reference(x, "cosine"), rel=1e-9)


def test_vendi_rbf_matches_numpy():
    x = gaussian(120, 3, 1)
    assert vendi_score(x, "rbf", 0.7) == pytest.approx(vendi_reference(x, "rbf", 0.7), rel=1e-9)


def test_vendi_limits():
    assert vendi_score(np.ones((40, 5)), "cosine") == pytest.approx(1.0)
    assert vendi_score(np.eye(12), "cosine") == pytest.approx(12.0)
    with pytest.raises(ValueError, match="unknown vendi kernel"):
        vendi_score(np.eye(3), "linear")


def test_vendi_metric_reports_reference_and_bandwidth():
    gen, test = gaussian(200, 4, 2), gaussian(300, 4, 3)
    out = Vendi(VendiConfig(kernel="rbf")).compute(make_ctx(gen, test, test, ref_name="test"))
    h = median_distance(test, np.random.default_rng([0, 7]))
    assert out["vendi.bandwidth"] == pytest.approx(h)
    assert out["vendi"] == pytest.approx(vendi_reference(gen, "rbf", h), rel=1e-9)
    assert 1 < out["vendi.ref"] < 200
