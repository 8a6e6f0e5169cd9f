"""Images from files as the interchange format (uint8 pixels -> float32 NCHW in
[-1, 1]), decoded with Pillow: shared by the datasets that read images and by
everything that reads generated samples from image files.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np

from benchbase.errors import BenchbaseInputError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, hidden entries skipped), sorted by relative path."""
    found = [p for p in folder.rglob("*")
             if p.suffix.lower() in EXTENSIONS and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def to_unit_range(u8: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [-1, 1] (the interchange format)."""
    out = u8.astype(np.float32)
    out *= np.float32(1 / 127.5)
    out -= np.float32(1.0)
    return out


def check_image(path: Path) -> None:
    """Refuse (one line naming the file) a file that is not an image Pillow can read:
    only its header is parsed, so a folder is checked before anything is decoded."""
    from PIL import Image

    try:
        Image.open(path).close()  # opening parses the header; no pixel is decoded
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise BenchbaseInputError(f"{path}: not a readable image ({exc})") from None


def load_image(path: Path, size: int, crop: int | None = None, grayscale: bool = False) -> np.ndarray:
    """Decode one image to uint8 CHW: centre crop (``crop`` x ``crop``, or the largest
    centred square when None), then resize to ``size`` x ``size``."""
    from PIL import Image

    try:
        return _decode(path, size, crop, grayscale)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:  # cut short or damaged past its header
        raise BenchbaseInputError(f"{path}: not a readable image ({exc})") from None


def _decode(path: Path, size: int, crop: int | None, grayscale: bool) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("L" if grayscale else "RGB")
        w, h = im.size
        side = min(w, h) if crop is None else int(crop)
        if side > min(w, h):
            raise BenchbaseInputError(
                f"{path}: cannot centre-crop {side}x{side} from an image of {w}x{h}; lower `crop`")
        left, top = (w - side) // 2, (h - side) // 2
        im = im.crop((left, top, left + side, top + side))
        if side != size:
            im = im.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=None)
        arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if grayscale else np.ascontiguousarray(arr.transpose(2, 0, 1))


def decode_images(paths: Sequence[Path], size: int, crop: int | None = None,
                  grayscale: bool = False) -> np.ndarray:
    """Decode many images (threads: Pillow releases the GIL while decoding) to uint8 NCHW."""
    out = np.empty((len(paths), 1 if grayscale else 3, size, size), dtype=np.uint8)
    if not len(paths):
        return out

    def one(i: int) -> None:
        out[i] = load_image(paths[i], size, crop, grayscale)

    workers = max(1, min(8, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(one, range(len(paths)), chunksize=64):
            pass
    return out
