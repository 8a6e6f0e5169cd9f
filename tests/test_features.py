"""Feature extractors: pixels, random_conv, inception (pytorch-fid weights layout),
sscd / dinov2 (TorchScript files) and trained_encoder (fitted once, cached).

No real weights exist here: the inception test writes a random state dict with the
exact key names and shapes of pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``
(checked against torchvision's published parameter count, independently of our
module), saves it with torch.save and loads it back through the extractor; the
TorchScript spaces load a tiny scripted module saved in tmp.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from support.suites import tiny_suite

from benchbase.config import build_suite
from benchbase.contracts import DataSpec
from benchbase.errors import ConfigError, MissingDataError
from benchbase_plugins.features import copy_descriptor as cd_module
from benchbase_plugins.features import trained_encoder as te_module
from benchbase_plugins.features.copy_descriptor import CopyDescriptor, CopyDescriptorConfig
from benchbase_plugins.features.inception_net import FIDInceptionV3
from benchbase_plugins.features.weights import FID_WEIGHTS_FILE
from benchbase_plugins.features.pixels import Pixels
from benchbase_plugins.features.pretrained import (DINOv2, SSCD, DINOv2Config, Inception, InceptionConfig,
                                                   TorchScriptConfig)
from benchbase_plugins.features.random_conv import RandomConv, RandomConvConfig
from benchbase_plugins.features.trained_encoder import TrainedEncoder, TrainedEncoderConfig

IMAGE = DataSpec(shape=(1, 8, 8), modality="image")


def images(n, channels=1, size=8, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, channels, size, size)).astype(np.float32)


def test_pixels_flatten():
    x = images(3)
    np.testing.assert_array_equal(Pixels().embed(x), x.reshape(3, 64))


def test_random_conv_is_fixed_by_its_seed():
    x = images(5, channels=3, size=16)
    a, b = RandomConv(), RandomConv()
    a.prepare(x, DataSpec(shape=(3, 16, 16), modality="image"), "cpu")
    b.prepare(x, DataSpec(shape=(3, 16, 16), modality="image"), "cpu")
    fa, fb = a.embed(x), b.embed(x)
    assert fa.shape == (5, 128 * 4) and np.isfinite(fa).all()
    np.testing.assert_array_equal(fa, fb)
    c = RandomConv(RandomConvConfig(seed=1))
    c.prepare(x, DataSpec(shape=(3, 16, 16), modality="image"), "cpu")
    assert not np.allclose(c.embed(x), fa)
    assert np.abs(fa[0] - fa[1]).max() > 0  # different images, different features


def test_image_spaces_reject_vector_datasets_at_validation(registry):
    with pytest.raises(ConfigError, match="random_conv"):
        build_suite(tiny_suite(eval={"features": "random_conv"}), "<test>", registry=registry)


@pytest.mark.parametrize("space, bad, says", [
    ("random_conv", {"depth": 0}, "depth: must be between 1 and 8, got 0"),
    ("random_conv", {"depth": -1}, "depth: must be between 1 and 8, got -1"),
    ("random_conv", {"depth": 20}, "depth: must be between 1 and 8, got 20"),  # exhausted the memory
    ("random_conv", {"width": 0}, "width: must be >= 1, got 0"),
    ("random_conv", {"width": 1024, "depth": 4}, "width: must keep the last layer's channels"),
    ("random_conv", {"pool": 0}, "pool: must be >= 1, got 0"),
    ("random_conv", {"batch_size": -5}, "batch_size: must be >= 1, got -5"),
    ("trained_encoder", {"lr": -1.0}, "lr: must be a finite number >= 0"),
    ("trained_encoder", {"steps": 0}, "steps: must be >= 1, got 0"),
    ("trained_encoder", {"latent_dim": 0}, "latent_dim: must be >= 1, got 0"),
    ("trained_encoder", {"depth": -1}, "depth: must be >= 0, got -1"),
    ("inception", {"batch_size": 0}, "batch_size: must be >= 1, got 0"),
    ("sscd", {"batch_size": 0}, "batch_size: must be >= 1, got 0"),
    ("dinov2", {"batch_size": 0}, "batch_size: must be >= 1, got 0"),
    ("copy_descriptor", {"members": 0}, "members: must be >= 1, got 0"),
])
def test_feature_configs_refuse_values_no_run_can_embed_with_at_validation(registry, space, bad, says):
    """Each of these passed validate, then failed every run (AttributeError, ZeroDivisionError)
    or, for random_conv depth 20, exhausted the machine's memory."""
    suite = tiny_suite(datasets=[{"name": "digits", "n": 64}], models=["copy_train"], metrics=["fd"],
                       eval={"points": 2, "n_samples": 50, "features": {"name": space, "config": bad}})
    with pytest.raises(ConfigError) as info:
        build_suite(suite, "s.yaml", registry=registry)
    assert f"s.yaml: eval.features.config.{says}" in str(info.value)
    assert "\n" not in str(info.value)


