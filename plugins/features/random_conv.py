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
from benchbase_plugins.models.config_checks import SelfChecked, check_at_least

#: Each layer halves the image side, so 8 layers take a 256x256 image to 1x1 (8x8
#: digits are 1x1 after 3); deeper layers only double the channels of a 1x1 map.
MAX_DEPTH = 8
#: The last layer's channels, width * 2^(depth-1): its weights grow with their square
#: (4096 channels: 75M weights, 300 MB), and depth 20 exhausted a machine's memory.
MAX_CHANNELS = 4096


@dataclass
class RandomConvConfig(SelfChecked):
    width: int = 32  # channels of the first layer; doubled at every layer
    depth: int = 3  # 3x3 stride-2 conv layers (LeakyReLU 0.2)
    pool: int = 2  # final adaptive average pool to pool x pool: dims = channels * pool^2
    seed: int = 0  # the network's initialisation (Kaiming normal)
    batch_size: int = 256

    def validate(self) -> None:
        """Refused at ``validate``: 0 layers or channels failed every run, and a deep net
        (its channels double per layer) exhausted the memory."""
        check_at_least(self, 1, "width", "pool", "batch_size")
        if not 1 <= self.depth <= MAX_DEPTH:
            raise ValueError(f"depth must be between 1 and {MAX_DEPTH}, got {self.depth}: each layer halves the "
                             f"image side ({MAX_DEPTH} take 256x256 to 1x1) and doubles the channels")
        if self.width * 2 ** (self.depth - 1) > MAX_CHANNELS:
            raise ValueError(f"width must keep the last layer's channels, width * 2^(depth-1), at most "
                             f"{MAX_CHANNELS} (the layer's weights grow with their square), got "
                             f"{self.width} * 2^{self.depth - 1} = {self.width * 2 ** (self.depth - 1)}")


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
