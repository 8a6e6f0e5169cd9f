"""Tiny data for conformance checks: a 2-D mixture (vectors, no labels), 8x8 bar
images with labels, and the TrainData a model sees in a run, built the way the
runner builds it. Everything is a pure function of its seed."""
from __future__ import annotations

import inspect
from typing import Any, Callable

import numpy as np

from benchbase.contracts import DataSpec, DataSplits, Dataset, TrainData
from benchbase.data import Subset, fresh_sampler, select_subset

MODALITY_SHAPES = {"vector": (2,), "image": (1, 8, 8)}


class ToyVectors(Dataset):
    """Four 2-D Gaussian blobs in [-1, 1]^2 with an exact sampler (the kit's vector data)."""

    name = "kit_vectors"

    def sample_true(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        means = np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]])
        x = means[rng.integers(0, 4, size=n)] + 0.08 * rng.standard_normal((n, 2))
        return x.astype(np.float32)

    def load(self) -> DataSplits:
        return DataSplits(train=self.sample_true(256, 100), test=self.sample_true(128, 101),
                          spec=DataSpec(shape=(2,), modality="vector", has_true_sampler=True,
                                        value_range=(-1.5, 1.5)))


class ToyImages(Dataset):
    """8x8 images of one horizontal or vertical bar, labelled by orientation (the kit's image data)."""

    name = "kit_images"

    def _draw(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 2, size=n)
        pos = rng.integers(1, 7, size=n)
        x = np.full((n, 1, 8, 8), -1.0)
        for i in range(n):
            if labels[i]:
                x[i, 0, :, pos[i]] = 1.0
            else:
                x[i, 0, pos[i], :] = 1.0
        x = np.clip(x + 0.1 * rng.standard_normal(x.shape), -1.0, 1.0)
        return x.astype(np.float32), labels.astype(np.int64)

    def load(self) -> DataSplits:
        train, train_y = self._draw(256, 200)
        test, test_y = self._draw(128, 201)
        return DataSplits(train=train, test=test, train_labels=train_y, test_labels=test_y,
                          spec=DataSpec(shape=(1, 8, 8), modality="image", num_classes=2))


TOY_DATASETS = {"vector": ToyVectors, "image": ToyImages}


def resolve_dataset(dataset: Any = None) -> tuple[DataSplits, Any]:
    """``dataset``: None or "vector"/"image" (the kit's toys), a Dataset class or
    instance, or ready DataSplits. Returns (splits, the dataset object or None)."""
    if dataset is None or isinstance(dataset, str):
        key = dataset or "vector"
        if key not in TOY_DATASETS:
            raise ValueError(f"unknown toy dataset '{key}'; use one of {', '.join(TOY_DATASETS)}, "
                             "a Dataset class or instance, or DataSplits")
        dataset = TOY_DATASETS[key]
    if isinstance(dataset, DataSplits):
        return dataset, None
    if inspect.isclass(dataset):
        dataset = dataset()
    return dataset.load(), dataset


def first_n(splits: DataSplits, n: int) -> Subset:
    """The first ``n`` training examples, chosen by the core's own subset code."""
    n = min(int(n), len(splits.train))
    return select_subset(splits, {"mode": "first", "n": n, "seed": 0, "split": None, "dedup": None})


class FreshCalls:
    """Wraps ``TrainData.sample_fresh`` to count calls (only oracles may draw fresh data)."""

    def __init__(self, inner: Callable[[int, int], np.ndarray]):
        self.inner, self.calls = inner, 0

    def __call__(self, n: int, seed: int) -> np.ndarray:
        self.calls += 1
        return self.inner(n, seed)


def train_data(framework: Any, device: Any, splits: DataSplits, subset: Subset, dataset: Any = None) -> TrainData:
    """The TrainData of a run, as the runner builds it, on private copies of the arrays
    (so a check may overwrite them without touching the batches it draws)."""
    sample_fresh, source = fresh_sampler(dataset, splits)
    y = None if subset.y is None else subset.y.copy()
    return TrainData(x=framework.put(subset.x.copy(), device), y=framework.put(y, device),
                     spec=splits.spec, device=device, x_numpy=subset.x.copy(),
                     sample_fresh=FreshCalls(sample_fresh), fresh_source=source)


def make_train_data(framework: str, dataset: Any = None, n: int = 64, device: str = "cpu") -> TrainData:
    """For your own model tests: what ``init`` receives in a run on the first ``n``
    examples of ``dataset`` (see :func:`resolve_dataset`), for a framework name."""
    from benchbase.frameworks import get_framework

    fw = get_framework(framework)
    splits, obj = resolve_dataset(dataset)
    return train_data(fw, fw.device(device), splits, first_n(splits, n), obj)