def test_feature_configs_keep_their_defaults_and_a_linear_encoder():
    RandomConvConfig(), RandomConvConfig(width=512, depth=4), TrainedEncoderConfig(depth=0)
    InceptionConfig(), TorchScriptConfig(), DINOv2Config()


# ---------------------------------------------------------------------------- inception

SPOT_SHAPES = {  # from torchvision's Inception3 definition with pytorch-fid's num_classes=1008
    "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
    "Conv2d_4a_3x3.bn.running_var": (192,),
    "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
    "Mixed_6a.branch3x3.conv.weight": (384, 288, 3, 3),
    "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
    "Mixed_7a.branch7x7x3_4.conv.weight": (192, 192, 3, 3),
    "Mixed_7c.branch3x3dbl_3b.bn.running_mean": (384,),
    "fc.weight": (1008, 2048),
    "fc.bias": (1008,),
}


def random_fid_state_dict(seed: int, with_counters: bool = True) -> dict:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in FIDInceptionV3().state_dict().items():
        if key.endswith("num_batches_tracked"):
            if with_counters:
                out[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            out[key] = torch.rand(value.shape, generator=gen) + 0.5
        else:
            out[key] = torch.randn(value.shape, generator=gen) * 0.1
    return out


def test_inception_has_the_fid_network_layout():
    net = FIDInceptionV3()
    # torchvision inception_v3: 27,161,264 parameters with the aux head (3,326,696) and
    # 1000 classes; pytorch-fid drops the aux head and uses 1008 classes (+16,392)
    assert sum(p.numel() for p in net.parameters()) == 27_161_264 - 3_326_696 + 16_392
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    for key, shape in SPOT_SHAPES.items():
        assert shapes[key] == shape, key
    assert not any("AuxLogits" in k for k in shapes)


def test_inception_loads_a_pytorch_fid_format_file_and_embeds(tmp_path):
    path = tmp_path / FID_WEIGHTS_FILE
    torch.save(random_fid_state_dict(0), path)
    space = Inception(InceptionConfig(weights=str(path), batch_size=1))
    x = images(2)
    space.prepare(x, IMAGE, "cpu")
    f = space.embed(x)
    assert f.shape == (2, 2048) and np.isfinite(f).all() and (f >= 0).all()  # after ReLU + average pool
    assert np.abs(f[0] - f[1]).max() > 0
    # the loaded weights are used: a different file gives different features
    other = tmp_path / "other.pth"
    torch.save(random_fid_state_dict(1, with_counters=False), other)
    space2 = Inception(InceptionConfig(weights=str(other)))
    space2.prepare(x, IMAGE, "cpu")
    assert not np.allclose(space2.embed(x[:1]), f[:1])


def test_inception_finds_the_file_in_the_torch_hub_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(MissingDataError) as err:
        Inception().prepare(images(1), IMAGE, "cpu")
    text = str(err.value)
    assert FID_WEIGHTS_FILE in text and str(tmp_path / "hub" / "checkpoints") in text
    assert "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" in text
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(random_fid_state_dict(2), tmp_path / "hub" / "checkpoints" / FID_WEIGHTS_FILE)
    space = Inception()
    space.prepare(images(1), IMAGE, "cpu")
    assert space.embed(images(1, channels=3, size=20)).shape == (1, 2048)


def test_inception_rejects_a_file_of_another_network(tmp_path):
    path = tmp_path / "wrong.pth"
    state = random_fid_state_dict(3)
    del state["Mixed_7c.branch_pool.conv.weight"]
    state["AuxLogits.fc.weight"] = torch.zeros(3)
    torch.save(state, path)
    with pytest.raises(ValueError, match="missing keys.*Mixed_7c.branch_pool.conv.weight.*AuxLogits"):
        Inception(InceptionConfig(weights=str(path))).prepare(images(1), IMAGE, "cpu")
    with pytest.raises(MissingDataError, match="does not exist"):
        Inception(InceptionConfig(weights=str(tmp_path / "absent.pth"))).prepare(images(1), IMAGE, "cpu")


# ----------------------------------------------------------------------- torchscript


class Probe(torch.nn.Module):
    """Returns per-channel means and the input side length, so tests see preprocessing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = torch.full((x.shape[0], 1), float(x.shape[-1]))
        return torch.cat([x.mean(dim=(2, 3)), side], dim=1)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
@pytest.mark.parametrize("cls,cfg,size,default_file", [
    (SSCD, TorchScriptConfig, 288, "sscd_disc_mixup.torchscript.pt"),
    (DINOv2, DINOv2Config, 224, "dinov2_vitl14.torchscript.pt"),
])
def test_torchscript_spaces_resize_normalise_and_load_from_files(cls, cfg, size, default_file, tmp_path,
                                                                   monkeypatch):
    path = tmp_path / "probe.pt"
    torch.jit.script(Probe()).save(str(path))
    space = cls(cfg(weights=str(path), normalize=False))
    x = np.full((2, 1, 8, 8), 1.0, dtype=np.float32)  # white: [0, 1] value 1 in every channel
    space.prepare(x, IMAGE, "cpu")
    f = space.embed(x)
    expected = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(f[:, :3], np.tile(expected, (2, 1)), rtol=1e-5)
    assert (f[:, 3] == size).all()
    unit = cls(cfg(weights=str(path), normalize=True))
    unit.prepare(x, IMAGE, "cpu")
    np.testing.assert_allclose(np.linalg.norm(unit.embed(x), axis=1), 1.0, rtol=1e-6)
    # absent: one clear error naming the default file and the hub cache
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(MissingDataError, match=default_file):
        cls().prepare(x, IMAGE, "cpu")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(MissingDataError, match="not a loadable TorchScript"):
        cls(cfg(weights=str(junk))).prepare(x, IMAGE, "cpu")


# -------------------------------------------------------------------- trained encoder

SMALL = TrainedEncoderConfig(latent_dim=4, width=32, depth=1, steps=60, batch_size=32)


def test_trained_encoder_fits_once_on_the_train_split_and_caches(tmp_path, monkeypatch):
    split = images(200).reshape(200, -1)
    first = TrainedEncoder(SMALL)
    first.cache_dir, first.train_split = str(tmp_path), split
    first.prepare(split[:50], DataSpec(shape=(64,)), "cpu")
    f1 = first.embed(split[:10])
    assert f1.shape == (10, 4) and np.isfinite(f1).all()
    assert len(list((tmp_path / "encoders").glob("*.pt"))) == 1

    def no_fit(*a, **k):
        raise AssertionError("refitted although cached")

    monkeypatch.setattr(te_module, "fit_autoencoder", no_fit)
    second = TrainedEncoder(SMALL)
    second.cache_dir, second.train_split = str(tmp_path), split
    second.prepare(split[:120], DataSpec(shape=(64,)), "cpu")  # another subset: same space
    np.testing.assert_array_equal(second.embed(split[:10]), f1)
    assert second.cache_key() == first.cache_key()


def test_trained_encoder_is_deterministic_without_cache_and_depends_on_data():
    split = images(150).reshape(150, -1)
    a, b = TrainedEncoder(SMALL), TrainedEncoder(SMALL)
    for e in (a, b):
        e.train_split = split
        e.prepare(split, DataSpec(shape=(64,)), "cpu")
    np.testing.assert_array_equal(a.embed(split[:5]), b.embed(split[:5]))
    c = TrainedEncoder(SMALL)
    c.train_split = split[::-1].copy()
    c.prepare(split, DataSpec(shape=(64,)), "cpu")
    assert c.cache_key() != a.cache_key()


# -------------------------------------------------------------------- copy descriptor

TINY_DESCRIPTOR = CopyDescriptorConfig(dim=16, width=8, blocks=1, steps=12, batch_size=32)


def test_copy_descriptor_fits_once_on_the_train_split_caches_and_calibrates(tmp_path, monkeypatch):
    split = images(120)
    first = CopyDescriptor(TINY_DESCRIPTOR)
    first.cache_dir, first.train_split = str(tmp_path), split
    first.prepare(split[:40], IMAGE, "cpu")
    f1 = first.embed(split[:10])
    assert f1.shape == (10, 16) and f1.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f1, axis=1), 1.0, rtol=1e-5)
    assert len(list((tmp_path / "encoders").glob("*.pt"))) == 1
    # the threshold: the 99th percentile of the 18 held-back images' best cosine to the 102 fitted
    tau = first.cosine_copy_threshold
    held, fitted = first.embed(split[102:]), first.embed(split[:102])
    assert tau == pytest.approx(np.quantile((held @ fitted.T).max(axis=1), 0.99, method="higher"), abs=1e-5)
    assert first.fit_report["steps"] == 12 and first.fit_report["images"] == 102

    def no_fit(*a, **k):
        raise AssertionError("refitted although cached")

    monkeypatch.setattr(cd_module, "fit_descriptor", no_fit)
    second = CopyDescriptor(TINY_DESCRIPTOR)
    second.cache_dir, second.train_split = str(tmp_path), split
    second.prepare(split[:80], IMAGE, "cpu")  # another subset: the same space
    np.testing.assert_array_equal(second.embed(split[:10]), f1)
    assert second.cache_key() == first.cache_key() and second.cosine_copy_threshold == tau


def test_copy_descriptor_ensemble_reuses_single_fits_and_calibrates_on_the_concatenation(tmp_path, monkeypatch):
    split = images(120)
    pair = CopyDescriptor(replace(TINY_DESCRIPTOR, members=2))
    pair.cache_dir, pair.train_split = str(tmp_path), split
    lines = []
    pair.report = lines.append
    pair.prepare(split, IMAGE, "cpu")
    assert len(list((tmp_path / "encoders").glob("*.pt"))) == 3  # one file per member, one for the ensemble
    assert any("member 2 of 2" in line for line in lines)
    f = pair.embed(split[:10])
    assert f.shape == (10, 32)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-5)
    held, fitted = pair.embed(split[102:]), pair.embed(split[:102])
    assert pair.cosine_copy_threshold == pytest.approx(
        np.quantile((held @ fitted.T).max(axis=1), 0.99, method="higher"), abs=1e-5)
    assert pair.fit_report["seconds"] == pytest.approx(sum(m["seconds"] for m in pair.fit_report["members"]))

    def no_fit(*a, **k):
        raise AssertionError("refitted although cached")

    monkeypatch.setattr(cd_module, "fit_descriptor", no_fit)
    for seed, half in ((0, slice(0, 16)), (1, slice(16, 32))):  # each member is the single fit of its seed
        single = CopyDescriptor(replace(TINY_DESCRIPTOR, seed=seed))
        single.cache_dir, single.train_split = str(tmp_path), split
        single.prepare(split, IMAGE, "cpu")
        np.testing.assert_allclose(single.embed(split[:10]) / np.sqrt(2), f[:, half], rtol=1e-5, atol=1e-6)


def test_low_pass_members_are_the_single_fits_of_the_low_pass_views(tmp_path, monkeypatch):
    split = images(120)
    mixed = CopyDescriptor(replace(TINY_DESCRIPTOR, low_pass_members=1, whitening=0.1))
    mixed.cache_dir, mixed.train_split = str(tmp_path), split
    lines = []
    mixed.report = lines.append
    mixed.prepare(split, IMAGE, "cpu")
    assert len(list((tmp_path / "encoders").glob("*.pt"))) == 3 and any("member 2 of 2" in line for line in lines)
    plain = CopyDescriptor(replace(TINY_DESCRIPTOR, low_pass_members=1))  # the whitening is post hoc
    plain.cache_dir, plain.train_split = str(tmp_path), split
    monkeypatch.setattr(cd_module, "fit_descriptor", lambda *a, **k: pytest.fail("refitted although cached"))
    plain.prepare(split, IMAGE, "cpu")
    f = plain.embed(split[:10])
    low_pass = CopyDescriptor(replace(TINY_DESCRIPTOR, views=cd_module.LOW_PASS_VIEWS))
    low_pass.cache_dir, low_pass.train_split = str(tmp_path), split
    low_pass.prepare(split, IMAGE, "cpu")
    np.testing.assert_allclose(low_pass.embed(split[:10]) / np.sqrt(2), f[:, 16:], rtol=1e-5, atol=1e-6)
    assert not np.allclose(f[:, :16], f[:, 16:], atol=1e-3)  # two recipes, two fits
    assert cd_module.fit_key(cd_module.ensemble(mixed.config)[1]) == cd_module.fit_key(low_pass.config)


def test_look_alike_batches_are_distinct_images_grouped_with_their_neighbours():
    neighbours = torch.tensor([[1, 2], [0, 2], [1, 0], [4, 5], [3, 5], [4, 3], [7, 0], [6, 1]])
    batch = cd_module.look_alike_batch(neighbours, 6, torch.Generator().manual_seed(0)).tolist()
    assert len(batch) == len(set(batch)) == 6
    first = batch[0]  # an anchor, then its two neighbours (none taken yet)
    assert batch[1:3] == neighbours[first].tolist()
    everything = cd_module.look_alike_batch(neighbours, 8, torch.Generator().manual_seed(1)).tolist()
    assert sorted(everything) == list(range(8))


def test_look_alike_fit_changes_the_batches_after_the_warm_up(tmp_path):
    split = images(80)
    plain, grouped = CopyDescriptor(TINY_DESCRIPTOR), CopyDescriptor(replace(TINY_DESCRIPTOR, look_alikes=4,
                                                                              look_alike_refresh=3))
    for e in (plain, grouped):
        e.train_split = split
        e.prepare(split, IMAGE, "cpu")
    assert not np.allclose(plain.embed(split[:5]), grouped.embed(split[:5]))


def test_more_views_per_image_change_the_fit_and_two_keep_the_cached_key():
    split = images(80)
    pair, four = CopyDescriptor(TINY_DESCRIPTOR), CopyDescriptor(replace(TINY_DESCRIPTOR, views_per_image=4))
    for e in (pair, four):
        e.train_split = split
        e.prepare(split, IMAGE, "cpu")
    assert not np.allclose(pair.embed(split[:5]), four.embed(split[:5]))
    assert "views_per_image" not in cd_module.fit_key(TINY_DESCRIPTOR)  # fits cached before the option stay valid
    assert cd_module.fit_key(replace(TINY_DESCRIPTOR, views_per_image=4))["views_per_image"] == 4


def test_blend_shares_enter_the_cached_key_only_when_changed():
    even = replace(TINY_DESCRIPTOR, views=replace(TINY_DESCRIPTOR.views, mix_share=(0.4, 0.5)))
    assert "mix_share" not in cd_module.fit_key(TINY_DESCRIPTOR)["views"]  # fits cached before the option stay valid
    assert tuple(cd_module.fit_key(even)["views"]["mix_share"]) == (0.4, 0.5)


@pytest.mark.parametrize("bad, message", [({"members": 0}, "members must be >= 1, got 0"),
                                          ({"views_per_image": 1}, "views_per_image must be >= 2, got 1"),
                                          ({"look_alikes": -1}, "look_alikes must be >= 0, got -1"),
                                          ({"low_pass_members": -1}, "low_pass_members must be >= 0, got -1"),
                                          ({"look_alike_refresh": 0}, "look_alike_refresh must be >= 1, got 0"),
                                          ({"dim": 0}, "dim must be >= 1, got 0"),
                                          ({"steps": 0}, "steps must be >= 1, got 0"),
                                          ({"batch_size": 0}, "batch_size must be >= 1, got 0"),
                                          ({"final_size": 0}, "final_size must be >= 1, got 0"),
                                          ({"blocks": -1}, "blocks must be >= 0, got -1"),
                                          ({"lr": -1.0}, "lr must be a finite number >= 0"),
                                          ({"temperature": 0.0}, "temperature must be a finite number > 0"),
                                          ({"whitening": -0.1}, "whitening must be a finite number >= 0")])
def test_copy_descriptor_config_is_checked(bad, message):
    """Each message starts with its key, so a suite's error names eval.features.config.<key>."""
    with pytest.raises(ValueError) as info:
        CopyDescriptorConfig(**bad)
    assert str(info.value).startswith(message)


def test_copy_descriptor_is_deterministic_without_cache_and_depends_on_data():
    split = images(80)
    a, b = CopyDescriptor(TINY_DESCRIPTOR), CopyDescriptor(TINY_DESCRIPTOR)
    for e in (a, b):
        e.train_split = split
        e.prepare(split, IMAGE, "cpu")
    np.testing.assert_array_equal(a.embed(split[:5]), b.embed(split[:5]))
    assert a.cosine_copy_threshold == b.cosine_copy_threshold
    c = CopyDescriptor(TINY_DESCRIPTOR)
    c.train_split = split[::-1].copy()
    c.prepare(split, IMAGE, "cpu")
    assert c.cache_key() != a.cache_key()


def test_copy_descriptor_rejects_what_it_cannot_fit():
    with pytest.raises(ValueError, match="NCHW"):
        CopyDescriptor(TINY_DESCRIPTOR).prepare(images(50).reshape(50, -1), DataSpec(shape=(64,)), "cpu")
    with pytest.raises(ValueError, match="at least 2 training images"):
        CopyDescriptor(TINY_DESCRIPTOR).prepare(images(2), IMAGE, "cpu")
    with pytest.raises(RuntimeError, match="before prepare"):
        CopyDescriptor(TINY_DESCRIPTOR).embed(images(2))


def test_image_spaces_take_a_calibrated_copy_threshold_where_they_have_one():
    assert Pixels.cosine_copy_threshold is None and RandomConv.cosine_copy_threshold is None
    assert SSCD.cosine_copy_threshold == 0.5  # Somepalli et al.'s threshold for SSCD


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (3, 64, 64)])
def test_copy_descriptor_network_takes_small_and_large_images(shape):
    net = cd_module.build_descriptor(shape, CopyDescriptorConfig(width=8, dim=16, blocks=2)).eval()
    with torch.no_grad():
        out = net(torch.zeros((2, *shape)))
    assert out.shape == (2, 16)
    last = [m for m in net.features.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert last.out_channels == (32 if shape[1] == 8 else 64)  # stride-2 stages down to 8x8, then wider (<= 8x)


def test_the_default_copy_descriptor_is_full_rank_on_digits():
    """The last block has as many channels as the descriptor has dimensions (docs/metrics.md:
    the 64-channel two-block trunk capped the 128-d descriptor at rank 64 and read lower)."""
    cfg = CopyDescriptorConfig()
    net = cd_module.build_descriptor((1, 8, 8), cfg)
    last = [m for m in net.features.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    assert last.out_channels >= cfg.dim


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (the descriptor trains on the run's "
                                                           "metric device); none on this machine")
@pytest.mark.parametrize("size", [32, 64])
def test_copy_descriptor_trains_on_a_gpu_at_32_and_64_pixels(size):
    import time

    from benchbase_plugins.disguises import make_query_sets
    from benchbase.copy_detection import evaluate_space

    x = images(600, channels=3, size=size)
    smooth = torch.nn.functional.avg_pool2d(torch.from_numpy(x), 3, 1, 1).numpy()  # image-like structure
    space = CopyDescriptor(CopyDescriptorConfig(steps=300, batch_size=256))
    space.train_split = smooth[:500]
    t0 = time.perf_counter()
    space.prepare(smooth[:500], DataSpec(shape=(3, size, size), modality="image"), "cuda")
    seconds = time.perf_counter() - t0
    queries = make_query_sets(smooth[:500], smooth[500:], ["shift", "hflip", "recolour"], n=100)
    result = evaluate_space("copy_descriptor", space.embed, smooth[:500], queries, "cuda")
    print(f"{size}x{size}: fit {seconds:.1f} s, uAP {result.overall.uap:.3f}")
    assert next(space.net.parameters()).is_cuda
    assert result.overall.top1 > 0.5
@pytest.mark.parametrize("space,file", [("inception", FID_WEIGHTS_FILE), ("sscd", "sscd_disc_mixup.torchscript.pt"),
                                        ("dinov2", "dinov2_vitl14.torchscript.pt")])
def test_missing_weights_fail_validation_in_one_line_and_nothing_is_written(space, file, tmp_path, monkeypatch,
                                                                           capsys):
    from benchbase.cli import main

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: s\ndatasets: [{{name: digits, n: 32}}]\nmodels: [copy_train]\nmetrics: [fd]\n"
                     f"budget: {{steps: 2}}\neval: {{features: {space}}}\n")
    for argv in (["validate", str(suite)], ["run", str(suite), "--results", str(tmp_path / "results")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and file in err and str(tmp_path / "hub" / "checkpoints") in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("env", [{}, {"XDG_CACHE_HOME": "/tmp/xdg"}, {"TORCH_HOME": "/tmp/th", "XDG_CACHE_HOME": "/x"}])
def test_the_hub_folder_is_found_as_torch_finds_it_without_importing_torch(env):
    import os
    import subprocess
    import sys

    code = ("import sys; from benchbase_plugins.features.weights import hub_dir; a = str(hub_dir()); "
            "assert 'torch' not in sys.modules; import torch; print(a == torch.hub.get_dir(), a)")
    clean = {k: v for k, v in os.environ.items() if k not in ("TORCH_HOME", "XDG_CACHE_HOME")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("True"), out.stdout + out.stderr


def test_sscd_loss_counts_a_blend_as_a_copy_of_its_dominant_image_only_when_asked():
    """Views 0 and 1 are of image 0, view 2 of image 1 blended with image 0 (its minority
    share), view 3 of image 1. SSCD's recipe pulls view 2 towards image 0's views; with
    ``copies_of`` marking dominant images only, that pair is neither pulled nor pushed."""
    z = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]]), dim=1)
    content = torch.tensor([[1, 0], [1, 0], [1, 1], [0, 1]], dtype=torch.bool)
    dominant = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.bool)
    both = cd_module.sscd_loss(z, content, 0.05, 0.0)[1]
    only = cd_module.sscd_loss(z, content, 0.05, 0.0, dominant)[1]
    # view 2 sits on image 1's side: as a copy of both, its distance to image 0 costs
    # InfoNCE; as a copy of image 1 only, its loss is that of a clean pair with no negatives
    assert float(only) < float(both)
    no_negatives = cd_module.sscd_loss(z[[2, 3]], dominant[[2, 3]], 0.05, 0.0)[1]
    assert float(no_negatives) == pytest.approx(0.0, abs=1e-6)
    assert torch.allclose(cd_module.sscd_loss(z, content, 0.05, 0.0, content)[1], both)


