"""``check_dataset``: loads a dataset plugin twice (and a fresh instance once) and checks
its splits against the dataset contract: float32 arrays shaped as the spec says, in
the declared value range, labels that match, train and test disjoint, the same bytes
on every load, and an exact sampler that agrees with the splits when one is declared."""
from __future__ import annotations

import hashlib
import inspect
import random
from typing import Any

import numpy as np

from benchbase.contracts import MODALITIES, DataSplits
from benchbase.data import content_hash
from benchbase.testing.common import check_declaration, label, make_config
from benchbase.testing.violations import Checker, Report

_RANGE_SLACK = 1e-5


def check_dataset(dataset_cls: Any, config: Any = None, *, true_n: int = 2000) -> Report:
    """Check a dataset plugin class against the dataset contract; raise ContractViolation.

    ``config``: a dict (validated like a suite's) or a Config instance; None uses the
    defaults. Pick a config that loads quickly: the splits are loaded three times.
    ``true_n`` is the number of draws used to compare ``sample_true`` with the splits.
    """
    c = Checker(label("dataset", dataset_cls))
    check_declaration(c, "dataset", dataset_cls)
    cfg = make_config(c, dataset_cls, config)
    dataset = dataset_cls(cfg)
    splits = _load(c, dataset, seed_globals=1)
    _check_splits(c, splits)
    _check_labels(c, splits)
    _check_values(c, splits)
    again = _load(c, dataset, seed_globals=2)
    fresh = _load(c, dataset_cls(cfg), seed_globals=3)
    first = _hashes(splits)
    c.require(_hashes(again) == first and _hashes(fresh) == first, "load.deterministic",
              "two loads gave different splits (content hash changed)",
              "make load() a pure function of the config: seed every random choice from the config "
              "(np.random.default_rng(config.seed)), never from global RNGs, the clock or file order "
              "(sort directory listings)")
    c.passed("content_hash.stable")
    _check_disjoint(c, dataset, splits)
    _check_true_sampler(c, dataset, splits, true_n)
    return c.report


def _load(c: Checker, dataset: Any, seed_globals: int) -> DataSplits:
    random.seed(seed_globals)
    np.random.seed(seed_globals)
    with c.calling("load", "load()", "a dataset whose files are missing raises "
                   "benchbase.errors.MissingDataError naming the expected path and files"):
        splits = dataset.load()
    c.require(isinstance(splits, DataSplits), "load.returns", f"load() returned {type(splits).__name__}",
              "return benchbase.DataSplits(train=..., test=..., spec=DataSpec(...))")
    return splits


def _hashes(s: DataSplits) -> tuple:
    return (content_hash(s.train, s.train_labels), content_hash(s.test, s.test_labels), s.spec)


def _check_splits(c: Checker, s: DataSplits) -> None:
    spec = s.spec
    c.require(spec.modality in MODALITIES, "spec.modality", f"spec.modality is '{spec.modality}'",
              f"use one of {', '.join(MODALITIES)}")
    want_dims = 3 if spec.modality == "image" else 1
    c.require(len(spec.shape) == want_dims, "spec.shape",
              f"a {spec.modality} dataset has spec.shape {spec.shape}",
              "images are (C, H, W) (NCHW batches); vectors are (d,)")
    for split in ("train", "test"):
        arr = getattr(s, split)
        c.require(isinstance(arr, np.ndarray), "splits.numpy", f"{split} is {type(arr).__name__}",
                  "return numpy arrays; the core moves the training subset to the model's device")
        c.require(arr.dtype == np.float32, "splits.float32", f"{split} has dtype {arr.dtype}",
                  "convert with .astype(np.float32): data crosses plugin boundaries as float32")
        c.require(arr.ndim >= 2 and tuple(arr.shape[1:]) == tuple(spec.shape), "splits.shape",
                  f"{split} has shape {arr.shape}, but spec.shape is {spec.shape}",
                  "make spec.shape the shape of one example: arrays are (N, *spec.shape)")
        c.require(len(arr) > 0, "splits.nonempty", f"{split} is empty",
                  "return a fixed, non-empty train and test split; the core takes subsets of train")


def _check_labels(c: Checker, s: DataSplits) -> None:
    k = s.spec.num_classes
    for split in ("train", "test"):
        y, x = getattr(s, f"{split}_labels"), getattr(s, split)
        if k == 0:
            c.require(y is None, "labels.declared", f"{split}_labels are given but spec.num_classes is 0",
                      "set spec.num_classes to the number of classes, or drop the labels")
            continue
        c.require(y is not None, "labels.present", f"spec.num_classes={k} but {split}_labels is None",
                  "return integer labels for both splits, or set num_classes=0")
        y = np.asarray(y)
        c.require(y.shape == (len(x),) and np.issubdtype(y.dtype, np.integer), "labels.shape",
                  f"{split}_labels has shape {y.shape} and dtype {y.dtype}; expected ({len(x)},) integers",
                  "one integer label per example")
        c.require(bool(((y >= 0) & (y < k)).all()), "labels.range",
                  f"{split}_labels hold values outside 0..{k - 1}",
                  "labels are class indices 0..num_classes-1")


