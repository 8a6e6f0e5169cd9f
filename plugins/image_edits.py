"""Image edits as batched PyTorch operations: the building blocks of the disguises
(``benchbase_plugins.disguises``) and of the copy descriptor's training views.

Images are NCHW float tensors in [lo, hi] (the dataset's ``value_range``); every
random choice comes from the ``torch.Generator`` passed in, so a seed fixes the
output on a device. Geometric edits resample with one bilinear ``grid_sample`` (an
integer shift is exact); what enters from outside the frame is filled by a ``fill``
rule: the border replicated, a constant, a reflection or the opposite edge (a
wrapped ``np.roll``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchbase_plugins.disguises import FILLS, ViewRecipe


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator, device) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, device=device)


def _coin(n: int, p: float, gen: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=device) < p


def _signs(n: int, gen: torch.Generator, device) -> torch.Tensor:
    return torch.where(_coin(n, 0.5, gen, device), 1.0, -1.0)


# ----------------------------------------------------------------------- geometry


@dataclass
class Geometry:
    """Per-example parameters of an affine resampling, in units of the image side.

    The output pixel at normalised position p (in [-1, 1]^2) shows the input at
    ``R(rotation) diag(scale_x * flip_x, scale_y * flip_y) p + 2 * (shift)``,
    so scale < 1 zooms in (a crop rescaled to full size), scale > 1 zooms out and
    ``shift`` moves the content by minus that fraction of the side.
    """

    scale_x: torch.Tensor
    scale_y: torch.Tensor
    rotation: torch.Tensor  # radians
    shift_x: torch.Tensor
    shift_y: torch.Tensor
    flip_x: torch.Tensor  # +1 or -1
    flip_y: torch.Tensor

    @classmethod
    def identity(cls, n: int, device) -> "Geometry":
        one, zero = torch.ones(n, device=device), torch.zeros(n, device=device)
        return cls(one, one.clone(), zero, zero.clone(), zero.clone(), one.clone(), one.clone())

    def theta(self) -> torch.Tensor:
        cos, sin = torch.cos(self.rotation), torch.sin(self.rotation)
        sx, sy = self.scale_x * self.flip_x, self.scale_y * self.flip_y
        row0 = torch.stack([cos * sx, -sin * sy, 2 * self.shift_x], dim=1)
        row1 = torch.stack([sin * sx, cos * sy, 2 * self.shift_y], dim=1)
        return torch.stack([row0, row1], dim=1)


def resample(x: torch.Tensor, grid: torch.Tensor, fill: str = "border", value: float | torch.Tensor = -1.0):
    """Bilinear sampling of ``x`` at ``grid`` (N, H, W, 2, normalised coordinates,
    align_corners=False); outside the frame: ``fill`` (one of FILLS)."""
    if fill == "wrap":
        return F.grid_sample(x, torch.remainder(grid + 1, 2) - 1, mode="bilinear", padding_mode="border",
                             align_corners=False)
    if fill == "constant":
        v = torch.as_tensor(value, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
        return F.grid_sample(x - v, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + v
    if fill not in ("border", "reflection"):
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=fill, align_corners=False)


def warp(x: torch.Tensor, geometry: Geometry, fill: str = "border", value: float | torch.Tensor = -1.0):
    grid = F.affine_grid(geometry.theta().to(x.dtype), list(x.shape), align_corners=False)
    return resample(x, grid, fill, value)


def warp_mixed_fills(x: torch.Tensor, geometry: Geometry, fills: torch.Tensor, lo: float, hi: float,
                     gen: torch.Generator) -> torch.Tensor:
    """``warp`` with a fill rule per example (``fills`` indexes FILLS); constant fills
    use the darkest, the brightest or the middle value at random."""
    grid = F.affine_grid(geometry.theta().to(x.dtype), list(x.shape), align_corners=False)
    out = torch.empty_like(x)
    consts = torch.tensor([lo, hi, (lo + hi) / 2], device=x.device, dtype=x.dtype)
    values = consts[torch.randint(0, 3, (len(x),), generator=gen, device=x.device)]
    for i, fill in enumerate(FILLS):
        rows = (fills == i).nonzero().flatten()
        if len(rows):
            out[rows] = resample(x[rows], grid[rows], fill, values[rows])
    return out


# ------------------------------------------------------------------ photometry


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] != 3:
        return x.mean(dim=1, keepdim=True).expand_as(x)
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).reshape(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True).expand_as(x)


@dataclass
class Colour:
    """Per-example intensity and colour changes, applied in this order on [0, 1] values:
    gamma, contrast about the image mean, brightness, saturation (RGB), a channel
    permutation (RGB; a crude hue change), inversion."""

    gamma: torch.Tensor
    contrast: torch.Tensor
    brightness: torch.Tensor  # added, in units of the value range
    saturation: torch.Tensor
    invert: torch.Tensor  # bool
    channel_shift: torch.Tensor  # 0, 1 or 2: roll of the RGB channels

    @classmethod
    def identity(cls, n: int, device) -> "Colour":
        one, zero = torch.ones(n, device=device), torch.zeros(n, device=device)
        return cls(one, one.clone(), zero, one.clone(), zero.bool(), zero.long())


def recolour(x: torch.Tensor, c: Colour, lo: float, hi: float) -> torch.Tensor:
    u = ((x - lo) / (hi - lo)).clamp(0, 1)
    u = u.clamp_min(1e-6) ** c.gamma.reshape(-1, 1, 1, 1)
    mean = u.mean(dim=(1, 2, 3), keepdim=True)
    u = (u - mean) * c.contrast.reshape(-1, 1, 1, 1) + mean + c.brightness.reshape(-1, 1, 1, 1)
    if u.shape[1] == 3:
        g = _grey(u)
        u = g + (u - g) * c.saturation.reshape(-1, 1, 1, 1)
        shifted = torch.stack([u.roll(k, dims=1) for k in range(3)])  # (3, N, C, H, W)
        u = shifted[c.channel_shift, torch.arange(len(u), device=u.device)]
    u = torch.where(c.invert.reshape(-1, 1, 1, 1), 1 - u, u).clamp(0, 1)
    return lo + (hi - lo) * u


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-example ``sigma`` in pixels (0: unchanged),
    reflecting at the border."""
    n, ch, h, w = x.shape
    radius = max(1, min(int(math.ceil(3 * float(sigma.max()))), (min(h, w) - 1)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    s = sigma.to(x.dtype).clamp_min(1e-3).reshape(-1, 1)
    k = torch.exp(-0.5 * (t / s) ** 2)
    k = k / k.sum(dim=1, keepdim=True)  # (N, K)
    k = k.repeat_interleave(ch, dim=0)  # one kernel per (example, channel)
    y = x.reshape(1, n * ch, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="reflect"), k.reshape(n * ch, 1, 1, -1), groups=n * ch)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), k.reshape(n * ch, 1, -1, 1), groups=n * ch)
    return y.reshape(n, ch, h, w)


