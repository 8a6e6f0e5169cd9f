"""Novelty metrics: are generated samples as far from the training set as fresh data is?

Each compares generated samples G with the training subset T *and* the held-out
test split S, whose points are novel by construction: dcr_overfit (distance to
closest record), novelty_ratio (median nearest-training distance ratio),
proximity_auc (how often a sample is closer to T than a test point) and ct_test
(Meehan et al. 2020's three-sample data-copying test). Definitions: docs/metrics.md.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from benchbase import Metric, hookimpl
from benchbase.neighbors import ReferenceMemo, knn


def _equal_size(t: np.ndarray, s: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = min(len(t), len(s))
    pick = lambda a: a if len(a) == n else a[np.sort(rng.choice(len(a), n, replace=False))]  # noqa: E731
    return pick(t), pick(s)


def closer_to_train(gen: np.ndarray, train: np.ndarray, test: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Per generated sample: 1 if nearer to ``train`` than to ``test``, 0.5 on a tie, else 0."""
    d_t, _ = knn(gen, train, k=1, device=device)
    d_s, _ = knn(gen, test, k=1, device=device)
    return (d_t[:, 0] < d_s[:, 0]) + 0.5 * (d_t[:, 0] == d_s[:, 0])


@dataclass
class DCROverfitConfig:
    pass


class DCROverfit(Metric):
    """Fraction of samples closer to the training subset than to an equal-size test subset (DCR).

    dcr_overfit = mean over generated x of [ d(x, T') < d(x, S') ] (+ 1/2 on ties), with
    T' and S' random subsets of equal size min(|T|, |S|) (SDMetrics' DCR overfitting
    protection, style). 0.5: no preference for the training data; -> 1: copying.
    When |T| > |S|, T' leaves out part of the training set and a copy of a left-out
    point counts like a fresh sample: the score then understates copying (recorded
    as ``dcr_overfit.n``).
    """

    name = "dcr_overfit"
    direction = "target"
    target = 0.5
    memorizes = "higher"
    # samples away from the data (noise) make decisions that hinge on the few outermost
    # points of T' and S', so they read up to ~0.2 above chance in 2-D although they copy
    # nothing: only a larger excess counts (docs/metrics.md)
    min_excess = 0.25
    references = ("train",)
    Config = DCROverfitConfig

    def compute(self, ctx) -> dict[str, float]:
        t, s = _equal_size(ctx.train, ctx.test, ctx.rng(5))
        return {"dcr_overfit": float(closer_to_train(ctx.gen, t, s, ctx.device).mean()),
                "dcr_overfit.n": float(len(t))}


@dataclass
class NoveltyRatioConfig:
    pass


class NoveltyRatio(Metric):
    """Median nearest-training distance of samples over that of held-out test points.

    novelty_ratio = median_{x in G} d(x, NN1(x, T)) / median_{s in S} d(s, NN1(s, T)).
    Test points are novel by construction, so ~1 means samples are as far from the
    training set as fresh data; -> 0 means copying; > 1 means samples fall off the
    data (underfitting or noise). Meaningless if S overlaps T.
    """

    name = "novelty_ratio"
    direction = "target"
    target = 1.0
    memorizes = "lower"
    min_excess = 0.02
    references = ("train",)
    Config = NoveltyRatioConfig

    def compute(self, ctx) -> dict[str, float]:
        d_g, _ = knn(ctx.gen, ctx.train, k=1, device=ctx.device)
        d_s, _ = knn(ctx.test, ctx.train, k=1, device=ctx.device)
        g, s = float(np.median(d_g[:, 0])), float(np.median(d_s[:, 0]))
        ratio = g / s if s > 0 else float("nan")
        return {"novelty_ratio": ratio, "novelty_ratio.gen_median": g, "novelty_ratio.test_median": s}


@dataclass
class ProximityAUCConfig:
    pass


