"""Synthetic datasets whose true distribution can be sampled exactly.

With an exact sampler, ``true_sampler`` is a perfect generalizer and metrics can be
checked against the truth. The train and test splits are fixed draws (seeds spawned
from the config's ``seed``); subsets of the train split are taken by the core. Every
dataset here keeps its values roughly inside [-1, 1] (``spec.value_range`` says how
far the tails reach).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from benchbase import DataSpec, DataSplits, Dataset, hookimpl

from .common import non_negative, require, require_choice


def split_seeds(seed: int) -> tuple[int, int]:
    """The two seeds of the fixed train and test draws, derived from ``seed``."""
    base = np.random.SeedSequence(seed)
    s_train, s_test = (int(s.generate_state(1)[0]) for s in base.spawn(2))
    return s_train, s_test


def geometry_rng(seed: int) -> np.random.Generator:
    """Randomness of a dataset's fixed geometry (means, embeddings), apart from its draws."""
    return np.random.default_rng(np.random.SeedSequence([seed, 0x6E0]))


class SyntheticDataset(Dataset):
    """Base: the train and test splits are fixed draws of ``sample_true``.

    Subclasses implement ``spec()`` and ``sample_true(n, seed)`` and give their Config
    ``train_size``, ``test_size`` and ``seed``.
    """

    def spec(self) -> DataSpec:
        raise NotImplementedError

    def sample_true(self, n: int, seed: int) -> np.ndarray:
        raise NotImplementedError

    def load(self) -> DataSplits:
        c = self.config
        require(c.train_size >= 1 and c.test_size >= 1, self.name,
                "config.train_size and config.test_size must be >= 1")
        s_train, s_test = split_seeds(c.seed)
        return DataSplits(train=self.sample_true(c.train_size, s_train),
                          test=self.sample_true(c.test_size, s_test), spec=self.spec())


# ------------------------------------------------------------------------ 2-D toys


def plane_spec(noise: float = 0.0) -> DataSpec:
    """A 2-D toy inside [-1, 1]^2 before noise; the range allows 5 noise deviations."""
    return DataSpec(shape=(2,), modality="vector", has_true_sampler=True,
                    value_range=(-1.0 - 5 * noise, 1.0 + 5 * noise))


@dataclass
class GMM2DConfig:
    components: int = 8  # modes placed evenly on a circle
    radius: float = 0.75  # circle radius (data stays inside [-1, 1] with the default std)
    std: float = 0.05  # standard deviation of every component
    train_size: int = 10000  # size of the fixed train split the subset is taken from
    test_size: int = 2000
    seed: int = 0

    def __post_init__(self):
        non_negative(self, "radius", "std")


class GMM2D(SyntheticDataset):
    """2-D mixture of equal-weight isotropic Gaussians on a circle, with an exact sampler."""

    name = "gmm2d"
    Config = GMM2DConfig

    def means(self) -> np.ndarray:
        c = self.config
        angles = 2 * np.pi * np.arange(c.components) / c.components
        return c.radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)

    def sample_true(self, n: int, seed: int) -> np.ndarray:
        require(self.config.components >= 1, self.name, "config.components must be >= 1")
        rng = np.random.default_rng(seed)
        comp = rng.integers(0, self.config.components, size=n)
        x = self.means()[comp] + self.config.std * rng.standard_normal((n, 2))
        return x.astype(np.float32)

    def spec(self) -> DataSpec:
        return plane_spec(self.config.std)


@dataclass
class TwoMoonsConfig:
    noise: float = 0.05  # std of the Gaussian noise added to each point (output units)
    train_size: int = 10000
    test_size: int = 2000
    seed: int = 0

    def __post_init__(self):
        non_negative(self, "noise")


