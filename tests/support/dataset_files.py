"""Tiny datasets written in the exact published on-disk formats, so the real parsers run.

Each writer returns the uint8 arrays it wrote, for the tests to compare against.
"""
from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    """IDX: two zero bytes, type code 0x08 (ubyte), rank, big-endian uint32 dims, data."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    payload = header + array.tobytes()
    path = Path(str(path) + ".gz") if gz else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload) if gz else payload)
    return path


def write_mnist(folder: Path, n_train: int = 60, n_test: int = 20, gz: bool = True, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    names = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
    for key, arr in arrays.items():
        write_idx(Path(folder) / names[key], arr, gz)
    return arrays


def cifar_batch(n: int, rng: np.random.Generator, label: bytes) -> dict:
    """The official layout: bytes keys, data uint8 (n, 3072) in CHW order, labels a list."""
    return {b"batch_label": label, b"labels": [int(v) for v in rng.integers(0, 10, size=n)],
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


def write_cifar(folder: Path, per_batch: int = 8, n_test: int = 6, protocol: int = 2, seed: int = 0) -> dict:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = {f"data_batch_{i}": cifar_batch(per_batch, rng, f"training batch {i} of 5".encode())
               for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(n_test, rng, b"testing batch 1 of 1")
    for name, batch in batches.items():
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=protocol)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog",
                                      b"horse", b"ship", b"truck"], b"num_cases_per_batch": per_batch,
                     b"num_vis": 3072}, f, protocol=protocol)
    return batches


def celeba_image(level: int, border: int) -> "Image":
    """A 178x218 RGB image: flat ``level`` inside the centred 140x140 crop, ``border`` outside."""
    from PIL import Image

    arr = np.full((218, 178, 3), border, dtype=np.uint8)
    top, left = (218 - 140) // 2, (178 - 140) // 2
    arr[top:top + 140, left:left + 140] = level
    arr[top:top + 140, left:left + 140, 1] = 255 - level  # a second channel value, to check RGB order
    return Image.fromarray(arr)


def write_celeba(folder: Path, partitions=(0, 0, 0, 0, 0, 1, 2, 2), subdir_eval: bool = False) -> list[int]:
    """img_align_celeba/000001.jpg... and list_eval_partition.txt; returns each image's level."""
    folder = Path(folder)
    (folder / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    levels, lines = [], []
    for i, part in enumerate(partitions, 1):
        level = 20 + 25 * (i % 9)
        name = f"{i:06d}.jpg"
        celeba_image(level, border=250 - level).save(folder / "img_align_celeba" / name, quality=95)
        levels.append(level)
        lines.append(f"{name} {part}")
    target = folder / "Eval" / "list_eval_partition.txt" if subdir_eval else folder / "list_eval_partition.txt"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines) + "\n")
    return levels


def write_image_folder(folder: Path, classes=("cat", "dog", "emu"), per_class: int = 4, size: int = 8,
                       split_dirs: bool = False, seed: int = 0) -> dict:
    """PNG (lossless) images of ``size`` x ``size``: class/<i>.png, optionally under train/ and test/."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    written: dict = {}
    for split in (("train", "test") if split_dirs else ("",)):
        for cls in classes:
            d = Path(folder) / split / cls if split else Path(folder) / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(per_class if split != "test" else max(1, per_class // 2)):
                arr = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{i}.png")
                written[(d / f"{i}.png").relative_to(folder).as_posix()] = arr
    return written


def tar_gz(members: dict[str, Path]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for arcname, path in members.items():
            tar.add(path, arcname=arcname)
    return buf.getvalue()


def zip_bytes(members: dict[str, Path]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for arcname, path in members.items():
            zf.write(path, arcname)
    return buf.getvalue()
