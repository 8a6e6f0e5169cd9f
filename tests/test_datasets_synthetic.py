"""Synthetic datasets: exact samplers that match their fixed train splits, sensible scales."""
from __future__ import annotations

import json

import numpy as np
import pytest

from benchbase.cli import main
from benchbase.config import plugin_config
from benchbase.data import DataCatalog, fresh_sampler
from benchbase.errors import BenchbaseInputError

SYNTHETIC = {
    "gmm2d": {},
    "two_moons": {},
    "swiss_roll": {},
    "checkerboard": {},
    "gmm": {"dim": 5, "components": 4},
    "manifold": {"kind": "sphere", "ambient_dim": 12},
    "manifold/torus": {"kind": "torus", "latent_dim": 2, "ambient_dim": 12, "noise": 0.01},
    "manifold/random_map": {"kind": "random_map", "latent_dim": 3, "ambient_dim": 12},
    "calpha_images": {"size": 8, "alpha": 2.0},
}


def make(registry, key: str, **extra):
    name = key.split("/")[0]
    reg = registry.get("dataset", name)
    obj, plain = plugin_config(reg, {**SYNTHETIC[key], **extra}, "<test>", "config")
    dataset, splits = DataCatalog().load(reg, obj, plain)
    return dataset, splits


def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = x.reshape(len(x), -1).astype(np.float64)
    return flat.mean(axis=0), np.cov(flat, rowvar=False)


@pytest.mark.parametrize("key", sorted(SYNTHETIC))
def test_exact_sampler_matches_the_train_split(registry, key):
    dataset, splits = make(registry, key, train_size=3000, test_size=100)
    assert splits.spec.has_true_sampler and splits.train.dtype == np.float32
    assert splits.train.shape[1:] == tuple(splits.spec.shape)
    fresh = dataset.sample_true(3000, 12345)
    assert fresh.dtype == np.float32 and fresh.shape == splits.train.shape
    assert not np.array_equal(fresh, splits.train)  # a new draw, not the split again
    m1, c1 = moments(splits.train)
    m2, c2 = moments(fresh)
    scale = np.sqrt(np.diag(c1).max())
    # two independent draws of 3000: means within ~6 standard errors, covariances within a few %
    assert np.abs(m1 - m2).max() < 6 * scale * np.sqrt(2 / 3000)
    assert np.abs(c1 - c2).max() < 0.15 * np.abs(c1).max()
    lo, hi = splits.spec.value_range
    assert lo <= fresh.min() and fresh.max() <= hi
    assert np.abs(splits.train).max() < 2.5  # roughly [-1, 1]
    sample, source = fresh_sampler(dataset, splits)
    assert source == "true_sampler" and np.array_equal(sample(50, 7), dataset.sample_true(50, 7))


@pytest.mark.parametrize("key", sorted(SYNTHETIC))
def test_fixed_splits_repeat_and_depend_on_the_seed(registry, key):
    _, a = make(registry, key, train_size=64, test_size=16)
    _, b = make(registry, key, train_size=64, test_size=16)
    _, c = make(registry, key, train_size=64, test_size=16, seed=1)
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.test, b.test)
    assert not np.array_equal(a.train, a.test[: len(a.train)]) and not np.array_equal(a.train, c.train)


def test_moment_check_detects_a_different_distribution(registry):
    """The moment test above can fail: a shifted/rescaled variant is caught."""
    dataset, splits = make(registry, "gmm", train_size=3000, test_size=100)
    m1, c1 = moments(splits.train)
    other, _ = make(registry, "gmm", train_size=10, test_size=10, std=0.2)
    m2, c2 = moments(other.sample_true(3000, 1))
    assert np.abs(c1 - c2).max() > 0.15 * np.abs(c1).max()


def test_gmm2d_keeps_its_published_numbers(registry):
    """The refactor must not change gmm2d's data (results already refer to its hashes)."""
    dataset, splits = make(registry, "gmm2d", train_size=5, test_size=3)
    base = np.random.SeedSequence(0)
    s_train = int(base.spawn(2)[0].generate_state(1)[0])
    rng = np.random.default_rng(s_train)
    comp = rng.integers(0, 8, size=5)
    angles = 2 * np.pi * comp / 8
    expected = 0.75 * np.stack([np.cos(angles), np.sin(angles)], 1) + 0.05 * rng.standard_normal((5, 2))
    np.testing.assert_allclose(splits.train, expected.astype(np.float32))


def test_checkerboard_points_lie_on_dark_cells(registry):
    dataset, _ = make(registry, "checkerboard", train_size=10, test_size=10)
    x = dataset.sample_true(5000, 3)
    cell = np.floor((x + 1) / 0.5).astype(int)
    assert np.all((cell.sum(axis=1) % 2) == 0) and np.abs(x).max() <= 1


def test_two_moons_and_swiss_roll_shapes(registry):
    moons, _ = make(registry, "two_moons", train_size=10, test_size=10, noise=0.0)
    x = moons.sample_true(4000, 0) * 1.5 + np.array([0.5, 0.25])  # undo the scaling
    upper = np.isclose(np.hypot(x[:, 0], x[:, 1]), 1, atol=1e-5)
    lower = np.isclose(np.hypot(x[:, 0] - 1, x[:, 1] - 0.5), 1, atol=1e-5)
    assert np.all(upper | lower) and 0.45 < upper.mean() < 0.55
    roll, _ = make(registry, "swiss_roll", train_size=10, test_size=10, noise=0.0)
    r = np.hypot(*roll.sample_true(2000, 0).T)
    assert r.min() > 0.2 and r.max() <= 1 + 1e-6


