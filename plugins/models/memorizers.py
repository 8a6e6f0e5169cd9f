"""Memorizing oracles: models that copy their training data by construction, to a
controlled degree, so that every memorization verdict can be checked against a
known truth (docs/metrics.md, "Calibration").

- ``copy_train``: exact training points (a perfect memorizer).
- ``noisy_copy``: a training point plus isotropic Gaussian noise whose expected norm
  is ``sigma`` times the dataset's median held-out-to-train nearest-neighbour
  distance (in data space), so one ``sigma`` means the same on every dataset: at
  ``sigma`` = 1 a copy sits as far from its source as fresh data typically sits from
  its nearest training point.
- ``partial_copy``: a fraction ``rho`` of exact training copies, the rest fresh
  draws of the data distribution (the exact sampler, else test-split points).

None trains: the core evaluates them once, at step 0, and they cost no budget.
``pick_training_points`` is how every memorizer (here or in other modules) chooses
the training points it copies.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from benchbase import hookimpl

from .oracles import Oracle

SCALE_POINTS = 1000  # held-out draws that fix the distance scale of noisy_copy
SCALE_SEED = 0  # the scale is a function of the data alone (load() calls init())


def pick_training_points(n_train: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` training points to copy: uniform, without replacement while
    there are enough of them."""
    return rng.choice(n_train, size=n, replace=n > n_train)


def heldout_nn_distance(data, points: int = SCALE_POINTS) -> float:
    """Median distance (data space) from held-out points to their nearest training point.

    Held-out points are ``data.sample_fresh``: exact draws when the dataset has a
    sampler, otherwise test-split points. This is the distance a fresh sample keeps
    from the training set, the natural unit of "how close is a copy".
    """
    from benchbase.neighbors import knn

    train = np.asarray(data.x_numpy, dtype=np.float32).reshape(len(data.x_numpy), -1)
    held = np.asarray(data.sample_fresh(points, SCALE_SEED), dtype=np.float32).reshape(points, -1)
    d, _ = knn(held, train, k=1)
    return float(np.median(d[:, 0]))


def expected_gaussian_norm(dim: int) -> float:
    """E||e|| for e ~ N(0, I_dim): sqrt(2) Gamma((dim + 1) / 2) / Gamma(dim / 2)."""
    return math.sqrt(2.0) * math.exp(math.lgamma((dim + 1) / 2) - math.lgamma(dim / 2))


class CopyTrain(Oracle):
    """Returns training points chosen uniformly (without replacement while it can)."""

    name = "copy_train"

    def init(self, data, seed):
        return {"x": data.x_numpy}

    def sample(self, state, n, key: np.random.Generator):
        x = state["x"]
        return x[pick_training_points(len(x), n, key)]


@dataclass
class NoisyCopyConfig:
    sigma: float = 0.5  # expected noise norm / median held-out-to-train nearest-neighbour distance

    def __post_init__(self):
        if not (self.sigma >= 0 and math.isfinite(self.sigma)):
            raise ValueError(f"noisy_copy: sigma must be a finite number >= 0, got {self.sigma}")


class NoisyCopy(Oracle):
    """A training point plus isotropic Gaussian noise of expected norm sigma x the median held-out-to-train NN distance.

    x = t + s e, t a training point (uniform, without replacement while it can), e ~
    N(0, I_d) and s = sigma D / E||e||, D the median distance from held-out points to
    their nearest training point in data space (the exact sampler's draws, else the
    test split). sigma = 0 is copy_train; at sigma = 1 a sample is as far from its
    source as fresh data is from the training set. Values are not clipped to the
    data range (clipping would shrink the noise). The config, D and s are recorded in
    the state; D is fixed by the data alone.
    """

    name = "noisy_copy"
    Config = NoisyCopyConfig

    def init(self, data, seed):
        x = np.asarray(data.x_numpy, dtype=np.float32)
        scale = heldout_nn_distance(data)
        dim = int(np.prod(x.shape[1:]))
        return {"x": x, "distance_scale": scale,
                "noise_std": self.config.sigma * scale / expected_gaussian_norm(dim)}

    def sample(self, state, n, key: np.random.Generator):
        x = state["x"]
        picked = x[pick_training_points(len(x), n, key)]
        noise = key.standard_normal(picked.shape) * state["noise_std"]
        return (picked + noise).astype(np.float32)


@dataclass
class PartialCopyConfig:
    rho: float = 0.5  # fraction of samples that are exact training copies; the rest are fresh

    def __post_init__(self):
        if not 0.0 <= self.rho <= 1.0:
            raise ValueError(f"partial_copy: rho must lie in [0, 1], got {self.rho}")


class PartialCopy(Oracle):
    """A fraction rho of exact training copies, the rest fresh draws of the data distribution.

    Of n samples, round(rho n) are training points (uniform, without replacement while
    it can) and the others fresh draws (the dataset's exact sampler, else test-split
    points, as for true_sampler), in random order. rho = 0 is true_sampler, rho = 1
    is copy_train: the detection rate of a memorization metric against rho is its
    sensitivity to a partly memorizing model.
    """

    name = "partial_copy"
    Config = PartialCopyConfig

    def init(self, data, seed):
        return {"x": np.asarray(data.x_numpy, dtype=np.float32), "fresh": data.sample_fresh}

    def sample(self, state, n, key: np.random.Generator):
        x = state["x"]
        copies = int(round(self.config.rho * n))
        out = np.empty((n, *x.shape[1:]), dtype=np.float32)
        order = key.permutation(n)
        out[order[:copies]] = x[pick_training_points(len(x), copies, key)]
        if copies < n:
            out[order[copies:]] = state["fresh"](n - copies, int(key.integers(0, 2**31 - 1)))
        return out


@hookimpl
def benchbase_register_models(register):
    register(CopyTrain)
    register(NoisyCopy)
    register(PartialCopy)
