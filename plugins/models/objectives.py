"""The losses of the GAN, VAE and WAE families, written once for both frameworks.

Every function here uses only arithmetic, ``**``, ``.sum``/``.mean``/``.reshape``
and broadcasting, which torch tensors and jax arrays share, plus the few
functions in an :class:`Ops` bundle (``TORCH_OPS`` lives in the torch plugins,
``jax_ops()`` in the JAX ones). So the PyTorch and JAX twins of a model optimise the
same formula by construction, and the tests check each formula once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class Ops:
    """The framework functions the objectives need (positional axis arguments)."""

    exp: Callable
    softplus: Callable
    logsumexp: Callable  # logsumexp(x, axis)


# ----------------------------------------------------------------------------- GANs


def nonsaturating_losses(ops: Ops):
    """Goodfellow et al. 2014 with the non-saturating generator loss, on logits v:
    D minimises softplus(-v_real) + softplus(v_fake); G minimises softplus(-v_fake)."""

    def d_loss(v_real, v_fake):
        return ops.softplus(-v_real).mean() + ops.softplus(v_fake).mean()

    def g_loss(v_fake):
        return ops.softplus(-v_fake).mean()

    return d_loss, g_loss


def wasserstein_losses(ops: Ops):
    """WGAN critic and generator losses (the gradient penalty is added by the model)."""

    def d_loss(v_real, v_fake):
        return v_fake.mean() - v_real.mean()

    def g_loss(v_fake):
        return -v_fake.mean()

    return d_loss, g_loss


def gradient_penalty(grads):
    """mean((||grad_x D(x_hat)||_2 - 1)^2) over the batch (Gulrajani et al. 2017); the
    tiny constant keeps the norm's gradient finite where the gradient vanishes."""
    norms = ((grads ** 2).reshape(grads.shape[0], -1).sum(1) + 1e-12) ** 0.5
    return ((norms - 1.0) ** 2).mean()


def f_divergence(divergence: str, ops: Ops):
    """(T, f*(T)) of Nowozin et al. 2016 (Table 2) as functions of the raw critic output v.

    T = g_f(v) is the output activation mapping v into dom f*, and f*(g_f(v)) is
    written in closed form so it stays finite where the composition would not:

    ============  ======================  ================  =================
    divergence    g_f(v)                  f*(t)             f*(g_f(v))
    ============  ======================  ================  =================
    kl            v                       exp(t - 1)        exp(v - 1)
    reverse_kl    -exp(-v)                -1 - log(-t)      v - 1
    pearson       v                       t^2 / 4 + t       v^2 / 4 + v
    hellinger     1 - exp(-v)             t / (1 - t)       exp(v) - 1
    js            log 2 - log(1 + e^-v)   -log(2 - e^t)     softplus(v) - log 2
    ============  ======================  ================  =================
    """
    log2 = math.log(2.0)
    table = {
        "kl": (lambda v: v, lambda v: ops.exp(v - 1.0)),
        "reverse_kl": (lambda v: -ops.exp(-v), lambda v: v - 1.0),
        "pearson": (lambda v: v, lambda v: 0.25 * v * v + v),
        "hellinger": (lambda v: 1.0 - ops.exp(-v), lambda v: ops.exp(v) - 1.0),
        "js": (lambda v: log2 - ops.softplus(-v), lambda v: ops.softplus(v) - log2),
    }
    if divergence not in table:
        raise ValueError(f"unknown f-divergence '{divergence}'; valid: {', '.join(table)}")
    return table[divergence]


def f_gan_losses(divergence: str, generator_loss: str, ops: Ops):
    """The critic maximises F = E_P[T(x)] - E_Q[f*(T(x))], a lower bound of D_f(P || Q);
    the generator either minimises F (``saddle``) or maximises E_Q[T] (``alternative``,
    Nowozin et al. 2016 Sec. 3.2, better gradients early in training)."""
    t, conj = f_divergence(divergence, ops)

    def d_loss(v_real, v_fake):
        return conj(v_fake).mean() - t(v_real).mean()

    def g_loss(v_fake):
        return -t(v_fake).mean() if generator_loss == "alternative" else -conj(v_fake).mean()

    return d_loss, g_loss


# ------------------------------------------------------------------------------ VAE


def flat(x):
    return x.reshape(x.shape[0], -1)


