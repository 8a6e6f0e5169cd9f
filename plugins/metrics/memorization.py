"""Memorization metrics: is a generated sample a copy of a training point?

mem_ratio (nearest/second-nearest distance ratio), copy_cosine (maximum cosine
similarity to the training set) and authenticity (Alaa et al. 2022). Each compares
generated samples with the training subset only; the novelty metrics that also use
the held-out test split live in ``novelty.py``. Definitions: docs/metrics.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from benchbase import Metric, hookimpl
from benchbase.neighbors import knn, knn_radii


def bootstrap_mean_ci(flags: np.ndarray, rng: np.random.Generator, resamples: int,
                      confidence: float) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean (Bonnaire et al. use 1000 resamples).

    The mean of a resample of 0/1 flags is Binomial(n, p_hat)/n, drawn directly
    instead of materialising (resamples x n) indices.
    """
    flags = np.asarray(flags, dtype=np.float64)
    if resamples <= 0 or len(flags) == 0:
        return float("nan"), float("nan")
    if np.isin(flags, (0.0, 1.0)).all():
        means = rng.binomial(len(flags), flags.mean(), size=resamples) / len(flags)
    else:
        means = flags[rng.integers(0, len(flags), size=(resamples, len(flags)))].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def check_interval(bootstrap: int, confidence: float) -> None:
    """The settings of a bootstrap interval (bootstrap_mean_ci), as a config checks them."""
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0 (0: no interval), got {bootstrap}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")


@dataclass
class MemRatioConfig:
    threshold: float = 1 / 3  # a copy: d(x, NN1) < threshold * d(x, NN2)
    bootstrap: int = 1000  # resamples for the confidence interval (0: none)
    confidence: float = 0.95

    def __post_init__(self):
        # d1 <= d2 always: a threshold above 1 calls every sample a copy, one <= 0 none
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        check_interval(self.bootstrap, self.confidence)


class MemRatio(Metric):
    """Fraction of samples whose nearest training point is much closer than the second (f_mem).

    f_mem = mean over generated x of [ ||x - NN1(x, T)|| < threshold * ||x - NN2(x, T)|| ]
    (Yoon et al. 2023; Gu et al. 2023/2025; Bonnaire et al. 2025), L2 in the suite's
    feature space (pixels by default), threshold 1/3. An exact copy of a duplicated
    training point (d1 = d2 = 0) counts as a copy. Candidate distances are refined
    in float64, so tiny d1 are exact. Chance level: for fresh samples of a locally
    uniform density with intrinsic dimension d, (d1/d2)^d is uniform on [0, 1], so
    P(copy) = threshold^d (1/9 in 2-D): choose the threshold with the data's
    dimension in mind. Reports ``mem_ratio.ci_low``/``.ci_high`` (percentile
    bootstrap of the mean).
    """

    name = "mem_ratio"
    direction = "lower"
    memorizes = "higher"
    min_excess = 0.01
    references = ("train",)
    Config = MemRatioConfig

    def min_points(self) -> int:
        return 2  # a nearest and a second-nearest training point

    def compute(self, ctx) -> dict[str, float]:
        if len(ctx.train) < 2:
            raise ValueError("mem_ratio needs at least 2 training points")
        d, _ = knn(ctx.gen, ctx.train, k=2, device=ctx.device)
        copies = ((d[:, 0] < self.config.threshold * d[:, 1]) | (d[:, 0] == 0)).astype(np.float64)
        lo, hi = bootstrap_mean_ci(copies, ctx.rng(1), self.config.bootstrap, self.config.confidence)
        return {"mem_ratio": float(copies.mean()), "mem_ratio.ci_low": lo, "mem_ratio.ci_high": hi}


def max_cosine_similarity(x: np.ndarray, ref: np.ndarray, device: str = "cpu") -> np.ndarray:
    """max_y cos(x, y) over the rows y of ``ref``, per row x (float64).

    On unit vectors ||x - y||^2 = 2 - 2 cos(x, y), so the most similar row is the
    nearest neighbour of the normalised vectors (blocked GEMM + float64 refinement).
    A zero vector has cosine 0 with everything.
    """
    xn, rn = _unit_rows(x), _unit_rows(ref)
    d, _ = knn(xn, rn, k=1, device=device)
    cos = 1.0 - d[:, 0] ** 2 / 2.0
    zero = ~np.any(xn != 0, axis=1)
    cos[zero] = 0.0
    return np.clip(cos, -1.0, 1.0)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