def test_copy_descriptor_names_the_valid_blend_rules():
    with pytest.raises(ValueError, match="mix_positives must be one of both, dominant; got 'second'"):
        CopyDescriptorConfig(mix_positives="second")


def test_copy_descriptor_whitening_is_post_hoc_and_calibrated_in_the_whitened_space(tmp_path, monkeypatch):
    split = images(120)
    plain = CopyDescriptor(TINY_DESCRIPTOR)
    plain.cache_dir, plain.train_split = str(tmp_path), split
    plain.prepare(split, IMAGE, "cpu")

    def no_fit(*a, **k):
        raise AssertionError("refitted although cached: the whitening must not change the fit's key")

    monkeypatch.setattr(cd_module, "fit_descriptor", no_fit)
    white = CopyDescriptor(replace(TINY_DESCRIPTOR, whitening=0.1, whitening_views=2))
    white.cache_dir, white.train_split = str(tmp_path), split
    white.prepare(split, IMAGE, "cpu")
    f = white.embed(split[:10])
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(f, white.whitening(plain.embed(split[:10])), rtol=1e-5, atol=1e-6)
    assert not np.allclose(f, plain.embed(split[:10]), atol=1e-3)
    held, fitted = white.embed(split[102:]), white.embed(split[:102])
    assert white.cosine_copy_threshold == pytest.approx(
        np.quantile((held @ fitted.T).max(axis=1), 0.99, method="higher"), abs=1e-5)
    with pytest.raises(ValueError, match="whitening must be a finite number >= 0"):
        CopyDescriptorConfig(whitening=-0.1)
    # a second run reads the whitening and threshold back instead of embedding every view again
    monkeypatch.setattr(cd_module, "training_views", lambda *a, **k: pytest.fail("whitening estimated again"))
    again = CopyDescriptor(replace(TINY_DESCRIPTOR, whitening=0.1, whitening_views=2))
    again.cache_dir, again.train_split = str(tmp_path), split
    again.prepare(split, IMAGE, "cpu")
    np.testing.assert_array_equal(again.embed(split[:10]), f)
    assert again.cosine_copy_threshold == white.cosine_copy_threshold