def _check_values(c: Checker, s: DataSplits) -> None:
    lo, hi = s.spec.value_range
    c.require(lo < hi, "spec.value_range", f"value_range is {s.spec.value_range}", "give (low, high), low < high")
    if s.spec.modality == "image":
        c.require(lo >= -1 - _RANGE_SLACK and hi <= 1 + _RANGE_SLACK, "spec.value_range",
                  f"an image dataset declares value_range {s.spec.value_range}",
                  "images are scaled to [-1, 1] (x / 127.5 - 1 for 8-bit pixels)")
    for split in ("train", "test"):
        arr = getattr(s, split)
        c.require(bool(np.isfinite(arr).all()), "values.finite", f"{split} holds NaN or Inf",
                  "clean or drop broken examples in load()")
        amin, amax = float(arr.min()), float(arr.max())
        c.require(amin >= lo - _RANGE_SLACK and amax <= hi + _RANGE_SLACK, "values.range",
                  f"{split} spans [{amin:.4g}, {amax:.4g}], outside spec.value_range {s.spec.value_range}",
                  "rescale the data, or declare the range it really has (synthetic data: a bound that "
                  "holds for every draw, e.g. mean +- 5 std, clipped if need be)")


def _row_digests(x: np.ndarray) -> list[bytes]:
    flat = np.ascontiguousarray(x.reshape(len(x), -1))
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def _check_disjoint(c: Checker, dataset: Any, s: DataSplits) -> None:
    """No test example is also a training example. With an exact sampler, the splits are
    independent draws: a test row may be a train row only as often as a fresh draw is."""
    train = set(_row_digests(s.train))
    shared = sum(d in train for d in _row_digests(s.test))
    allowed = 0
    if shared and s.spec.has_true_sampler and callable(getattr(dataset, "sample_true", None)):
        fresh = np.asarray(dataset.sample_true(len(s.test), 12345), dtype=np.float32)
        by_chance = sum(d in train for d in _row_digests(fresh))
        allowed = 2 * by_chance + 3  # collisions of a discrete distribution, with slack
    c.require(shared <= allowed, "splits.disjoint",
              f"{shared} of {len(s.test)} test examples also appear in the train split" +
              (f" (as many as {allowed} would be chance for independent draws)" if allowed else ""),
              "split without overlap (and deduplicate first if the source has duplicates): metrics "
              "against the test split assume it was never trained on")


def _check_true_sampler(c: Checker, dataset: Any, s: DataSplits, n: int) -> None:
    has = callable(getattr(dataset, "sample_true", None))
    if not s.spec.has_true_sampler:
        c.skip("sample_true", "spec.has_true_sampler is False")
        return
    c.require(has, "sample_true.present", "spec.has_true_sampler is True but there is no sample_true method",
              "implement sample_true(n, seed) -> (n, *spec.shape) float32, or set has_true_sampler=False")
    c.require(list(inspect.signature(dataset.sample_true).parameters)[:2] == ["n", "seed"],
              "sample_true.signature", f"sample_true{inspect.signature(dataset.sample_true)}",
              "the signature is sample_true(self, n: int, seed: int)")
    draws = {}
    for m, seed in ((n, 0), (n, 0), (n, 1), (1, 0), (7, 5)):
        with c.calling("sample_true", f"sample_true({m}, seed={seed})"):
            out = dataset.sample_true(m, seed)
        c.require(isinstance(out, np.ndarray) and out.dtype == np.float32, "sample_true.float32",
                  f"sample_true returned {type(out).__name__} of dtype {getattr(out, 'dtype', '?')}",
                  "return a float32 numpy array")
        c.require(out.shape == (m, *s.spec.shape), "sample_true.shape",
                  f"sample_true({m}, seed) returned shape {out.shape}", "return (n, *spec.shape)")
        lo, hi = s.spec.value_range
        c.require(bool(np.isfinite(out).all()) and float(out.min()) >= lo - _RANGE_SLACK
                  and float(out.max()) <= hi + _RANGE_SLACK, "sample_true.range",
                  f"sample_true({m}, seed={seed}) left spec.value_range {s.spec.value_range}",
                  "draw from the same distribution as the splits, within the declared range")
        draws.setdefault((m, seed), []).append(out)
    a, b = draws[(n, 0)]
    c.require(np.array_equal(a, b), "sample_true.deterministic", "sample_true(n, seed) differs between calls",
              "seed every draw from the `seed` argument: np.random.default_rng(seed)")
    c.require(not np.array_equal(a, draws[(n, 1)][0]), "sample_true.uses_seed",
              "sample_true gave the same draws for seeds 0 and 1", "seed the draws from `seed`")
    _check_same_distribution(c, a, s.train)


def _check_same_distribution(c: Checker, true: np.ndarray, train: np.ndarray) -> None:
    """Loose: per-dimension means of sample_true and of the train split agree within
    6 standard errors (plus 1% of the spread), so a sampler out of step with the splits
    (another config, another scaling) shows, while sampling noise does not."""
    a = true.reshape(len(true), -1).astype(np.float64)
    b = train[: max(len(true), 2000)].reshape(-1, a.shape[1]).astype(np.float64)
    se = np.sqrt(a.var(0) / len(a) + b.var(0) / len(b))
    spread = np.sqrt(0.5 * (a.var(0) + b.var(0)))
    gap = np.abs(a.mean(0) - b.mean(0))
    worst = int(np.argmax(gap - 6 * se - 0.01 * spread))
    c.require(bool((gap <= 6 * se + 0.01 * spread + 1e-6).all()), "sample_true.matches_splits",
              f"the mean of dimension {worst} is {a.mean(0)[worst]:.4g} under sample_true but "
              f"{b.mean(0)[worst]:.4g} in the train split",
              "build the splits from sample_true with the same config (train and test are draws of "
              "the distribution sample_true samples)")
