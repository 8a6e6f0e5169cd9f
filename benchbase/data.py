"""The data side of a run, done once in the core so every dataset gets it:
loading (cached per process), training subsets (first n, random n, the k-th of K
disjoint parts, near-duplicate removal, one of K folds left out) and the content
hash that identifies the exact examples a run trained on.
"""
from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from benchbase.blame import blame, describe, expect
from benchbase.contracts import DataSpec, DataSplits
from benchbase.errors import BenchbaseInputError
from benchbase.specs import SubsetPlan


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
    # ``holdout``: the fold of the selected examples left out of training (else None)
    heldout_x: np.ndarray | None = None
    heldout_indices: np.ndarray | None = None


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
        with blame("dataset", registered.name, "load"):
            dataset = registered.cls(config_obj)
            splits = dataset.load()
        expect(isinstance(splits, DataSplits), "dataset", registered.name, "load",
               f"returned {describe(splits)}; expected DataSplits")
        with blame("dataset", registered.name, "load"):
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
    for split in ("train", "test"):
        labels = getattr(s, f"{split}_labels")
        if labels is None:
            if s.spec.num_classes:
                raise TypeError(f"dataset '{name}': spec has {s.spec.num_classes} classes but no {split} labels")
            continue
        if not isinstance(labels, np.ndarray) or labels.dtype != np.int64 or labels.shape != (len(getattr(s, split)),):
            raise TypeError(f"dataset '{name}': {split}_labels must be an int64 array with one label per example")
        if len(labels) and (labels.min() < 0 or labels.max() >= s.spec.num_classes):
            raise TypeError(f"dataset '{name}': {split}_labels must lie in 0..{s.spec.num_classes - 1} "
                            "(spec.num_classes)")


SUBSET_MODES = ("first", "random")


def subset_problems(subset: SubsetPlan, info: DataInfo) -> list[str]:
    """What is wrong with a subset request for this particular dataset, checked before
    anything runs (the values alone are checked by the suite schema, n against the
    dataset size by the run planner)."""
    problems = []
    if subset.dedup is not None and info.spec.modality != "image":
        problems.append(f"dedup compares downsampled images by correlation; this dataset is "
                        f"{info.spec.modality} data")
    return problems


