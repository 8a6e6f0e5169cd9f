"""Fidelity metrics: how far is the generated distribution from the data's?"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbase import Metric, hookimpl


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance in float64 (as pytorch-fid computes them)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr S1 + Tr S2 - 2 Tr (S1 S2)^{1/2}, all in float64.

    Tr (S1 S2)^{1/2} = sum sqrt(eig(A S2 A)) with A = S1^{1/2}: A S2 A is symmetric
    PSD and similar to S1 S2, so a symmetric eigensolver gives the trace without
    scipy.linalg.sqrtm's complex parts, several times faster.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    w, v = np.linalg.eigh((s1 + s1.T) / 2)
    a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = a @ s2 @ a
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = float(np.sqrt(np.clip(ev, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


@dataclass
class FDConfig:
    pass


class FD(Metric):
    """Fréchet distance between Gaussian fits of generated and reference features.

    FID when the feature space is Inception pool3 (Heusel et al. 2017); reference:
    pytorch-fid ``calculate_frechet_distance``. Biased upward at small N: keep
    eval.n_samples fixed when comparing.
    """

    name = "fd"
    direction = "lower"
    references = ("test", "train")
    Config = FDConfig

    def compute(self, ctx) -> dict[str, float]:
        mu1, s1 = gaussian_stats(ctx.gen)
        mu2, s2 = gaussian_stats(ctx.ref)
        return {"fd": frechet_distance(mu1, s1, mu2, s2)}


@dataclass
class SWDConfig:
    n_projections: int = 200  # random directions
    p: int = 2
    max_points: int = 2000  # each set is subsampled to at most this many points
    seed: int = 0


class SWD(Metric):
    """Sliced Wasserstein distance: (mean over random directions of W_p^p)^(1/p), via POT.

    POT ``ot.sliced_wasserstein_distance(X, Y, n_projections, p, seed)``; the position
    paper (seed 001) tracks it on 2,000 generated samples against each split.
    """

    name = "swd"
    direction = "lower"
    references = ("test", "train")
    Config = SWDConfig

    def compute(self, ctx) -> dict[str, float]:
        import ot

        c = self.config
        rng = ctx.rng(2)
        x = _subsample(ctx.gen, c.max_points, rng)
        y = _subsample(ctx.ref, c.max_points, rng)
        value = ot.sliced_wasserstein_distance(x.astype(np.float64), y.astype(np.float64),
                                               n_projections=c.n_projections, p=c.p, seed=c.seed)
        return {"swd": float(value)}


def _subsample(x: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    x = np.asarray(x).reshape(len(x), -1)
    if len(x) <= limit:
        return x
    return x[np.sort(rng.choice(len(x), size=limit, replace=False))]


@hookimpl
def benchbase_register_metrics(register):
    register(FD)
    register(SWD)
