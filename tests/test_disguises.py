"""Disguises (benchbase_plugins.disguises, image_edits): every named edit keeps the
shape and value range, repeats under a seed, and the exact ones do exactly what they
say; the descriptor's training views name their blend partners."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchbase_plugins.disguises import DISGUISES, ViewRecipe, disguise, make_query_sets
from benchbase_plugins.image_edits import EDITS, Geometry, gaussian_blur, random_views, warp


def images(n=6, channels=1, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, channels, size, size), generator=g) * 2 - 1


def test_the_catalogue_and_the_operations_name_the_same_disguises():
    assert set(DISGUISES) == set(EDITS)
    assert any(d.trained for d in DISGUISES.values()) and any(not d.trained for d in DISGUISES.values())


@pytest.mark.parametrize("name", sorted(DISGUISES))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_disguise_keeps_shape_and_range_and_repeats_under_a_seed(name, channels):
    x, partners = images(channels=channels), images(channels=channels, seed=1)
    a = disguise(name, x, partners, 1.0, torch.Generator().manual_seed(3))
    b = disguise(name, x, partners, 1.0, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and a.dtype == torch.float32
    assert float(a.min()) >= -1 and float(a.max()) <= 1 and bool(torch.isfinite(a).all())
    assert torch.equal(a, b)
    assert not torch.equal(a, x), f"{name} left the images unchanged"


def test_exact_disguises():
    x = images()
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(disguise("hflip", x, None, 1.0, gen), x.flip(3))
    assert torch.allclose(disguise("invert", x, None, 1.0, gen), -x)
    # the weakest shift moves by exactly one pixel, replicating the border
    moved = disguise("shift", x, None, 0.01, gen)
    found = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            idx_y = torch.clamp(torch.arange(8) - dy, 0, 7)
            idx_x = torch.clamp(torch.arange(8) - dx, 0, 7)
            shifted = x[:, :, idx_y][:, :, :, idx_x]
            found.append(torch.isclose(moved, shifted, atol=1e-6).flatten(1).all(1))
    assert bool(torch.stack(found).any(0).all())  # every image is one of the 1-px shifts
    assert not bool(found[4].any())  # and none stayed in place


def test_integer_warps_are_exact_and_wrap_is_a_roll():
    x = images(2)
    g = Geometry.identity(2, "cpu")
    g.shift_x = torch.tensor([1 / 8, -2 / 8])  # content moves by -1 and +2 columns
    out = warp(x, g, "wrap")
    assert torch.allclose(out[0], x[0].roll(-1, dims=2), atol=1e-6)
    assert torch.allclose(out[1], x[1].roll(2, dims=2), atol=1e-6)
    const = warp(x, g, "constant", 0.25)
    assert torch.allclose(const[0, :, :, -1], torch.full((1, 8), 0.25), atol=1e-6)


def test_blur_preserves_flat_images_and_the_mean():
    flat = torch.full((2, 3, 8, 8), 0.3)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([0.5, 2.0])), flat, atol=1e-6)
    x = images(2)
    out = gaussian_blur(x, torch.tensor([0.0, 1.0]))
    assert torch.allclose(out[0], x[0], atol=1e-5)  # sigma 0: unchanged
    assert float(out[1].std()) < float(x[1].std())


def test_training_views_name_their_blend_partners():
    x = images(32, channels=3, size=16)
    views = random_views(x, ViewRecipe(p_mix=0.5), torch.Generator().manual_seed(0))
    assert views.x.shape == x.shape and float(views.x.abs().max()) <= 1
    mixed = views.partner >= 0
    assert 0 < int(mixed.sum()) < 32
    assert bool((views.partner[mixed] != torch.arange(32)[mixed]).all())
    assert bool((views.partner_weight[~mixed] == 0).all()) and bool((views.partner_weight[mixed] > 0).all())
    mild = random_views(x, ViewRecipe(p_mix=0.0, p_hflip=0, p_vflip=0, p_invert=0, p_grey=0),
                        torch.Generator().manual_seed(0), strength=0.0)
    assert torch.allclose(mild.x, x, atol=1e-5)  # strength 0 and no flips: the images themselves


def test_training_views_draw_the_second_image_share_from_the_recipe():
    x = images(256, channels=1, size=8)
    views = random_views(x, ViewRecipe(p_mix=1.0, mix_share=(0.45, 0.5)), torch.Generator().manual_seed(1))
    assert float(views.partner_weight.min()) >= 0.45 and float(views.partner_weight.max()) <= 0.5
    default = random_views(x, ViewRecipe(p_mix=1.0), torch.Generator().manual_seed(1))
    assert float(default.partner_weight.min()) < 0.45  # the default range starts at 0.15


def test_query_sets_have_one_source_or_none():
    rng = np.random.default_rng(0)
    ref = rng.uniform(-1, 1, (40, 1, 8, 8)).astype(np.float32)
    other = rng.uniform(-1, 1, (30, 1, 8, 8)).astype(np.float32)
    sets = make_query_sets(ref, other, ["shift", "blend", "shear"], n=10, seed=4)
    assert [q.name for q in sets] == ["shift", "blend", "shear"]
    assert [q.held_out for q in sets] == [False, False, True]
    for q in sets:
        assert q.x.shape == (20, 1, 8, 8) and q.x.dtype == np.float32
        assert (q.source[:10] >= 0).all() and (q.source[10:] == -1).all()
        assert len(set(q.source[:10])) == 10
    again = make_query_sets(ref, other, ["shift", "blend", "shear"], n=10, seed=4)
    assert all(np.array_equal(a.x, b.x) for a, b in zip(sets, again))


def test_query_sets_name_the_distractor_images_each_query_was_made_from():
    # a score normalisation against the distractor pool must skip a query's own images
    rng = np.random.default_rng(1)
    ref = rng.uniform(-1, 1, (40, 1, 8, 8)).astype(np.float32)
    other = rng.uniform(-1, 1, (30, 1, 8, 8)).astype(np.float32)
    flip, mix = make_query_sets(ref, other, ["hflip", "blend"], n=10, seed=4)
    for q in (flip, mix):
        assert q.made_from.shape == (20, 2)
        assert (q.made_from[:10, 0] == -1).all() and (q.made_from[10:, 0] >= 0).all()
        assert (q.made_from[:, 1] >= 0).all() and (q.made_from[:, 1] != q.made_from[:, 0]).all()
    np.testing.assert_array_equal(flip.x[10:], other[flip.made_from[10:, 0]][..., ::-1])
    firsts = np.concatenate([ref[mix.source[:10]], other[mix.made_from[10:, 0]]])
    np.testing.assert_allclose(mix.x, 0.6 * firsts + 0.4 * other[mix.made_from[:, 1]], atol=1e-5)


def test_unknown_disguise_names_the_choices():
    with pytest.raises(ValueError, match="choose one of shift, hflip"):
        disguise("shfit", images(), None, 1.0, torch.Generator())
