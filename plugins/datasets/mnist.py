"""MNIST and Fashion-MNIST from their published IDX files (gzipped or not).

Looked for in ``<data>/MNIST/raw`` (torchvision's layout), ``<data>/MNIST``, or
directly in ``root`` when the config names it (likewise ``FashionMNIST``). IDX is a
plain binary format (a magic number giving the element type and rank, big-endian
dimensions, raw values), parsed here with numpy; nothing is executed.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from benchbase import DataSpec, DataSplits, Dataset, hookimpl
from benchbase.contracts import location
from benchbase.errors import BenchbaseInputError

from .common import require
from .files import Resource, candidate_dirs, download, find_dir, missing_data, to_unit_range

# IDX element types (third byte of the magic number)
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (gzip detected from its first bytes, not its name)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise BenchbaseInputError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise BenchbaseInputError(f"{path}: IDX header says {dims} ({expected} bytes of data) "
                                  f"but the file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _magic(arr: np.ndarray) -> int:
    return (0x08 << 8) | arr.ndim if arr.dtype == np.uint8 else -1


@dataclass
class MNISTConfig:
    root: Optional[str] = location(None)  # data folder (default: $BENCHBASE_DATA, else ./data)
    download: bool = location(False)  # fetch the four files (md5-checked) when missing
    pad: int = 0  # pixels of background added on each side (2 gives 32x32, for U-Nets)


class _IDXDigits(Dataset):
    """Base of the two IDX datasets: 28x28 grayscale, 60000 train / 10000 test, 10 classes."""

    folder: str = ""
    resources: tuple = ()
    source: str = ""
    Config = MNISTConfig

    def _files(self, folder: Path) -> dict[str, Path] | None:
        out = {}
        for key, stem in FILES.items():
            found = [folder / n for n in (stem, stem + ".gz") if (folder / n).is_file()]
            if not found:
                return None
            out[key] = found[0]
        return out

    def _locate(self) -> dict[str, Path]:
        c = self.config
        looked = candidate_dirs(c.root, f"{self.folder}/raw", self.folder)
        folder = find_dir(looked, lambda d: self._files(d) is not None)
        if folder is None and c.download:
            download(self.name, self.resources, looked[0])
            folder = find_dir(looked[:1], lambda d: self._files(d) is not None)
        if folder is None:
            partial = {d: [s for s in FILES.values() if not (d / s).is_file() and not (d / (s + ".gz")).is_file()]
                       for d in looked if d.is_dir()}
            raise missing_data(self.name, "the IDX files " + ", ".join(FILES.values()) + " (each may be .gz)",
                               looked, partial, self.source)
        return self._files(folder)

    def load(self) -> DataSplits:
        require(self.config.pad >= 0, self.name, f"config.pad must be >= 0 (got {self.config.pad})")
        files = self._locate()
        arrays = {key: read_idx(path) for key, path in files.items()}
        for split in ("train", "test"):
            x, y = arrays[f"{split}_images"], arrays[f"{split}_labels"]
            if _magic(x) != IMAGE_MAGIC or _magic(y) != LABEL_MAGIC or len(x) != len(y):
                raise BenchbaseInputError(
                    f"dataset '{self.name}': {files[f'{split}_images']} and {files[f'{split}_labels']} must be "
                    f"uint8 images (N, H, W) and N uint8 labels; got {x.dtype}{x.shape} and {y.dtype}{y.shape}")
        p = self.config.pad

        def images(x: np.ndarray) -> np.ndarray:
            x = to_unit_range(x)[:, None]
            return np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-1.0) if p else x

        train, test = images(arrays["train_images"]), images(arrays["test_images"])
        return DataSplits(train=train, test=test,
                          train_labels=arrays["train_labels"].astype(np.int64),
                          test_labels=arrays["test_labels"].astype(np.int64),
                          spec=DataSpec(shape=train.shape[1:], modality="image", num_classes=10))


def published(base_url: str, *md5s: str) -> tuple[Resource, ...]:
    """The four gzipped IDX files under ``base_url`` with their published md5s (FILES order)."""
    return tuple(Resource(stem + ".gz", base_url + stem + ".gz", md5) for stem, md5 in zip(FILES.values(), md5s))


_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


class MNIST(_IDXDigits):
    """MNIST handwritten digits from the IDX files: (1, 28, 28) in [-1, 1], labels 0-9."""

    name = "mnist"
    folder = "MNIST"
    source = "http://yann.lecun.com/exdb/mnist/ (mirror " + _MNIST_URL + ")"
    resources = published(_MNIST_URL, "f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
                          "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")


class FashionMNIST(_IDXDigits):
    """Fashion-MNIST (Zalando) from the IDX files: (1, 28, 28) in [-1, 1], labels 0-9."""

    name = "fashion_mnist"
    folder = "FashionMNIST"
    source = "https://github.com/zalandoresearch/fashion-mnist (files at " + _FASHION_URL + ")"
    resources = published(_FASHION_URL, "8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
                          "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")


@hookimpl
def benchbase_register_datasets(register):
    register(MNIST)
    register(FashionMNIST)
