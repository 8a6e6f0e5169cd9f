"""Which backbone a model builds, and the layer plan of the convolutional one.

Framework-neutral on purpose: torch_common and jax_common both build their networks
from these plans, so a PyTorch model and its JAX twin cannot drift apart in layer
count, channel widths or activations.

Conv backbones are DCGAN-style (Radford et al. 2016): 4x4 kernels with stride 2 and
padding 1 halve (encoder) or double (generator) the resolution at each level, from
the image size down to a base of 4 to 7 pixels; channels double at each halving.
Unlike DCGAN there is no BatchNorm: it couples the examples of a batch (which the
WGAN-GP penalty assumes away), has train/eval modes, and would make the two
frameworks' states differ in kind.
"""
from __future__ import annotations

from dataclasses import dataclass

from .config_checks import check_choice

BACKBONES = ("auto", "mlp", "conv")
ACTIVATIONS = ("silu", "relu", "leaky_relu", "tanh", "identity")
LEAKY_SLOPE = 0.2  # negative slope of leaky_relu (DCGAN's discriminator)
KERNEL, STRIDE, PADDING = 4, 2, 1  # every resampling conv layer
ENCODER_ACT = "leaky_relu"  # discriminators, critics and encoders (DCGAN's choice)


def decoder_act(backbone: str) -> str:
    """Hidden activation of generators and decoders: DCGAN's ReLU for convs, SiLU for
    MLPs (smooth maps for low-dimensional data)."""
    return "relu" if backbone == "conv" else "silu"


def resolve_backbone(backbone: str, shape: tuple) -> str:
    """``auto``: conv for images (C, H, W) whose size allows a conv plan, else mlp."""
    check_choice(backbone, BACKBONES, "backbone")
    if backbone == "mlp":
        return "mlp"
    if backbone == "conv":
        conv_plan(shape, 4)  # raises with the reason when the shape does not fit
        return "conv"
    try:
        conv_plan(shape, 4)
    except ValueError:
        return "mlp"
    return "conv"


@dataclass(frozen=True)
class ConvPlan:
    """Layer sizes of a conv encoder (fine to coarse) and of its mirror generator.

    ``channels[i]`` is the channel count after the i-th stride-2 conv of the encoder,
    at spatial size (height >> (i + 1), width >> (i + 1)); the last entry lives at the
    coarsest size ``base``. The generator runs the same list backwards and ends with
    a transposed conv to ``in_channels``.
    """

    in_channels: int
    size: tuple  # (H, W)
    base: tuple  # (H, W) at the coarsest level
    channels: tuple

    @property
    def levels(self) -> int:
        return len(self.channels)

    @property
    def flat(self) -> int:
        """Features entering (encoder) or leaving (generator) the dense layer."""
        return self.channels[-1] * self.base[0] * self.base[1]


def _halvings(n: int) -> int:
    levels = 0
    while n % 2 == 0 and n // 2 >= 4:
        n //= 2
        levels += 1
    return levels


def conv_plan(shape: tuple, width: int) -> ConvPlan:
    """Plan for an image of ``shape`` (C, H, W); ``width // 4`` channels at the finest
    level, doubling per level (so ``width`` 256 gives DCGAN's 64-128-256-512)."""
    if len(shape) != 3:
        raise ValueError(f"the conv backbone needs image data shaped (C, H, W), got shape {tuple(shape)}; "
                         "use backbone: mlp")
    c, h, w = (int(s) for s in shape)
    levels = _halvings(h)
    if levels == 0 or _halvings(w) != levels:
        raise ValueError(f"the conv backbone needs H and W that halve the same number of times "
                         f"(at least once) down to 4-7 pixels; got {h}x{w}. Use backbone: mlp")
    base_channels = max(1, int(width) // 4)
    channels = tuple(base_channels * 2 ** i for i in range(levels))
    return ConvPlan(c, (h, w), (h >> levels, w >> levels), channels)
