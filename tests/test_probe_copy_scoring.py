"""benchmarks/probe_copy_scoring.py: its variants are what docs/metrics.md says they
are, and it refuses a bad option in one line before fitting anything."""
from __future__ import annotations

import numpy as np
import pytest
from support.benchmark_scripts import import_benchmark


@pytest.fixture
def probe(monkeypatch):
    return import_benchmark(monkeypatch, "probe_copy_scoring")


def test_the_pixel_channel_splits_the_squared_distance_by_its_weight(probe):
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-1, 1, (2, 5, 1, 8, 8)).astype(np.float32)
    descriptor = lambda x: probe.unit(x.reshape(len(x), -1)[:, :16] ** 3 + 0.1)  # any unit-row embedding
    fused = probe.variants(descriptor)["pixels 0.2"]
    d2 = ((fused(a) - fused(b)) ** 2).sum(1)
    d_desc = ((descriptor(a) - descriptor(b)) ** 2).sum(1)
    d_pix = ((probe.centred_pixels(a) - probe.centred_pixels(b)) ** 2).sum(1)
    np.testing.assert_allclose(d2, 0.8 * d_desc + 0.2 * d_pix, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(fused(a), axis=1), 1.0, rtol=1e-5)


def test_the_blurred_view_keeps_flat_images_and_smooths_a_point(probe):
    flat = np.full((1, 1, 8, 8), 0.3, np.float32)
    np.testing.assert_allclose(probe.blurred(flat, 0.8), flat, rtol=1e-6)
    point = np.zeros((1, 1, 16, 16), np.float32)  # far enough from the border that no reflection reaches it
    point[0, 0, 8, 8] = 1.0
    out = probe.blurred(point, 0.8)
    assert out.sum() == pytest.approx(1.0, rel=1e-5) and 0 < out[0, 0, 8, 8] < 1 and out[0, 0, 8, 9] > 0


@pytest.mark.parametrize("argv,says", [
    (["--space-config", "{"], "--space-config is not JSON"),
    (["--space-config", "[1]"], "--space-config must be a JSON object"),
    (["--space-config", '{"widht": 3}'], "unknown key 'widht'. Did you mean 'width'?"),
    (["--dataset", "mnits"], "unknown dataset 'mnits'; choose from"),
])
def test_bad_options_end_in_one_line_before_any_fit(probe, monkeypatch, capsys, argv, says):
    monkeypatch.setattr(probe, "load", lambda *a: pytest.fail("started working on bad options"))
    assert probe.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err


def test_inverse_sqrt_whitens_a_full_rank_covariance_and_shrinks_towards_the_identity(probe):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 6))
    cov = a @ a.T + 0.1 * np.eye(6)
    w = probe.inverse_sqrt(cov, 0.0)
    np.testing.assert_allclose(w @ cov @ w, np.eye(6), atol=1e-8)
    big = probe.inverse_sqrt(cov, 1e6)  # all shrinkage: a multiple of the identity
    np.testing.assert_allclose(big / big[0, 0], np.eye(6), atol=1e-3)


def test_learned_whitening_discounts_the_directions_the_training_views_move(probe):
    rng = np.random.default_rng(2)
    anchors = probe.unit(rng.normal(size=(200, 8)))
    moved = np.zeros((400, 8))
    moved[:, 0] = rng.normal(scale=0.5, size=400)  # the views move the descriptor along axis 0 only
    views = np.tile(anchors, (2, 1)) + moved
    table = {id(anchors): anchors, id(views): views}
    embed = lambda x: table[id(x)]
    plain = (anchors * probe.unit(views[:200])).sum(1)
    learned = probe.whitening_variants(embed, anchors, views)["learned whitening, shrink 0.1"]
    white = (learned(anchors) * learned(views)[:200]).sum(1)
    assert np.median(1 - white) < 0.1 * np.median(1 - plain)  # a view ten times nearer its image
    np.testing.assert_allclose(np.linalg.norm(learned(views), axis=1), 1.0, rtol=1e-5)
