"""Geometric C^alpha images (Kadkhodaie, Guth, Simoncelli & Mallat, ICLR 2024, App. E).

The class (Korostelev & Tsybakov 1993; Donoho 1999; Peyre & Mallat 2008) holds images
that are C^alpha away from C^alpha contours: here two regions separated by one C^alpha
curve, with a C^alpha intensity in each region. Its optimal denoiser is known up to
constants (bandlets: the MSE decays as sigma^(2 alpha/(alpha+1))), so a model's
denoising slope can be compared with the optimum.

Synthesis, following the paper's Algorithm 2 ("integrate white noise in Fourier"):
the contour is uniform white noise on a line filtered by |w|^-alpha; each region's
intensity is 2-D uniform white noise filtered by |w|^-alpha; a binary mask
``row > contour(column)`` picks one field on each side. Choices of ours, so that
samples sit in [-1, 1] and look alike at every size: the noise is synthesised on a
grid twice the image size and cropped (so the FFT's periodicity does not show), the
zero frequency is dropped, the contour is rescaled to span the middle ``contour_span``
of the image, each field to max |.| = 0.5 around a random level in [-0.5, 0.5], and
the picture is put in one of four orientations at random (the class is invariant to
rotations by 90 degrees). All of this is one exact sampler of the distribution.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from benchbase import DataSpec, hookimpl

from .common import require
from .synthetic import SyntheticDataset


@dataclass
class CAlphaConfig:
    size: int = 32  # images are 1 x size x size
    alpha: float = 2.0  # regularity of the contour (and of the regions unless alpha_background is set)
    alpha_background: Optional[float] = None  # regularity inside the regions; None: alpha
    contour_span: float = 0.6  # fraction of the image height the contour wanders over
    train_size: int = 10000
    test_size: int = 2000
    seed: int = 0


def _filtered_noise_1d(rng: np.random.Generator, n: int, length: int, alpha: float) -> np.ndarray:
    """(n, length) white uniform noise integrated alpha times in Fourier (|w|^-alpha, no DC)."""
    grid = 2 * length
    noise = rng.random((n, grid), dtype=np.float32) - np.float32(0.5)
    freq = np.fft.rfftfreq(grid) * grid
    gain = np.zeros(freq.shape, dtype=np.float32)
    gain[1:] = freq[1:] ** (-alpha)
    from scipy import fft as sfft  # here: listing or validating plugins needs no scipy

    return sfft.irfft(sfft.rfft(noise, axis=1) * gain, n=grid, axis=1)[:, :length]


def _filtered_noise_2d(rng: np.random.Generator, n: int, size: int, alpha: float) -> np.ndarray:
    """(n, size, size) white uniform noise filtered by (w1^2 + w2^2)^(-alpha/2), no DC."""
    grid = 2 * size
    noise = rng.random((n, grid, grid), dtype=np.float32) - np.float32(0.5)
    fy = np.fft.fftfreq(grid)[:, None] * grid
    fx = np.fft.rfftfreq(grid)[None, :] * grid
    radius2 = fy ** 2 + fx ** 2
    gain = np.zeros(radius2.shape, dtype=np.float32)
    gain[radius2 > 0] = radius2[radius2 > 0] ** (-alpha / 2)
    from scipy import fft as sfft

    field = sfft.irfft2(sfft.rfft2(noise, axes=(1, 2), workers=-1) * gain, s=(grid, grid),
                       axes=(1, 2), workers=-1)
    return field[:, :size, :size]


def _unit_max(a: np.ndarray, axes: tuple) -> np.ndarray:
    """Centre and scale each sample to max |.| = 1 over ``axes``."""
    a = a - a.mean(axis=axes, keepdims=True)
    peak = np.abs(a).max(axis=axes, keepdims=True)
    return a / np.where(peak > 0, peak, 1.0)


class CAlphaImages(SyntheticDataset):
    """Geometric C^alpha images (Kadkhodaie et al. 2024): two C^alpha regions split by a C^alpha curve."""

    name = "calpha_images"
    Config = CAlphaConfig

    def _check(self) -> None:
        c = self.config
        require(c.size >= 4, self.name, f"config.size must be >= 4 (got {c.size})")
        require(c.alpha > 0, self.name, f"config.alpha must be > 0 (got {c.alpha})")
        require(c.alpha_background is None or c.alpha_background > 0, self.name,
                f"config.alpha_background must be > 0 (got {c.alpha_background})")
        require(0 < c.contour_span <= 1, self.name, f"config.contour_span must be in (0, 1] (got {c.contour_span})")

    def sample_true(self, n: int, seed: int) -> np.ndarray:
        self._check()
        c = self.config
        size = c.size
        alpha_bg = c.alpha if c.alpha_background is None else c.alpha_background
        rng = np.random.default_rng(seed)
        out = np.empty((n, 1, size, size), dtype=np.float32)
        rows = (np.arange(size) + 0.5) / size  # pixel centres in (0, 1)
        for start in range(0, n, 256):  # bounded memory: the FFT grids are 4x the image
            m = min(256, n - start)
            contour = 0.5 + 0.5 * c.contour_span * _unit_max(_filtered_noise_1d(rng, m, size, c.alpha), (1,))
            mask = rows[None, :, None] > contour[:, None, :]  # (m, row, column)
            fields = _unit_max(_filtered_noise_2d(rng, 2 * m, size, alpha_bg), (1, 2)).reshape(m, 2, size, size)
            levels = rng.uniform(-0.5, 0.5, size=(m, 2, 1, 1))
            inside, outside = (levels + 0.5 * fields).transpose(1, 0, 2, 3)
            img = np.where(mask, inside, outside)
            turns = rng.integers(0, 4, size=m)
            for i in range(m):
                out[start + i, 0] = np.rot90(img[i], k=int(turns[i]))
        return out

    def spec(self) -> DataSpec:
        s = self.config.size
        return DataSpec(shape=(1, s, s), modality="image", has_true_sampler=True)


@hookimpl
def benchbase_register_datasets(register):
    register(CAlphaImages)
