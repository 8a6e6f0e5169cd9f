"""The generalization bound of encoder-decoder models (Mbacke et al.; seed 000), term
by term, beside the quantity it bounds.

For a generator G, an encoder E and the training set x_1..x_m, the bound of the talk
reads

    W1(P_X, G # pi) <= distortion + rate + sqrt(2) R / m sum_i sqrt(KL(E(x_i) || pi))
                       + sqrt(2) R / m sum_i sqrt(I(X^_i; X_i | Z_i)),

with distortion = 1/m sum_i E_{z ~ E(x_i)} ||x_i - G(z)|| (the W1 cost: a Euclidean
norm, not squared), rate = 1/m sum_i KL(E(x_i) || pi), pi = N(0, I), R the diameter
of the data space and the last term the generator's information about a training
example beyond its code: 0 here, because the decoder's mean G(z) is a function of z.
The left side is estimated by the exact empirical W1 between as many generated
samples as test examples (an assignment problem), itself biased upwards at finite
sample sizes.

A WAE's encoder is deterministic: KL(point mass || pi) is infinite and the bound is
vacuous as it stands. The bound holds for any encoder paired with G (its left side
does not involve E), so for those models E(x) = N(enc(x), s^2 I) is evaluated at
each s of ``encoder_stds`` and the smallest bound is reported with its s (a choice
among a handful of values, which a union bound would charge log(#values) for in the
confidence term the talk's form leaves out).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from benchbase import Metric, hookimpl


@dataclass
class VAEBoundConfig:
    max_points: int = 1000  # training (and test) examples the terms average over
    z_samples: int = 8  # codes z ~ E(x) per example for the distortion
    w1_points: int = 1000  # at most this many generated and test points in the empirical W1 (equal numbers)
    R: Optional[float] = None  # data-space diameter; None: (hi - lo) sqrt(dim) of the dataset's value range
    encoder_stds: List[float] = field(default_factory=lambda: [0.01, 0.03, 0.1, 0.3, 1.0])  # deterministic encoders


def empirical_w1(a: np.ndarray, b: np.ndarray) -> float:
    """Exact W1 between two empirical measures of equally many points (uniform weights):
    the optimal coupling is a permutation, so it is an assignment problem (float64)."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist

    cost = cdist(np.asarray(a, np.float64), np.asarray(b, np.float64))
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def gaussian_kl(mean: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """KL(N(mean, diag exp(log_var)) || N(0, I)) per row, nats."""
    return 0.5 * (mean ** 2 + np.exp(log_var) - 1.0 - log_var).sum(1)


class VAEBound(Metric):
    """Mbacke et al.'s W1 generalization bound of encoder-decoder models, term by term, with the measured W1 to the test split.

    Headline ``vae_bound`` = distortion + rate + generator term on the training
    subset (the information term is 0 for a decoder mean); details ``.distortion``,
    ``.distortion_test`` (the same on test examples), ``.rate``, ``.generator_term``
    (sqrt(2) R mean_i sqrt(KL_i)), ``.w1_test`` (exact empirical W1 of generated
    samples to the test split, the left side), ``.slack`` = bound - W1, ``.R`` and
    ``.encoder_std`` (the s of the smoothed deterministic encoder, 0 for a Gaussian
    encoder). Needs the ``encode`` capability (vae, wae_mmd, wae_gan).
    """

    name = "vae_bound"
    direction = "lower"
    references = ("test",)
    requires = frozenset({"capability:encode"})
    # the bound reads the model's encoder and decoder, not the samples: no pair of sample
    # scenarios is ranked by it
    conformance = {"pairs": []}
    Config = VAEBoundConfig

    def compute(self, ctx) -> dict[str, float]:
        c = self.config
        rng = np.random.default_rng([ctx.seed, 2024])
        train = ctx.train_data[: c.max_points]
        test = ctx.test_data[: c.max_points]
        dim = int(np.prod(ctx.spec.shape))
        lo, hi = (float(v) for v in ctx.spec.value_range)
        R = float(c.R) if c.R is not None else (hi - lo) * math.sqrt(dim)
        mean, log_var = ctx.model.encode(train)
        mean = np.asarray(mean, np.float64)
        own = log_var is not None
        candidates = [(0.0, np.asarray(log_var, np.float64))] if own else [
            (float(s), np.full_like(mean, 2 * math.log(s))) for s in c.encoder_stds]
        eps = rng.standard_normal((c.z_samples, *mean.shape))
        best = None
        for s, lv in candidates:
            kl = gaussian_kl(mean, lv)
            terms = {"distortion": self._distortion(ctx, train, mean, lv, eps),
                     "rate": float(kl.mean()), "generator_term": float(math.sqrt(2) * R * np.sqrt(kl).mean())}
            total = terms["distortion"] + terms["rate"] + terms["generator_term"]
            if best is None or total < best[0]:
                best = (total, s, lv, terms)
        total, s, _, terms = best
        t_mean, t_lv = ctx.model.encode(test)
        t_lv = np.full_like(np.asarray(t_mean, np.float64), 2 * math.log(s)) if not own else t_lv
        dist_test = self._distortion(ctx, test, np.asarray(t_mean, np.float64), np.asarray(t_lv, np.float64),
                                     rng.standard_normal((c.z_samples, *np.shape(t_mean))))
        m = min(c.w1_points, len(ctx.samples), len(ctx.test_data))
        w1 = empirical_w1(np.asarray(ctx.samples[:m]).reshape(m, dim), np.asarray(ctx.test_data[:m]).reshape(m, dim))
        return {"vae_bound": total, "vae_bound.distortion": terms["distortion"],
                "vae_bound.distortion_test": dist_test, "vae_bound.rate": terms["rate"],
                "vae_bound.generator_term": terms["generator_term"], "vae_bound.w1_test": w1,
                "vae_bound.slack": total - w1, "vae_bound.R": R, "vae_bound.encoder_std": s}

    @staticmethod
    def _distortion(ctx, x: np.ndarray, mean: np.ndarray, log_var: np.ndarray, eps: np.ndarray) -> float:
        """1/m sum_i E_{z ~ N(mean_i, exp(log_var_i))} ||x_i - G(z)||, by the draws ``eps``."""
        flat = x.reshape(len(x), -1).astype(np.float64)
        std = np.exp(0.5 * log_var)
        norms = []
        for e in eps:
            recon = ctx.model.decode((mean + std * e).astype(np.float32))
            norms.append(np.linalg.norm(recon.reshape(len(x), -1) - flat, axis=1))
        return float(np.mean(norms))


@hookimpl
def benchbase_register_metrics(register):
    register(VAEBound)