def test_manifolds_are_exact(registry):
    sphere, s = make(registry, "manifold", train_size=500, test_size=10)
    radius = 0.5 * np.sqrt(12)
    np.testing.assert_allclose(np.linalg.norm(s.train, axis=1), radius, rtol=1e-5)
    assert np.sqrt(np.mean(s.train.astype(np.float64) ** 2)) == pytest.approx(0.5, rel=1e-4)
    # the sphere spans exactly latent_dim + 1 directions
    assert np.linalg.matrix_rank(s.train.astype(np.float64), tol=1e-4) == 3
    torus, t = make(registry, "manifold/torus", train_size=500, test_size=10, noise=0.0)
    assert np.linalg.matrix_rank(t.train.astype(np.float64), tol=1e-4) == 4
    _, r = make(registry, "manifold/random_map", train_size=500, test_size=10)
    svals = np.linalg.svd(r.train - r.train.mean(0), compute_uv=False)
    assert svals[0] > 0 and np.all(np.isfinite(svals))


def test_manifold_noise_leaves_the_surface(registry):
    _, clean = make(registry, "manifold", train_size=300, test_size=10)
    _, noisy = make(registry, "manifold", train_size=300, test_size=10, noise=0.1)
    assert np.std(np.linalg.norm(noisy.train, axis=1)) > 10 * np.std(np.linalg.norm(clean.train, axis=1))


def test_calpha_images_are_two_regular_regions(registry):
    smooth, s = make(registry, "calpha_images", size=32, alpha=4.0, train_size=64, test_size=8)
    rough, r = make(registry, "calpha_images", size=32, alpha=1.0, train_size=64, test_size=8)
    assert s.spec.shape == (1, 32, 32) and s.spec.modality == "image"
    for x in (s.train, r.train):
        assert x.min() >= -1 and x.max() <= 1

    def roughness(x):  # the median absolute difference between neighbouring pixels
        return np.median(np.abs(np.diff(x, axis=-1)))

    assert roughness(r.train) > 2 * roughness(s.train)
    # smooth images: a few pixel pairs jump (the contour), most change very little
    d = np.abs(np.diff(s.train, axis=-1))
    assert np.quantile(d, 0.5) < 0.02 and np.quantile(d, 0.999) > 10 * np.quantile(d, 0.5)


def test_calpha_alpha_background_is_separate(registry):
    a, _ = make(registry, "calpha_images", size=16, alpha=4.0, train_size=4, test_size=4)
    b, _ = make(registry, "calpha_images", size=16, alpha=4.0, alpha_background=1.0, train_size=4, test_size=4)
    xa, xb = a.sample_true(32, 0), b.sample_true(32, 0)
    assert np.median(np.abs(np.diff(xb, axis=-1))) > 2 * np.median(np.abs(np.diff(xa, axis=-1)))


@pytest.mark.parametrize("key,bad,match", [
    ("manifold", {"kind": "spere"}, "Did you mean 'sphere'"),
    ("manifold", {"kind": "sphere", "latent_dim": 20}, "needs ambient_dim >= 21"),
    ("gmm", {"weights": [1.0, 2.0]}, "needs 4 non-negative numbers"),
    ("calpha_images", {"alpha": 0.0}, r"config\.alpha must be > 0"),
    ("checkerboard", {"squares": 1}, r"config\.squares must be >= 2"),
    ("gmm2d", {"std": -1.0}, r"config\.std: must be a finite number >= 0, got -1"),
    ("gmm2d", {"radius": -1.0}, r"config\.radius: must be a finite number >= 0, got -1"),
    ("two_moons", {"noise": -0.1}, r"config\.noise: must be a finite number >= 0"),
    ("gmm", {"std": float("nan")}, r"config\.std: must be a finite number >= 0, got nan"),
])
def test_bad_configs_are_input_errors(registry, key, bad, match):
    with pytest.raises(BenchbaseInputError, match=match):
        make(registry, key, **bad)


def test_plugins_command_lists_every_dataset(capsys):
    assert main(["plugins", "--kind", "dataset", "--json"]) == 0
    listed = {item["name"]: item for item in json.loads(capsys.readouterr().out)}
    expected = {"gmm2d", "two_moons", "swiss_roll", "checkerboard", "gmm", "manifold", "calpha_images",
                "digits", "mnist", "fashion_mnist", "cifar10", "celeba", "image_folder"}
    assert expected <= set(listed)
    assert all(listed[name]["summary"] and listed[name]["source"] == "built-in" for name in expected)


def test_digits_read_without_scikit_learn_equal_load_digits():
    from sklearn.datasets import load_digits

    from benchbase_plugins.datasets.digits import _digits

    images, target = _digits()
    expected = load_digits()
    assert images.dtype == expected.images.dtype and np.array_equal(images, expected.images)
    assert target.dtype == expected.target.dtype and np.array_equal(target, expected.target)
