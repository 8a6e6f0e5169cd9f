"""The data side of a run, done once in the core so every dataset gets it:
loading (cached per process), training subsets (first n, random n, the k-th of K
disjoint parts, near-duplicate removal) and the content hash that identifies the
exact examples a run trained on.
"""
from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from benchbase.contracts import DataSpec, DataSplits
from benchbase.errors import BenchbaseInputError


@dataclass
class DataInfo:
    train_size: int
    test_size: int
    spec: DataSpec


@dataclass
class Subset:
    """The exact training examples of a run, and how they were chosen."""

    x: np.ndarray
    y: np.ndarray | None
    indices: np.ndarray  # into the dataset's train split
    content_hash: str
    provenance: dict = field(default_factory=dict)


def parse_split(text: str) -> tuple[int, int]:
    """'2 of 3' -> (2, 3): the second of three disjoint parts."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:of|/)\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"split must look like 'k of K' (e.g. '1 of 2'), got '{text}'")
    k, total = int(m.group(1)), int(m.group(2))
    if not 1 <= k <= total:
        raise ValueError(f"split '{text}': k must be between 1 and K")
    return k, total


def content_hash(x: np.ndarray, y: np.ndarray | None = None) -> str:
    """sha256 of the exact float32 bytes (and labels): names the data a run saw."""
    h = hashlib.sha256()
    x = np.ascontiguousarray(x, dtype=np.float32)
    h.update(json.dumps(list(x.shape)).encode())
    h.update(x.tobytes())
    if y is not None:
        h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


class DataCatalog:
    """Loads datasets once per process (keyed by name, version and config)."""

    _shared: "DataCatalog | None" = None
    _lock = threading.Lock()

    def __init__(self, capacity: int = 8):
        self._cache: OrderedDict[str, tuple[Any, DataSplits]] = OrderedDict()
        self.capacity = capacity

    @classmethod
    def shared(cls) -> "DataCatalog":
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def clear(self) -> None:
        self._cache.clear()

    def load(self, registered, config_obj, config_plain: dict) -> tuple[Any, DataSplits]:
        key = json.dumps([registered.name, registered.version, config_plain], sort_keys=True, default=str)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        dataset = registered.cls(config_obj)
        splits = dataset.load()
        _check_splits(registered.name, splits)
        self._cache[key] = (dataset, splits)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return dataset, splits

    def describe(self, registered, config_obj, config_plain: dict) -> DataInfo:
        _, splits = self.load(registered, config_obj, config_plain)
        return DataInfo(len(splits.train), len(splits.test), splits.spec)


def _check_splits(name: str, s: DataSplits) -> None:
    for split in ("train", "test"):
        arr = getattr(s, split)
        if not isinstance(arr, np.ndarray) or arr.dtype != np.float32:
            raise TypeError(f"dataset '{name}': {split} must be a float32 numpy array")
        if arr.shape[1:] != tuple(s.spec.shape):
            raise TypeError(f"dataset '{name}': {split} has example shape {arr.shape[1:]}, "
                            f"spec says {tuple(s.spec.shape)}")
    if len(s.train) == 0 or len(s.test) == 0:
        raise BenchbaseInputError(f"dataset '{name}' returned an empty train or test split")


def select_subset(splits: DataSplits, subset: dict) -> Subset:
    """Pick the training examples of a run: deterministic in ``subset`` alone."""
    pool = np.arange(len(splits.train))
    provenance: dict = {"pool_size": int(len(pool)), "mode": subset["mode"]}
    if subset.get("mode") == "random":
        pool = np.random.default_rng(subset.get("seed", 0)).permutation(pool)
    split = subset.get("split")
    if split:
        k, total = split
        parts = np.array_split(pool, total)
        pool = parts[k - 1]
        provenance["split"] = f"{k} of {total}"
        provenance["split_range"] = [int(pool.min()), int(pool.max())] if subset.get("mode") == "first" else None
    n = subset.get("n") or len(pool)
    dedup = subset.get("dedup")
    if dedup is not None:
        chosen, dropped = dedup_first(splits.train, pool, n, float(dedup))
        provenance["dedup"] = {"threshold": float(dedup), "dropped": int(dropped)}
    else:
        chosen = pool[:n]
    if len(chosen) < n:
        raise BenchbaseInputError(f"only {len(chosen)} examples remain for n={n} after deduplication")
    x = np.ascontiguousarray(splits.train[chosen])
    y = None if splits.train_labels is None else np.ascontiguousarray(splits.train_labels[chosen])
    provenance["n"] = int(n)
    return Subset(x=x, y=y, indices=chosen, content_hash=content_hash(x, y), provenance=provenance)


def _dedup_view(x: np.ndarray, max_side: int = 16) -> np.ndarray:
    """Flattened, centred, unit-norm (downsampled) examples: dot product = correlation."""
    if x.ndim == 4 and x.shape[-1] > max_side:
        f = int(np.ceil(x.shape[-1] / max_side))
        h, w = (x.shape[-2] // f) * f, (x.shape[-1] // f) * f
        x = x[..., :h, :w].reshape(*x.shape[:-2], h // f, f, w // f, f).mean(axis=(-3, -1))
    v = x.reshape(len(x), -1).astype(np.float64)
    v -= v.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norm > 0, norm, 1.0)


def dedup_first(train: np.ndarray, order: np.ndarray, n: int, threshold: float,
                block: int = 1024) -> tuple[np.ndarray, int]:
    """Walk ``order`` and keep an example unless it correlates above ``threshold`` with
    one already kept (exact greedy, in blocks), until ``n`` are kept."""
    kept: list[int] = []
    kept_vecs = np.zeros((0, 0))
    dropped = 0
    for start in range(0, len(order), block):
        idx = order[start:start + block]
        vecs = _dedup_view(train[idx])
        against_kept = (vecs @ kept_vecs.T).max(axis=1) if len(kept) else np.full(len(idx), -np.inf)
        within = vecs @ vecs.T
        accepted: list[int] = []
        for j in range(len(idx)):
            if against_kept[j] > threshold or (accepted and within[j, accepted].max() > threshold):
                dropped += 1
                continue
            accepted.append(j)
            if len(kept) + len(accepted) == n:
                break
        kept.extend(int(i) for i in idx[accepted])
        kept_vecs = vecs[accepted] if not len(kept_vecs) else np.vstack([kept_vecs, vecs[accepted]])
        if len(kept) >= n:
            break
    return np.asarray(kept[:n], dtype=np.int64), dropped


def fresh_sampler(dataset: Any, splits: DataSplits) -> tuple[Callable[[int, int], np.ndarray], str]:
    """Fresh draws from the data distribution: the exact sampler, else test points."""
    if callable(getattr(dataset, "sample_true", None)) and splits.spec.has_true_sampler:
        def sample(n: int, seed: int) -> np.ndarray:
            return np.asarray(dataset.sample_true(n, seed), dtype=np.float32)
        return sample, "true_sampler"

    def from_test(n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        replace = n > len(splits.test)
        return splits.test[rng.choice(len(splits.test), size=n, replace=replace)]
    return from_test, "test_split"