def reconstruction_nll(x, out, decoder: str, decoder_std: float, ops: Ops):
    """-log p(x | z) per example in nats, x and out flattened to (..., D).

    gaussian: N(x; out, decoder_std^2 I); bernoulli: logits ``out`` on (x + 1) / 2, a
    continuous relaxation for data in [-1, 1] (not a density of x itself)."""
    if decoder == "gaussian":
        s = decoder_std
        return (0.5 * ((x - out) / s) ** 2).sum(-1) + x.shape[-1] * (math.log(s) + 0.5 * LOG_2PI)
    target = (x + 1.0) / 2.0
    return (ops.softplus(out) - target * out).sum(-1)


def gaussian_kl(mu, logvar, ops: Ops):
    """KL(N(mu, exp(logvar)) || N(0, I)) per example."""
    return 0.5 * (mu ** 2 + ops.exp(logvar) - 1.0 - logvar).sum(-1)


def log_normal(z, mu, logvar, ops: Ops):
    """log N(z; mu, exp(logvar)) summed over the last axis."""
    return -0.5 * ((z - mu) ** 2 * ops.exp(-logvar) + logvar + LOG_2PI).sum(-1)


def log_standard_normal(z):
    return -0.5 * (z ** 2 + LOG_2PI).sum(-1)


def neg_elbo(x, mu, logvar, eps, decode: Callable, decoder: str, decoder_std: float, beta: float, ops: Ops):
    """Batch mean of -ELBO = E_q[-log p(x | z)] + beta KL(q(z | x) || N(0, I)), nats,
    one reparameterised draw z = mu + exp(logvar / 2) * eps; ``decode`` maps z to the
    decoder's output (means or logits) shaped like x."""
    z = mu + ops.exp(0.5 * logvar) * eps
    rec = reconstruction_nll(flat(x), flat(decode(z)), decoder, decoder_std, ops)
    return (rec + beta * gaussian_kl(mu, logvar, ops)).mean()


def iwae_log_likelihood(x, mu, logvar, eps, decode: Callable, decoder: str, decoder_std: float, ops: Ops):
    """log (1/k) sum_i p(x, z_i) / q(z_i | x) (Burda et al. 2016), per example, nats.

    x (b, ...); mu, logvar (b, L); eps (k, b, L) standard normal, z_i = mu + sigma eps_i.
    A lower bound of log p(x) in expectation that tightens as k grows (k = 1: the ELBO)."""
    k, b, latent = eps.shape
    z = mu[None] + ops.exp(0.5 * logvar)[None] * eps
    out = decode(z.reshape(k * b, latent)).reshape(k, b, -1)
    x = flat(x)
    log_w = (-reconstruction_nll(x[None], out, decoder, decoder_std, ops)
             + log_standard_normal(z) - log_normal(z, mu[None], logvar[None], ops))
    return ops.logsumexp(log_w, 0) - math.log(k)


# ------------------------------------------------------------------------------ WAE


def squared_error(x, x_rec):
    """c(x, y) = ||x - y||^2 per example, the WAE reconstruction cost (Tolstikhin et al. 2018)."""
    return ((flat(x) - flat(x_rec)) ** 2).sum(-1)


def wae_mmd_loss(x, x_rec, z_q, z_p, lam: float, scales):
    """WAE-MMD objective: mean squared error + lam * MMD(codes, prior draws)."""
    return squared_error(x, x_rec).mean() + lam * imq_mmd(z_q, z_p, scales)


def wae_gan_loss(x, x_rec, v_codes, lam: float, ops: Ops):
    """WAE-GAN autoencoder objective: mean squared error + lam * mean(-log D(code)),
    D = sigmoid of the adversary's logits ``v_codes`` on the batch's codes."""
    return squared_error(x, x_rec).mean() + lam * ops.softplus(-v_codes).mean()


def _pairwise_sq_dists(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def imq_mmd(z_q, z_p, scales, prior_var: float = 1.0):
    """Unbiased MMD^2 between encoded codes z_q and prior draws z_p (both (n, d)) with
    the inverse multiquadratic kernel k(x, y) = C / (C + ||x - y||^2), summed over
    C = s * 2 d prior_var for s in ``scales`` (Tolstikhin et al. 2018, Sec. 4).

    Diagonal terms are exactly 1 per scale (zero distance) and are removed in closed
    form, so no mask array is needed."""
    n, d = z_q.shape[0], z_q.shape[1]
    d_qq, d_pp, d_qp = _pairwise_sq_dists(z_q, z_q), _pairwise_sq_dists(z_p, z_p), _pairwise_sq_dists(z_q, z_p)
    total = 0.0
    for s in scales:
        c = float(s) * 2.0 * d * prior_var
        within = (c / (c + d_qq)).sum() + (c / (c + d_pp)).sum() - 2.0 * n
        total = total + within / (n * (n - 1)) - 2.0 * (c / (c + d_qp)).sum() / (n * n)
    return total
