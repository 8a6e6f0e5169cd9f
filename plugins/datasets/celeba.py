"""CelebA aligned faces (``img_align_celeba/`` JPEGs + ``list_eval_partition.txt``).

Looked for in ``<data>/celeba`` (torchvision's layout), ``<data>/CelebA``, or the
``root`` itself. The official partition decides the splits: 0 = train (162,770),
1 = valid (19,867), 2 = test (19,962). Each 178x218 image is centre-cropped to
``crop`` x ``crop`` (140 as in DCGAN-style CelebA-64 pipelines; 178 keeps the whole
width) and resized to ``size`` (32 or 64 in the seed papers), optionally grayscale
(as Kadkhodaie et al. and Bonnaire et al.). Decoding ~200k JPEGs takes minutes, so
the decoded uint8 arrays are cached next to the data (``cache: false`` turns it off).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from benchbase import DataSpec, DataSplits, Dataset, hookimpl
from benchbase.contracts import location
from benchbase.errors import BenchbaseInputError

from .common import require
from .files import (Resource, cached_arrays, candidate_dirs, decode_images, download, find_dir, missing_data,
                    to_unit_range)

IMAGES = "img_align_celeba"
PARTITION = "list_eval_partition.txt"
_DRIVE = "https://drive.usercontent.google.com/download?export=download&confirm=t&id="
RESOURCES = (
    Resource("img_align_celeba.zip", _DRIVE + "0B7EVK8r0v71pZjFTYXZWM3FlRnM", "00d2c5bc6d35e252742224ab0c1e8fcb",
             extract=True),
    Resource(PARTITION, _DRIVE + "0B7EVK8r0v71pY0NSMzRuSXJEVkk", "d32c9cbf5e040fd4025c592c306e6668"),
)
LOADER_VERSION = 1  # bump when decoding changes, to invalidate caches


def partition_file(folder: Path) -> Path | None:
    for candidate in (folder / PARTITION, folder / "Eval" / PARTITION):
        if candidate.is_file():
            return candidate
    return None


def read_partition(path: Path) -> list[tuple[str, int]]:
    """Lines '000001.jpg 0' -> [(filename, partition)], in file order."""
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise BenchbaseInputError(f"{path}:{lineno}: expected '<image file> <0|1|2>', got '{line.strip()}'")
        rows.append((parts[0], int(parts[1])))
    return rows


@dataclass
class CelebAConfig:
    root: Optional[str] = location(None)  # data folder (default: $BENCHBASE_DATA, else ./data)
    download: bool = location(False)  # fetch img_align_celeba.zip + partition (Google Drive, md5-checked) when missing
    size: int = 64  # output side in pixels
    crop: Optional[int] = 140  # centre crop side before resizing; None: the largest centred square (178)
    grayscale: bool = False
    include_valid: bool = False  # train on partitions 0 and 1 (the test split is always partition 2)
    limit: Optional[int] = None  # decode only the first `limit` train images (faster; test split unaffected)
    cache: bool = location(True)  # keep decoded arrays in <folder>/.benchbase-cache


class CelebA(Dataset):
    """CelebA aligned faces, centre-cropped and resized (default 3x64x64), official train/test partition."""

    name = "celeba"
    Config = CelebAConfig

    def _locate(self) -> tuple[Path, Path]:
        c = self.config
        looked = candidate_dirs(c.root, "celeba", "CelebA")
        present = lambda d: (d / IMAGES).is_dir() and partition_file(d) is not None  # noqa: E731
        folder = find_dir(looked, present)
        if folder is None and c.download:
            download(self.name, RESOURCES, looked[0])
            folder = find_dir(looked[:1], present)
        if folder is None:
            partial = {d: [n for n, ok in ((IMAGES + "/", (d / IMAGES).is_dir()),
                                           (PARTITION, partition_file(d) is not None)) if not ok]
                       for d in looked if d.is_dir()}
            raise missing_data(self.name, f"the folder {IMAGES}/ (JPEGs) and {PARTITION}", looked, partial,
                               "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Align&Cropped Images, "
                               "Eval/list_eval_partition.txt)")
        return folder, partition_file(folder)

    def load(self) -> DataSplits:
        c = self.config
        require(c.size >= 4, self.name, f"config.size must be >= 4 (got {c.size})")
        require(c.crop is None or c.crop >= 1, self.name, f"config.crop must be a side in pixels (got {c.crop})")
        require(c.limit is None or c.limit >= 1, self.name, f"config.limit must be >= 1 (got {c.limit})")
        folder, partition = self._locate()
        rows = read_partition(partition)
        train_parts = (0, 1) if c.include_valid else (0,)
        train_files = [folder / IMAGES / f for f, p in rows if p in train_parts][:c.limit]
        test_files = [folder / IMAGES / f for f, p in rows if p == 2]
        require(bool(train_files and test_files), self.name, f"{partition} gives an empty train or test partition")
        absent = [p.name for p in train_files + test_files if not p.is_file()]
        require(not absent, self.name, f"{partition} lists {len(train_files)} train and {len(test_files)} test "
                                       f"images; {len(absent)} are missing from {folder / IMAGES} "
                                       f"(e.g. {', '.join(absent[:3])})")

        def build() -> dict[str, np.ndarray]:
            kw = {"size": c.size, "crop": c.crop, "grayscale": c.grayscale}
            return {"train": decode_images(train_files, **kw), "test": decode_images(test_files, **kw)}

        key = {"loader": LOADER_VERSION, "size": c.size, "crop": c.crop, "grayscale": c.grayscale,
               "train": [p.name for p in train_files], "test_count": len(test_files)}
        arrays = cached_arrays(folder, "celeba", key, [partition] + train_files + test_files, build, c.cache)
        train, test = to_unit_range(arrays["train"]), to_unit_range(arrays["test"])
        return DataSplits(train=train, test=test, spec=DataSpec(shape=train.shape[1:], modality="image"))


@hookimpl
def benchbase_register_datasets(register):
    register(CelebA)
