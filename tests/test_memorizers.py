"""The controlled memorizers (noisy_copy, partial_copy): what they return is what their
configs say, on the toy data the conformance kit uses and on digits."""
from __future__ import annotations

import numpy as np
import pytest

from benchbase.structured import plugin_config
from benchbase.testing import make_train_data
from benchbase_plugins.models.memorizers import expected_gaussian_norm, pick_training_points


def oracle(registry, name: str, dataset, **config):
    reg = registry.get("model", name)
    cfg, _ = plugin_config(reg, config, "<test>", "model.config")
    model = reg.cls(cfg)
    data = make_train_data("numpy", dataset, n=200)
    return model, model.init(data, 0), data


def nearest(x: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.linalg.norm(x.reshape(len(x), 1, -1).astype(np.float64) - ref.reshape(1, len(ref), -1), axis=-1)
    return d.min(1), d.argmin(1)


def test_expected_gaussian_norm():
    rng = np.random.default_rng(0)
    for dim in (1, 2, 64):
        sampled = np.linalg.norm(rng.standard_normal((200_000, dim)), axis=1).mean()
        assert expected_gaussian_norm(dim) == pytest.approx(sampled, rel=5e-3)
    assert expected_gaussian_norm(1) == pytest.approx(np.sqrt(2 / np.pi))


@pytest.mark.parametrize("dataset", ["vector", "image"])
def test_noisy_copy_noise_has_expected_norm_sigma_times_the_heldout_distance(registry, dataset):
    model, state, data = oracle(registry, "noisy_copy", dataset, sigma=0.7)
    train = data.x_numpy
    held = data.sample_fresh(1000, 0)
    scale = float(np.median(nearest(held, train)[0]))
    assert state["distance_scale"] == pytest.approx(scale, rel=1e-6)
    x = model.sample(state, 4000, np.random.default_rng(1))
    assert x.shape == (4000, *train.shape[1:]) and x.dtype == np.float32
    # the source of each sample: replay the generator's choice of training points
    source = train[pick_training_points(len(train), 4000, np.random.default_rng(1))]
    noise_norm = np.linalg.norm((x - source).reshape(len(x), -1), axis=1)
    assert noise_norm.mean() == pytest.approx(0.7 * scale, rel=0.03)


def test_noisy_copy_at_sigma_zero_copies_exactly(registry):
    model, state, data = oracle(registry, "noisy_copy", "image", sigma=0.0)
    x = model.sample(state, 50, np.random.default_rng(2))
    assert (nearest(x, data.x_numpy)[0] == 0).all()


@pytest.mark.parametrize("rho", [0.0, 0.3, 1.0])
def test_partial_copy_copies_a_fraction_rho_exactly(registry, rho):
    model, state, data = oracle(registry, "partial_copy", "vector", rho=rho)
    x = model.sample(state, 400, np.random.default_rng(3))
    exact = nearest(x, data.x_numpy)[0] == 0  # fresh draws of a continuous density never hit one
    assert exact.sum() == round(rho * 400)
    if 0 < rho < 1:  # copies are spread over the output, not a block
        assert 0 < exact[:200].sum() < round(rho * 400)


def test_memorizer_configs_are_validated_before_anything_runs(registry):
    from benchbase.config import build_suite
    from benchbase.errors import ConfigError

    for name, config in (("noisy_copy", {"sigma": -0.1}), ("partial_copy", {"rho": 1.5})):
        suite = {"name": "bad", "datasets": [{"name": "gmm2d", "n": 64}],
                 "models": [{"name": name, "config": config}], "metrics": ["mem_ratio"], "budget": {"steps": 10}}
        with pytest.raises(ConfigError) as info:
            build_suite(suite, "bad.yaml", registry=registry)
        assert "models[0].config" in str(info.value) and name in str(info.value)


def test_memorizers_are_listed_as_oracles(registry):
    for name in ("copy_train", "noisy_copy", "partial_copy"):
        reg = registry.get("model", name)
        assert reg.family == "oracle" and reg.cls.trains is False
