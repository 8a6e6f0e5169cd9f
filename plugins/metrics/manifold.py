"""k-NN manifold metrics: precision and recall (Kynkaanniemi et al. 2019, k = 3),
density and coverage (Naeem et al. 2020, k = 5).

Each set's manifold is the union of balls around its points with radius the distance
to the point's k-th nearest other point of the same set. Reference: PyPI ``prdc``
``compute_prdc`` (tests/test_metric_manifold.py). Ball membership is decided with a
float32 GEMM and re-checked in float64 near the boundary (benchbase.neighbors).
Definitions: docs/metrics.md.
"""
from __future__ import annotations

from dataclasses import dataclass

from benchbase import Metric, hookimpl
from benchbase.neighbors import count_within, knn, knn_radii


def precision_value(gen, ref, k: int, device: str = "cpu") -> float:
    """Fraction of generated points inside the reference manifold."""
    return float((count_within(gen, ref, knn_radii(ref, k, device), device) > 0).mean())


def recall_value(gen, ref, k: int, device: str = "cpu") -> float:
    """Fraction of reference points inside the generated manifold."""
    return float((count_within(ref, gen, knn_radii(gen, k, device), device) > 0).mean())


def density_value(gen, ref, k: int, device: str = "cpu") -> float:
    """(1 / k m) sum over generated x of the number of reference balls containing x."""
    counts = count_within(gen, ref, knn_radii(ref, k, device), device)
    return float(counts.sum() / (k * len(gen)))


def coverage_value(gen, ref, k: int, device: str = "cpu") -> float:
    """Fraction of reference points whose ball contains at least one generated point."""
    d, _ = knn(ref, gen, k=1, device=device)
    return float((d[:, 0] <= knn_radii(ref, k, device)).mean())


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1 (the k-th nearest neighbour sets a radius), got {k}")


@dataclass
class PrecisionConfig:
    k: int = 3  # Kynkaanniemi et al. 2019

    def __post_init__(self):
        _check_k(self.k)


@dataclass
class DensityConfig:
    k: int = 5  # Naeem et al. 2020

    def __post_init__(self):
        _check_k(self.k)


class _ManifoldMetric(Metric):
    references = ("test", "train")
    _value = staticmethod(precision_value)

    def min_points(self) -> int:
        return self.config.k + 1  # a point and its k nearest others

    def compute(self, ctx) -> dict[str, float]:
        if len(ctx.ref) <= self.config.k or len(ctx.gen) <= self.config.k:
            raise ValueError(f"{self.name} with k={self.config.k} needs more than {self.config.k} "
                             f"points per set, got {len(ctx.gen)} generated and {len(ctx.ref)} reference")
        return {self.name: type(self)._value(ctx.gen, ctx.ref, self.config.k, ctx.device)}


class Precision(_ManifoldMetric):
    """Fraction of generated samples inside the reference manifold (Kynkaanniemi et al. 2019, k = 3).

    precision = mean over generated x of [ exists r: ||x - r|| <= NND_k(r) ], NND_k(r)
    the distance of reference point r to its k-th nearest other reference point.
    Fidelity: 1 when every sample lies on the data. ``prdc`` uses a strict '<'; the
    two differ only on exact ties.
    """

    name = "precision"
    direction = "higher"
    Config = PrecisionConfig
    _value = staticmethod(precision_value)


class Recall(_ManifoldMetric):
    """Fraction of reference points inside the generated manifold (Kynkaanniemi et al. 2019, k = 3).

    recall = mean over reference r of [ exists x: ||r - x|| <= NND_k(x) ], with the
    radii now from the generated set. Diversity: 1 when samples cover the data.
    """

    name = "recall"
    direction = "higher"
    Config = PrecisionConfig
    _value = staticmethod(recall_value)


class Density(_ManifoldMetric):
    """Expected number of reference balls per generated sample, over k (Naeem et al. 2020, k = 5).

    density = (1 / (k m)) sum_x sum_r [ ||x - r|| <= NND_k(r) ]. Unbounded; its
    expectation is 1 when the generated and reference distributions are equal, so
    the target is 1 (> 1: samples crowd dense regions of the data).
    """

    name = "density"
    direction = "target"
    target = 1.0
    Config = DensityConfig
    _value = staticmethod(density_value)


class Coverage(_ManifoldMetric):
    """Fraction of reference balls that contain a generated sample (Naeem et al. 2020, k = 5).

    coverage = mean over reference r of [ min_x ||r - x|| <= NND_k(r) ]. Robust to
    outliers among the samples, unlike recall, and bounded by 1; for identical
    distributions its expectation is high but below 1 (about 0.97 in the prdc README
    case with k = 5). Reference: ``prdc.compute_prdc``.
    """

    name = "coverage"
    direction = "higher"
    Config = DensityConfig
    _value = staticmethod(coverage_value)


@hookimpl
def benchbase_register_metrics(register):
    register(Precision)
    register(Recall)
    register(Density)
    register(Coverage)
