"""Disguises: the edits that turn a training image into a copy that pixel distances
miss (Somepalli et al. 2023 find replicas shifted, cropped, recoloured or
recomposed), named, described and marked as trained or held out.

Three users share them: the ``copy_descriptor`` feature space draws strongly
disguised training views (``ViewRecipe``, the SSCD recipe of Pizzi et al. 2022), the
copy-detection benchmark makes its queries with the named disguises (some of which
the descriptor never trains on: ``trained=False``), and the disguised-memorizer
oracles return disguised training images. This module is the catalogue and imports
no framework; the PyTorch operations live in ``benchbase_plugins.image_edits``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

FILLS = ("border", "constant", "reflection", "wrap")


@dataclass(frozen=True)
class DisguiseInfo:
    """A named disguise. ``trained``: whether the copy descriptor's training views
    include this kind of edit (the benchmark reports held-out disguises apart)."""

    name: str
    trained: bool
    about: str  # what strength 1 does


DISGUISES: dict[str, DisguiseInfo] = {d.name: d for d in (
    DisguiseInfo("shift", True, "moved by 1 px up to 25% of the side (border replicated)"),
    DisguiseInfo("hflip", True, "mirrored left-right"),
    DisguiseInfo("crop", True, "a crop of 70% of the area rescaled to full size"),
    DisguiseInfo("recolour", True, "gamma x2^+-1, contrast +-50%, brightness +-25%, saturation"),
    DisguiseInfo("invert", True, "negative image"),
    DisguiseInfo("blur", True, "Gaussian blur, sigma 6% of the side"),
    DisguiseInfo("noise", True, "Gaussian noise, 20% of the half range"),
    DisguiseInfo("rotate", True, "rotated by 10-20 degrees"),
    DisguiseInfo("blend", True, "mixup with another image, weight 0.6"),
    DisguiseInfo("cutmix", True, "30% box of another image pasted in"),
    DisguiseInfo("combo", True, "shift + recolour + blur at reduced strength"),
    DisguiseInfo("occlude", True, "20% box painted one flat value"),
    DisguiseInfo("salt_pepper", True, "10% of the pixels set to black or white"),
    DisguiseInfo("posterize", True, "quantised to 3 levels"),
    DisguiseInfo("elastic", False, "smooth random displacement field, up to 8% of the side"),
    DisguiseInfo("perspective", False, "projective warp, corners moved up to 12%"),
    DisguiseInfo("shear", False, "horizontal shear by 0.3"),
    DisguiseInfo("sharpen", False, "unsharp mask, amount 2"),
    DisguiseInfo("downscale", False, "resampled to 75% of the side and back"),
)}


def check_disguise(name: str) -> str:
    if name not in DISGUISES:
        raise ValueError(f"unknown disguise '{name}'; choose one of {', '.join(DISGUISES)}")
    return name


def disguise(name: str, x, partners, strength: float, gen, lo: float = -1.0, hi: float = 1.0):
    """The named disguise of a batch ``x`` (NCHW torch tensor in [lo, hi]) at
    ``strength`` (1: as DISGUISES describes), randomness from the torch generator
    ``gen``; ``partners`` (same shape, or None: the batch rolled by one) are the second
    images of the disguises that blend two."""
    from benchbase_plugins.image_edits import apply_edit

    return apply_edit(check_disguise(name), x, partners, strength, gen, lo, hi)


@dataclass
class ViewRecipe:
    """How strongly the copy descriptor's training views are disguised: SSCD's "strong
    blur" setting (resized crops, flips, colour jitter, greyscale, blur, mixup and
    cutmix), scaled for small images, with the edits a generative model's replicas
    show added (shifts with any fill, rotations, inversions, noise)."""

    crop_area: Tuple[float, float] = (0.6, 1.0)  # random resized crop, fraction of the area kept
    zoom_out: float = 0.15  # probability of shrinking the image into the frame instead (to 70-100%)
    max_shift: float = 0.125  # extra translation, fraction of the side
    max_rotation: float = 25.0  # degrees
    p_rotation: float = 0.5
    p_hflip: float = 0.5
    p_vflip: float = 0.1
    p_colour: float = 0.8
    max_gamma: float = 1.5  # gamma in [1 / max_gamma, max_gamma]
    p_invert: float = 0.2
    p_grey: float = 0.2  # RGB only
    p_blur: float = 0.2
    max_blur: float = 0.06  # sigma, fraction of the side
    p_noise: float = 0.2
    max_noise: float = 0.15  # std, fraction of the half range
    fills: Tuple[str, ...] = FILLS  # how what enters the frame is filled, one drawn per view
    p_erase: float = 0.15  # a box painted one flat value
    max_erase: float = 0.25  # its area, fraction of the image
    p_dropout: float = 0.1  # pixels set to black or white
    max_dropout: float = 0.1  # fraction of the pixels
    p_posterize: float = 0.1  # values quantised to 2-17 levels
    p_mix: float = 0.2  # probability that a view is blended with another image of the batch
    p_cutmix: float = 0.5  # among mixed views: cutmix, else mixup
    mix_share: Tuple[float, float] = (0.15, 0.5)  # the second image's share of a mixed view (weight or area),
    # drawn uniformly in this range at full strength: 0.5 makes an even blend, a copy of both images alike


def make_query_sets(reference: np.ndarray, distractors: np.ndarray, names=None, n: int = 300,
                    strength: float = 1.0, seed: int = 0, value_range=(-1.0, 1.0)) -> list:
    """Copy-detection queries (``benchbase.copy_detection.QuerySet``), one set per
    disguise in ``names`` (default: all): ``n`` disguised reference images (their
    source: the reference index) and ``n`` disguised distractors (source -1). The
    second image of a blend is always a distractor, so every query has at most one
    source. ``made_from`` names, per query, the distractor images it was drawn from
    (its own image when a distractor, the second image drawn for blends), which a
    score normalisation against the distractor pool must skip. Fixed by ``seed``
    (computed on the CPU)."""
    import torch

    from benchbase.copy_detection import QuerySet

    lo, hi = (float(v) for v in value_range)
    rng = np.random.default_rng(seed)
    n_pos, n_neg = min(n, len(reference)), min(n, len(distractors))
    out = []
    for k, name in enumerate(names or DISGUISES):
        pos = rng.choice(len(reference), n_pos, replace=False)
        neg = rng.choice(len(distractors), n_neg, replace=False)
        images = np.concatenate([reference[pos], distractors[neg]])
        partner_idx = rng.choice(len(distractors), len(images))
        same = np.concatenate([np.full(n_pos, -1), neg]) == partner_idx  # never blend a distractor with itself
        partner_idx[same] = (partner_idx[same] + 1) % len(distractors)
        gen = torch.Generator().manual_seed(int(seed) * 1000 + k)
        x = disguise(name, torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)),
                     torch.from_numpy(np.ascontiguousarray(distractors[partner_idx], dtype=np.float32)),
                     strength, gen, lo, hi).numpy()
        source = np.concatenate([pos, np.full(n_neg, -1)]).astype(np.int64)
        made_from = np.stack([np.concatenate([np.full(n_pos, -1), neg]), partner_idx], axis=1).astype(np.int64)
        out.append(QuerySet(name, x, source, held_out=not DISGUISES[name].trained, made_from=made_from))
    return out
