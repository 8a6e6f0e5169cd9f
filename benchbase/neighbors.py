"""Nearest neighbours and ball membership as blocked matrix products, shared by every
metric that needs them (memorization, novelty, precision/recall/density/coverage).

Squared distances come from one float32 GEMM per block, ``||r||^2 - 2 q.r`` (the
query norm does not change a ranking), on the GPU when there is one. That formula
loses precision exactly where memorization metrics look (a copy has d1 ~ 0), so the
candidates that float32 rounding cannot separate from the k-th best are re-measured
directly in float64 (``||q - r||`` from the difference, no cancellation) and
re-sorted; ball-membership tests re-check in float64 every pair whose float32
distance lies within the rounding error of the radius. Memory is bounded by blocking
both the queries and the reference set.
"""
from __future__ import annotations

import hashlib
import warnings
import weakref

import numpy as np

BLOCK_BYTES = 256 << 20  # float32 distance block per GEMM (queries x reference rows)
REF_BLOCK = 1 << 16  # reference rows per GEMM block
# Bound on the relative rounding error of a float32 GEMM score, per sqrt(dimension):
# 32x the unit roundoff 2^-24, generous for blocked (pairwise-like) accumulation.
SCORE_ERROR = 32 * 2.0**-24


def torch_device(device: str | None):
    """The torch device for metric arithmetic: CUDA only when torch can see it."""
    import torch

    device = str(device or "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        device = "cpu"
    return torch.device(device)


def as_tensor(x: np.ndarray, device: str | None = None, dtype=None):
    """(N, d) float32 (or ``dtype``) torch tensor on ``device``; no copy on the CPU, nor
    for a tensor already there (a GPU tensor never passes through numpy)."""
    import torch

    if isinstance(x, torch.Tensor):
        return x.reshape(len(x), -1).to(device=torch_device(device), dtype=dtype or torch.float32)
    x = np.asarray(x)
    x = np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.float32)
    if x.flags.writeable:
        t = torch.from_numpy(x)
    else:  # the core's frozen feature arrays: shared without a copy, never written
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            t = torch.from_numpy(x)
    if dtype is not None:
        t = t.to(dtype)
    return t.to(torch_device(device))


