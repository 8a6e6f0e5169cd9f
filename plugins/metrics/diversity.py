"""Diversity of the generated set on its own: the Vendi score (Friedman & Dieng 2023)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbase import Metric, hookimpl
from benchbase.neighbors import ReferenceMemo, as_tensor

from .fidelity import subsample


def vendi_score(x: np.ndarray, kernel: str = "cosine", bandwidth: float = 1.0, device: str = "cpu") -> float:
    """exp(-sum_i l_i log l_i), l_i the eigenvalues of K / n, k(x, x) = 1 (float64).

    ``cosine``: K = X^ X^T with unit rows X^; its nonzero eigenvalues equal those of
    X^T X^ / n, so the smaller of the two Gram matrices is decomposed. ``rbf``:
    K_ij = exp(-||x_i - x_j||^2 / (2 bandwidth^2)). Ranges from 1 (all samples equal)
    to n (all orthogonal / far apart): an effective number of distinct samples.
    """
    import torch

    xt = as_tensor(x, device, torch.float64)
    n = len(xt)
    if n == 0:
        return float("nan")
    if kernel == "cosine":
        norm = torch.linalg.vector_norm(xt, dim=1, keepdim=True)
        xt = xt / torch.where(norm > 0, norm, torch.ones_like(norm))
        gram = xt.T @ xt if xt.shape[1] < n else xt @ xt.T
    elif kernel == "rbf":
        if bandwidth <= 0:
            raise ValueError(f"rbf bandwidth must be > 0, got {bandwidth}")
        sq = (xt * xt).sum(1)
        d2 = (sq[:, None] + sq[None, :] - 2 * xt @ xt.T).clamp_min_(0)
        gram = torch.exp(-d2 / (2 * bandwidth**2))
    else:
        raise ValueError(f"unknown vendi kernel '{kernel}'; valid: cosine, rbf")
    lam = torch.linalg.eigvalsh((gram + gram.T) / 2 / n).clamp_min(0)
    lam = lam[lam > 0]
    return float(torch.exp(-(lam * torch.log(lam)).sum()))


def median_distance(x: np.ndarray, rng: np.random.Generator, max_points: int = 1000) -> float:
    """Median pairwise Euclidean distance (the RBF bandwidth heuristic), on a subsample."""
    x = subsample(x, max_points, rng).astype(np.float64)
    sq = (x * x).sum(1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0, None)
    return float(np.sqrt(np.median(d2[np.triu_indices(len(x), 1)])))


_REFERENCE = ReferenceMemo()


@dataclass
class VendiConfig:
    kernel: str = "cosine"  # cosine | rbf
    bandwidth: float = 0.0  # rbf only; 0: median pairwise distance of the reference set
    max_points: int = 2000  # samples used (the eigendecomposition is cubic)


class Vendi(Metric):
    """Vendi score: the effective number of distinct generated samples (Friedman & Dieng 2023).

    VS = exp(-sum_i l_i log l_i), l_i the eigenvalues of K/n for a similarity kernel
    with k(x, x) = 1 (cosine by default; rbf with a bandwidth fixed by the reference
    set). Between 1 (mode collapse) and n. Noise is maximally "diverse": read it next
    to a fidelity metric, and next to ``vendi.ref``, the score of an equally large
    subsample of the reference split. The cosine kernel is meaningless in very low
    dimension (2-D data has at most 2 distinct directions): use rbf there.
    """

    name = "vendi"
    direction = "higher"
    references = ("test",)
    Config = VendiConfig

    def compute(self, ctx) -> dict[str, float]:
        c = self.config
        x = subsample(ctx.gen, c.max_points, ctx.rng(6))
        # reference quantities depend on the run's seed only (not the step): computed once
        fixed = lambda salt: np.random.default_rng([ctx.seed, salt])  # noqa: E731
        bandwidth = c.bandwidth
        if c.kernel == "rbf" and bandwidth <= 0:
            bandwidth = _REFERENCE.get(ctx.ref, ("bandwidth", ctx.seed),
                                       lambda: median_distance(ctx.ref, fixed(7)))
        ref_score = _REFERENCE.get(
            ctx.ref, ("vendi", c.kernel, bandwidth, len(x), ctx.seed, str(ctx.device)),
            lambda: vendi_score(subsample(ctx.ref, len(x), fixed(8)), c.kernel, bandwidth, ctx.device))
        out = {"vendi": vendi_score(x, c.kernel, bandwidth, ctx.device), "vendi.ref": ref_score}
        if c.kernel == "rbf":
            out["vendi.bandwidth"] = bandwidth
        return out


@hookimpl
def benchbase_register_metrics(register):
    register(Vendi)
