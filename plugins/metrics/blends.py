"""blend_ratio: is a generated sample a blend of two training points?

A mixup of two training images lies far from either (a 50/50 blend is half their
distance from each) and in no learned feature space near them: every nearest-neighbour
metric reads it as novel, the copy descriptor's included (docs/metrics.md, "Where the
gap is"). It lies exactly on the segment between its two sources in data space, where
blending is linear, which is where this metric looks. Definition: docs/metrics.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbase import Metric, hookimpl
from benchbase.neighbors import as_tensor, knn
from benchbase_plugins.metrics.memorization import bootstrap_mean_ci, check_interval

SPACES = ("data", "features")
_CHUNK_FLOATS = 1 << 25  # gathered candidates per chunk of samples (128 MB of float32)


@dataclass
class BlendRatioConfig:
    threshold: float = 1 / 3  # a blend: d(x, best two-point blend) < threshold * d(x, NN1), as mem_ratio's 1/3
    first: int = 16  # the blend's first point: one of the sample's this many nearest training points
    second: int = 256  # its second point: one of this many nearest (every point when the set is smaller)
    space: str = "data"  # "data": the samples as generated (blends are linear there); "features": the suite's
    bootstrap: int = 1000  # resamples for the confidence interval (0: none)
    confidence: float = 0.95

    def __post_init__(self):
        if not 0 < self.threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.first < 1 or self.second < 2:
            raise ValueError(f"first must be >= 1 and second >= 2, got first={self.first}, second={self.second}")
        if self.space not in SPACES:
            raise ValueError(f"space must be one of {', '.join(SPACES)}; got {self.space!r}")
        check_interval(self.bootstrap, self.confidence)


def blend_distances(x: np.ndarray, ref: np.ndarray, first: int, second: int,
                    device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``x``: the distance to its nearest row of ``ref`` and to the nearest
    point of any segment [a, b] with a among its ``first`` and b among its ``second``
    nearest rows of ``ref`` (the best blend t a + (1 - t) b, t in [0, 1]).

    With u = x - a and v = b - a, the segment's nearest point is a + t v with
    t = clip(<u, v> / |v|^2, 0, 1), at squared distance |u|^2 - 2t<u, v> + t^2 |v|^2;
    the inner products come from one batched matrix product per chunk of samples.
    """
    import torch

    q = as_tensor(np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32), device)
    r = as_tensor(np.ascontiguousarray(ref.reshape(len(ref), -1), dtype=np.float32), device)
    k = min(second, len(ref))
    m = min(first, k)
    near_d, near_i = knn(q, r, k=k, device=device)
    d1 = near_d[:, 0]
    best = np.empty(len(x), dtype=np.float64)
    idx = torch.as_tensor(near_i, device=q.device)
    u_sq_all = torch.as_tensor(near_d[:, :m] ** 2, device=q.device)
    chunk = max(1, _CHUNK_FLOATS // max(1, k * q.shape[1]))
    with torch.no_grad():
        for s in range(0, len(x), chunk):
            xs, cand = q[s:s + chunk], r[idx[s:s + chunk]]  # (c, d), (c, k, d)
            gram = torch.bmm(cand[:, :m], cand.transpose(1, 2)).double()  # <a, b>: (c, m, k)
            xb = torch.bmm(cand, xs[:, :, None])[:, :, 0].double()  # <x, b>: (c, k)
            bb = (cand.double() ** 2).sum(2)  # |b|^2: (c, k)
            aa, xa = bb[:, :m, None], xb[:, :m, None]
            u_sq = u_sq_all[s:s + chunk, :, None]  # |x - a|^2, exact from knn
            uv = xb[:, None, :] - xa - gram + aa  # <x - a, b - a>
            vv = (bb[:, None, :] - 2 * gram + aa).clamp_min(0)
            t = torch.where(vv > 0, uv / vv.clamp_min(1e-300), torch.zeros_like(vv)).clamp(0, 1)
            dist_sq = (u_sq - 2 * t * uv + t * t * vv).clamp_min(0)
            best[s:s + len(xs)] = dist_sq.flatten(1).min(1).values.sqrt().cpu().numpy()
    return d1, np.minimum(best, d1)


class BlendRatio(Metric):
    """Fraction of samples that a blend of two training points explains far better than any one point.

    blend_ratio = mean over generated x of [ d_blend(x) < threshold * d_1(x) ], d_1 the
    distance to the nearest training point and d_blend to the nearest blend
    t a + (1 - t) b of two training points (a among x's ``first``, b among its
    ``second`` nearest), L2 in data space by default (``space: features`` for the
    suite's feature space). An exact copy (d_1 = 0) counts. A fresh sample needs
    two training points whose segment passes three times closer to it than any one
    point does: on digits none of 400 fresh test digits (the 1st percentile of
    d_blend / d_1 is 0.60), while 94% of 50/50 mixups of two training digits read 0 (the
    rest have a source outside the candidates; all of them with ``second`` = 800).
    Reports ``blend_ratio.ci_low``/``.ci_high`` (percentile bootstrap of the mean).
    """

    name = "blend_ratio"
    direction = "lower"
    memorizes = "higher"
    min_excess = 0.01
    references = ("train",)
    Config = BlendRatioConfig

    def min_points(self) -> int:
        return 2  # two points to blend

    def compute(self, ctx) -> dict[str, float]:
        data = self.config.space == "data"
        x, ref = (ctx.samples, ctx.train_data) if data else (ctx.gen, ctx.train)
        if len(ref) < 2:
            raise ValueError("blend_ratio needs at least 2 training points")
        d1, d_blend = blend_distances(np.asarray(x), np.asarray(ref), self.config.first, self.config.second,
                                      ctx.device)
        flags = ((d_blend < self.config.threshold * d1) | (d1 == 0)).astype(np.float64)
        lo, hi = bootstrap_mean_ci(flags, ctx.rng(1), self.config.bootstrap, self.config.confidence)
        return {"blend_ratio": float(flags.mean()), "blend_ratio.ci_low": lo, "blend_ratio.ci_high": hi}


@hookimpl
def benchbase_register_metrics(register):
    register(BlendRatio)
