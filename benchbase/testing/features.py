"""``check_feature_extractor``: a feature space must map (N, *shape) float32 to (N, d)
float32, row by row: the core embeds in blocks and caches the result, so an example's
features may depend neither on its batch-mates nor on the call."""
from __future__ import annotations

from typing import Any

import numpy as np

from benchbase.evaluation import floating_dtype

from benchbase.contracts import DataSpec
from benchbase.testing.common import check_declaration, close, fingerprint, label, make_config, same
from benchbase.testing.violations import Checker, Report

DEFAULT_SHAPES = {"vector": (8,), "image": (3, 16, 16)}


def _data(shape: tuple, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(0.0, 0.5, size=(n, *shape)), -1, 1).astype(np.float32)


def check_feature_extractor(extractor_cls: Any, config: Any = None, *, shapes: dict | None = None,
                            n: int = 24, device: str = "cpu") -> Report:
    """Check a feature-extractor plugin class; raise ContractViolation.

    Runs once per modality the extractor accepts, on random data of ``shapes``
    (default: vectors (8,), images (3, 16, 16)). An extractor that needs weights on
    disk raises MissingDataError, which is passed through (a test should skip then).
    """
    c = Checker(label("feature", extractor_cls))
    check_declaration(c, "feature", extractor_cls)
    cfg = make_config(c, extractor_cls, config)
    shapes = {**DEFAULT_SHAPES, **(shapes or {})}
    for modality in getattr(extractor_cls, "modalities", ("vector", "image")):
        shape = shapes[modality]
        spec = DataSpec(shape=shape, modality=modality)
        train, x = _data(shape, 4 * n, 0), _data(shape, n, 1)
        ext = _prepared(c, extractor_cls, cfg, train, spec, device)
        before = fingerprint(x)
        out = _embed(c, ext, x, f"embed of {n} {modality} examples of shape {shape}")
        c.require(same(x, before[0]), "embed.read_only", "embed changed its input array",
                  "copy before modifying: the core embeds its cached data arrays")
        c.require(same(_embed(c, ext, x, "embed again"), out), "embed.deterministic",
                  "embedding the same examples twice gave different features",
                  "put networks in eval mode (no dropout) and fix any randomness at construction")
        alone = np.concatenate([_embed(c, ext, x[i:i + 1], "embed of one example") for i in (0, n - 1)])
        c.require(close(alone, out[[0, n - 1]]), "embed.per_example",
                  "an example's features change with the other examples in its batch",
                  "embed each example independently: eval-mode BatchNorm, no batch statistics; the core "
                  "embeds in blocks of any size")
        perm = np.random.default_rng(2).permutation(n)
        c.require(close(_embed(c, ext, x[perm], "embed of permuted examples"), out[perm]), "embed.order",
                  "features of permuted examples are not the permuted features",
                  "embed row by row, with no dependence on position")
        twin = _prepared(c, extractor_cls, cfg, train, spec, device)
        c.require(close(_embed(c, twin, x, "embed by a second instance"), out), "prepare.deterministic",
                  "two instances prepared on the same data embed differently",
                  "seed what prepare fits (random init, training order) from the config: features are "
                  "cached per (data, extractor, config, version) and reused across runs")
    return c.report


def _prepared(c: Checker, cls: Any, cfg: Any, train: np.ndarray, spec: DataSpec, device: str) -> Any:
    ext = cls(cfg)
    with c.calling("prepare", "prepare(train, spec, device)",
                   "prepare is called once per run with the training subset; fit or load weights there"):
        ext.prepare(train, spec, device)
    return ext


def _embed(c: Checker, ext: Any, x: np.ndarray, what: str) -> np.ndarray:
    with c.calling("embed", what):
        out = ext.embed(x)
    c.require(isinstance(out, np.ndarray) and floating_dtype(out) is not None, "embed.dtype",
              f"{what} returned {type(out).__name__} of dtype {getattr(out, 'dtype', '?')}",
              "return a floating-point numpy array (.detach().float().cpu().numpy() from torch); "
              "the core converts it to float32, as in a run")
    c.require(out.ndim == 2 and len(out) == len(x) and out.shape[1] > 0, "embed.shape",
              f"{what} returned shape {out.shape} for {len(x)} examples", "return (N, d) features")
    c.require(bool(np.isfinite(out).all()), "embed.finite", f"{what} returned NaN or Inf",
              "guard normalisations (divide by max(norm, eps))")
    return out
