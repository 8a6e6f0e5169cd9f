"""Nearest neighbours as blocked matrix products, shared by every metric that needs them.

Squared distances come from one float32 GEMM per block (||q||^2 + ||r||^2 - 2 q.r),
on the GPU when there is one. That formula loses precision exactly where
memorization metrics look (a copy has d1 ~ 0), so the best ``k + extra``
candidates of each query are re-measured in float64 directly and re-sorted.
"""
from __future__ import annotations

import numpy as np


def _torch_device(device: str):
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        device = "cpu"
    return torch.device(device)


def knn(query: np.ndarray, ref: np.ndarray, k: int = 1, device: str = "cpu", block: int = 2048,
        extra: int = 8, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Distances (float64, ascending) and indices of the ``k`` nearest ``ref`` rows.

    ``exclude_self``: query and ref are the same set; a point is not its own neighbour.
    """
    import torch

    query = np.ascontiguousarray(query, dtype=np.float32).reshape(len(query), -1)
    ref = np.ascontiguousarray(ref, dtype=np.float32).reshape(len(ref), -1)
    n_ref = len(ref) - (1 if exclude_self else 0)
    if k > n_ref:
        raise ValueError(f"k={k} nearest neighbours requested from {n_ref} reference points")
    dev = _torch_device(device)
    r = torch.from_numpy(ref).to(dev)
    r_sq = (r * r).sum(1)
    r64 = torch.from_numpy(ref.astype(np.float64)).to(dev)
    c = min(k + extra + (1 if exclude_self else 0), len(ref))
    out_d = np.empty((len(query), k), dtype=np.float64)
    out_i = np.empty((len(query), k), dtype=np.int64)
    for start in range(0, len(query), block):
        q = torch.from_numpy(query[start:start + block]).to(dev)
        d2 = (q * q).sum(1, keepdim=True) + r_sq[None, :] - 2.0 * (q @ r.T)
        if exclude_self:
            rows = torch.arange(len(q), device=dev)
            d2[rows, rows + start] = float("inf")
        cand = torch.topk(d2, c, dim=1, largest=False).indices  # (b, c)
        exact = _exact_distances(q.double(), r64, cand)
        if exclude_self:
            exact = torch.where(cand == (torch.arange(len(q), device=dev)[:, None] + start),
                                torch.full_like(exact, float("inf")), exact)
        order = torch.argsort(exact, dim=1)[:, :k]
        out_d[start:start + len(q)] = torch.gather(exact, 1, order).cpu().numpy()
        out_i[start:start + len(q)] = torch.gather(cand, 1, order).cpu().numpy()
    return out_d, out_i


def _exact_distances(q64, r64, cand, max_bytes: int = 64 << 20):
    """float64 ||q_i - r_cand[i, j]|| in row chunks that keep the (rows, c, d) buffer small."""
    import torch

    b, c = cand.shape
    rows = max(1, max_bytes // max(1, c * q64.shape[1] * 8))
    out = torch.empty((b, c), dtype=torch.float64, device=q64.device)
    for s in range(0, b, rows):
        diff = q64[s:s + rows, None, :] - r64[cand[s:s + rows]]
        out[s:s + rows] = torch.linalg.vector_norm(diff, dim=-1)
    return out
