"""Disguised memorizers (plugins/models/disguised.py): augmented_copy returns training
images under the named disguise, blend_copy mixes two different training images;
bad configs fail suite validation with the valid choices."""
from __future__ import annotations

import numpy as np
import pytest
from support.suites import tiny_suite

from benchbase.config import build_suite
from benchbase.contracts import DataSpec, TrainData
from benchbase.errors import ConfigError
from benchbase_plugins.models.disguised import AugmentedCopy, AugmentedCopyConfig, BlendCopy, BlendCopyConfig

SPEC = DataSpec(shape=(1, 8, 8), modality="image")


def train_data(n=5, seed=0, spec=SPEC) -> TrainData:
    x = np.random.default_rng(seed).uniform(-1, 1, (n, *spec.shape)).astype(np.float32)
    return TrainData(x=x, y=None, spec=spec, device="cpu", x_numpy=x, sample_fresh=lambda k, s: x[:k])


def draw(model, data, n=12, seed=0):
    state = model.init(data, 0)
    out = model.sample(state, n, np.random.default_rng(seed))
    assert out.shape == (n, *data.spec.shape) and out.dtype == np.float32
    assert out.min() >= -1 and out.max() <= 1
    np.testing.assert_array_equal(out, model.sample(state, n, np.random.default_rng(seed)))  # the key decides
    return out


def test_augmented_copy_mirrors_and_shifts_training_images():
    data = train_data()
    flipped = draw(AugmentedCopy(AugmentedCopyConfig(disguise="hflip")), data)
    assert all(any(np.array_equal(s[:, :, ::-1], t) for t in data.x_numpy) for s in flipped)
    moved = draw(AugmentedCopy(AugmentedCopyConfig(disguise="shift", strength=0.01)), data)
    assert not any(np.array_equal(s, t) for s in moved for t in data.x_numpy)
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    for s in moved:  # each one is a training image moved by one pixel, its border replicated
        assert any(np.allclose(s, t[:, np.clip(np.arange(8) - dy, 0, 7)][:, :, np.clip(np.arange(8) - dx, 0, 7)],
                               atol=1e-6) for t in data.x_numpy for dy, dx in shifts)
    distances = [min(np.abs(s - t).max() for t in data.x_numpy) for s in moved]
    assert max(distances) > 0.1  # pixel-wise, these are not copies


def test_augmented_copy_at_every_disguise_stays_in_range():
    from benchbase_plugins.disguises import DISGUISES

    data = train_data(n=8, spec=DataSpec(shape=(3, 8, 8), modality="image"))
    for name in DISGUISES:
        draw(AugmentedCopy(AugmentedCopyConfig(disguise=name)), data, n=4)


def test_blend_copy_mixes_two_different_training_images():
    data = train_data()
    x = data.x_numpy
    mixes = draw(BlendCopy(BlendCopyConfig(weight=0.7)), data)
    pairs = {(i, j): 0.7 * x[i] + 0.3 * x[j] for i in range(5) for j in range(5) if i != j}
    for s in mixes:
        assert min(np.abs(s - m).max() for m in pairs.values()) < 1e-6
    boxes = draw(BlendCopy(BlendCopyConfig(weight=0.6, mode="cutmix")), data)
    for s in boxes:
        from_first = [np.isclose(s, t).mean() for t in x]
        assert 0.4 <= max(from_first) < 1.0  # mostly one image, with a box of another


def test_blend_copy_mixes_vectors():
    spec = DataSpec(shape=(4,))
    data = train_data(spec=spec)
    out = draw(BlendCopy(), data)
    assert out.shape == (12, 4)
    with pytest.raises(ValueError, match="cutmix"):
        BlendCopy(BlendCopyConfig(mode="cutmix")).init(data, 0)


@pytest.mark.parametrize("model,key,message", [
    ({"name": "augmented_copy", "config": {"disguise": "twirl"}}, "disguise", "shift, hflip, crop"),
    ({"name": "augmented_copy", "config": {"strength": -1.0}}, "strength", r"\[0, 4\]"),
    ({"name": "blend_copy", "config": {"mode": "swap"}}, "mode", "mixup, cutmix"),
    ({"name": "blend_copy", "config": {"weight": 1.5}}, "weight", r"\[0, 1\]"),
])
def test_bad_configs_fail_validation_with_the_choices(registry, model, key, message):
    suite = tiny_suite(datasets=[{"name": "digits", "n": 64}], models=[model], metrics=["mem_ratio"],
                       eval={"points": 1, "n_samples": 16})
    with pytest.raises(ConfigError, match=message) as info:
        build_suite(suite, "<test>", registry=registry)
    assert key in str(info.value)


def test_augmented_copy_rejects_vector_datasets_at_validation(registry):
    suite = tiny_suite(models=["augmented_copy"], metrics=["mem_ratio"], eval={"points": 1, "n_samples": 16})
    with pytest.raises(ConfigError, match="augmented_copy"):
        build_suite(suite, "<test>", registry=registry)
