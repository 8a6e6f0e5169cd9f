"""``kde``: a Gaussian kernel density estimate of the training subset, the simplest
non-parametric baseline. Its density is the training points smoothed by a Gaussian
of std ``bandwidth``; a sample is a training point chosen uniformly plus that noise.
A small bandwidth copies the training set (memorization metrics read it as a
memorizer), a large one blurs it (fidelity falls): one row on a leaderboard shows
where a trained model sits against a model that is nothing but its data.

No training: the estimate is the training subset itself, fitted at ``init``. Its
likelihood, its held-out loss and its posterior-mean denoiser are exact, so the
model-aware metrics apply to it too.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbase import Model, hookimpl, pack_arrays, unpack_arrays

QUERY_BLOCK = 1024  # queries per distance block (a block is QUERY_BLOCK x n_train float64)


@dataclass
class KDEConfig:
    bandwidth: float = 0.1  # std of the Gaussian kernel, in data units (images: [-1, 1] pixels)


class KDE(Model):
    """Gaussian kernel density estimate of the training subset: a training point plus N(0, bandwidth^2) noise."""

    name = "kde"
    family = "nonparametric"
    framework = "numpy"
    Config = KDEConfig
    trains = False
    capabilities = frozenset({"heldout_loss", "denoise", "log_prob"})

    def __init__(self, config: KDEConfig | None = None):
        super().__init__(config)
        if not self.config.bandwidth > 0:
            raise ValueError(f"kde: bandwidth must be > 0 (got {self.config.bandwidth})")

    def learning_rate(self) -> float | None:
        return None

    def init(self, data, seed):
        return {"x": np.array(data.x_numpy, dtype=np.float32), "shape": tuple(data.spec.shape)}

    def train_step(self, state, batch, key):
        return state, {}

    def sample(self, state, n, key: np.random.Generator):
        x = state["x"]
        centres = x[key.integers(0, len(x), size=n)]
        noise = key.standard_normal(centres.shape, dtype=np.float32)
        return centres + np.float32(self.config.bandwidth) * noise

    def save(self, state) -> bytes:
        return pack_arrays(x=state["x"])

    def load(self, blob: bytes, data):
        return {"x": unpack_arrays(blob)["x"], "shape": tuple(data.spec.shape)}

    def param_count(self, state) -> int:
        return int(state["x"].size)

    # ------------------------------------------------------------ capabilities
    def log_prob(self, state, x, key=None):
        """log (1/N) sum_i N(x; x_i, h^2 I), float64 inside."""
        return _log_density(state["x"], np.asarray(x), self.config.bandwidth ** 2).astype(np.float32)

    def heldout_loss(self, state, batch, key=None):
        """Negative log-likelihood per dimension: low on the training points themselves."""
        x = np.asarray(batch.x)
        d = int(np.prod(x.shape[1:]))
        return np.float32(-self.log_prob(state, x).mean() / d)

    def denoise(self, state, x_noisy, sigma):
        """E[x | x + sigma eps = y] under the KDE: given its kernel i, y ~ N(x_i, (h^2 + sigma^2) I)
        and E[x | y, i] = x_i + h^2 / (h^2 + sigma^2) (y - x_i); averaged over the posterior of i."""
        y = np.asarray(x_noisy)
        flat = y.reshape(len(y), -1).astype(np.float64)
        h2 = self.config.bandwidth ** 2
        var = h2 + np.broadcast_to(np.asarray(sigma, dtype=np.float64).reshape(-1), (len(y),)) ** 2
        means = np.empty_like(flat)
        train = state["x"].reshape(len(state["x"]), -1).astype(np.float64)
        for start in range(0, len(flat), QUERY_BLOCK):
            block = slice(start, start + QUERY_BLOCK)
            logits = -_sq_distances(flat[block], train) / (2 * var[block, None])
            w = np.exp(logits - logits.max(1, keepdims=True))
            means[block] = (w @ train) / w.sum(1, keepdims=True)
        shrink = (h2 / var)[:, None]
        return (means + shrink * (flat - means)).reshape(y.shape).astype(np.float32)


def _sq_distances(q: np.ndarray, r: np.ndarray) -> np.ndarray:
    """||q_i - r_j||^2 in float64, clipped at 0 (the expansion may round below)."""
    d2 = (q * q).sum(1)[:, None] + (r * r).sum(1)[None, :] - 2 * q @ r.T
    return np.maximum(d2, 0.0)


def _log_density(train: np.ndarray, x: np.ndarray, var: float) -> np.ndarray:
    q = x.reshape(len(x), -1).astype(np.float64)
    r = train.reshape(len(train), -1).astype(np.float64)
    d = q.shape[1]
    out = np.empty(len(q))
    for start in range(0, len(q), QUERY_BLOCK):
        logits = -_sq_distances(q[start:start + QUERY_BLOCK], r) / (2 * var)
        top = logits.max(1)
        out[start:start + QUERY_BLOCK] = top + np.log(np.exp(logits - top[:, None]).sum(1))
    return out - np.log(len(r)) - 0.5 * d * np.log(2 * np.pi * var)


@hookimpl
def benchbase_register_models(register):
    register(KDE)