class ProximityAUC(Metric):
    """Probability that a generated sample lies closer to the training set than a held-out point does.

    proximity_auc = P(d(x, T) < d(s, T)) + 1/2 P(d(x, T) = d(s, T)) over generated x and
    test points s: the area under the ROC curve of "distance to the nearest training
    point" separating test points from samples, i.e. the Mann-Whitney U of the two
    distance samples over (m |S|). 0.5: samples keep the distance fresh data keeps;
    -> 1: copies, including noisy ones that the ratio test of mem_ratio misses (a
    copy plus noise of 0.7 times the typical held-out distance still sits closer
    than most held-out points); < 0.5: samples off the data. Detail
    ``proximity_auc.z``: the Mann-Whitney Z without tie correction (positive:
    closer than fresh data).
    """

    name = "proximity_auc"
    direction = "target"
    target = 0.5
    memorizes = "higher"
    min_excess = 0.02
    references = ("train",)
    Config = ProximityAUCConfig

    def compute(self, ctx) -> dict[str, float]:
        gen_d = knn(ctx.gen, ctx.train, k=1, device=ctx.device)[0][:, 0]
        test_d = _TEST_DISTANCES.get((ctx.train, ctx.test), (str(ctx.device),),
                                     lambda: knn(ctx.test, ctx.train, k=1, device=ctx.device)[0][:, 0])
        m, n = float(len(gen_d)), float(len(test_d))
        u = mann_whitney_u(test_d, gen_d)  # pairs where the test point is the farther one
        z = (u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12)
        return {"proximity_auc": u / (m * n), "proximity_auc.z": float(z)}


_TEST_DISTANCES = ReferenceMemo(size=4)


# ---------------------------------------------------------------------------- C_T


def mann_whitney_u(x: np.ndarray, y: np.ndarray) -> float:
    """U statistic of sample x against y: #{(i, j): x_i > y_j} + #{x_i = y_j} / 2
    (scipy.stats.mannwhitneyu(x, y).statistic), by binary search on sorted y."""
    y = np.sort(np.asarray(y, dtype=np.float64))
    x = np.asarray(x, dtype=np.float64)
    below = np.searchsorted(y, x, side="left")
    at_or_below = np.searchsorted(y, x, side="right")
    return float(below.sum() + 0.5 * (at_or_below - below).sum())


