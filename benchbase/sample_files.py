"""Generated samples read from files, for models trained elsewhere: an ``.npy`` or
``.npz`` array, a folder of images, or a folder holding one of those per training
step (``step_<N>.npz``, ``step_<N>.npy``, or ``step_<N>/`` with image files).

Arrays are ``(N, *shape)`` in the data's value range (images NCHW in [-1, 1]; values
beyond it by more than its width are refused, :func:`range_problem`); uint8 arrays are read as 0..255 pixels, images stored NHWC or flattened are put in
the data's layout. Files are never unpickled (``allow_pickle=False``). Every source
carries the sha256 of its content (the file's bytes; for an .npz, those of the
array read), so results can say exactly which samples they score.
"""
from __future__ import annotations

import hashlib
import re
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchbase.contracts import DataSpec
from benchbase.errors import BenchbaseInputError
from benchbase.images import check_image, decode_images, list_images, to_unit_range

STEP_NAME = re.compile(r"^step[_-]?(\d+)$")
ARRAY_SUFFIXES = (".npy", ".npz")
DEFAULT_KEY = "samples"  # the array of an .npz holding several


@dataclass(frozen=True)
class SampleSource:
    """One set of generated samples on disk: an array file or a folder of images."""

    path: Path
    kind: str  # "array" | "images"
    count: int  # samples it holds
    stored_shape: tuple[int, ...] | None  # one sample as stored (arrays); None for images
    dtype: str  # the stored dtype ("image" for image files)
    sha256: str
    key: str | None = None  # the .npz member holding the samples

    def describe(self) -> dict:
        return {"path": str(self.path), "kind": self.kind, "count": self.count, "sha256": self.sha256,
                **({"key": self.key} if self.key else {})}


