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
        images, target = _digits()
        x = (images.astype(np.float32) / 8.0 - 1.0)[:, None, :, :]
        y = target.astype(np.int64)
        order = np.random.default_rng(self.config.permutation_seed).permutation(len(x))
        x, y = x[order], y[order]
        cut = len(x) - self.config.test_size
        return DataSplits(train=np.ascontiguousarray(x[:cut]), test=np.ascontiguousarray(x[cut:]),
                          train_labels=y[:cut], test_labels=y[cut:],
                          spec=DataSpec(shape=(1, 8, 8), modality="image", num_classes=10))


def _digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8), labels) as sklearn.datasets.load_digits gives them, read from
    the CSV scikit-learn ships without importing scikit-learn (seconds of start-up)."""
    import gzip
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        from benchbase.errors import MissingDataError

        raise MissingDataError("dataset 'digits' ships with scikit-learn, which is not installed: "
                               "pip install scikit-learn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as f:
        data = np.loadtxt(f, delimiter=",")
    return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(int)


@hookimpl
def benchbase_register_datasets(register):
    register(Digits)
