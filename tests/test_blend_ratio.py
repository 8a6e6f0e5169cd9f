"""blend_ratio: distances to two-point blends against a brute-force search, and the
metric on blends, copies and fresh points."""
from __future__ import annotations

import numpy as np
import pytest

from benchbase.contracts import DataSpec, EvalContext
from benchbase_plugins.metrics.blends import BlendRatio, BlendRatioConfig, blend_distances


def brute_force(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The distance from each row of x to the nearest point of any segment between two rows of ref."""
    ref = ref.astype(np.float64)
    out = []
    for row in x.astype(np.float64):
        best = np.inf
        for a in ref:
            v, u = ref - a, row - a
            vv = (v ** 2).sum(1)
            t = np.clip(np.where(vv > 0, v @ u / np.where(vv > 0, vv, 1), 0), 0, 1)
            best = min(best, float(np.sqrt(((u - t[:, None] * v) ** 2).sum(1)).min()))
        out.append(best)
    return np.asarray(out)


def clusters(n: int, rng: np.random.Generator, dim: int = 16) -> np.ndarray:
    """Points around 8 centres: fresh draws have near neighbours, as images do."""
    centres = rng.normal(0, 3, (8, dim))
    return (centres[rng.integers(0, 8, n)] + rng.normal(0, 1, (n, dim))).astype(np.float32)


def context(samples: np.ndarray, train: np.ndarray, gen=None, ref=None) -> EvalContext:
    spec = DataSpec(shape=samples.shape[1:], value_range=(-10.0, 10.0))
    return EvalContext(gen=samples if gen is None else gen, train=train if ref is None else ref, test=train,
                       samples=samples, train_data=train, test_data=train, spec=spec, feature_space="pixels",
                       step=1, seed=0, device="cpu", ref=train, ref_name="train")


def test_blend_distances_equal_a_brute_force_search_over_every_pair():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(60, 7)).astype(np.float32)
    x = rng.normal(size=(25, 7)).astype(np.float32)
    x[:5] = 0.3 * ref[:5] + 0.7 * ref[5:10]
    d1, d_blend = blend_distances(x, ref, first=60, second=60)
    np.testing.assert_allclose(d_blend, brute_force(x, ref), atol=1e-5)
    np.testing.assert_allclose(d1, np.sqrt(((x[:, None] - ref[None]) ** 2).sum(2)).min(1), rtol=1e-6)
    assert d_blend[:5].max() < 1e-3 and (d_blend <= d1).all()


def test_fewer_candidates_never_find_a_closer_blend():
    rng = np.random.default_rng(1)
    ref, x = rng.normal(size=(80, 5)).astype(np.float32), rng.normal(size=(30, 5)).astype(np.float32)
    _, everything = blend_distances(x, ref, first=80, second=80)
    _, few = blend_distances(x, ref, first=2, second=10)
    assert (few >= everything - 1e-6).all() and (few > everything + 1e-6).any()


def test_blends_and_copies_count_and_fresh_points_do_not():
    rng = np.random.default_rng(2)
    train, fresh = clusters(200, rng), clusters(100, rng)
    i, j = rng.integers(0, 200, 100), rng.integers(0, 200, 100)
    keep = i != j
    metric = BlendRatio(BlendRatioConfig(bootstrap=0, first=200, second=200))  # every pair: no source missed
    blends = metric.compute(context(0.5 * train[i[keep]] + 0.5 * train[j[keep]], train))["blend_ratio"]
    uneven = metric.compute(context(0.65 * train[i[keep]] + 0.35 * train[j[keep]], train))["blend_ratio"]
    copies = metric.compute(context(train[:100].copy(), train))["blend_ratio"]
    novel = metric.compute(context(fresh, train))["blend_ratio"]
    assert blends > 0.95 and uneven > 0.9 and copies == 1.0
    assert novel < 0.05


def test_the_data_space_is_read_by_default_and_the_feature_space_on_request():
    rng = np.random.default_rng(3)
    train = clusters(100, rng)
    blends = (0.5 * train[:50] + 0.5 * train[50:]).astype(np.float32)
    scrambled = rng.normal(size=(50, 16)).astype(np.float32)  # features that hide the blends
    ctx = context(blends, train, gen=scrambled, ref=rng.normal(size=(100, 16)).astype(np.float32))
    assert BlendRatio(BlendRatioConfig(bootstrap=0, first=100)).compute(ctx)["blend_ratio"] == 1.0
    assert BlendRatio(BlendRatioConfig(bootstrap=0, first=100, space="features")).compute(ctx)["blend_ratio"] < 0.2


def test_the_interval_brackets_the_value():
    rng = np.random.default_rng(4)
    train = clusters(100, rng)
    x = np.concatenate([0.5 * train[:20] + 0.5 * train[20:40], clusters(30, rng)]).astype(np.float32)
    out = BlendRatio(BlendRatioConfig(bootstrap=200)).compute(context(x, train))
    assert out["blend_ratio.ci_low"] <= out["blend_ratio"] <= out["blend_ratio.ci_high"]


@pytest.mark.parametrize("bad, message", [({"threshold": 0}, "threshold must be in (0, 1]"),
                                          ({"second": 1}, "second >= 2"),
                                          ({"space": "pixels"}, "space must be one of data, features"),
                                          ({"bootstrap": -1}, "bootstrap must be >= 0")])
def test_bad_settings_are_refused_with_the_key(bad, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        BlendRatioConfig(**bad)


def test_on_digits_only_two_image_blends_count():
    """Generators that average, blur or add noise are not blends of two training digits:
    the probe behind docs/metrics.md's blend_ratio figures, on the embedded digits."""
    import torch

    from benchbase.plugins import PluginPolicy, build_registry
    from benchbase_plugins.image_edits import gaussian_blur

    reg = build_registry(PluginPolicy(entry_points=False)).get("dataset", "digits")
    splits = reg.cls(reg.cls.Config()).load()
    train, fresh = np.asarray(splits.train, np.float32)[:800], np.asarray(splits.test, np.float32)[:400]
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, 800, 400), rng.integers(0, 800, 400)
    keep = i != j

    def flagged(x):
        d1, d_blend = blend_distances(x, train, 16, 256)
        return float(((d_blend < d1 / 3) | (d1 == 0)).mean())

    near = np.argsort(((fresh.reshape(400, 1, -1) - train.reshape(1, 800, -1)) ** 2).sum(2), axis=1)
    assert flagged(0.5 * train[i[keep]] + 0.5 * train[j[keep]]) > 0.9
    assert flagged(fresh) == 0.0
    assert flagged(gaussian_blur(torch.from_numpy(fresh), torch.full((400,), 1.0)).numpy()) == 0.0
    assert flagged(train[near[:, :5]].mean(1)) <= 0.01  # the mean of five look-alikes
    assert flagged(np.clip(train[:400] + rng.normal(0, 0.3, fresh.shape), -1, 1).astype(np.float32)) == 0.0
