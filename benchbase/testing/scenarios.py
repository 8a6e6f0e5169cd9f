"""Known situations to score a metric on, each an isotropic Gaussian mixture so that
samples, densities, held-out losses and optimal denoisers are all exact:

- ``true``: fresh draws from the data distribution (a perfect generalizer);
- ``copies``: training points themselves (a perfect memorizer);
- ``noise``: a broad Gaussian that ignores the data (no fidelity);
- ``collapsed``: one fresh point repeated (mode collapse).

A scenario is also a model (numpy, all capabilities), driven through the core's own
:class:`~benchbase.evaluation.ModelHandle`, so model-aware metrics see exactly what a
run gives them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbase.contracts import DataSpec, Model

SCENARIOS = ("true", "copies", "noise", "collapsed")
_SHARP = 0.01  # std of the narrow components that stand for exact points


@dataclass
class Mixture:
    """Equal-weight isotropic Gaussian mixture; ``exact`` samples return the means."""

    means: np.ndarray  # (K, d)
    std: float
    exact: bool = False

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        comp = rng.integers(0, len(self.means), size=n)
        if self.exact:
            return self.means[comp].astype(np.float32)
        return (self.means[comp] + self.std * rng.standard_normal((n, self.means.shape[1]))).astype(np.float32)

    def _log_components(self, x: np.ndarray, var: float) -> np.ndarray:
        x = x.reshape(len(x), -1).astype(np.float64)
        sq = ((x[:, None, :] - self.means[None, :, :]) ** 2).sum(-1)
        d = x.shape[1]
        return -0.5 * sq / var - 0.5 * d * np.log(2 * np.pi * var) - np.log(len(self.means))

    def log_prob(self, x: np.ndarray) -> np.ndarray:
        lc = self._log_components(x, self.std ** 2)
        top = lc.max(1, keepdims=True)
        return (top[:, 0] + np.log(np.exp(lc - top).sum(1))).astype(np.float32)

    def denoise(self, y: np.ndarray, sigma: float) -> np.ndarray:
        """E[x | x + sigma * eps = y]: component posteriors times per-component means."""
        shape = y.shape
        y = y.reshape(len(y), -1).astype(np.float64)
        var = self.std ** 2 + sigma ** 2
        lc = self._log_components(y, var)
        w = np.exp(lc - lc.max(1, keepdims=True))
        w /= w.sum(1, keepdims=True)
        shrink = self.std ** 2 / var
        per = self.means[None] + shrink * (y[:, None, :] - self.means[None])
        return (w[:, :, None] * per).sum(1).reshape(shape).astype(np.float32)


@dataclass
class World:
    """The data of a metric check: a true mixture, its train and test draws, and the spec."""

    truth: Mixture
    train: np.ndarray
    test: np.ndarray
    spec: DataSpec
    labels_train: np.ndarray
    labels_test: np.ndarray

    def scenario(self, name: str, rng: np.random.Generator) -> Mixture:
        d = self.train.shape[1]
        if name == "true":
            return self.truth
        if name == "copies":
            return Mixture(self.train.astype(np.float64), _SHARP, exact=True)
        if name == "noise":
            return Mixture(np.zeros((1, d)), 0.6)
        if name == "collapsed":
            return Mixture(self.truth.sample(1, rng).astype(np.float64), _SHARP, exact=True)
        raise ValueError(f"unknown scenario '{name}'; use one of {', '.join(SCENARIOS)}")


def make_world(shape: tuple[int, ...], n_train: int, n_test: int, seed: int = 0,
               components: int = 4, std: float = 0.1) -> World:
    rng = np.random.default_rng(seed)
    d = int(np.prod(shape))
    truth = Mixture(rng.uniform(-0.6, 0.6, size=(components, d)), std)

    def draw(n: int, r: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        comp = r.integers(0, components, size=n)
        x = truth.means[comp] + std * r.standard_normal((n, d))
        return x.astype(np.float32), comp.astype(np.int64)

    train, ytr = draw(n_train, np.random.default_rng(seed + 1))
    test, yte = draw(n_test, np.random.default_rng(seed + 2))
    spec = DataSpec(shape=tuple(shape), modality="image" if len(shape) == 3 else "vector",
                    num_classes=components, has_true_sampler=True, value_range=(-2.0, 2.0))
    return World(truth, train, test, spec, ytr, yte)


class ScenarioModel(Model):
    """A scenario as a model: exact heldout_loss, denoise and log_prob of its mixture,
    and the identity autoencoder (a point-mass encoder) for metrics that encode."""

    name = "kit_scenario"
    family = "oracle"
    framework = "numpy"
    trains = False
    capabilities = frozenset({"heldout_loss", "denoise", "log_prob", "encode"})

    def __init__(self, mixture: Mixture, shape: tuple[int, ...]):
        super().__init__()
        self.mixture, self.shape = mixture, tuple(shape)

    def init(self, data, seed):
        return None

    def sample(self, state, n, key):
        return self.mixture.sample(n, key).reshape(n, *self.shape)

    def train_step(self, state, batch, key):
        return state, {}

    def save(self, state) -> bytes:
        return b""

    def load(self, blob, data):
        return None

    def heldout_loss(self, state, batch, key):
        """Per-dimension negative log-likelihood: low on points the mixture sits on."""
        x = np.asarray(batch.x)
        return np.float32(-self.mixture.log_prob(x).mean() / max(int(np.prod(self.shape)), 1))

    def denoise(self, state, x_noisy, sigma):
        return self.mixture.denoise(np.asarray(x_noisy), float(sigma))

    def log_prob(self, state, x, key):
        return self.mixture.log_prob(np.asarray(x))

    def encode(self, state, x):
        x = np.asarray(x, dtype=np.float32)
        return x.reshape(len(x), -1), None

    def decode(self, state, z):
        z = np.asarray(z, dtype=np.float32)
        return z.reshape(len(z), *self.shape)
