"""What every dataset read from disk shares: where its files live, the one clear error
when they are not there, an opt-in download checked against published checksums,
and a small cache of decoded arrays (image decoding is benchbase.images).

Not a plugin itself (it registers nothing); the dataset modules import it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from benchbase.errors import MissingDataError
from benchbase.images import decode_images, load_image, to_unit_range  # noqa: F401 (the datasets' imports)

DATA_ENV = "BENCHBASE_DATA"
DEFAULT_DATA_DIR = "data"
CACHE_DIR = ".benchbase-cache"


class ChecksumError(MissingDataError):
    """A downloaded (or found) file does not match its published checksum."""


@dataclass(frozen=True)
class Resource:
    """One published file: where it comes from and its md5 (as published by the authors)."""

    filename: str
    url: str
    md5: str
    extract: bool = False  # an archive (.tar.gz or .zip) to unpack where it lands


# ------------------------------------------------------------------------ where


def data_base(root: str | None) -> Path:
    """The data folder: the config's ``root``, else $BENCHBASE_DATA, else ./data."""
    chosen = root or os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR
    return Path(os.path.expanduser(str(chosen))).resolve()


def candidate_dirs(root: str | None, *subfolders: str) -> list[Path]:
    """Folders to look in, most specific first. The base folder itself counts only when
    the user named it in ``root`` (a shared $BENCHBASE_DATA holds several datasets whose
    files have the same names, e.g. MNIST and Fashion-MNIST)."""
    base = data_base(root)
    out = [base / sub for sub in subfolders]
    if root:
        out.append(base)
    return out


def find_dir(candidates: Sequence[Path], present: Callable[[Path], bool]) -> Path | None:
    for folder in candidates:
        if folder.is_dir() and present(folder):
            return folder
    return None


def missing_data(dataset: str, what: str, looked_in: Sequence[Path], missing: dict[Path, list[str]] | None = None,
                 source: str = "", downloadable: bool = True) -> MissingDataError:
    """The one error for absent data: where we looked, which files, how to get them."""
    lines = [f"dataset '{dataset}' not found: expected {what} in one of:"]
    for folder in looked_in:
        note = ""
        if missing and folder in missing:
            note = f"  (exists, but lacks {', '.join(missing[folder])})"
        lines.append(f"    {folder}{note}")
    lines.append(f"  Put the files in {looked_in[0]} (choose the data folder with `root:` in the dataset's "
                 f"config or ${DATA_ENV}).")
    if source:
        lines.append(f"  Source: {source}.")
    if downloadable:
        lines.append("  Or set `download: true` in the dataset's config to fetch them (and check their "
                     "checksums) on a machine where the internet is reachable.")
    return MissingDataError("\n".join(lines))


# ------------------------------------------------------------------------ download


def fetch(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest``: the only network access of the datasets (tests replace it)."""
    tmp = dest.with_name(dest.name + ".part")
    with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
        shutil.copyfileobj(response, out, length=1 << 20)
    os.replace(tmp, dest)


def md5sum(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(dataset: str, resources: Iterable[Resource], into: Path) -> None:
    """Fetch each resource into ``into``, verify its md5, unpack archives."""
    into.mkdir(parents=True, exist_ok=True)
    for res in resources:
        dest = into / res.filename
        if not (dest.exists() and md5sum(dest) == res.md5):
            try:
                fetch(res.url, dest)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise MissingDataError(
                    f"dataset '{dataset}': could not download {res.url} to {dest}: {exc}. Without internet "
                    f"access, copy {res.filename} (md5 {res.md5}) to {into} by hand") from None
            got = md5sum(dest)
            if got != res.md5:
                dest.unlink()
                raise ChecksumError(
                    f"dataset '{dataset}': checksum mismatch for {res.filename} from {res.url}: expected md5 "
                    f"{res.md5}, got {got}. The file was removed; retry, or fetch it by hand")
        if res.extract:
            extract(dest, into)


def extract(archive: Path, into: Path) -> None:
    """Unpack a .tar.gz or .zip, refusing members that would land outside ``into``."""
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
        return
    with zipfile.ZipFile(archive) as zf:
        root = into.resolve()
        for name in zf.namelist():
            target = (into / name).resolve()
            if root != target and root not in target.parents:
                raise MissingDataError(f"refusing to unpack {archive}: member '{name}' points outside {into}")
        zf.extractall(into)


# ------------------------------------------------------------------------ cache


def cached_arrays(folder: Path, name: str, key: dict, sources: Sequence[Path],
                  build: Callable[[], dict[str, np.ndarray]], enabled: bool = True) -> dict[str, np.ndarray]:
    """Decoded arrays, rebuilt only when ``key`` or a source file (name, size, mtime) changes.

    Stored as ``<folder>/.benchbase-cache/<name>-<hash>.npz`` (plain arrays, loaded with
    ``allow_pickle=False``) and written atomically; a folder we cannot write to just
    means no cache.
    """
    if not enabled:
        return build()
    h = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode())
    for p in sources:
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    path = folder / CACHE_DIR / f"{name}-{h.hexdigest()[:20]}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception:  # a truncated or foreign file: rebuild it
            pass
    arrays = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f"{name}-*.npz"):
            stale.unlink()
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as exc:
        warnings.warn(f"could not cache decoded {name} in {path.parent}: {exc}", stacklevel=2)
    return arrays
