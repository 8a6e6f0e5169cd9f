"""A small DDPM-style U-Net in PyTorch (Ho et al. 2020): the image backbone of the
diffusion/flow models. ``jax_unet.py`` is the same network in Flax.

Layout (the spec both frameworks follow; B = base channels):
- time embedding: sinusoidal features of t in [0, 1] (B of them) -> Linear(4B) -> SiLU
  -> Linear(4B); a class embedding (num_classes + 1 rows, the last = "no label") is
  added to it when the model is class-conditional;
- conv_in 3x3 -> per level l (channels B * mult[l]): ``res_blocks`` residual blocks
  (GroupNorm, SiLU, conv 3x3, + projected time embedding, GroupNorm, SiLU, conv 3x3;
  1x1 skip projection when channels change), self-attention after each block when the
  level's resolution is in ``attn_resolutions``, then a stride-2 conv 3x3 (except at
  the last level) -> middle: block, attention (optional), block -> mirrored up path
  with ``res_blocks + 1`` blocks per level on concatenated skips and nearest
  upsampling + conv 3x3 -> GroupNorm, SiLU, conv 3x3 to the data channels.
- GroupNorm groups: gcd(norm_groups, channels), eps 1e-5. Initialisation: PyTorch's
  defaults (weights and biases U(+-1/sqrt(fan_in)), embeddings N(0, 1), norms 1/0),
  reproduced in the Flax version.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .torch_common import sinusoidal_features


def check_unet_shape(shape: tuple, channel_mult: tuple) -> None:
    """The U-Net needs (C, H, W) images whose sides halve len(channel_mult) - 1 times."""
    if len(shape) != 3:
        raise ValueError(f"the U-Net backbone takes (C, H, W) images; got data of shape {shape}. "
                         "Use backbone: mlp for vector data")
    if not channel_mult:
        raise ValueError("model config 'channel_mult' needs at least one level")
    factor = 2 ** (len(channel_mult) - 1)
    if shape[1] % factor or shape[2] % factor:
        raise ValueError(f"images of {shape[1]}x{shape[2]} cannot be halved {len(channel_mult) - 1} times "
                         f"(channel_mult={tuple(channel_mult)}); use fewer levels")


def norm(channels: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(groups, channels), channels, eps=1e-5)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int):
        super().__init__()
        self.norm1 = norm(c_in, groups)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = norm(c_out, groups)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the H*W positions, residual."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = norm(channels, groups)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).reshape(b, c, h * w).transpose(1, 2)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        out = self.proj(F.scaled_dot_product_attention(q, k, v))
        return x + out.transpose(1, 2).reshape(b, c, h, w)


class UNet(nn.Module):
    """Predicts a tensor shaped like its input from (x, t, y); see the module docstring."""

    def __init__(self, shape: tuple, base: int, channel_mult: tuple = (1, 2, 4), res_blocks: int = 2,
                 attn_resolutions: tuple = (16,), mid_attention: bool = True, num_classes: int = 0,
                 norm_groups: int = 8):
        super().__init__()
        check_unet_shape(shape, channel_mult)
        c_data, res = shape[0], shape[1]
        emb_dim = 4 * base
        self.time_features = base
        feat = 2 * (base // 2)
        self.time_mlp = nn.Sequential(nn.Linear(feat, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_emb = nn.Embedding(num_classes + 1, emb_dim) if num_classes else None
        self.conv_in = nn.Conv2d(c_data, base, 3, padding=1)

        self.down = nn.ModuleList()
        skips = [base]
        ch = base
        for level, mult in enumerate(channel_mult):
            for _ in range(res_blocks):
                self.down.append(ResBlock(ch, base * mult, emb_dim, norm_groups))
                ch = base * mult
                if res in attn_resolutions:
                    self.down.append(Attention(ch, norm_groups))
                skips.append(ch)
            if level != len(channel_mult) - 1:
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                res //= 2
                skips.append(ch)

        self.mid = nn.ModuleList([ResBlock(ch, ch, emb_dim, norm_groups)]
                                 + ([Attention(ch, norm_groups)] if mid_attention else [])
                                 + [ResBlock(ch, ch, emb_dim, norm_groups)])

        self.up = nn.ModuleList()
        for level in reversed(range(len(channel_mult))):
            for _ in range(res_blocks + 1):
                self.up.append(ResBlock(ch + skips.pop(), base * channel_mult[level], emb_dim, norm_groups))
                ch = base * channel_mult[level]
                if res in attn_resolutions:
                    self.up.append(Attention(ch, norm_groups))
            if level != 0:
                self.up.append(Upsample(ch))
                res *= 2
        self.norm_out = norm(ch, norm_groups)
        self.conv_out = nn.Conv2d(ch, c_data, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time_mlp(sinusoidal_features(t.to(x.dtype), self.time_features))
        if self.class_emb is not None:
            emb = emb + self.class_emb(y)
        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = _apply(layer, h, emb)
            if not isinstance(layer, Attention):
                hs.append(h)
            else:
                hs[-1] = h
        for layer in self.mid:
            h = _apply(layer, h, emb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, hs.pop()], dim=1), emb)
            else:
                h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def _apply(layer: nn.Module, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    return layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
