"""Memorization metrics: is a generated sample a copy of a training point?"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbase import Metric, hookimpl
from benchbase.neighbors import knn


def bootstrap_mean_ci(flags: np.ndarray, rng: np.random.Generator, resamples: int,
                      confidence: float) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean (Bonnaire et al. use 1000 resamples)."""
    if resamples <= 0 or len(flags) == 0:
        return float("nan"), float("nan")
    idx = rng.integers(0, len(flags), size=(resamples, len(flags)))
    means = flags[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


@dataclass
class MemRatioConfig:
    threshold: float = 1 / 3  # a copy: d(x, NN1) < threshold * d(x, NN2)
    bootstrap: int = 1000  # resamples for the confidence interval (0: none)
    confidence: float = 0.95


class MemRatio(Metric):
    """Fraction of samples whose nearest training point is much closer than the second.

    f_mem = mean over generated x of [ ||x - NN1(x, T)|| < threshold * ||x - NN2(x, T)|| ]
    (Yoon et al. 2023; Gu et al. 2023/2025; Bonnaire et al. 2025), L2 in the suite's
    feature space (pixels by default), threshold 1/3. An exact copy of a duplicated
    training point (d1 = d2 = 0) counts as a copy. Distances of the candidates are
    refined in float64, so tiny d1 are exact. Chance level for fresh samples of a
    locally uniform density in d dimensions is threshold^d (1/9 in 2-D): choose the
    threshold with the data's dimension in mind. Reports ``mem_ratio.ci_low`` and
    ``mem_ratio.ci_high`` (percentile bootstrap).
    """

    name = "mem_ratio"
    direction = "lower"
    references = ("train",)
    Config = MemRatioConfig

    def compute(self, ctx) -> dict[str, float]:
        if len(ctx.train) < 2:
            raise ValueError("mem_ratio needs at least 2 training points")
        d, _ = knn(ctx.gen, ctx.train, k=2, device=ctx.device)
        copies = ((d[:, 0] < self.config.threshold * d[:, 1]) | (d[:, 0] == 0)).astype(np.float64)
        lo, hi = bootstrap_mean_ci(copies, ctx.rng(1), self.config.bootstrap, self.config.confidence)
        return {"mem_ratio": float(copies.mean()), "mem_ratio.ci_low": lo, "mem_ratio.ci_high": hi}


@hookimpl
def benchbase_register_metrics(register):
    register(MemRatio)