def c_t_statistic(test_d: np.ndarray, test_cells: np.ndarray, gen_d: np.ndarray, gen_cells: np.ndarray,
                  n_cells: int, min_gen: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Meehan et al. 2020's C_T from nearest-training distances and cell labels.

    Per cell c with at least ``min_gen`` generated samples and at least one test
    point: Z_c = (U_c - n_c m_c / 2 + 1/2) / sqrt(n_c m_c (n_c + m_c + 1) / 12), U_c the
    Mann-Whitney U of the cell's generated distances against its test distances and
    1/2 the continuity correction of the reference code (toward "no copying").
    C_T = sum_c P_S(c) Z_c / sum_c P_S(c) over those cells (P_S: test fraction).
    Cells are indexed by label with fixed length ``n_cells``, so a cell without
    generated samples can never shift the others (the reference code's misalignment).
    Returns (C_T, Z per cell with NaN where unused, mask of used cells).
    """
    test_cells = np.asarray(test_cells, dtype=np.int64)
    gen_cells = np.asarray(gen_cells, dtype=np.int64)
    n_per = np.bincount(test_cells, minlength=n_cells)
    m_per = np.bincount(gen_cells, minlength=n_cells)
    used = (m_per >= min_gen) & (n_per > 0)
    z = np.full(n_cells, np.nan)
    for c in np.flatnonzero(used):  # a loop over cells, not samples
        n, m = float(n_per[c]), float(m_per[c])
        u = mann_whitney_u(gen_d[gen_cells == c], test_d[test_cells == c])
        z[c] = (u - n * m / 2 + 0.5) / np.sqrt(n * m * (n + m + 1) / 12)
    p_s = n_per / max(len(test_cells), 1)
    if not used.any():
        return float("nan"), z, used
    return float((p_s[used] * z[used]).sum() / p_s[used].sum()), z, used


def pca_projection(train: np.ndarray, dim: int, max_points: int = 10_000) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, components (d, dim)) of the top ``dim`` principal axes of ``train`` (from
    the covariance of at most ``max_points`` evenly spaced rows, float64), or None when
    the features already have at most ``dim`` dimensions (or dim <= 0)."""
    x = np.asarray(train, dtype=np.float64).reshape(len(train), -1)
    if dim <= 0 or x.shape[1] <= dim:
        return None
    if len(x) > max_points:
        x = x[np.linspace(0, len(x) - 1, max_points).astype(np.int64)]
    mean = x.mean(0)
    xc = x - mean
    _, vecs = np.linalg.eigh(xc.T @ xc)
    return mean, vecs[:, ::-1][:, :dim].copy()


@dataclass
class CTTestConfig:
    n_cells: int = 5  # k-means cells on the training set (capped at the training size)
    # cells with fewer generated samples are skipped; 21: "more than 20", the reference
    # code's Q_m(cell) > tau = 20 / m
    min_gen_per_cell: int = 21
    pca_dim: int = 64  # project to this many principal axes of T first (0: no projection)
    seed: int = 0  # k-means initialisation


class CTTest(Metric):
    """Meehan et al. 2020 data-copying test C_T: per-cell Mann-Whitney Z of nearest-training distances, samples vs test.

    As the authors' reference code: every point (training, test, generated) is first
    projected onto the top ``pca_dim`` principal axes of the training set T (the
    later fix of the reference code uses PCA-64; the paper 50 cells on a 64-d
    latent) and all distances are taken there. Cells: k-means (``n_cells``) on the
    projected T. In each cell, the distances of the cell's generated and test points
    to their nearest training point *of the same cell* are compared by the
    Mann-Whitney U test, Z = (U - nm/2 + 1/2) / sqrt(nm(n+m+1)/12) (with the reference
    code's continuity correction); C_T averages Z over the cells with more than 20
    generated samples (``min_gen_per_cell`` = 21; tau = 20/m in the paper), weighted by
    the test fraction. C_T << 0: data copying; ~0: no evidence; >> 0: underfitting.
    |C_T| grows like sqrt(sample size) for a fixed effect, so compare at equal sizes.
    Reports ``ct_test.cells_used`` and ``ct_test.gen_fraction`` (samples in used cells).
    When no cell has enough samples, C_T falls back to one cell over all points (the
    global Mann-Whitney Z against all of T) and ``ct_test.single_cell`` is 1.
    """

    name = "ct_test"
    direction = "target"
    target = 0.0
    version = "2"  # 2: same-cell distances, continuity correction, cells of more than 20 samples
    memorizes = "lower"
    min_excess = 1.0  # in units of the per-cell null standard deviation
    references = ("train",)
    Config = CTTestConfig

    def compute(self, ctx) -> dict[str, float]:
        c = self.config
        key = (c.n_cells, c.pca_dim, c.seed, str(ctx.device))
        ref = _CELLS.get(ctx.train, key, lambda: _cells_by_content(ctx.train, c))
        test_cells, test_d = _TEST_SIDE.get((ctx.train, ctx.test), key, lambda: ref.assign(ctx.test, ctx.device))
        gen_cells, gen_d = ref.assign(ctx.gen, ctx.device)
        value, _, used = c_t_statistic(test_d, test_cells, gen_d, gen_cells, ref.n_cells, c.min_gen_per_cell)
        if not used.any():
            # Too few samples for any cell (tiny evaluations): one cell over everything,
            # the plain Mann-Whitney Z of samples vs test points, flagged as such.
            test_all = knn(ref.view(ctx.test), ref.train, k=1, device=ctx.device)[0][:, 0]
            gen_all = knn(ref.view(ctx.gen), ref.train, k=1, device=ctx.device)[0][:, 0]
            value, _, _ = c_t_statistic(test_all, np.zeros(len(test_all), np.int64), gen_all,
                                        np.zeros(len(gen_all), np.int64), 1, 1)
            return {"ct_test": value, "ct_test.cells_used": 1.0, "ct_test.gen_fraction": 1.0,
                    "ct_test.single_cell": 1.0}
        return {"ct_test": value, "ct_test.cells_used": float(used.sum()),
                "ct_test.gen_fraction": float(np.isin(gen_cells, np.flatnonzero(used)).mean()),
                "ct_test.single_cell": 0.0}


@dataclass
class _Cells:
    """The training side of C_T, fixed for a run: projection, k-means cells, the
    training points of each cell."""

    proj: tuple | None
    train: np.ndarray
    train_cells: np.ndarray
    kmeans: object
    n_cells: int

    def predict(self, x_view: np.ndarray) -> np.ndarray:
        """Cell of each (projected) row: its nearest k-means centre."""
        _, idx = knn(x_view, self.kmeans.cluster_centers_.astype(np.float32), k=1)
        return idx[:, 0]

    def view(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return (x if self.proj is None else (x - self.proj[0]) @ self.proj[1]).astype(np.float32)

    def assign(self, x: np.ndarray, device: str) -> tuple[np.ndarray, np.ndarray]:
        """Cell of each row and its distance to the nearest training point of that cell
        (in the projected space)."""
        v = self.view(x)
        cells = self.predict(v)
        dist = np.full(len(v), np.inf)
        for c in np.unique(cells):  # a loop over cells, not samples
            rows, members = np.flatnonzero(cells == c), self.train[self.train_cells == c]
            if len(members):
                dist[rows] = knn(v[rows], members, k=1, device=device)[0][:, 0]
        return cells, dist


_CELLS = ReferenceMemo(size=4)  # training side, per training set
_TEST_SIDE = ReferenceMemo(size=4)  # (cells, distances) of the test split, per (training set, test split)


_CELLS_BY_CONTENT: OrderedDict = OrderedDict()  # runs of one suite share a training set: fit it once


def _cells_by_content(train: np.ndarray, c: CTTestConfig, size: int = 4) -> _Cells:
    """The training cells of ``train``, fitted once per process for equal contents (each
    run loads its features anew, so identity alone would refit them run after run)."""
    arr = np.ascontiguousarray(train, dtype=np.float32)
    key = (hashlib.sha256(arr.tobytes()).hexdigest(), arr.shape, c.n_cells, c.pca_dim, c.seed)
    if key not in _CELLS_BY_CONTENT:
        _CELLS_BY_CONTENT[key] = _training_cells(train, c)
        while len(_CELLS_BY_CONTENT) > size:
            _CELLS_BY_CONTENT.popitem(last=False)
    _CELLS_BY_CONTENT.move_to_end(key)
    return _CELLS_BY_CONTENT[key]


def _training_cells(train: np.ndarray, c: CTTestConfig) -> _Cells:
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    # one BLAS/OpenMP thread: the eigendecomposition and sklearn's k-means spin badly when
    # the CPU is shared (seconds instead of milliseconds), and this happens once per
    # training set
    with threadpool_limits(1):
        cells = _Cells(pca_projection(train, c.pca_dim), np.empty(0), np.empty(0), None, 0)
        cells.train = cells.view(train)
        cells.n_cells = max(1, min(c.n_cells, len(train)))
        cells.kmeans = KMeans(n_clusters=cells.n_cells, n_init=10, random_state=c.seed).fit(
            cells.train.astype(np.float64))
    # cells of the training points by the same nearest-centre rule as every other point
    cells.train_cells = cells.predict(cells.train)
    return cells


@hookimpl
def benchbase_register_metrics(register):
    register(DCROverfit)
    register(NoveltyRatio)
    register(CTTest)
    register(ProximityAUC)