def open_source(path: str | Path, key: str | None = None) -> SampleSource:
    """Describe (header and hash only, nothing decoded) an array file or an image folder."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise BenchbaseInputError(f"{path}: no image files in this folder (and it is not a folder of "
                                      "step_<N> sample files)")
        h = hashlib.sha256()
        for f in files:
            check_image(f)
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
            _hash_file(f, h)
        return SampleSource(path.resolve(), "images", len(files), None, "image", h.hexdigest())
    if not path.is_file():
        raise BenchbaseInputError(f"{path}: no such file or folder")
    if path.suffix.lower() not in ARRAY_SUFFIXES:
        raise BenchbaseInputError(f"{path}: samples are read from .npy or .npz files or from a folder of images")
    header = _array_header(path, key)
    shape, dtype, member = header.shape, header.dtype, header.member
    if dtype.hasobject:
        raise BenchbaseInputError(f"{path}: holds Python objects (dtype {dtype}), which are never unpickled; "
                                  "save the samples as a numeric array")
    if dtype.names is not None or dtype.subdtype is not None:
        raise BenchbaseInputError(f"{path}: holds a structured array (dtype {dtype}); save the samples as one "
                                  "plain numeric array (N, *example_shape)")
    if len(shape) < 2:
        raise BenchbaseInputError(f"{path}: the samples array has shape {shape}; expected (N, *example_shape)")
    promised = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if header.data_bytes < promised:
        raise BenchbaseInputError(f"{path}: is truncated or damaged: its header promises an array of shape "
                                  f"{shape} ({promised:,} bytes) but it holds {header.data_bytes:,} bytes of data")
    h = hashlib.sha256()
    try:
        if member is None:
            _hash_file(path, h)
        else:  # the member's bytes, not the archive's (whose timestamps change on every save)
            with zipfile.ZipFile(path) as z, z.open(member + ".npy") as f:
                _hash_stream(f, h)
    except (OSError, zipfile.BadZipFile, zlib.error) as exc:
        raise BenchbaseInputError(f"{path}: not a readable numpy file ({exc})") from None
    return SampleSource(path.resolve(), "array", int(shape[0]), tuple(int(s) for s in shape[1:]), dtype.name,
                        h.hexdigest(), member)


def step_sources(folder: str | Path, key: str | None = None) -> dict[int, SampleSource]:
    """The training step -> samples of a folder of ``step_<N>`` files or image folders
    (empty when the folder holds none)."""
    folder = Path(folder).expanduser()
    found: dict[int, SampleSource] = {}
    for entry in sorted(folder.iterdir()) if folder.is_dir() else ():
        stem = entry.name[: -len(entry.suffix)] if entry.suffix.lower() in ARRAY_SUFFIXES else entry.name
        match = STEP_NAME.match(stem)
        if not match or entry.name.startswith("."):
            continue
        if entry.is_file() and entry.suffix.lower() not in ARRAY_SUFFIXES:
            continue
        step = int(match.group(1))
        if step in found:
            raise BenchbaseInputError(f"{folder}: step {step} has two sample files ({found[step].path.name} and "
                                      f"{entry.name})")
        found[step] = open_source(entry, key)
    return dict(sorted(found.items()))


MIN_SAMPLES = 2  # every metric compares sets; one sample is not a set


def shape_problems(source: SampleSource, spec: DataSpec, n_samples: int | None = None,
                   asked_by: str = "eval.n_samples") -> list[str]:
    """Why ``source`` cannot give ``n_samples`` samples of data described by ``spec`` (empty:
    it can): too few, another shape or dtype, or values far outside ``spec.value_range``
    (:func:`range_problem`; a float array's values are read for this, in chunks).
    ``asked_by`` names the setting that asked for ``n_samples``, for the message."""
    out = _header_problems(source, spec, n_samples, asked_by)
    if not out and source.kind == "array" and source.dtype != "uint8":  # images and uint8 map into [-1, 1]
        bounds = _finite_bounds(source)
        problem = range_problem(*bounds, spec) if bounds else None
        if problem:
            out.append(f"{source.path.name}: its {problem}")
    return out


def range_slack(spec: DataSpec) -> tuple[float, float]:
    """The values samples of ``spec``'s data may take: its value range widened by its own
    width on either side ([-3, 3] for images in [-1, 1]). Generated samples overshoot the
    data's range a little; values beyond this are data in another scale (0..255 pixels)."""
    lo, hi = (float(v) for v in spec.value_range)
    return lo - (hi - lo), hi + (hi - lo)


def range_problem(amin: float, amax: float, spec: DataSpec) -> str | None:
    """Why samples whose finite values span ``[amin, amax]`` are not in the data's value
    range (None: they are, within :func:`range_slack`), with the likely fix: metrics on
    samples in another scale return huge, meaningless numbers instead of an error."""
    low, high = range_slack(spec)
    if low <= amin and amax <= high:
        return None
    lo, hi = (float(v) for v in spec.value_range)
    span = f"[{amin:.4g}, {amax:.4g}]"
    if amin >= -1e-6 and 1.5 < amax <= 255.0 + 1e-3:
        fix = (f"they look like 0..255 pixels: divide by 127.5 and subtract 1 (or save them as uint8)"
               if (lo, hi) == (-1.0, 1.0) else f"they look like 0..255 pixels: map x to {lo:g} + x * {hi - lo:g} / 255")
    else:
        fix = f"rescale them into [{lo:g}, {hi:g}]"
    return (f"values span {span}, far outside the data's value range [{lo:g}, {hi:g}] (samples may "
            f"overshoot it by its width, to [{low:g}, {high:g}]); {fix}")


def _header_problems(source: SampleSource, spec: DataSpec, n_samples: int | None, asked_by: str) -> list[str]:
    """:func:`shape_problems` from the header alone: count, shape and dtype."""
    out = []
    if source.count < MIN_SAMPLES:
        out.append(f"{source.path.name} holds {source.count} sample(s); metrics need at least {MIN_SAMPLES}")
    elif n_samples is not None and source.count < n_samples:
        out.append(f"{source.path.name} holds {source.count} samples but {asked_by} is {n_samples}; "
                   f"lower {asked_by} to at most {source.count}")
    if source.kind == "images":
        if spec.modality != "image" or spec.shape[1] != spec.shape[2] or spec.shape[0] not in (1, 3):
            out.append(f"{source.path.name} is a folder of images but the data is {spec.modality} data of "
                       f"shape {tuple(spec.shape)}")
    elif _layout(source.stored_shape, tuple(spec.shape)) is None:
        out.append(f"{source.path.name} holds samples of shape {source.stored_shape} but the data's examples are "
                   f"{tuple(spec.shape)} (NCHW; NHWC and flattened images are read too)")
    if source.dtype not in ("image", "uint8") and "float" not in source.dtype:
        out.append(f"{source.path.name} holds {source.dtype} values; samples are floating point in the data's "
                   "value range, or uint8 pixels")
    return out


def read_samples(source: SampleSource, spec: DataSpec, n: int | None = None,
                 asked_by: str = "eval.n_samples") -> np.ndarray:
    """The first ``n`` (None: all) samples of ``source`` as float32 ``(n, *spec.shape)``."""
    problems = _header_problems(source, spec, n, asked_by)  # the values are checked by the caller
    if problems:
        raise BenchbaseInputError(f"{source.path}: {problems[0]}")
    if source.kind == "images":
        files = list_images(source.path)[:n]
        return to_unit_range(decode_images(files, size=spec.shape[-1], grayscale=spec.shape[0] == 1))
    if source.key is None:  # .npy: memory-mapped, only the first n are read
        arr = np.array(np.load(source.path, mmap_mode="r", allow_pickle=False)[:n])
    else:
        with np.load(source.path, allow_pickle=False) as archive:
            arr = archive[source.key][:n]
    arr = to_unit_range(arr) if arr.dtype == np.uint8 else arr.astype(np.float32)
    layout = _layout(tuple(arr.shape[1:]), tuple(spec.shape))
    return np.ascontiguousarray(layout(arr))


# ------------------------------------------------------------------------ pieces


def _hash_file(path: Path, h) -> None:
    with open(path, "rb") as f:
        _hash_stream(f, h)


def _hash_stream(f, h, chunk: int = 1 << 22) -> None:
    while block := f.read(chunk):
        h.update(block)


def _finite_bounds(source: SampleSource, chunk: int = 1 << 22) -> tuple[float, float] | None:
    """The smallest and largest finite value of an array file (None: it holds none),
    read in chunks so a large file is never held in memory. Element order does not
    matter for these, so the bytes after the header are read as they lie."""
    lo, hi = np.inf, -np.inf
    try:
        with _array_stream(source) as f:
            shape, dtype = _npy_header(f)
            remaining = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
            pending = b""
            while remaining > 0 and (block := f.read(min(chunk, remaining))):
                remaining -= len(block)
                block = pending + block
                whole = len(block) - len(block) % dtype.itemsize
                pending = block[whole:]
                values = np.frombuffer(block[:whole], dtype=dtype)
                values = values[np.isfinite(values)]
                if values.size:
                    lo, hi = min(lo, float(values.min())), max(hi, float(values.max()))
    except (OSError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
        raise BenchbaseInputError(f"{source.path}: not a readable numpy file ({exc})") from None
    return (lo, hi) if lo <= hi else None


@contextmanager
def _array_stream(source: SampleSource):
    """The .npy bytes of ``source`` (the file, or its .npz member) as a binary stream."""
    if source.key is None:
        with open(source.path, "rb") as f:
            yield f
    else:
        with zipfile.ZipFile(source.path) as z, z.open(source.key + ".npy") as f:
            yield f


@dataclass(frozen=True)
class ArrayHeader:
    """What an array file's header says, and how many bytes of data follow it (a file
    cut short, or a header promising more than the file holds, is caught before numpy
    memory-maps or reads it)."""

    shape: tuple[int, ...]
    dtype: np.dtype
    member: str | None  # the .npz member; None for an .npy
    data_bytes: int


def _npy_header(f) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an .npy header, without reading the data."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(f)
    return shape, dtype


def _array_header(path: Path, key: str | None) -> ArrayHeader:
    try:
        if path.suffix.lower() == ".npy":
            if key is not None:
                raise BenchbaseInputError(f"{path}: an .npy file holds one array; `key` applies to .npz files")
            with open(path, "rb") as f:
                shape, dtype = _npy_header(f)
                data_bytes = path.stat().st_size - f.tell()
            return ArrayHeader(shape, dtype, None, data_bytes)
        with zipfile.ZipFile(path) as z:
            names = [n[:-4] for n in z.namelist() if n.endswith(".npy")]
            member = key or (DEFAULT_KEY if DEFAULT_KEY in names else names[0] if len(names) == 1 else None)
            if member not in names:
                want = f"no array '{member}'" if member else f"{len(names)} arrays and none is called '{DEFAULT_KEY}'"
                raise BenchbaseInputError(f"{path}: {want}; arrays: {', '.join(names) or '(none)'}"
                                          + ("" if key else " (name one with key)"))
            with z.open(member + ".npy") as f:
                shape, dtype = _npy_header(f)
                data_bytes = z.getinfo(member + ".npy").file_size - f.tell()
            return ArrayHeader(shape, dtype, member, data_bytes)
    except (OSError, ValueError, TypeError, zipfile.BadZipFile, zlib.error) as exc:
        raise BenchbaseInputError(f"{path}: not a readable numpy file ({exc})") from None


def _layout(stored: tuple[int, ...] | None, want: tuple[int, ...]):
    """A function putting stored samples into the data's layout, or None if none fits."""
    if stored is None:
        return None
    if stored == want:
        return lambda a: a
    if len(want) == 3 and stored == (want[1], want[2], want[0]):  # NHWC -> NCHW
        return lambda a: a.transpose(0, 3, 1, 2)
    if int(np.prod(stored)) == int(np.prod(want)) and (len(stored) == 1 or (len(want) == 3 and want[0] == 1)):
        return lambda a: a.reshape(len(a), *want)  # flattened, or (N, H, W) grayscale
    return None
