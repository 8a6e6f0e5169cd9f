"""vae_bound: each term against its closed form on a stand-in encoder/decoder, the
smoothed deterministic encoder, and the terms on trained models of both families."""
from __future__ import annotations

import math

import numpy as np
import pytest
from support.model_harness import ModelHarness
from support.metric_contexts import make_ctx

from benchbase.contracts import DataSpec
from benchbase.evaluation import ModelHandle
from benchbase.frameworks import get_framework
from benchbase_plugins.metrics.generalization_bound import VAEBound, VAEBoundConfig, gaussian_kl


class Identity:
    """E(x) = N(x, s^2 I) (or the point x when s is None), G(z) = z."""

    def __init__(self, s):
        self.s = s

    def encode(self, x):
        x = np.asarray(x, np.float64).reshape(len(x), -1)
        return x, None if self.s is None else np.full_like(x, 2 * math.log(self.s))

    def decode(self, z):
        return np.asarray(z, np.float32)


def _ctx(model, n=400, samples=None):
    rng = np.random.default_rng(0)
    train = rng.uniform(-0.5, 0.5, (n, 2)).astype(np.float32)
    test = rng.uniform(-0.5, 0.5, (n, 2)).astype(np.float32)
    spec = DataSpec(shape=(2,), value_range=(-1.0, 1.0))
    return make_ctx(test if samples is None else samples, train, test, ref_name="test", model=model, spec=spec)


def test_gaussian_kl_matches_the_one_dimensional_formula():
    mean, log_var = np.array([[0.3, -1.0]]), np.array([[math.log(0.25), 0.0]])
    expected = sum(0.5 * (m ** 2 + math.exp(v) - 1 - v) for m, v in zip(mean[0], log_var[0]))
    assert gaussian_kl(mean, log_var)[0] == pytest.approx(expected)
    assert gaussian_kl(np.zeros((1, 3)), np.zeros((1, 3)))[0] == 0.0


def test_terms_equal_their_closed_forms_for_a_gaussian_identity_autoencoder():
    s = 0.2
    ctx = _ctx(Identity(s))
    out = VAEBound(VAEBoundConfig(z_samples=200)).compute(ctx)
    R = 2 * math.sqrt(2)  # diameter of [-1, 1]^2
    kl = gaussian_kl(ctx.train_data.astype(np.float64), np.full((400, 2), 2 * math.log(s)))
    assert out["vae_bound.R"] == pytest.approx(R)
    assert out["vae_bound.rate"] == pytest.approx(kl.mean(), rel=1e-6)
    assert out["vae_bound.generator_term"] == pytest.approx(math.sqrt(2) * R * np.sqrt(kl).mean(), rel=1e-6)
    # ||x - G(z)|| = s ||eps||, E ||eps|| = sqrt(pi / 2) in two dimensions (Rayleigh)
    assert out["vae_bound.distortion"] == pytest.approx(s * math.sqrt(math.pi / 2), rel=0.02)
    assert out["vae_bound.distortion_test"] == pytest.approx(s * math.sqrt(math.pi / 2), rel=0.02)
    assert out["vae_bound"] == pytest.approx(out["vae_bound.distortion"] + out["vae_bound.rate"]
                                             + out["vae_bound.generator_term"])
    assert out["vae_bound.encoder_std"] == 0.0
    assert out["vae_bound.slack"] == pytest.approx(out["vae_bound"] - out["vae_bound.w1_test"])


def test_w1_is_zero_when_the_samples_are_the_test_split():
    ctx = _ctx(Identity(0.1))
    ctx.samples = ctx.test_data
    assert VAEBound().compute(ctx)["vae_bound.w1_test"] == pytest.approx(0.0, abs=1e-9)
    ctx.samples = ctx.test_data + np.float32(0.3)
    assert VAEBound().compute(ctx)["vae_bound.w1_test"] == pytest.approx(0.3 * math.sqrt(2), rel=1e-6)


def test_a_deterministic_encoder_is_smoothed_with_the_best_std_of_the_grid():
    cfg = VAEBoundConfig(encoder_stds=[0.01, 0.1, 1.0], z_samples=50)
    out = VAEBound(cfg).compute(_ctx(Identity(None)))
    assert out["vae_bound.encoder_std"] in (0.01, 0.1, 1.0)
    each = [VAEBound(VAEBoundConfig(z_samples=50)).compute(_ctx(Identity(s)))["vae_bound"] for s in (0.01, 0.1, 1.0)]
    assert out["vae_bound"] == pytest.approx(min(each), rel=0.05)


@pytest.mark.parametrize("name", ["vae", "wae_mmd", "wae_gan"])
@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_terms_on_trained_autoencoders_through_the_model_handle(registry, name, framework):
    if framework == "jax":
        pytest.importorskip("jax")
    h = ModelHarness(registry, name, framework, "digits", {"width": 32, "latent_dim": 4}, n=64)
    state, _ = h.train(h.model.init(h.data, 0), 5)
    handle = ModelHandle(h.model, state, get_framework(framework), h.device, 0, 5)
    samples = np.asarray(h.sample(state, 50))
    ctx = make_ctx(samples, h.data.x_numpy, h.test[:50], ref_name="test", model=handle, spec=h.spec)
    out = VAEBound(VAEBoundConfig(max_points=32, z_samples=2, encoder_stds=[0.1, 1.0])).compute(ctx)
    assert all(np.isfinite(v) for v in out.values())
    assert out["vae_bound.R"] == pytest.approx(2 * 8)  # [-1, 1]^64
    assert out["vae_bound.w1_test"] > 0 and out["vae_bound.generator_term"] > 0
    assert (out["vae_bound.encoder_std"] == 0.0) == (name == "vae")


def test_empirical_w1_is_the_optimal_matching_cost():
    from benchbase_plugins.metrics.generalization_bound import empirical_w1

    a = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    b = np.array([[5.0, 6.0], [0.0, 0.5], [1.0, 0.0]])  # best matching: (0,1), (1,2), (2,0)
    assert empirical_w1(a, b) == pytest.approx((0.5 + 0.0 + 1.0) / 3)
