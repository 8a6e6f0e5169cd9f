"""A fixed, randomly initialised convolutional network as a feature space.

Random conv features are a cheap image-level space with no weights to download:
they respond to local structure (edges, textures) rather than raw pixel values,
and the same seed gives the same network on every machine.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbase import FeatureExtractor, hookimpl
from benchbase.neighbors import torch_device


@dataclass
class RandomConvConfig:
    width: int = 32  # channels of the first layer; doubled at every layer
    depth: int = 3  # 3x3 stride-2 conv layers (LeakyReLU 0.2)
    pool: int = 2  # final adaptive average pool to pool x pool: dims = channels * pool^2
    seed: int = 0  # the network's initialisation (Kaiming normal)
    batch_size: int = 256


def build_random_conv(channels: int, cfg: RandomConvConfig):
    """The network for ``cfg``, initialised from a private generator seeded by ``cfg.seed``."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(cfg.seed)
    layers, c_in = [], channels
    for i in range(cfg.depth):
        c_out = cfg.width * 2**i
        conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
        with torch.no_grad():
            conv.weight.normal_(0.0, (2.0 / (1 + 0.2**2) / (c_in * 9)) ** 0.5, generator=gen)
            conv.bias.zero_()
        layers += [conv, nn.LeakyReLU(0.2)]
        c_in = c_out
    layers += [nn.AdaptiveAvgPool2d(cfg.pool), nn.Flatten()]
    return nn.Sequential(*layers).eval()


class RandomConv(FeatureExtractor):
    """Features of a fixed random-init conv net (seeded): stride-2 3x3 convs, LeakyReLU, average pool.

    ``depth`` layers of width ``width * 2^i``, Kaiming-normal weights from a generator
    seeded by ``seed`` (zero biases), then an adaptive average pool to ``pool x pool``:
    (width * 2^(depth-1) * pool^2)-d features (512 by default). Images of any size
    and channel count; no preprocessing beyond the [-1, 1] range.
    """

    name = "random_conv"
    modalities = ("image",)
    Config = RandomConvConfig

    def __init__(self, config=None):
        super().__init__(config)
        self.net = None
        self.device = torch_device("cpu")

    def prepare(self, train, spec, device) -> None:
        self.device = torch_device(device)
        self.net = build_random_conv(int(spec.shape[0]), self.config).to(self.device)

    def embed(self, x: np.ndarray) -> np.ndarray:
        import torch

        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 4:
            raise ValueError(f"random_conv takes NCHW images, got shape {x.shape}")
        if self.net is None or self.net[0].in_channels != x.shape[1]:
            self.net = build_random_conv(x.shape[1], self.config).to(self.device)
        parts = []
        with torch.no_grad():
            for s in range(0, len(x), self.config.batch_size):
                xb = torch.from_numpy(np.ascontiguousarray(x[s:s + self.config.batch_size])).to(self.device)
                parts.append(self.net(xb).cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


@hookimpl
def benchbase_register_features(register):
    register(RandomConv)