SOMEPALLI_TAU = 0.5  # Somepalli et al. 2023's threshold with SSCD features


@dataclass
class CopyCosineConfig:
    # None: the feature space's calibrated threshold (FeatureExtractor.cosine_copy_threshold),
    # else 0.5 (Somepalli et al. 2023 with SSCD; SSCD's README uses 0.75 for 90% precision)
    tau: Optional[float] = None
    quantile: float = 0.95  # reported as copy_cosine.p95

    def __post_init__(self):
        if self.tau is not None and not -1 <= self.tau <= 1:
            raise ValueError(f"tau must be a cosine similarity in [-1, 1] (or null), got {self.tau}")
        if not 0 <= self.quantile <= 1:
            raise ValueError(f"quantile must be in [0, 1], got {self.quantile}")


def copy_tau(configured: float | None, extractor) -> float:
    """The threshold copy_cosine applies: the configured one, else the feature space's
    own calibrated threshold, else Somepalli's 0.5."""
    if configured is not None:
        return float(configured)
    calibrated = getattr(extractor, "cosine_copy_threshold", None)
    return float(calibrated) if calibrated is not None else SOMEPALLI_TAU


class CopyCosine(Metric):
    """Fraction of samples whose maximum cosine similarity to the training set exceeds tau.

    s(x) = max_{y in T} cos(f(x), f(y)); copy_cosine = mean [ s(x) > tau ], plus
    ``copy_cosine.p95``, the 95th percentile of s, and ``copy_cosine.tau``, the
    threshold applied (Somepalli et al. 2023, with SSCD features, Pizzi et al. 2022).
    Thresholds do not carry across feature spaces: by default tau is the one the
    feature space calibrates for itself (``copy_descriptor``: the similarity a fresh
    image exceeds 1% of the time; ``sscd``: Somepalli's 0.5), and 0.5 in a space
    without one. In very low dimension (e.g. 2-D pixels) almost every point has a
    training point in nearly the same direction, so s ~ 1 for any generator: use it
    with image-level features.
    """

    name = "copy_cosine"
    direction = "lower"
    memorizes = "higher"
    min_excess = 0.01
    references = ("train",)
    Config = CopyCosineConfig

    def compute(self, ctx) -> dict[str, float]:
        tau = copy_tau(self.config.tau, ctx.extractor)
        s = max_cosine_similarity(ctx.gen, ctx.train, ctx.device)
        return {"copy_cosine": float((s > tau).mean()),
                "copy_cosine.p95": float(np.quantile(s, self.config.quantile)),
                "copy_cosine.tau": tau}


def authentic_flags(gen: np.ndarray, train: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Per generated sample: is it farther from its nearest training point t than t is
    from t's own nearest other training point? (Alaa et al. 2022, per generated sample)."""
    d_gen, idx = knn(gen, train, k=1, device=device)
    radius = knn_radii(train, 1, device)
    return d_gen[:, 0] > radius[idx[:, 0]]


@dataclass
class AuthenticityConfig:
    pass


class Authenticity(Metric):
    """Fraction of generated samples that are authentic (Alaa et al. 2022): not closer to a training point than its neighbours are.

    For generated x with nearest training point t = NN1(x, T): authentic iff
    ||x - t|| > ||t - NN1(t, T minus t)||; authenticity = mean over generated x.
    Computed per generated sample, as in the paper (one public implementation loops
    over real samples instead: a bug). Exact copies score 0; fresh samples of the
    data distribution score around one half or more, depending on the dimension.
    """

    name = "authenticity"
    direction = "higher"
    memorizes = "lower"
    min_excess = 0.01
    references = ("train",)
    Config = AuthenticityConfig

    def min_points(self) -> int:
        return 2  # a training point's nearest other training point

    def compute(self, ctx) -> dict[str, float]:
        if len(ctx.train) < 2:
            raise ValueError("authenticity needs at least 2 training points")
        return {"authenticity": float(authentic_flags(ctx.gen, ctx.train, ctx.device).mean())}


@hookimpl
def benchbase_register_metrics(register):
    register(MemRatio)
    register(CopyCosine)
    register(Authenticity)