class TwoMoons(SyntheticDataset):
    """Two interleaved half circles in 2-D (scaled to x in [-1, 1]), with an exact sampler."""

    name = "two_moons"
    Config = TwoMoonsConfig

    def sample_true(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        t = np.pi * rng.random(n)
        upper = rng.random(n) < 0.5
        x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
        y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
        # the classic moons span x in [-1, 2], y in [-0.5, 1]: centre and scale to [-1, 1]
        pts = (np.stack([x, y], axis=1) - np.array([0.5, 0.25])) / 1.5
        pts += self.config.noise * rng.standard_normal((n, 2))
        return pts.astype(np.float32)

    def spec(self) -> DataSpec:
        return plane_spec(self.config.noise)


@dataclass
class SwissRollConfig:
    noise: float = 0.02  # std of the Gaussian noise added to each point (output units)
    turns: float = 1.5  # windings of the spiral
    train_size: int = 10000
    test_size: int = 2000
    seed: int = 0

    def __post_init__(self):
        non_negative(self, "noise")


class SwissRoll(SyntheticDataset):
    """2-D Swiss roll: a spiral r = t, uniform in t, scaled into [-1, 1], with an exact sampler."""

    name = "swiss_roll"
    Config = SwissRollConfig

    def sample_true(self, n: int, seed: int) -> np.ndarray:
        c = self.config
        require(c.turns > 0, self.name, "config.turns must be > 0")
        rng = np.random.default_rng(seed)
        t_min, t_max = 1.5 * np.pi, 1.5 * np.pi + 2 * np.pi * c.turns
        t = t_min + (t_max - t_min) * rng.random(n)
        pts = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / t_max
        pts += c.noise * rng.standard_normal((n, 2))
        return pts.astype(np.float32)

    def spec(self) -> DataSpec:
        return plane_spec(self.config.noise)


@dataclass
class CheckerboardConfig:
    squares: int = 4  # the board is squares x squares cells over [-1, 1]^2
    train_size: int = 10000
    test_size: int = 2000
    seed: int = 0


class Checkerboard(SyntheticDataset):
    """Uniform density on the dark cells of a checkerboard over [-1, 1]^2, with an exact sampler."""

    name = "checkerboard"
    Config = CheckerboardConfig

    def dark_cells(self) -> np.ndarray:
        k = self.config.squares
        require(k >= 2, self.name, "config.squares must be >= 2")
        i, j = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
        dark = (i + j) % 2 == 0
        return np.stack([i[dark], j[dark]], axis=1)

    def sample_true(self, n: int, seed: int) -> np.ndarray:
        cells = self.dark_cells()
        rng = np.random.default_rng(seed)
        which = cells[rng.integers(0, len(cells), size=n)]
        side = 2.0 / self.config.squares
        pts = -1.0 + side * (which + rng.random((n, 2)))
        return pts.astype(np.float32)

    def spec(self) -> DataSpec:
        return plane_spec()


# ----------------------------------------------------------------- d-dimensional


@dataclass
class GMMConfig:
    components: int = 8  # K
    dim: int = 16  # d
    std: float = 0.1  # isotropic standard deviation of every component
    mean_scale: float = 0.6  # means drawn uniformly in [-mean_scale, mean_scale]^d (fixed by seed)
    weights: Optional[List[float]] = None  # mixture weights (normalized); None: equal
    train_size: int = 10000
    test_size: int = 2000
    seed: int = 0  # fixes the means and the train/test draws

    def __post_init__(self):
        non_negative(self, "std", "mean_scale")


class GMM(SyntheticDataset):
    """K-component isotropic Gaussian mixture in d dimensions (random fixed means), exact sampler."""

    name = "gmm"
    Config = GMMConfig

    def means(self) -> np.ndarray:
        c = self.config
        require(c.components >= 1 and c.dim >= 1, self.name, "config.components and config.dim must be >= 1")
        return geometry_rng(c.seed).uniform(-c.mean_scale, c.mean_scale, size=(c.components, c.dim))

    def mixture_weights(self) -> np.ndarray:
        c = self.config
        if c.weights is None:
            return np.full(c.components, 1.0 / c.components)
        w = np.asarray(c.weights, dtype=np.float64)
        require(len(w) == c.components and np.all(w >= 0) and w.sum() > 0, self.name,
                f"config.weights needs {c.components} non-negative numbers (one per component), "
                f"got {list(c.weights)}")
        return w / w.sum()

    def sample_true(self, n: int, seed: int) -> np.ndarray:
        c = self.config
        means, weights = self.means(), self.mixture_weights()
        rng = np.random.default_rng(seed)
        comp = rng.choice(c.components, size=n, p=weights)
        return (means[comp] + c.std * rng.standard_normal((n, c.dim))).astype(np.float32)

    def spec(self) -> DataSpec:
        reach = self.config.mean_scale + 5 * self.config.std
        return DataSpec(shape=(self.config.dim,), modality="vector", has_true_sampler=True,
                        value_range=(-max(1.0, reach), max(1.0, reach)))


MANIFOLD_KINDS = ("sphere", "torus", "random_map")


@dataclass
class ManifoldConfig:
    kind: str = "sphere"  # sphere | torus | random_map
    latent_dim: int = 2  # intrinsic dimension k (sphere S^k, torus T^k, map of [-1, 1]^k)
    ambient_dim: int = 64  # D: the data dimension
    noise: float = 0.0  # std of isotropic Gaussian noise added in the ambient space
    rms: float = 0.5  # root-mean-square coordinate of the clean data (keeps values ~[-1, 1])
    map_features: int = 32  # random_map: number of random sine features
    map_frequency: float = 1.5  # random_map: scale of the feature frequencies (smoothness)
    train_size: int = 10000
    test_size: int = 2000
    seed: int = 0  # fixes the embedding and the train/test draws

    def __post_init__(self):
        non_negative(self, "noise", "rms")


class Manifold(SyntheticDataset):
    """A k-dim manifold (sphere, torus or random smooth map) embedded in D dims, exact sampler.

    Sphere and torus are placed in a random k+1 (or 2k) dimensional subspace of R^D by
    a fixed orthonormal embedding; the random map sends the cube [-1, 1]^k through
    random sine features, z -> A sin(W z + b), so it is smooth but curved in all D
    coordinates. The uniform measure of the latent parametrisation defines the
    distribution (uniform on the sphere, uniform angles on the torus).
    """

    name = "manifold"
    Config = ManifoldConfig

    def _geometry(self) -> dict:
        c = self.config
        require_choice(c.kind, MANIFOLD_KINDS, self.name, "kind")
        require(c.latent_dim >= 1 and c.ambient_dim >= 1, self.name, "config.latent_dim and config.ambient_dim must be >= 1")
        rng = geometry_rng(c.seed)
        k, D = c.latent_dim, c.ambient_dim
        if c.kind in ("sphere", "torus"):
            m = k + 1 if c.kind == "sphere" else 2 * k
            require(m <= D, self.name, f"a {c.kind} of latent_dim {k} needs ambient_dim >= {m} (got {D})")
            q, _ = np.linalg.qr(rng.standard_normal((D, m)))
            # radius so that the root-mean-square coordinate is ``rms``
            radius = c.rms * np.sqrt(D / (1 if c.kind == "sphere" else k))
            return {"embed": q, "radius": radius}
        require(c.map_features >= 1, self.name, "config.map_features must be >= 1")
        w = c.map_frequency * rng.standard_normal((k, c.map_features))
        b = rng.uniform(0, 2 * np.pi, size=c.map_features)
        a = rng.standard_normal((c.map_features, D))
        probe = np.sin(rng.uniform(-1, 1, size=(4096, k)) @ w + b) @ a
        a *= c.rms / np.sqrt(np.mean((probe - probe.mean(axis=0)) ** 2))
        offset = -(np.sin(rng.uniform(-1, 1, size=(4096, k)) @ w + b) @ a).mean(axis=0)
        return {"w": w, "b": b, "a": a, "offset": offset}

    def sample_true(self, n: int, seed: int) -> np.ndarray:
        c = self.config
        g = self._geometry()
        rng = np.random.default_rng(seed)
        k = c.latent_dim
        if c.kind == "sphere":
            z = rng.standard_normal((n, k + 1))
            z /= np.linalg.norm(z, axis=1, keepdims=True)
            x = g["radius"] * z @ g["embed"].T
        elif c.kind == "torus":
            theta = rng.uniform(0, 2 * np.pi, size=(n, k))
            z = np.concatenate([np.cos(theta), np.sin(theta)], axis=1)
            x = g["radius"] * z @ g["embed"].T
        else:
            z = rng.uniform(-1, 1, size=(n, k))
            x = np.sin(z @ g["w"] + g["b"]) @ g["a"] + g["offset"]
        if c.noise > 0:
            x = x + c.noise * rng.standard_normal(x.shape)
        return x.astype(np.float32)

    def bound(self) -> float:
        """The largest |coordinate| a clean sample can reach (for ``spec.value_range``)."""
        c, g = self.config, self._geometry()
        if c.kind == "random_map":
            return float(np.max(np.abs(g["a"]).sum(axis=0) + np.abs(g["offset"])))
        rows = np.linalg.norm(g["embed"], axis=1).max()
        return float(g["radius"] * rows * (1.0 if c.kind == "sphere" else np.sqrt(c.latent_dim)))

    def spec(self) -> DataSpec:
        reach = self.bound() + 5 * self.config.noise
        return DataSpec(shape=(self.config.ambient_dim,), modality="vector", has_true_sampler=True,
                        value_range=(-reach, reach))


@hookimpl
def benchbase_register_datasets(register):
    for cls in (GMM2D, TwoMoons, SwissRoll, Checkerboard, GMM, Manifold):
        register(cls)