def add_noise(x: torch.Tensor, std: torch.Tensor, gen: torch.Generator, lo: float, hi: float) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    return (x + noise * std.reshape(-1, 1, 1, 1) * (hi - lo) / 2).clamp(lo, hi)


# ------------------------------------------------------------------- blends


def blend(x: torch.Tensor, partner: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mixup: ``weight * x + (1 - weight) * partner`` per example."""
    w = weight.reshape(-1, 1, 1, 1).to(x.dtype)
    return w * x + (1 - w) * partner


def paste_box(x: torch.Tensor, partner: torch.Tensor, area: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """CutMix: a box of ``area`` (fraction of the image, aspect ratio in [1/2, 2]) of
    ``partner`` pasted into ``x`` at a random place."""
    n, _, h, w = x.shape
    aspect = torch.exp(_uniform(n, math.log(0.5), math.log(2.0), gen, x.device))
    bh = (torch.sqrt(area * aspect) * h).round().clamp(1, h)
    bw = (torch.sqrt(area / aspect) * w).round().clamp(1, w)
    top = (torch.rand(n, generator=gen, device=x.device) * (h - bh + 1)).floor()
    left = (torch.rand(n, generator=gen, device=x.device) * (w - bw + 1)).floor()
    rows = torch.arange(h, device=x.device).reshape(1, h, 1)
    cols = torch.arange(w, device=x.device).reshape(1, 1, w)
    inside = ((rows >= top.reshape(-1, 1, 1)) & (rows < (top + bh).reshape(-1, 1, 1))
              & (cols >= left.reshape(-1, 1, 1)) & (cols < (left + bw).reshape(-1, 1, 1)))
    return torch.where(inside[:, None], partner, x)


# ------------------------------------------------------- more local edits


def elastic(x: torch.Tensor, strength: float, gen: torch.Generator, fill: str = "border", value: float = -1.0):
    """A smooth random displacement field (Simard et al. 2003): displacements of up to
    ``strength`` times the side, smoothed over a quarter of the side."""
    n, _, h, w = x.shape
    field = torch.randn((n, 2, h, w), generator=gen, device=x.device, dtype=x.dtype)
    field = gaussian_blur(field, torch.full((n,), max(h, w) / 4.0 / 2, device=x.device))
    field = field / field.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-6) * 2 * strength
    base = F.affine_grid(Geometry.identity(n, x.device).theta().to(x.dtype), list(x.shape), align_corners=False)
    return resample(x, base + field.permute(0, 2, 3, 1), fill, value)


def perspective(x: torch.Tensor, strength: float, gen: torch.Generator, fill: str = "border",
                value: float = -1.0):
    """A random projective warp: each corner moves by up to ``strength`` of the side."""
    n, _, h, w = x.shape
    src = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], device=x.device)
    dst = src + (torch.rand((n, 4, 2), generator=gen, device=x.device) * 2 - 1) * 2 * strength
    # homography H with H dst_k ~ src_k (output corners dst sample the input corners src)
    rows = []
    for k in range(4):
        u, v = dst[:, k, 0], dst[:, k, 1]
        xs, ys = src[k, 0].expand(n), src[k, 1].expand(n)
        one, zero = torch.ones(n, device=x.device), torch.zeros(n, device=x.device)
        rows.append(torch.stack([u, v, one, zero, zero, zero, -u * xs, -v * xs], 1))
        rows.append(torch.stack([zero, zero, zero, u, v, one, -u * ys, -v * ys], 1))
    a = torch.stack(rows, 1).double()
    b = src.reshape(1, 8, 1).expand(n, 8, 1).double()
    hom = torch.cat([torch.linalg.solve(a, b).squeeze(-1), torch.ones(n, 1, device=x.device, dtype=a.dtype)], 1)
    hom = hom.reshape(n, 3, 3).to(x.dtype)
    base = F.affine_grid(Geometry.identity(n, x.device).theta().to(x.dtype), list(x.shape), align_corners=False)
    pts = torch.cat([base, torch.ones_like(base[..., :1])], -1) @ hom.transpose(1, 2).unsqueeze(1)
    return resample(x, pts[..., :2] / pts[..., 2:].clamp_min(1e-3), fill, value)


def occlude(x: torch.Tensor, area: torch.Tensor, gen: torch.Generator, lo: float, hi: float) -> torch.Tensor:
    """A box of ``area`` (per example, fraction of the image) painted one random flat value."""
    flat = _uniform(len(x), lo, hi, gen, x.device).reshape(-1, 1, 1, 1).expand_as(x)
    return paste_box(x, flat, area, gen)


def salt_and_pepper(x: torch.Tensor, fraction: torch.Tensor, gen: torch.Generator, lo: float, hi: float):
    """A ``fraction`` (per example) of the pixels set to the darkest or the brightest value."""
    shape = (len(x), 1, *x.shape[2:])
    hit = torch.rand(shape, generator=gen, device=x.device) < fraction.reshape(-1, 1, 1, 1)
    salt = torch.rand(shape, generator=gen, device=x.device) < 0.5
    return torch.where(hit, torch.where(salt, hi, lo), x).to(x.dtype)


def posterize(x: torch.Tensor, levels: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Values quantised to ``levels`` (per example, >= 2) evenly spaced levels."""
    steps = (levels.to(x.dtype) - 1).clamp_min(1).reshape(-1, 1, 1, 1)
    u = ((x - lo) / (hi - lo)).clamp(0, 1)
    return lo + (hi - lo) * torch.round(u * steps) / steps


def sharpen(x: torch.Tensor, amount: float, lo: float, hi: float) -> torch.Tensor:
    """Unsharp masking: x + amount * (x - blur(x)), clipped."""
    soft = gaussian_blur(x, torch.full((len(x),), 1.0, device=x.device))
    return (x + amount * (x - soft)).clamp(lo, hi)


def downscale(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """Resampled to ``fraction`` of the side (antialiased) and back up (bilinear): lost detail."""
    h, w = x.shape[2:]
    size = (max(1, round(h * fraction)), max(1, round(w * fraction)))
    if size == (h, w):
        return x
    small = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def shear(x: torch.Tensor, amount: torch.Tensor, fill: str = "border", value: float = -1.0) -> torch.Tensor:
    """Horizontal shear: row y moves by ``amount`` (per example) times y."""
    theta = Geometry.identity(len(x), x.device).theta().to(x.dtype)
    theta[:, 0, 1] = amount.to(x.dtype)
    return resample(x, F.affine_grid(theta, list(x.shape), align_corners=False), fill, value)


# ----------------------------------------------------- the named disguises' edits


def _shift(x, partners, s, gen, lo, hi):
    g = Geometry.identity(len(x), x.device)
    side = max(x.shape[2:])
    # at least one pixel, up to strength * 25% of the side, in a random direction
    px = torch.clamp((_uniform(len(x), 0.5, 1.0, gen, x.device) * s * 0.25 * side).round(), min=1)
    angle = _uniform(len(x), 0, 2 * math.pi, gen, x.device)
    g.shift_x = (px * torch.cos(angle)).round() / x.shape[3]
    g.shift_y = (px * torch.sin(angle)).round() / x.shape[2]
    return warp(x, g, "border")


def _hflip(x, partners, s, gen, lo, hi):
    return x.flip(3)


def _crop(x, partners, s, gen, lo, hi):
    """Keep (1 - 0.3 s) of the area, aspect in [3/4, 4/3], anywhere; rescale to full size."""
    n = len(x)
    g = Geometry.identity(n, x.device)
    area = torch.full((n,), 1 - 0.3 * s, device=x.device)
    aspect = torch.exp(_uniform(n, math.log(3 / 4), math.log(4 / 3), gen, x.device))
    g.scale_x = torch.sqrt(area * aspect).clamp(max=1)
    g.scale_y = torch.sqrt(area / aspect).clamp(max=1)
    g.shift_x = _uniform(n, -1, 1, gen, x.device) * (1 - g.scale_x) / 2
    g.shift_y = _uniform(n, -1, 1, gen, x.device) * (1 - g.scale_y) / 2
    return warp(x, g, "border")


def _recolour(x, partners, s, gen, lo, hi):
    n = len(x)
    c = Colour.identity(n, x.device)
    c.gamma = torch.exp(_signs(n, gen, x.device) * _uniform(n, 0.5, 1, gen, x.device) * s * math.log(2))
    c.contrast = 1 + _signs(n, gen, x.device) * _uniform(n, 0.5, 1, gen, x.device) * 0.5 * s
    c.brightness = _signs(n, gen, x.device) * _uniform(n, 0.5, 1, gen, x.device) * 0.25 * s
    c.saturation = _uniform(n, 1 - s, 1, gen, x.device)
    c.channel_shift = torch.randint(0, 3, (n,), generator=gen, device=x.device) * (s > 0.5)
    return recolour(x, c, lo, hi)


def _invert(x, partners, s, gen, lo, hi):
    return lo + hi - x


def _blur(x, partners, s, gen, lo, hi):
    side = max(x.shape[2:])
    return gaussian_blur(x, torch.full((len(x),), 0.06 * s * side, device=x.device))


def _noise(x, partners, s, gen, lo, hi):
    return add_noise(x, torch.full((len(x),), 0.2 * s, device=x.device), gen, lo, hi)


def _rotate(x, partners, s, gen, lo, hi):
    g = Geometry.identity(len(x), x.device)
    g.rotation = _signs(len(x), gen, x.device) * _uniform(len(x), 0.5, 1, gen, x.device) * s * math.radians(20)
    return warp(x, g, "border")


def _blend(x, partners, s, gen, lo, hi):
    """The image with weight 1 - 0.4 s (>= 0.6 at s = 1) over a partner."""
    return blend(x, partners, torch.full((len(x),), 1 - 0.4 * s, device=x.device))


def _cutmix(x, partners, s, gen, lo, hi):
    return paste_box(x, partners, torch.full((len(x),), 0.3 * s, device=x.device), gen)


def _combo(x, partners, s, gen, lo, hi):
    """A shift, then a recolouring, then a light blur: several edits at once."""
    x = _shift(x, partners, 0.6 * s, gen, lo, hi)
    x = _recolour(x, partners, 0.6 * s, gen, lo, hi)
    return _blur(x, partners, 0.5 * s, gen, lo, hi)


def _elastic(x, partners, s, gen, lo, hi):
    return elastic(x, 0.08 * s, gen)


def _perspective(x, partners, s, gen, lo, hi):
    return perspective(x, 0.12 * s, gen)


def _occlude(x, partners, s, gen, lo, hi):
    return occlude(x, torch.full((len(x),), 0.2 * s, device=x.device), gen, lo, hi)


def _salt_pepper(x, partners, s, gen, lo, hi):
    return salt_and_pepper(x, torch.full((len(x),), 0.1 * s, device=x.device), gen, lo, hi)


def _posterize(x, partners, s, gen, lo, hi):
    return posterize(x, torch.full((len(x),), max(2, round(8 - 5 * s)), device=x.device), lo, hi)


def _sharpen(x, partners, s, gen, lo, hi):
    return sharpen(x, 2.0 * s, lo, hi)


def _downscale(x, partners, s, gen, lo, hi):
    return downscale(x, 1 - 0.25 * s)


def _shear(x, partners, s, gen, lo, hi):
    return shear(x, _signs(len(x), gen, x.device) * 0.3 * s)


EDITS = {"shift": _shift, "hflip": _hflip, "crop": _crop, "recolour": _recolour, "invert": _invert, "blur": _blur,
         "noise": _noise, "rotate": _rotate, "blend": _blend, "cutmix": _cutmix, "combo": _combo,
         "occlude": _occlude, "salt_pepper": _salt_pepper, "posterize": _posterize, "elastic": _elastic,
         "perspective": _perspective, "shear": _shear, "sharpen": _sharpen, "downscale": _downscale}


def apply_edit(name: str, x: torch.Tensor, partners: torch.Tensor | None, strength: float, gen: torch.Generator,
               lo: float = -1.0, hi: float = 1.0) -> torch.Tensor:
    """The named edit of EDITS at ``strength``; ``partners`` (default: the batch rolled
    by one) are the second images of the edits that blend two."""
    if partners is None:
        partners = x.roll(1, dims=0)
    return EDITS[name](x, partners, float(strength), gen, lo, hi).clamp(lo, hi).contiguous()


# -------------------------------------------------------------- training views


@dataclass
class Views:
    """A batch of views and, for mixed views, the batch index of the second image and its weight."""

    x: torch.Tensor
    partner: torch.Tensor  # long, -1 for unmixed views
    partner_weight: torch.Tensor


def random_views(x: torch.Tensor, recipe: ViewRecipe, gen: torch.Generator, lo: float = -1.0,
                 hi: float = 1.0, strength: float = 1.0) -> Views:
    """One strongly disguised view of every image of ``x`` (and a blend partner for some).
    ``strength`` in [0, 1] scales every edit's magnitude (not its probability) towards
    none: a curriculum starts the descriptor on milder views."""
    n, dev, s = len(x), x.device, float(strength)
    g = Geometry.identity(n, dev)
    area = 1 - s * (1 - _uniform(n, *recipe.crop_area, gen, dev))
    zoom = _coin(n, recipe.zoom_out, gen, dev)
    area = torch.where(zoom, 1 + s * (1 / _uniform(n, 0.5, 1.0, gen, dev) - 1), area)
    aspect = torch.exp(s * _uniform(n, math.log(3 / 4), math.log(4 / 3), gen, dev))
    g.scale_x, g.scale_y = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    free_x, free_y = (1 - g.scale_x).abs() / 2, (1 - g.scale_y).abs() / 2
    g.shift_x = _uniform(n, -1, 1, gen, dev) * (free_x + s * recipe.max_shift)
    g.shift_y = _uniform(n, -1, 1, gen, dev) * (free_y + s * recipe.max_shift)
    g.rotation = torch.where(_coin(n, recipe.p_rotation, gen, dev),
                             _uniform(n, -1, 1, gen, dev) * s * math.radians(recipe.max_rotation), 0.0)
    g.flip_x = torch.where(_coin(n, recipe.p_hflip, gen, dev), -1.0, 1.0)
    g.flip_y = torch.where(_coin(n, recipe.p_vflip, gen, dev), -1.0, 1.0)
    allowed = torch.tensor([FILLS.index(f) for f in recipe.fills], device=dev)
    fills = allowed[torch.randint(0, len(allowed), (n,), generator=gen, device=dev)]
    v = warp_mixed_fills(x, g, fills, lo, hi, gen)

    c = Colour.identity(n, dev)
    on = _coin(n, recipe.p_colour, gen, dev)
    c.gamma = torch.where(on, torch.exp(_uniform(n, -1, 1, gen, dev) * s * math.log(recipe.max_gamma)), 1.0)
    c.contrast = torch.where(on, 1 + s * _uniform(n, -0.5, 0.5, gen, dev), 1.0)
    c.brightness = torch.where(on, s * _uniform(n, -0.25, 0.25, gen, dev), 0.0)
    c.saturation = torch.where(on, 1 + s * _uniform(n, -0.8, 0.8, gen, dev), 1.0)
    c.saturation = torch.where(_coin(n, recipe.p_grey, gen, dev), 0.0, c.saturation)
    roll = on & _coin(n, 0.5 * s, gen, dev)
    c.channel_shift = torch.where(roll, torch.randint(1, 3, (n,), generator=gen, device=dev), 0)
    c.invert = _coin(n, recipe.p_invert, gen, dev)
    v = recolour(v, c, lo, hi)

    side = max(x.shape[2:])
    sigma = torch.where(_coin(n, recipe.p_blur, gen, dev), s * _uniform(n, 0.02, recipe.max_blur, gen, dev) * side,
                        0.0)
    if bool((sigma > 0).any()):
        v = torch.where((sigma > 0).reshape(-1, 1, 1, 1), gaussian_blur(v, sigma), v)
    std = torch.where(_coin(n, recipe.p_noise, gen, dev), s * _uniform(n, 0, recipe.max_noise, gen, dev), 0.0)
    v = add_noise(v, std, gen, lo, hi)
    area = torch.where(_coin(n, recipe.p_erase, gen, dev), s * _uniform(n, 0.05, recipe.max_erase, gen, dev), 0.0)
    v = torch.where((area > 0).reshape(-1, 1, 1, 1), occlude(v, area.clamp_min(1e-3), gen, lo, hi), v)
    fraction = torch.where(_coin(n, recipe.p_dropout, gen, dev), s * _uniform(n, 0, recipe.max_dropout, gen, dev), 0.0)
    v = salt_and_pepper(v, fraction, gen, lo, hi)
    levels = torch.where(_coin(n, recipe.p_posterize if s > 0 else 0.0, gen, dev),
                         torch.round(17 - s * _uniform(n, 0, 15, gen, dev)), 1e6)  # 2 to 17 levels
    v = torch.where((levels < 1e6).reshape(-1, 1, 1, 1), posterize(v, levels.clamp_max(256), lo, hi), v)

    mixed = _coin(n, recipe.p_mix, gen, dev)
    partner = torch.where(mixed, (torch.arange(n, device=dev) + torch.randint(1, max(n, 2), (n,), generator=gen,
                                                                              device=dev)) % n, -1)
    weight = torch.zeros(n, device=dev)
    if bool(mixed.any()):
        other = v[partner.clamp_min(0)]
        cut = _coin(n, recipe.p_cutmix, gen, dev)
        share = s * _uniform(n, *recipe.mix_share, gen, dev)  # the partner's share of the mixed view
        cm = paste_box(v, other, share, gen)
        mu = blend(v, other, 1 - share)
        v = torch.where((mixed & cut).reshape(-1, 1, 1, 1), cm, torch.where(mixed.reshape(-1, 1, 1, 1), mu, v))
        weight = torch.where(mixed, share, 0.0)
    return Views(v.clamp(lo, hi).contiguous(), partner, weight)
