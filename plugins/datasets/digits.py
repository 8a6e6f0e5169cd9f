"""scikit-learn's 8x8 handwritten digits: real images that ship with scikit-learn,
so the quickstart and tests need no download."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbase import DataSpec, DataSplits, Dataset, hookimpl


@dataclass
class DigitsConfig:
    test_size: int = 497  # the last 497 of a fixed permutation; the first 1300 are the train split
    permutation_seed: int = 0  # fixed shuffle, so "first n" mixes all writers and classes


class Digits(Dataset):
    """1797 grayscale 8x8 digits (UCI), as (1, 8, 8) images in [-1, 1] with labels 0-9."""

    name = "digits"
    Config = DigitsConfig

    def load(self) -> DataSplits:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x = (bunch.images.astype(np.float32) / 8.0 - 1.0)[:, None, :, :]
        y = bunch.target.astype(np.int64)
        order = np.random.default_rng(self.config.permutation_seed).permutation(len(x))
        x, y = x[order], y[order]
        cut = len(x) - self.config.test_size
        return DataSplits(train=np.ascontiguousarray(x[:cut]), test=np.ascontiguousarray(x[cut:]),
                          train_labels=y[:cut], test_labels=y[cut:],
                          spec=DataSpec(shape=(1, 8, 8), modality="image", num_classes=10))


@hookimpl
def benchbase_register_datasets(register):
    register(Digits)
