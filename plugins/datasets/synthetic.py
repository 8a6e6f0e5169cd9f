"""Synthetic datasets whose true distribution can be sampled exactly.

With an exact sampler, ``true_sampler`` is a perfect generalizer and metrics can be
checked against the truth. The train and test splits are fixed draws (seeds 0 and
1 of the config's seed); subsets of the train split are taken by the core.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbase import DataSpec, DataSplits, Dataset, hookimpl


@dataclass
class GMM2DConfig:
    components: int = 8  # modes placed evenly on a circle
    radius: float = 0.75  # circle radius (data stays inside [-1, 1] with the default std)
    std: float = 0.05  # standard deviation of every component
    train_size: int = 10000  # size of the fixed train split the subset is taken from
    test_size: int = 2000
    seed: int = 0


class GMM2D(Dataset):
    """2-D mixture of equal-weight isotropic Gaussians on a circle, with an exact sampler."""

    name = "gmm2d"
    Config = GMM2DConfig

    def means(self) -> np.ndarray:
        c = self.config
        angles = 2 * np.pi * np.arange(c.components) / c.components
        return c.radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)

    def sample_true(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        comp = rng.integers(0, self.config.components, size=n)
        x = self.means()[comp] + self.config.std * rng.standard_normal((n, 2))
        return x.astype(np.float32)

    def load(self) -> DataSplits:
        c = self.config
        base = np.random.SeedSequence(c.seed)
        s_train, s_test = (int(s.generate_state(1)[0]) for s in base.spawn(2))
        return DataSplits(
            train=self.sample_true(c.train_size, s_train),
            test=self.sample_true(c.test_size, s_test),
            spec=DataSpec(shape=(2,), modality="vector", has_true_sampler=True,
                          value_range=(-1.0 - 5 * c.std, 1.0 + 5 * c.std)),
        )


@hookimpl
def benchbase_register_datasets(register):
    register(GMM2D)
