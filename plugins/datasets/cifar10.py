"""CIFAR-10 from the published python batches (``cifar-10-batches-py/``).

Those batches are pickles (a dict with b'data', a uint8 (10000, 3072) array, and
b'labels'). Unpickling a file from a user's path can run arbitrary code, so they are
read with a restricted unpickler whose ``find_class`` resolves only what a numpy
array inside builtin containers needs (numpy's array reconstruction functions,
``ndarray``, ``dtype`` and ``codecs.encode`` for Python-2 byte strings) and refuses
everything else. We chose this over "verify the md5 against the published list, then
plain pickle" because it is safe for any copy of the data, including re-packed or
truncated ones (which an md5 gate would reject outright) and the small fixtures the
tests write; ``download: true`` still checks the archive's published md5.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from benchbase import DataSpec, DataSplits, Dataset, hookimpl
from benchbase.contracts import location
from benchbase.errors import BenchbaseInputError

from .files import Resource, candidate_dirs, download, find_dir, missing_data, to_unit_range

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = Resource("cifar-10-python.tar.gz", URL, "c58f30108f718f92721af3b95e74349a", extract=True)


def _numpy_reconstructors() -> dict[tuple[str, str], object]:
    try:  # numpy >= 2
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric
    import codecs

    allowed = {"ndarray": np.ndarray, "dtype": np.dtype, "_reconstruct": multiarray._reconstruct,
               "_frombuffer": numeric._frombuffer}
    out: dict[tuple[str, str], object] = {("_codecs", "encode"): codecs.encode}
    for module in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray",
                   "numpy.core.numeric", "numpy._core.numeric"):
        for name, obj in allowed.items():
            out[(module, name)] = obj
    return out


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles builtin containers and numpy arrays; refuses any other global."""

    _allowed = _numpy_reconstructors()

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load '{module}.{name}': a CIFAR batch holds only "
                                         "dicts, lists and numpy arrays") from None


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (uint8 images N x 3 x 32 x 32, int64 labels)."""
    try:
        with open(path, "rb") as f:
            batch = RestrictedUnpickler(f, encoding="bytes").load()
    except Exception as exc:  # any malformed pickle (truncated, refused global, wrong opcodes)
        raise BenchbaseInputError(f"{path}: not a readable CIFAR-10 python batch ({exc})") from None
    if not isinstance(batch, dict):
        raise BenchbaseInputError(f"{path}: a CIFAR-10 batch is a dict, got {type(batch).__name__}")
    get = lambda key: batch.get(key.encode(), batch.get(key))  # noqa: E731 - py2 (bytes) or py3 (str) keys
    data, labels = get("data"), get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise BenchbaseInputError(f"{path}: b'data' must be a uint8 array of shape (N, 3072), got "
                                  f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
    if labels.shape != (len(data),) or (len(labels) and (labels.min() < 0 or labels.max() > 9)):
        raise BenchbaseInputError(f"{path}: b'labels' must hold {len(data)} class ids in 0-9")
    return data.reshape(-1, 3, 32, 32), labels


@dataclass
class CIFAR10Config:
    root: Optional[str] = location(None)  # data folder holding cifar-10-batches-py/ (default: $BENCHBASE_DATA, else ./data)
    download: bool = location(False)  # fetch and unpack cifar-10-python.tar.gz (md5-checked) when missing


class CIFAR10(Dataset):
    """CIFAR-10 from the python batches: (3, 32, 32) in [-1, 1], 50000 train / 10000 test, labels 0-9."""

    name = "cifar10"
    Config = CIFAR10Config

    def _locate(self) -> Path:
        c = self.config
        looked = candidate_dirs(c.root, FOLDER)
        needed = TRAIN_BATCHES + (TEST_BATCH,)
        present = lambda d: all((d / f).is_file() for f in needed)  # noqa: E731
        folder = find_dir(looked, present)
        if folder is None and c.download:
            download(self.name, [ARCHIVE], looked[0].parent)
            folder = find_dir(looked[:1], present)
        if folder is None:
            partial = {d: [f for f in needed if not (d / f).is_file()] for d in looked if d.is_dir()}
            raise missing_data(self.name, "the python batches " + ", ".join(needed), looked, partial,
                               f"{URL} (unpack it to get {FOLDER}/)")
        return folder

    def load(self) -> DataSplits:
        folder = self._locate()
        parts = [read_batch(folder / f) for f in TRAIN_BATCHES]
        x_test, y_test = read_batch(folder / TEST_BATCH)
        return DataSplits(train=to_unit_range(np.concatenate([p[0] for p in parts])),
                          test=to_unit_range(x_test),
                          train_labels=np.concatenate([p[1] for p in parts]), test_labels=y_test,
                          spec=DataSpec(shape=(3, 32, 32), modality="image", num_classes=10))


@hookimpl
def benchbase_register_datasets(register):
    register(CIFAR10)