def _blocks(n_query: int, n_ref: int) -> tuple[int, int]:
    ref_block = max(1, min(n_ref, REF_BLOCK))
    query_block = max(1, min(n_query, BLOCK_BYTES // (4 * ref_block)))
    return query_block, ref_block


def knn(query: np.ndarray, ref: np.ndarray, k: int = 1, device: str = "cpu", extra: int = 8,
        exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Distances (float64, ascending) and indices of the ``k`` nearest ``ref`` rows.

    The GEMM keeps ``k + extra`` candidates per query; those within float32 rounding
    of the k-th best get exact float64 distances. ``exclude_self``: query and ref are
    the same set and a point is not its own neighbour (an exact duplicate elsewhere
    in the set still is, at distance 0).
    """
    import torch

    q_all = as_tensor(query, device)
    r_all = as_tensor(ref, device)
    n_q, n_r = len(q_all), len(r_all)
    if exclude_self and n_q != n_r:
        raise ValueError("exclude_self needs the query and reference sets to be the same")
    available = n_r - (1 if exclude_self else 0)
    if k < 1 or k > available:
        raise ValueError(f"k={k} nearest neighbours requested from {available} reference points")
    out_d = np.empty((n_q, k), dtype=np.float64)
    out_i = np.empty((n_q, k), dtype=np.int64)
    if n_q == 0:
        return out_d, out_i
    c = min(k + extra + (1 if exclude_self else 0), n_r)
    r_sq = (r_all * r_all).sum(1)
    rel = SCORE_ERROR * max(1, q_all.shape[1]) ** 0.5
    qb, rb = _blocks(n_q, n_r)
    buf = torch.empty(min(qb, n_q) * rb, device=q_all.device)  # reused: no page faults per block
    with torch.no_grad():
        for qs in range(0, n_q, qb):
            q = q_all[qs:qs + qb]
            best_s = best_i = None
            for rs in range(0, n_r, rb):
                r = r_all[rs:rs + rb]
                scores = buf[:len(q) * len(r)].view(len(q), len(r))
                torch.addmm(r_sq[rs:rs + rb], q, r.T, beta=1.0, alpha=-2.0, out=scores)
                if exclude_self:
                    _mask_self(scores, qs, rs)
                s, i = torch.topk(scores, min(c, len(r)), dim=1, largest=False, sorted=False)
                i += rs
                if best_s is not None:
                    s, i = torch.cat([best_s, s], 1), torch.cat([best_i, i], 1)
                    if s.shape[1] > c:
                        s, pick = torch.topk(s, c, dim=1, largest=False, sorted=False)
                        i = torch.gather(i, 1, pick)
                best_s, best_i = s, i
            cand, n_exact = _refinement_band(q, best_s, best_i, r_sq, k, rel)
            exact = exact_pair_distances(q, r_all, cand[:, :n_exact])
            exact, order = torch.sort(exact, dim=1)
            out_d[qs:qs + len(q)] = exact[:, :k].cpu().numpy()
            out_i[qs:qs + len(q)] = torch.gather(cand, 1, order[:, :k]).cpu().numpy()
    return out_d, out_i


def _refinement_band(q, scores, cand, r_sq, k: int, rel: float):
    """Sort candidates by float32 score; count those that float32 rounding cannot
    separate from the k-th best (a prefix, usually just k): only they need exact
    distances. Masked self-matches (score +inf) never fall in the band."""
    import torch

    scores, order = torch.sort(scores, dim=1)
    cand = torch.gather(cand, 1, order)
    q_sq = (q * q).sum(1)
    finite_r = torch.where(torch.isfinite(scores), r_sq[cand], torch.zeros_like(scores))
    tol = 2 * rel * (q_sq + finite_r.amax(1))
    in_band = scores <= scores[:, k - 1:k] + tol[:, None]
    return cand, max(k, int(in_band.sum(1).max()))


def _mask_self(scores, qs: int, rs: int) -> None:
    """Set score(i, i) to +inf where the diagonal of the full matrix crosses this block."""
    import torch

    lo, hi = max(qs, rs), min(qs + scores.shape[0], rs + scores.shape[1])
    if lo < hi:
        idx = torch.arange(lo, hi, device=scores.device)
        scores[idx - qs, idx - rs] = float("inf")


def exact_pair_distances(q, r_all, cand, max_bytes: int = 64 << 20):
    """float64 ||q_i - r_all[cand[i, j]]|| computed from the difference (no cancellation),
    in row chunks that keep the (rows, c, d) buffer small."""
    import torch

    b, c = cand.shape
    d = q.shape[1]
    rows = max(1, max_bytes // max(1, c * d * 8))
    out = torch.empty((b, c), dtype=torch.float64, device=q.device)
    for s in range(0, b, rows):
        diff = r_all[cand[s:s + rows]].double() - q[s:s + rows, None, :].double()
        out[s:s + rows] = torch.linalg.vector_norm(diff, dim=-1)
    return out


def count_within(query: np.ndarray, centers: np.ndarray, radii: np.ndarray, device: str = "cpu",
                 rel_tol: float | None = None) -> np.ndarray:
    """For each query, how many centers c have ||query - c|| <= radii[c] (float64-exact).

    The float32 GEMM decides every pair whose squared distance is farther from the
    squared radius than its rounding error; the few pairs inside that band are
    re-measured in float64. Used for precision/recall/density (Kynkaanniemi et al.
    2019; Naeem et al. 2020), where ball membership is the whole metric.
    """
    import torch

    q_all = as_tensor(query, device)
    c_all = as_tensor(centers, device)
    rad = torch.tensor(np.asarray(radii, dtype=np.float64), device=q_all.device)
    if len(rad) != len(c_all):
        raise ValueError(f"{len(c_all)} centers but {len(rad)} radii")
    n_q, n_c = len(q_all), len(c_all)
    counts = torch.zeros(n_q, dtype=torch.int64, device=q_all.device)
    if n_q == 0 or n_c == 0:
        return counts.cpu().numpy()
    rel = rel_tol if rel_tol is not None else min(1e-3, SCORE_ERROR * max(1, q_all.shape[1]) ** 0.5)
    c_sq = (c_all.double() ** 2).sum(1)
    r2_64 = rad * rad
    bias = (c_sq - r2_64).float()  # ||c||^2 - r^2: the GEMM adds -2 q.c, then ||q||^2
    q_sq_all = (q_all.double() ** 2).sum(1)
    qb, cb = _blocks(n_q, n_c)
    buf = torch.empty(min(qb, n_q) * cb, device=q_all.device)
    with torch.no_grad():
        for qs in range(0, n_q, qb):
            q = q_all[qs:qs + qb]
            q_sq = q_sq_all[qs:qs + qb]
            for cs in range(0, n_c, cb):
                c = c_all[cs:cs + cb]
                margin = buf[:len(q) * len(c)].view(len(q), len(c))
                torch.addmm(bias[cs:cs + cb], q, c.T, beta=1.0, alpha=-2.0, out=margin)
                margin += q_sq.float()[:, None]  # = d^2 - r^2, up to rounding
                # rounding bound per query row: relative to the largest terms involved
                scale = float((c_sq[cs:cs + cb] + r2_64[cs:cs + cb]).max())
                tol = (2 * rel * (q_sq + scale)).float()[:, None]
                counts[qs:qs + len(q)] += (margin < -tol).sum(1)
                unsure = margin.abs() <= tol
                if bool(unsure.any()):
                    qi, ci = torch.nonzero(unsure, as_tuple=True)
                    exact = ((q[qi].double() - c[ci].double()) ** 2).sum(1)
                    ok = exact <= r2_64[cs + ci]
                    counts.index_add_(0, qs + qi[ok], torch.ones_like(qi[ok]))
    return counts.cpu().numpy()


def _frozen(a: np.ndarray) -> bool:
    """True when nothing can write into ``a`` without first making it writeable again:
    it and every array it views are read-only, down to memory numpy owns or bytes."""
    cur = a
    while isinstance(cur, np.ndarray):
        if cur.flags.writeable:
            return False
        cur = cur.base
    return cur is None or isinstance(cur, bytes)


def content_digest(a: np.ndarray) -> bytes:
    """A digest of an array's dtype, shape and bytes (sha1: about 1 GB/s)."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha1(f"{a.dtype.str}{a.shape}".encode())
    h.update(memoryview(a).cast("B"))
    return h.digest()


class ReferenceMemo:
    """Remembers per-reference-set results (e.g. the k-NN radii of the training
    features, the same values at every evaluation of a run) by the *content* of the
    arrays, so an array changed in place between calls is never answered with the
    value of its old content. ``arrays``: one array or a tuple of arrays.

    Digests cost one pass over the bytes. Arrays that are frozen (read-only, as the
    core's feature arrays are) are hashed once per array object; an entry lives while
    an array that produced or matched it is alive, and at most ``size`` entries are
    kept.
    """

    def __init__(self, size: int = 8):
        self.size = size
        self.items: dict[tuple, tuple[object, list]] = {}  # (digests, key) -> (value, owners)
        self._frozen_digests: dict[int, tuple[weakref.ref, bytes]] = {}

    def digest(self, a: np.ndarray) -> bytes:
        if not _frozen(a):
            return content_digest(a)
        known = self._frozen_digests.get(id(a))
        if known is not None and known[0]() is a:
            return known[1]
        digest = content_digest(a)
        try:
            ref = weakref.ref(a, lambda _, i=id(a): self._frozen_digests.pop(i, None))
        except TypeError:
            return digest
        self._frozen_digests[id(a)] = (ref, digest)
        return digest

    def get(self, arrays, key: tuple, compute):
        arrays = arrays if isinstance(arrays, tuple) else (arrays,)
        self.items = {k: v for k, v in self.items.items() if any(r() is not None for r in v[1])}
        ident = (tuple(self.digest(np.asarray(a)) for a in arrays), key)
        hit = self.items.pop(ident, None)
        if hit is not None:
            value, owners = hit
        else:
            value, owners = compute(), []
        owners = [r for r in owners if r() is not None]
        for a in arrays:
            if _weakrefable(a) and not any(r() is a for r in owners):
                owners.append(weakref.ref(a))
        if isinstance(value, np.ndarray):
            value.flags.writeable = False  # shared by every later caller
        if owners:
            self.items[ident] = (value, owners)  # most recently used last
        while len(self.items) > self.size:
            del self.items[next(iter(self.items))]
        return value


def _weakrefable(a) -> bool:
    try:
        weakref.ref(a)
        return True
    except TypeError:
        return False


_RADII = ReferenceMemo()


def knn_radii(x: np.ndarray, k: int, device: str = "cpu") -> np.ndarray:
    """Distance (float64) of every row of ``x`` to its k-th nearest other row.

    Memoised by content: the training features of a run are the same at every
    evaluation, so their radii are computed once per run.
    """
    if len(x) <= k:
        raise ValueError(f"k={k} nearest neighbours need more than {k} points, got {len(x)}")

    def compute():
        d, _ = knn(x, x, k=k, device=device, exclude_self=True)
        return d[:, k - 1]

    return _RADII.get(x, (k, str(device), x.shape), compute)
