"""The PyTorch networks and sampling driver of the diffusion/flow models (imported
when a model is built or sampled, never when the plugins register): the MLP backbone
(the U-Net is torch_unet.py) and the torch driver of ``diffusion_process.integrate``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .diffusion_process import integrate, python_loop
from .diffusion_variants import backbone_args
from .torch_common import mlp, sinusoidal_features
from .torch_unet import UNet


class ConditionalMLP(nn.Module):
    """MLP on [x, sinusoidal features of t, class embedding]: vector data."""

    def __init__(self, dim: int, width: int, depth: int, time_features: int, num_classes: int = 0):
        super().__init__()
        self.time_features = time_features
        self.class_emb = nn.Embedding(num_classes + 1, time_features) if num_classes else None
        extra = 2 * (time_features // 2) + (time_features if num_classes else 0)
        self.net = mlp(dim + extra, width, depth, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        parts = [x.reshape(len(x), -1), sinusoidal_features(t.to(x.dtype), self.time_features)]
        if self.class_emb is not None:
            parts.append(self.class_emb(y))
        return self.net(torch.cat(parts, dim=1)).reshape(x.shape)


def build_backbone(cfg, spec) -> nn.Module:
    """The network ``cfg`` asks for on data described by ``spec``."""
    kind, args = backbone_args(cfg, spec)
    return (ConditionalMLP if kind == "mlp" else UNet)(*args)


def sample_plan(plan, predict: Callable, shape: tuple, key: torch.Generator, device,
                dtype=torch.float32, clip_range: tuple | None = None) -> torch.Tensor:
    """Run a sampler plan from standard normal noise drawn with ``key`` (the torch
    driver of ``diffusion_process.integrate``; also used by empirical_denoiser);
    ``clip_range`` bounds DDPM's clean estimates."""
    x = torch.randn(shape, generator=key, device=device, dtype=dtype)

    def noise(i, like):
        return torch.randn(like.shape, generator=key, device=device, dtype=dtype)

    clip = None if clip_range is None else (lambda v: torch.clamp(v, *clip_range))
    return integrate(plan, x, predict, noise, python_loop, plan.at, clip)
