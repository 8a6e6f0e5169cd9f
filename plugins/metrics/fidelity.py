"""Fidelity metrics: how far is the generated distribution from the data's?

fd (Fréchet distance of Gaussian fits), kid (kernel inception distance, unbiased
MMD^2), swd (sliced Wasserstein) and w2_exact (exact optimal transport on a
subsample). All run in the suite's feature space; definitions, references and
tolerances in docs/metrics.md.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from benchbase import Metric, hookimpl
from benchbase.neighbors import ReferenceMemo, as_tensor, torch_device


def gaussian_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance in float64 (as pytorch-fid computes them)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if len(x) < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {len(x)}")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr (S1 S2)^{1/2} for symmetric PSD S1, S2, in float64.

    S1 S2 is similar to the symmetric PSD matrix B^T S2 B for any factor S1 = B B^T,
    so the trace is sum sqrt(eigvalsh(B^T S2 B)): a symmetric eigensolver (values
    only), no complex parts, several times faster than scipy.linalg.sqrtm. B is the
    Cholesky factor when S1 is positive definite (cheapest; B^T S2 B by two
    triangular products), else S1^{1/2} from eigh (a singular S1, e.g. fewer samples
    than dimensions).
    """
    from scipy import linalg
    from scipy.linalg import blas

    s1 = (np.asarray(s1, np.float64) + np.asarray(s1, np.float64).T) / 2
    s2 = np.asfortranarray((np.asarray(s2, np.float64) + np.asarray(s2, np.float64).T) / 2)
    try:
        b = np.asfortranarray(linalg.cholesky(s1, lower=True, check_finite=False))
        m = blas.dtrmm(1.0, b, blas.dtrmm(1.0, b, s2, side=1, lower=1), side=0, lower=1, trans_a=1,
                       overwrite_b=1)  # B^T (S2 B)
    except linalg.LinAlgError:
        w, v = linalg.eigh(s1, check_finite=False)
        b = v * np.sqrt(np.clip(w, 0, None))
        m = b.T @ s2 @ b
    ev = linalg.eigvalsh((m + m.T) / 2, check_finite=False)
    return float(np.sqrt(np.clip(ev, 0, None)).sum())


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + Tr S1 + Tr S2 - 2 Tr (S1 S2)^{1/2}, all in float64 (Heusel et al. 2017)."""
    mu1, mu2 = np.asarray(mu1, np.float64).ravel(), np.asarray(mu2, np.float64).ravel()
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"shapes differ: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * trace_sqrt_product(s1, s2))


_REFERENCE_STATS = ReferenceMemo(size=4)  # train/test statistics: computed once per run


@dataclass
class FDConfig:
    pass


class FD(Metric):
    """Fréchet distance between Gaussian fits of generated and reference features (FID in Inception space).

    FD = ||mu_g - mu_r||^2 + Tr S_g + Tr S_r - 2 Tr (S_g S_r)^{1/2} (Heusel et al. 2017),
    means and unbiased covariances in float64; FID when the feature space is
    Inception pool3. Reference: pytorch-fid ``calculate_frechet_distance`` (matched to
    1e-6 relative). Biased upward at small N (by roughly Tr S / N per set): compare
    values at the same eval.n_samples and reference size only.
    """

    name = "fd"
    direction = "lower"
    references = ("test", "train")
    Config = FDConfig

    def min_points(self) -> int:
        return 2  # a covariance

    def compute(self, ctx) -> dict[str, float]:
        mu1, s1 = gaussian_stats(ctx.gen)
        mu2, s2 = _REFERENCE_STATS.get(ctx.ref, ("gaussian",), lambda: gaussian_stats(ctx.ref))
        return {"fd": frechet_distance(mu1, s1, mu2, s2), "fd.n_gen": float(len(ctx.gen)),
                "fd.n_ref": float(len(ctx.ref))}


# ------------------------------------------------------------------------------- kid


def kid_subsets(n_gen: int, n_ref: int, subsets: int, subset_size: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (S, m) of the subsets, drawn without replacement within a subset.

    m = min(subset_size, n_gen, n_ref) (torch-fidelity's 1000 adapted to small N);
    when m covers both sets entirely, every subset would be the same: one is drawn.
    """
    m = min(subset_size, n_gen, n_ref)
    if m < 2:
        raise ValueError(f"kid needs at least 2 samples per set, got {n_gen} and {n_ref}")
    if m == n_gen and m == n_ref:
        subsets = 1
    gi = np.stack([rng.permutation(n_gen)[:m] for _ in range(subsets)])
    ri = np.stack([rng.permutation(n_ref)[:m] for _ in range(subsets)])
    return gi, ri