def select_subset(splits: DataSplits, subset: SubsetPlan | dict) -> Subset:
    """Pick the training examples of a run: deterministic in ``subset`` alone.

    1. The pool is the train split in its fixed order, minus near-duplicates when
       ``dedup`` is set (greedy in that order: an example goes when its correlation
       with one already kept exceeds the threshold).
    2. ``split: [k, K]`` keeps the k-th of K contiguous parts of the pool: parts are
       disjoint whatever the mode, seed or n, and the same for every n.
    3. The first ``n`` of the part (the seed paper's protocol), or ``n`` drawn at
       random with ``seed`` (nested: a larger n keeps the smaller one's examples).
    4. ``holdout: [k, K]`` then leaves out the k-th of K contiguous folds of those n
       examples: the run trains on S without fold k, where S is the selection of the
       same subset without ``holdout`` (leave-fold-out memorization scores compare the
       two). The fold is returned as ``heldout_x``/``heldout_indices``.
    """
    n_train = len(splits.train)
    subset = SubsetPlan.from_dict(subset)
    mode, split, n, dedup = subset.mode, subset.split, subset.n, subset.dedup
    if mode not in SUBSET_MODES:
        raise BenchbaseInputError(f"subset mode '{mode}' is unknown; valid: {', '.join(SUBSET_MODES)}")
    provenance: dict = {"pool_size": int(n_train), "mode": mode}
    pool = np.arange(n_train)
    if dedup is not None:
        threshold = float(dedup)
        if splits.spec.modality != "image":
            raise BenchbaseInputError("subset.dedup compares downsampled images by correlation; "
                                      f"this dataset is {splits.spec.modality} data")
        if split is None and mode == "first" and n:
            # the greedy walk is prefix-consistent: stopping at n gives the first n of the full pass
            pool, dropped = dedup_greedy(splits.train, pool, threshold, stop_after=int(n))
            scope = f"walked the train split until {int(n)} were kept"
        else:
            pool, dropped = _dedup_train_split(splits, threshold)
            scope = "whole train split"
        provenance["dedup"] = {"threshold": threshold, "dropped": int(dropped), "kept": int(len(pool)),
                               "scope": scope}
    if split:
        k, total = (int(v) for v in split)
        if not 1 <= k <= total:
            raise BenchbaseInputError(f"split [{k}, {total}]: k must be between 1 and K")
        pool = np.array_split(pool, total)[k - 1]
        provenance["split"] = f"{k} of {total}"
        if len(pool):  # the pool is in increasing index order, so parts occupy disjoint ranges
            provenance["part_range"] = [int(pool[0]), int(pool[-1]) + 1]
    n = int(n) if n else len(pool)
    if n > len(pool):
        where = f"part {split[0]} of {split[1]} of " if split else ""
        after = f" after dropping {provenance['dedup']['dropped']} near-duplicates" if dedup is not None else ""
        raise BenchbaseInputError(f"n={n} is larger than the {len(pool)} examples of {where}the train split "
                                  f"({n_train} examples){after}")
    if mode == "random":
        chosen = pool[np.random.default_rng(subset.seed).permutation(len(pool))[:n]]
    else:
        chosen = pool[:n]
    chosen = np.asarray(chosen, dtype=np.int64)
    provenance["n"] = int(n)
    heldout = None
    if subset.holdout:
        k, total = subset.holdout
        if not 1 <= k <= total or total > n:
            raise BenchbaseInputError(f"holdout [{k}, {total}]: need 1 <= k <= K <= n (n={n})")
        folds = np.array_split(np.arange(n), total)
        heldout = chosen[folds[k - 1]]
        chosen = np.delete(chosen, folds[k - 1])
        provenance["holdout"] = {"fold": f"{k} of {total}", "heldout": int(len(heldout)),
                                 "trained_on": int(len(chosen)), **describe_indices(heldout)}
    x = np.ascontiguousarray(splits.train[chosen])
    y = None if splits.train_labels is None else np.ascontiguousarray(splits.train_labels[chosen])
    provenance.update(describe_indices(chosen))
    return Subset(x=x, y=y, indices=chosen, content_hash=content_hash(x, y), provenance=provenance,
                  heldout_x=None if heldout is None else np.ascontiguousarray(splits.train[heldout]),
                  heldout_indices=heldout)


def describe_indices(indices: np.ndarray, max_ranges: int = 32) -> dict:
    """A compact, checkable record of which train examples were used: their sha256 and,
    when they form few runs, the half-open index ranges (so disjointness is visible)."""
    idx = np.asarray(indices, dtype=np.int64)
    out: dict = {"indices_sha256": hashlib.sha256(idx.tobytes()).hexdigest()[:16]}
    if len(idx):
        breaks = np.flatnonzero(np.diff(idx) != 1) + 1
        starts = np.concatenate([[0], breaks])
        ends = np.concatenate([breaks, [len(idx)]])
        if len(starts) <= max_ranges:
            out["index_ranges"] = [[int(idx[a]), int(idx[b - 1]) + 1] for a, b in zip(starts, ends)]
    return out


