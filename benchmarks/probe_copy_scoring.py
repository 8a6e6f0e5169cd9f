"""Ways to score a fitted copy descriptor that need no new fit, on the copy-detection
benchmark's queries (issue 20): does anything outside the network close the gap?

Starting from one cached ``copy_descriptor`` fit (``--space-config``, the cache of
``bench_copy_detection.py``), every variant embeds references and queries its own way
and is scored under the benchmark's protocol (one raw prediction per query) and under
SSCD's score normalisation (``1:1.0[0,2]`` against the held-out images):

  pixels w         the unit descriptor joined by the image itself (per-image centred,
                   unit norm): squared distance (1 - w) * descriptor's + w * pixels',
                   for the disguises where pixels beat the descriptor (blend, noise,
                   posterize, sharpen, downscale)
  test-time views  each image's descriptor averaged with that of a view of it
                   (Gaussian blur, a mirror image), references and queries alike
  whitening        a linear map of the descriptors, then unit rows again: learned
                   whitening (Radenovic et al., TPAMI 2018: the inverse square root of
                   the covariance of the differences between a fitting image's
                   descriptor and those of its training views, so directions the
                   training disguises move are shrunk; the space's own ``whitening``
                   option) or PCA whitening of the fitting images' descriptors, both
                   shrunk towards the identity

    python benchmarks/probe_copy_scoring.py [--space-config '{"steps": 3000}'] [--cache results/cache]

Figures and what they mean: docs/metrics.md, "Where the gap is". A fit missing from
the cache is fitted first (about 33 CPU minutes for the default on digits).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_copy_detection import _registry, load  # noqa: E402

from benchbase_plugins.features.copy_descriptor import (WHITENING_STREAM, Whitening, fitting_split,  # noqa: E402
                                                        inverse_sqrt, learned_whitening, training_views)

PIXEL_WEIGHTS = (0.1, 0.2, 0.3)
WHITEN_SHRINK = (0.03, 0.1, 0.3, 1.0)
WHITEN_VIEWS = 8  # training views of every fitting image that the learned whitening is estimated from
SHOWN = ("blend", "cutmix", "downscale", "shift", "rotate")


def unit(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-8)


def centred_pixels(x: np.ndarray) -> np.ndarray:
    flat = np.asarray(x, np.float32).reshape(len(x), -1)
    return unit(flat - flat.mean(axis=1, keepdims=True))


def blurred(x: np.ndarray, sigma: float) -> np.ndarray:
    """NCHW images through the disguises' own Gaussian blur (``image_edits.gaussian_blur``)."""
    import torch

    from benchbase_plugins.image_edits import gaussian_blur

    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return gaussian_blur(xt, torch.full((len(xt),), float(sigma))).numpy()


def whitening_variants(embed, anchors: np.ndarray, views: np.ndarray) -> dict:
    """``anchors``: the fitting images' descriptors; ``views``: descriptors of training
    views of them, ``views[k * n + i]`` a view of image ``i``."""
    learned = {s: learned_whitening(anchors, views, s) for s in WHITEN_SHRINK}
    mean = anchors.astype(np.float64).mean(axis=0)
    spread = np.cov((anchors - mean).T.astype(np.float64))
    pca = {s: Whitening(mean, inverse_sqrt(spread, s)) for s in WHITEN_SHRINK}
    return {f"learned whitening, shrink {s}": (lambda x, w=w: w(embed(x))) for s, w in learned.items()} | {
        f"PCA whitening, shrink {s}": (lambda x, w=w: w(embed(x))) for s, w in pca.items()}


def variants(embed) -> dict:
    out = {"descriptor alone": embed}
    for w in PIXEL_WEIGHTS:
        out[f"pixels {w}"] = lambda x, w=w: np.concatenate(
            [np.sqrt(1 - w) * embed(x), np.sqrt(w) * centred_pixels(x)], axis=1)
    out["test-time view: blur sigma 0.5 px"] = lambda x: unit(embed(x) + embed(blurred(x, 0.5)))
    out["test-time view: blur sigma 0.8 px"] = lambda x: unit(embed(x) + embed(blurred(x, 0.8)))
    out["test-time view: mirror"] = lambda x: unit(embed(x) + embed(np.ascontiguousarray(np.asarray(x)[..., ::-1])))
    return out


def main(argv=None) -> int:
    from benchbase.copy_detection import Protocol, ScoreNormalisation, evaluate_space
    from benchbase.errors import BenchbaseInputError
    from benchbase.structured import plugin_config
    from benchbase_plugins.disguises import make_query_sets

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--space-config", default="{}", help="JSON config of copy_descriptor")
    p.add_argument("--cache", default="results/cache")
    args = p.parse_args(argv)
    try:  # a typo must not surface after half an hour of fitting
        try:
            config = json.loads(args.space_config)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--space-config is not JSON ({exc})") from None
        if not isinstance(config, dict):
            raise ValueError(f"--space-config must be a JSON object, got {args.space_config}")
        registry = _registry()
        reg = registry.get("feature", "copy_descriptor")
        cfg = plugin_config(reg, config, "--space-config", "copy_descriptor.config")[0]
        if args.dataset not in registry.names("dataset"):
            raise ValueError(f"--dataset: unknown dataset '{args.dataset}'; choose from "
                             f"{', '.join(sorted(registry.names('dataset')))}")
    except (BenchbaseInputError, ValueError, TypeError) as exc:
        print(f"probe_copy_scoring: {' '.join(str(exc).split()).removeprefix('invalid suite: ')}", file=sys.stderr)
        return 2
    _, splits = load(args.dataset, {})
    queries = make_query_sets(splits.train, splits.test, n=300, strength=1.0, seed=0,
                              value_range=splits.spec.value_range)
    space = reg.cls(cfg)
    space.cache_dir, space.train_split = args.cache or None, splits.train
    space.report = lambda text: print(text, file=sys.stderr, flush=True)
    space.prepare(splits.train, splits.spec, "cpu")
    memo: dict[int, tuple] = {}

    def embed(x):  # the benchmark embeds the same arrays under every variant
        if id(x) not in memo:
            memo[id(x)] = (x, space.embed(x))
        return memo[id(x)][1]

    fitting, _ = fitting_split(np.asarray(splits.train, np.float32)[: cfg.max_train], cfg.calibration_fraction)
    views = training_views(fitting, cfg.views, WHITEN_VIEWS, splits.spec.value_range, cfg.seed + WHITENING_STREAM)
    scored = variants(embed) | whitening_variants(embed, space.embed(fitting), space.embed(views))
    normalised = Protocol(1, ScoreNormalisation(1.0, 0, 2))
    print(f"copy_descriptor {args.space_config} on {args.dataset}; {sum(len(q.source) for q in queries)} queries")
    print("| variant | uAP (raw, the benchmark's) | recall @ P90 | top-1 | uAP, normalised 1:1.0[0,2] | "
          + " | ".join(SHOWN) + " |")
    print("| --- " * (5 + len(SHOWN)) + "|")
    for name, fn in scored.items():
        r = evaluate_space(name, lambda x: np.asarray(fn(x), np.float32), splits.train, queries,
                           background=splits.test, compare=(normalised,))
        print(f"| {name} | {r.overall.uap:.3f} | {r.overall.recall_at_p90:.3f} | {r.overall.top1:.3f} | "
              f"{r.compared[normalised.label].uap:.3f} | "
              + " | ".join(f"{r.per_disguise[d].uap:.3f}" for d in SHOWN) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
