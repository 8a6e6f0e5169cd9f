"""heldout_gap and denoiser_gap: formulas against float64 numpy references with
stand-in model handles, and the capability requirement as a validation error.

denoiser_gap's empirical optimal denoiser is checked against scipy's softmax in
float64 to 1e-10 relative, including sigma small enough that a naive exp underflows.
"""
from __future__ import annotations

import numpy as np
import pytest
from support.suites import tiny_suite
from support.metric_contexts import gaussian, make_ctx
from scipy.special import softmax

from benchbase.config import build_suite
from benchbase.contracts import DataSpec
from benchbase.errors import ConfigError
from benchbase_plugins.metrics.model_aware import (DenoiserGap, DenoiserGapConfig, HeldoutGap, HeldoutGapConfig,
                                                   empirical_optimal_denoiser)


def optimal_denoiser_reference(x, train, sigma):
    x, y = x.astype(np.float64), train.astype(np.float64)
    d2 = ((x[:, None, :] - y[None]) ** 2).sum(-1)
    return softmax(-d2 / (2 * sigma**2), axis=1) @ y


class Handle:
    """Stands in for benchbase.evaluation.ModelHandle."""

    def __init__(self, denoise=None, loss=None):
        self._denoise, self._loss, self.calls = denoise, loss, []

    def heldout_loss(self, x, y=None, batch_size=500, salt=0):
        self.calls.append((len(x), salt))
        return self._loss(x)

    def denoise(self, x, sigma):
        return self._denoise(x, sigma)


@pytest.mark.parametrize("sigma", [1e-3, 0.05, 2.0])
def test_empirical_optimal_denoiser_matches_softmax_reference(sigma):
    train, x = gaussian(200, 6, 0), gaussian(50, 6, 1)
    got = empirical_optimal_denoiser(x, train, sigma).numpy()
    np.testing.assert_allclose(got, optimal_denoiser_reference(x, train, sigma), rtol=1e-10, atol=1e-12)


def test_denoiser_gap_is_zero_for_the_memorizer_and_matches_numpy_otherwise():
    train, test = gaussian(150, 5, 2), gaussian(80, 5, 3)
    spec = DataSpec(shape=(5,))
    cfg = DenoiserGapConfig(sigmas=[0.05, 0.5], n_points=60)
    memorizer = Handle(denoise=lambda x, s: optimal_denoiser_reference(x, train, s).astype(np.float32))
    out = DenoiserGap(cfg).compute(make_ctx(test, train, test, ref_name="test", model=memorizer, spec=spec))
    assert set(out) == {"denoiser_gap", "denoiser_gap.sigma_0.05", "denoiser_gap.sigma_0.5"}
    assert out["denoiser_gap"] < 1e-10
    identity = Handle(denoise=lambda x, s: x)
    ctx = make_ctx(test, train, test, ref_name="test", model=identity, spec=spec)
    out = DenoiserGap(cfg).compute(ctx)
    # reference: the same 60 test points and noise (fixed by the run seed), numpy float64
    idx = np.sort(np.random.default_rng([0, 1003]).choice(80, 60, replace=False))
    x0 = test[idx].astype(np.float64)
    eps = np.random.default_rng([0, 1004]).standard_normal(x0.shape)
    for sigma in (0.05, 0.5):
        noisy = (x0 + sigma * eps).astype(np.float32)
        gap = ((noisy - optimal_denoiser_reference(noisy, train, sigma)) ** 2).sum(1).mean()
        assert out[f"denoiser_gap.sigma_{sigma:g}"] == pytest.approx(gap, rel=1e-9)
    assert out["denoiser_gap"] == pytest.approx(np.mean([out["denoiser_gap.sigma_0.05"],
                                                         out["denoiser_gap.sigma_0.5"]]))
    ctx.step = 7  # points and noise depend on the run seed only: same value at every step
    assert DenoiserGap(cfg).compute(ctx) == out


def test_heldout_gap_is_test_minus_train_on_equal_sizes_with_the_same_noise():
    train, test = gaussian(300, 4, 4), gaussian(120, 4, 5, shift=1.0)
    handle = Handle(loss=lambda x: float((x.astype(np.float64) ** 2).sum(1).mean()))
    out = HeldoutGap(HeldoutGapConfig(max_points=100, min_evaluations=1)).compute(
        make_ctx(test, train, test, model=handle))
    assert [c[0] for c in handle.calls] == [100, 100]
    assert handle.calls[0][1] == handle.calls[1][1]  # same salt: same noise draws
    assert out["heldout_gap"] == pytest.approx(out["heldout_gap.test"] - out["heldout_gap.train"])
    assert out["heldout_gap.test"] > out["heldout_gap.train"] + 1.0  # shifted test split


def test_capability_requirements_fail_validation_before_training(registry):
    suite = tiny_suite(models=["copy_train"], metrics=["heldout_gap", "denoiser_gap"])
    with pytest.raises(ConfigError) as err:
        build_suite(suite, "<test>", registry=registry)
    text = str(err.value)
    assert "heldout_loss" in text and "denoise" in text and "optional: true" in text
    ok = build_suite(tiny_suite(models=["copy_train", {"name": "rectified_flow"}],
                                metrics=["fd", {"name": "heldout_gap", "optional": True}]), "<t>", registry=registry)
    names = {r.model.name: [m.name for m in r.metrics] for r in ok.runs}
    assert names == {"copy_train": ["fd"], "rectified_flow": ["fd", "heldout_gap"]}


def test_heldout_gap_repeats_small_sets_to_average_enough_noise_draws():
    train, test = gaussian(40, 4, 6), gaussian(120, 4, 7)
    handle = Handle(loss=lambda x: float((x.astype(np.float64) ** 2).sum(1).mean()))
    out = HeldoutGap(HeldoutGapConfig(max_points=100, min_evaluations=250)).compute(
        make_ctx(test, train, test, model=handle))
    assert [c[0] for c in handle.calls] == [280, 280]  # 7 whole copies of 40 points each
    # whole copies leave a deterministic loss unchanged
    assert out["heldout_gap.train"] == pytest.approx(float((train.astype(np.float64) ** 2).sum(1).mean()))