def polynomial_mmd2(gen: np.ndarray, ref: np.ndarray, gen_idx: np.ndarray, ref_idx: np.ndarray,
                    degree: int = 3, coef0: float = 1.0, device: str = "cpu",
                    max_gram: int = 1 << 25) -> np.ndarray:
    """Unbiased MMD^2 per subset with k(x, y) = (x.y / d + coef0)^degree, float64.

    Per subset of size m: (sum_{i!=j} k(x_i,x_j) + sum_{i!=j} k(y_i,y_j)) / (m(m-1))
    - 2 sum_{i,j} k(x_i,y_j) / m^2 (torch-fidelity's ``mmd2``). When the full Gram
    matrices fit in ``max_gram`` elements they are computed once and every subset's
    sums come from one matrix product with its 0/1 indicator vectors; otherwise each
    subset gets its own batched Gram blocks.
    """
    import torch

    dev = torch_device(device)
    x = as_tensor(gen, dev, torch.float64)
    y = as_tensor(ref, dev, torch.float64)
    d = x.shape[1]
    gi = torch.as_tensor(gen_idx, device=dev)
    ri = torch.as_tensor(ref_idx, device=dev)
    n_sub, m = gi.shape

    def kernel(a, b):
        return (a @ b.transpose(-1, -2) / d + coef0) ** degree

    if len(x) ** 2 + len(y) ** 2 + len(x) * len(y) <= max_gram:
        wx = torch.zeros((n_sub, len(x)), dtype=torch.float64, device=dev).scatter_(1, gi, 1.0)
        wy = torch.zeros((n_sub, len(y)), dtype=torch.float64, device=dev).scatter_(1, ri, 1.0)
        kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)
        sxx = ((wx @ kxx) * wx).sum(1) - (wx * torch.diagonal(kxx)).sum(1)
        syy = ((wy @ kyy) * wy).sum(1) - (wy * torch.diagonal(kyy)).sum(1)
        sxy = ((wx @ kxy) * wy).sum(1)
    else:
        chunk = max(1, int(max_gram // (3 * m * m)))
        parts = []
        for s in range(0, n_sub, chunk):
            xs, ys = x[gi[s:s + chunk]], y[ri[s:s + chunk]]
            kxx, kyy, kxy = kernel(xs, xs), kernel(ys, ys), kernel(xs, ys)
            parts.append(torch.stack([
                kxx.sum((1, 2)) - torch.diagonal(kxx, dim1=1, dim2=2).sum(1),
                kyy.sum((1, 2)) - torch.diagonal(kyy, dim1=1, dim2=2).sum(1),
                kxy.sum((1, 2))], 1))
        sxx, syy, sxy = torch.cat(parts).unbind(1)
    mmd2 = (sxx + syy) / (m * (m - 1)) - 2 * sxy / (m * m)
    return mmd2.cpu().numpy()


@dataclass
class KIDConfig:
    subsets: int = 100  # torch-fidelity default
    subset_size: int = 1000  # torch-fidelity default; capped at the smaller set size
    degree: int = 3
    coef0: float = 1.0

    def __post_init__(self):
        if self.subsets < 1 or self.subset_size < 2 or self.degree < 1:
            raise ValueError(f"kid needs subsets >= 1, subset_size >= 2 and degree >= 1, got {self.subsets}, "
                             f"{self.subset_size} and {self.degree}")


class KID(Metric):
    """Kernel inception distance: unbiased MMD^2 with a cubic polynomial kernel, averaged over subsets.

    k(x, y) = (x.y / d + 1)^3 (Bińkowski et al. 2018); per subset pair of size m the
    unbiased MMD^2 estimator, then the mean over ``subsets`` random subsets
    (torch-fidelity defaults 100 x 1000, with m capped at the smaller set so small N
    works; when m covers both sets the estimate is exact and computed once). Small
    negative values are valid (unbiased). Reports ``kid.std`` over subsets and
    ``kid.subset_size``.
    """

    name = "kid"
    direction = "lower"
    references = ("test", "train")
    Config = KIDConfig

    def min_points(self) -> int:
        return 2  # the unbiased estimator leaves each point out

    def compute(self, ctx) -> dict[str, float]:
        c = self.config
        gi, ri = kid_subsets(len(ctx.gen), len(ctx.ref), c.subsets, c.subset_size, ctx.rng(3))
        values = polynomial_mmd2(ctx.gen, ctx.ref, gi, ri, c.degree, c.coef0, ctx.device)
        return {"kid": float(values.mean()), "kid.std": float(values.std()),
                "kid.subset_size": float(gi.shape[1])}


# ------------------------------------------------------------------------------- swd


@functools.lru_cache(maxsize=8)
def random_directions(dim: int, n: int, seed: int) -> np.ndarray:
    """(dim, n) unit vectors, uniform on the sphere: normalised standard normals from
    ``np.random.RandomState(seed)`` (the same directions POT draws for that seed).
    Cached: every evaluation of a run uses the same directions. Read-only."""
    p = np.random.RandomState(seed).randn(dim, n)
    p /= np.sqrt((p * p).sum(0, keepdims=True))
    p.setflags(write=False)
    return p


def sort_rows(t):
    """Each row of a 2-D tensor sorted ascending; numpy's SIMD sort on the CPU (two
    orders of magnitude faster than torch.sort there), torch.sort elsewhere."""
    import torch

    if t.device.type == "cpu":
        return torch.from_numpy(np.sort(t.numpy(), axis=1))
    return torch.sort(t, dim=1).values


def wasserstein_1d_sorted(xs, ys, p: float):
    """W_p^p between uniform empirical measures, per row of sorted xs (P, n), ys (P, m).

    Exact for unequal sizes: the quantile functions are piecewise constant with breaks
    at i/n and j/m; on the common grid (integers in units of 1/(n m)) each piece
    pairs x_(ceil(u n)) with y_(ceil(u m)).
    """
    import torch

    n, m = xs.shape[1], ys.shape[1]
    if n == m:
        return (torch.abs(xs - ys) ** p).mean(1)
    dev = xs.device
    grid = torch.unique(torch.cat([torch.arange(1, n + 1, device=dev) * m,
                                   torch.arange(1, m + 1, device=dev) * n]))  # sorted
    widths = torch.diff(grid, prepend=torch.zeros(1, dtype=grid.dtype, device=dev)).to(xs.dtype) / (n * m)
    ix = (grid + m - 1) // m - 1
    iy = (grid + n - 1) // n - 1
    return (widths[None, :] * torch.abs(xs[:, ix] - ys[:, iy]) ** p).sum(1)


def sliced_wasserstein(x: np.ndarray, y: np.ndarray, n_projections: int = 200, p: float = 2,
                       seed: int = 0, device: str = "cpu") -> float:
    """(mean over random unit directions theta of W_p^p(theta.X, theta.Y))^(1/p).

    POT's ``ot.sliced_wasserstein_distance(x, y, n_projections, p, seed=seed)`` with
    uniform weights (the same directions for the same seed), computed as one batched
    float32 projection per set on the torch device (features are float32 anyway:
    agrees with POT's float64 to ~1e-8 relative), a row sort, and the 1-D transport
    costs in float64.
    """
    import torch

    xt, yt = as_tensor(x, device), as_tensor(y, device)
    if xt.shape[1] != yt.shape[1]:
        raise ValueError(f"dimensions differ: {xt.shape[1]} vs {yt.shape[1]}")
    theta = torch.tensor(random_directions(xt.shape[1], n_projections, seed), dtype=torch.float32, device=xt.device)
    with torch.no_grad():
        xs = sort_rows(theta.T @ xt.T).double()  # (P, n)
        ys = sort_rows(theta.T @ yt.T).double()
        return float(wasserstein_1d_sorted(xs, ys, p).mean() ** (1.0 / p))


@dataclass
class SWDConfig:
    n_projections: int = 200  # random directions
    p: int = 2
    max_points: int = 2000  # each set is subsampled to at most this many points
    seed: int = 0  # direction seed: the same directions at every evaluation and run

    def __post_init__(self):
        if self.n_projections < 1:
            raise ValueError(f"n_projections must be at least 1, got {self.n_projections}")
        if self.p < 1:
            raise ValueError(f"p must be at least 1 (a Wasserstein order), got {self.p}")


class SWD(Metric):
    """Sliced Wasserstein distance: (mean over random directions of W_p^p)^(1/p).

    SW_p(G, R) = (E_theta W_p^p(theta.G, theta.R))^(1/p), theta uniform on the sphere,
    estimated with ``n_projections`` seeded directions (the same for every run and
    step) on at most ``max_points`` points per set. Equals POT's
    ``ot.sliced_wasserstein_distance`` for the same seed (to ~1e-8 relative: float32
    projections); computed as one batched projection and sort per set. The position paper (seed 001) tracks it
    on 2,000 generated samples against each split.
    """

    name = "swd"
    direction = "lower"
    references = ("test", "train")
    Config = SWDConfig

    def compute(self, ctx) -> dict[str, float]:
        c = self.config
        rng = ctx.rng(2)
        x = subsample(ctx.gen, c.max_points, rng)
        y = subsample(ctx.ref, c.max_points, rng)
        return {"swd": sliced_wasserstein(x, y, c.n_projections, c.p, c.seed, ctx.device)}


def subsample(x: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``limit`` rows of ``x`` (flattened), chosen without replacement, in order."""
    x = np.asarray(x).reshape(len(x), -1)
    if limit <= 0 or len(x) <= limit:
        return x
    return x[np.sort(rng.choice(len(x), size=limit, replace=False))]


# -------------------------------------------------------------------------- w2_exact


def squared_distances(x: np.ndarray, y: np.ndarray, device: str = "cpu") -> np.ndarray:
    """float64 matrix of ||x_i - y_j||^2 (clipped at 0), on the torch device."""
    import torch

    xt = as_tensor(x, device, torch.float64)
    yt = as_tensor(y, device, torch.float64)
    d2 = (xt * xt).sum(1)[:, None] + (yt * yt).sum(1)[None, :] - 2 * xt @ yt.T
    return d2.clamp_min_(0).cpu().numpy()


@dataclass
class W2ExactConfig:
    max_points: int = 1000  # each set is subsampled to at most this many points
    num_iter_max: int = 10_000_000  # network simplex iterations (POT's default 1e5 is too few)

    def __post_init__(self):
        if self.num_iter_max < 1:
            raise ValueError(f"num_iter_max must be at least 1, got {self.num_iter_max}")


class W2Exact(Metric):
    """Exact 2-Wasserstein distance between uniform subsamples, via POT's network simplex.

    W2 = sqrt(min_{P in U(a, b)} sum_ij P_ij ||g_i - r_j||^2), a and b uniform, solved by
    ``ot.emd2(ot.unif(n), ot.unif(m), M)`` with M the float64 squared-distance matrix.
    Cubic in the sample size: only on ``max_points`` points per set, and biased upward
    at small sizes (an empirical measure is far from its own population); compare at
    equal sizes. Reports ``w2_exact.n``.
    """

    name = "w2_exact"
    direction = "lower"
    references = ("test", "train")
    Config = W2ExactConfig

    def compute(self, ctx) -> dict[str, float]:
        import ot

        c = self.config
        rng = ctx.rng(4)
        x = subsample(ctx.gen, c.max_points, rng)
        y = subsample(ctx.ref, c.max_points, rng)
        cost = squared_distances(x, y, ctx.device)
        value = ot.emd2(ot.unif(len(x)), ot.unif(len(y)), cost, numItermax=c.num_iter_max)
        return {"w2_exact": float(np.sqrt(max(float(value), 0.0))), "w2_exact.n": float(len(x))}


@hookimpl
def benchbase_register_metrics(register):
    register(FD)
    register(KID)
    register(SWD)
    register(W2Exact)
