"""Any folder of images, read with Pillow.

Layouts understood (``root`` is the folder):
- ``root/train/...`` and ``root/test/...``: those are the splits;
- otherwise every image under ``root`` (recursively), and a fixed random
  ``test_fraction`` of them is the test split.
Labels: when every image sits in a first-level class folder (``<split>/<class>/x.png``)
and ``labels`` is on, the sorted class folder names are the classes 0..K-1.
Images are centre-cropped to a square (or ``crop`` x ``crop``) and resized to ``size``.
The train order is a fixed shuffle (``split_seed``), so "the first n" mixes classes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from benchbase import DataSpec, DataSplits, Dataset, hookimpl
from benchbase.contracts import location
from benchbase.errors import MissingDataError
from benchbase.images import EXTENSIONS, list_images

from .common import require
from .files import cached_arrays, decode_images, to_unit_range

LOADER_VERSION = 1


def class_of(path: Path, split_root: Path) -> str | None:
    rel = path.relative_to(split_root).parts
    return rel[0] if len(rel) == 2 else None


@dataclass
class ImageFolderConfig:
    root: Optional[str] = location(None)  # the folder of images (required)
    size: int = 32  # output side in pixels
    crop: Optional[int] = None  # centre crop side before resizing; None: the largest centred square
    grayscale: bool = False
    labels: bool = True  # class subfolders -> integer labels
    test_fraction: float = 0.1  # used when there are no train/ and test/ subfolders
    split_seed: int = 0  # fixes the test draw and the train order
    cache: bool = location(True)  # keep decoded arrays in <root>/.benchbase-cache


class ImageFolder(Dataset):
    """Any folder of images (optional class subfolders as labels, optional train/ and test/), resized."""

    name = "image_folder"
    Config = ImageFolderConfig

    def _splits(self, root: Path) -> tuple[list[Path], list[Path], Path, Path]:
        c = self.config
        if (root / "train").is_dir() and (root / "test").is_dir():
            return list_images(root / "train"), list_images(root / "test"), root / "train", root / "test"
        files = list_images(root)
        require(len(files) >= 2, self.name, f"{root} holds {len(files)} images (extensions "
                                            f"{', '.join(EXTENSIONS)}); at least 2 are needed")
        n_test = min(len(files) - 1, max(1, int(round(c.test_fraction * len(files)))))
        order = np.random.default_rng(c.split_seed).permutation(len(files))
        test = sorted((files[i] for i in order[:n_test]), key=lambda p: p.relative_to(root).as_posix())
        return [files[i] for i in order[n_test:]], test, root, root

    def load(self) -> DataSplits:
        c = self.config
        require(c.size >= 4, self.name, f"config.size must be >= 4 (got {c.size})")
        require(0 < c.test_fraction < 1, self.name, f"config.test_fraction must be in (0, 1) (got {c.test_fraction})")
        if not c.root or not Path(c.root).expanduser().is_dir():
            where = f"'{c.root}' is not a folder" if c.root else "config.root is not set"
            raise MissingDataError(f"dataset 'image_folder': {where}. Set `root:` in the dataset's config to a "
                                   "folder of images (optionally train/ and test/ subfolders, and class "
                                   "subfolders for labels); there is nothing to download")
        root = Path(c.root).expanduser().resolve()
        train_files, test_files, train_root, test_root = self._splits(root)
        require(bool(train_files) and bool(test_files), self.name,
                f"{root}: found {len(train_files)} train and {len(test_files)} test images; both must be non-empty")
        train_files = [train_files[i] for i in np.random.default_rng(c.split_seed).permutation(len(train_files))]

        y_train = y_test = None
        classes: list[str] = []
        if c.labels:
            train_cls = [class_of(p, train_root) for p in train_files]
            test_cls = [class_of(p, test_root) for p in test_files]
            if None not in train_cls and None not in test_cls:
                classes = sorted(set(train_cls) | set(test_cls))
                index = {name: i for i, name in enumerate(classes)}
                y_train = np.array([index[n] for n in train_cls], dtype=np.int64)
                y_test = np.array([index[n] for n in test_cls], dtype=np.int64)

        def build() -> dict[str, np.ndarray]:
            kw = {"size": c.size, "crop": c.crop, "grayscale": c.grayscale}
            return {"train": decode_images(train_files, **kw), "test": decode_images(test_files, **kw)}

        key = {"loader": LOADER_VERSION, "size": c.size, "crop": c.crop, "grayscale": c.grayscale,
               "train": [p.relative_to(root).as_posix() for p in train_files],
               "test": [p.relative_to(root).as_posix() for p in test_files]}
        arrays = cached_arrays(root, "image_folder", key, train_files + test_files, build, c.cache)
        train, test = to_unit_range(arrays["train"]), to_unit_range(arrays["test"])
        return DataSplits(train=train, test=test, train_labels=y_train, test_labels=y_test,
                          spec=DataSpec(shape=train.shape[1:], modality="image", num_classes=len(classes)))


@hookimpl
def benchbase_register_datasets(register):
    register(ImageFolder)