def _dedup_view(x: np.ndarray, max_side: int = 16) -> np.ndarray:
    """Flattened, centred, unit-norm (downsampled) examples: dot product = correlation.

    Returned in float32; every decision takes float64 dot products of these vectors,
    so any two walks over the same order decide identically. A constant image has no
    correlation with anything (a zero vector) and is never dropped.
    """
    if x.ndim == 4 and x.shape[-1] > max_side:
        f = int(np.ceil(x.shape[-1] / max_side))
        h, w = (x.shape[-2] // f) * f, (x.shape[-1] // f) * f
        x = x[..., :h, :w].reshape(*x.shape[:-2], h // f, f, w // f, f).mean(axis=(-3, -1))
    v = x.reshape(len(x), -1).astype(np.float64)
    v -= v.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(norm > 1e-12, norm, np.inf)).astype(np.float32)


def dedup_greedy(train: np.ndarray, order: np.ndarray, threshold: float, stop_after: int | None = None,
                 block: int = 1024, column_block: int = 16384) -> tuple[np.ndarray, int]:
    """Walk ``order`` and keep an example unless it correlates above ``threshold`` with
    one already kept (exact greedy, in blocks); stop once ``stop_after`` are kept.

    Returns (kept indices in walk order, number dropped on the way). Comparisons with
    the kept set run as float32 matrix products and are confirmed in float64 near the
    threshold (float32 error on unit vectors is far below the margin).
    """
    order = np.asarray(order, dtype=np.int64)
    margin = 1e-3
    kept_idx: list[int] = []
    kept_vecs: np.ndarray | None = None
    count = dropped = 0
    for start in range(0, len(order), block):
        idx = order[start:start + block]
        vecs = _dedup_view(train[idx])
        if kept_vecs is None:
            kept_vecs = np.empty((min(len(order), stop_after or len(order)), vecs.shape[1]), dtype=np.float32)
        dup = np.zeros(len(idx), dtype=bool)
        for c0 in range(0, count, column_block):
            cols = kept_vecs[c0:min(count, c0 + column_block)]
            sims = vecs @ cols.T
            rows, js = np.nonzero(sims > threshold - margin)
            if len(rows):
                exact = np.einsum("ij,ij->i", vecs[rows].astype(np.float64), cols[js].astype(np.float64))
                dup[rows[exact > threshold]] = True
        v64 = vecs.astype(np.float64)
        within = v64 @ v64.T
        accepted: list[int] = []
        for j in range(len(idx)):
            if dup[j] or (accepted and within[j, accepted].max() > threshold):
                dropped += 1
                continue
            accepted.append(j)
            if stop_after is not None and count + len(accepted) == stop_after:
                break
        kept_vecs[count:count + len(accepted)] = vecs[accepted]
        count += len(accepted)
        kept_idx.extend(int(i) for i in idx[accepted])
        if stop_after is not None and count >= stop_after:
            break
    return np.asarray(kept_idx, dtype=np.int64), dropped


def _dedup_train_split(splits: DataSplits, threshold: float) -> tuple[np.ndarray, int]:
    """The full greedy pass over the train split, cached on the (process-cached) splits."""
    cache = splits.__dict__.setdefault("_dedup_cache", {})
    if threshold not in cache:
        cache[threshold] = dedup_greedy(splits.train, np.arange(len(splits.train)), threshold)
    return cache[threshold]


FRESH_SOURCES = ("true_sampler", "held_out_test", "test_split")


def fresh_sampler(dataset: Any, splits: DataSplits,
                  metrics_test: int | None = None) -> tuple[Callable[[int, int], np.ndarray], str]:
    """Fresh draws from the data distribution, and where they come from:

    - ``true_sampler``: the dataset's exact sampler;
    - ``held_out_test``: test points that the metrics do not see, when they see only the
      first ``metrics_test`` of the test split (``eval.n_test``): fresh for every metric;
    - ``test_split``: points of the whole test split, which metrics that compare with the
      test split then read as optimistically close to it.
    """
    if callable(getattr(dataset, "sample_true", None)) and splits.spec.has_true_sampler:
        def sample(n: int, seed: int) -> np.ndarray:
            return np.asarray(dataset.sample_true(n, seed), dtype=np.float32)
        return sample, "true_sampler"
    pool, source = splits.test, "test_split"
    if metrics_test and 0 < metrics_test < len(splits.test):
        pool, source = splits.test[metrics_test:], "held_out_test"

    def from_test(n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return pool[rng.choice(len(pool), size=n, replace=n > len(pool))]
    return from_test, source
