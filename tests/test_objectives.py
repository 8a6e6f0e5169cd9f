"""The GAN/VAE/WAE losses (objectives.py), checked once in numpy against their
definitions; both frameworks run these same formulas."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from benchbase_plugins.models import objectives as ob

NP = ob.Ops(exp=np.exp, softplus=lambda x: np.logaddexp(0.0, x), logsumexp=lambda x, axis: logsumexp(x, axis))

# Nowozin et al. 2016, Table 2: output activation g_f and conjugate f*, as printed.
PAPER = {
    "kl": (lambda v: v, lambda t: np.exp(t - 1)),
    "reverse_kl": (lambda v: -np.exp(-v), lambda t: -1 - np.log(-t)),
    "pearson": (lambda v: v, lambda t: t ** 2 / 4 + t),
    "hellinger": (lambda v: 1 - np.exp(-v), lambda t: t / (1 - t)),
    "js": (lambda v: np.log(2) - np.log(1 + np.exp(-v)), lambda t: -np.log(2 - np.exp(t))),
}


@pytest.mark.parametrize("divergence", sorted(PAPER))
def test_f_divergence_closed_forms_equal_the_paper_table(divergence):
    v = np.linspace(-4, 4, 81)
    g, conj = PAPER[divergence]
    t, conj_of_t = ob.f_divergence(divergence, NP)
    np.testing.assert_allclose(t(v), g(v), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(conj_of_t(v), conj(g(v)), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("divergence", sorted(PAPER))
def test_f_gan_critic_optimum_recovers_the_divergence(divergence):
    """At T* = f'(p/q) the bound E_P[T] - E_Q[f*(T)] equals D_f(P || Q) (here on a
    discrete P, Q); the critic loss is its negative."""
    p = np.array([0.5, 0.3, 0.2])
    q = np.array([0.2, 0.3, 0.5])
    r = p / q
    f, f_prime, v_of_t = {
        "kl": (lambda u: u * np.log(u), lambda u: 1 + np.log(u), lambda t: t),
        "reverse_kl": (lambda u: -np.log(u), lambda u: -1 / u, lambda t: -np.log(-t)),
        "pearson": (lambda u: (u - 1) ** 2, lambda u: 2 * (u - 1), lambda t: t),
        "hellinger": (lambda u: (np.sqrt(u) - 1) ** 2, lambda u: 1 - 1 / np.sqrt(u), lambda t: -np.log(1 - t)),
        "js": (lambda u: -(u + 1) * np.log((1 + u) / 2) + u * np.log(u),
               lambda u: np.log(2 * u / (1 + u)), lambda t: -np.log(2 / np.exp(t) - 1)),
    }[divergence]
    v_star = v_of_t(f_prime(r))  # the raw critic output whose activation is T*
    t, conj = ob.f_divergence(divergence, NP)
    np.testing.assert_allclose(t(v_star), f_prime(r), rtol=1e-9)
    bound = (p * t(v_star)).sum() - (q * conj(v_star)).sum()
    assert bound == pytest.approx((q * f(r)).sum(), rel=1e-9)


def test_f_gan_js_alternative_is_the_nonsaturating_gan_up_to_constants():
    v_real, v_fake = np.array([0.3, -1.2, 2.0]), np.array([-0.5, 0.7, 1.5])
    d_f, g_f = ob.f_gan_losses("js", "alternative", NP)
    d_ns, g_ns = ob.nonsaturating_losses(NP)
    assert d_f(v_real, v_fake) == pytest.approx(d_ns(v_real, v_fake) - 2 * np.log(2))
    assert g_f(v_fake) == pytest.approx(g_ns(v_fake) - np.log(2))
    _, g_saddle = ob.f_gan_losses("js", "saddle", NP)
    assert g_saddle(v_fake) == pytest.approx(-(NP.softplus(v_fake) - np.log(2)).mean())


def test_unknown_divergence_names_the_choices():
    with pytest.raises(ValueError, match="kl, reverse_kl, pearson, hellinger, js"):
        ob.f_divergence("tv", NP)


def test_gradient_penalty():
    grads = np.zeros((3, 1, 2, 2))
    grads[0, 0, 0, 0] = 1.0  # norm 1: no penalty
    grads[1] = 0.5  # norm 1 (4 entries of 0.5)
    grads[2, 0, 1, 1] = 3.0  # norm 3: (3 - 1)^2 = 4
    assert ob.gradient_penalty(grads) == pytest.approx(4 / 3, rel=1e-6)


def _mmd_brute_force(zq, zp, scales):
    n, d = zq.shape
    total = 0.0
    for s in scales:
        c = s * 2 * d

        def k(a, b):
            return c / (c + ((a - b) ** 2).sum())

        kqq = sum(k(zq[i], zq[j]) for i in range(n) for j in range(n) if i != j)
        kpp = sum(k(zp[i], zp[j]) for i in range(n) for j in range(n) if i != j)
        kqp = sum(k(zq[i], zp[j]) for i in range(n) for j in range(n))
        total += (kqq + kpp) / (n * (n - 1)) - 2 * kqp / n ** 2
    return total


def test_imq_mmd_matches_its_definition_and_is_unbiased():
    rng = np.random.default_rng(0)
    scales = (0.5, 1.0, 2.0)
    zq, zp = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    assert ob.imq_mmd(zq, zp, scales) == pytest.approx(_mmd_brute_force(zq, zp, scales), rel=1e-10)
    same = [ob.imq_mmd(rng.normal(size=(16, 2)), rng.normal(size=(16, 2)), scales) for _ in range(400)]
    shifted = [ob.imq_mmd(rng.normal(size=(16, 2)) + 1.5, rng.normal(size=(16, 2)), scales) for _ in range(50)]
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))  # unbiased: mean 0 under P = Q
    assert np.mean(shifted) > 10 * np.std(same) / np.sqrt(len(same))


def test_gaussian_log_densities_and_kl():
    rng = np.random.default_rng(1)
    mu, logvar, z = rng.normal(size=(4, 3)), rng.normal(size=(4, 3)) * 0.5, rng.normal(size=(4, 3))
    want = [multivariate_normal(mu[i], np.diag(np.exp(logvar[i]))).logpdf(z[i]) for i in range(4)]
    np.testing.assert_allclose(ob.log_normal(z, mu, logvar, NP), want, rtol=1e-10)
    np.testing.assert_allclose(ob.log_standard_normal(z), multivariate_normal(np.zeros(3)).logpdf(z), rtol=1e-10)
    # KL by Monte Carlo: E_q[log q - log p]
    draws = mu[0] + np.exp(0.5 * logvar[0]) * rng.normal(size=(200000, 3))
    mc = (ob.log_normal(draws, mu[0], logvar[0], NP) - ob.log_standard_normal(draws)).mean()
    assert ob.gaussian_kl(mu[:1], logvar[:1], NP)[0] == pytest.approx(mc, abs=0.02)


def _linear_gaussian(seed=2, d_x=3, d_z=2, std=0.5):
    """A decoder x = W z + b + std * noise: log p(x) = log N(x; b, W W^T + std^2 I) exactly."""
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=(d_x, d_z)), rng.normal(size=d_x)
    exact = multivariate_normal(b, w @ w.T + std ** 2 * np.eye(d_x))
    return (lambda z: z @ w.T + b), exact, rng


def test_iwae_converges_to_the_exact_log_likelihood():
    decode, exact, rng = _linear_gaussian()
    x = exact.rvs(size=5, random_state=rng)
    mu, logvar = np.zeros((5, 2)), np.zeros((5, 2))  # q = the prior: a poor proposal
    estimates = {k: ob.iwae_log_likelihood(x, mu, logvar, rng.normal(size=(k, 5, 2)), decode, "gaussian", 0.5, NP)
                 for k in (1, 20000)}
    np.testing.assert_allclose(estimates[20000], exact.logpdf(x), atol=0.05)
    assert (estimates[20000] > estimates[1] - 1e-9).mean() >= 0.8  # the bound tightens with k


def test_iwae_with_one_sample_is_minus_the_elbo_sample():
    decode, exact, rng = _linear_gaussian()
    x = exact.rvs(size=4, random_state=rng)
    mu, logvar, eps = rng.normal(size=(4, 2)), rng.normal(size=(4, 2)) * 0.3, rng.normal(size=(1, 4, 2))
    iwae = ob.iwae_log_likelihood(x, mu, logvar, eps, decode, "gaussian", 0.5, NP)
    # -ELBO with one draw per example, written as log p(x|z) + log p(z) - log q(z|x)
    elbo = np.array([-ob.neg_elbo(x[i:i + 1], mu[i:i + 1], logvar[i:i + 1], eps[0, i:i + 1], decode, "gaussian",
                                  0.5, 1.0, NP) for i in range(4)])
    z = mu + np.exp(0.5 * logvar) * eps[0]
    kl_sample = ob.log_normal(z, mu, logvar, NP) - ob.log_standard_normal(z)
    # neg_elbo uses the analytic KL; the one-sample IWAE uses its single-draw estimate
    np.testing.assert_allclose(iwae, elbo + ob.gaussian_kl(mu, logvar, NP) - kl_sample, rtol=1e-9)


def test_reconstruction_nll():
    x, out = np.array([[0.2, -0.4]]), np.array([[0.0, 0.1]])
    want = -multivariate_normal(out[0], 0.3 ** 2 * np.eye(2)).logpdf(x[0])
    assert ob.reconstruction_nll(x, out, "gaussian", 0.3, NP)[0] == pytest.approx(want)
    p = 1 / (1 + np.exp(-out))
    target = (x + 1) / 2
    bce = -(target * np.log(p) + (1 - target) * np.log(1 - p)).sum()
    assert ob.reconstruction_nll(x, out, "bernoulli", 0.3, NP)[0] == pytest.approx(bce)


def test_wae_losses():
    x, x_rec = np.ones((2, 1, 2, 2)), np.zeros((2, 1, 2, 2))
    assert ob.squared_error(x, x_rec).tolist() == [4.0, 4.0]
    v = np.array([[0.0], [0.0]])
    assert ob.wae_gan_loss(x, x_rec, v, 2.0, NP) == pytest.approx(4.0 + 2.0 * math.log(2))
    z = np.random.default_rng(0).normal(size=(6, 2))
    assert ob.wae_mmd_loss(x, x, z, z, 3.0, (1.0,)) == pytest.approx(3.0 * ob.imq_mmd(z, z, (1.0,)))
