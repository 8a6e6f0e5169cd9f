"""The U-Net of torch_unet.py in Flax, and the MLP backbone of torch_diffusion.py.

Same layout (NCHW), parameter shapes, names and initialisation as the PyTorch
modules: a submodule named ``down_3`` here is ``down.3`` there, so
``params_from_torch_state`` copies a PyTorch state dict into these networks and the
two compute the same function (tests/test_diffusion.py checks it). Imports jax; the
plugin modules import this one lazily.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from .jax_common import Conv2d, Linear, sinusoidal_features
from .torch_unet import check_unet_shape


class GroupNorm(nn.Module):
    """torch.nn.GroupNorm on NCHW input: biased variance, eps 1e-5, weight 1 / bias 0."""

    groups: int

    @nn.compact
    def __call__(self, x):
        b, c = x.shape[:2]
        g = math.gcd(self.groups, c)
        weight = self.param("weight", nn.initializers.ones, (c,))
        bias = self.param("bias", nn.initializers.zeros, (c,))
        h = x.reshape(b, g, -1)
        mean = h.mean(axis=2, keepdims=True)
        var = ((h - mean) ** 2).mean(axis=2, keepdims=True)
        h = ((h - mean) / jnp.sqrt(var + 1e-5)).reshape(x.shape)
        shape = (1, c) + (1,) * (x.ndim - 2)
        return h * weight.reshape(shape) + bias.reshape(shape)


class Embedding(nn.Module):
    """torch.nn.Embedding: weight (num, features) initialised N(0, 1)."""

    num: int
    features: int

    @nn.compact
    def __call__(self, idx):
        return self.param("weight", nn.initializers.normal(1.0), (self.num, self.features))[idx]


def conv3(features: int, name: str, stride: int = 1) -> Conv2d:
    return Conv2d(features, kernel=3, stride=stride, padding=1, name=name)


class ResBlock(nn.Module):
    features: int
    groups: int

    @nn.compact
    def __call__(self, x, emb):
        h = conv3(self.features, "conv1")(jax.nn.silu(GroupNorm(self.groups, name="norm1")(x)))
        h = h + Linear(self.features, name="emb")(jax.nn.silu(emb))[:, :, None, None]
        h = conv3(self.features, "conv2")(jax.nn.silu(GroupNorm(self.groups, name="norm2")(h)))
        skip = Conv2d(self.features, kernel=1, stride=1, padding=0, name="skip")(x) if x.shape[1] != self.features else x
        return skip + h


class Attention(nn.Module):
    groups: int

    @nn.compact
    def __call__(self, x):
        b, c, h, w = x.shape
        tokens = GroupNorm(self.groups, name="norm")(x).reshape(b, c, h * w).transpose(0, 2, 1)
        q, k, v = jnp.split(Linear(3 * c, name="qkv")(tokens), 3, axis=-1)
        weights = jax.nn.softmax(q @ k.transpose(0, 2, 1) / math.sqrt(c), axis=-1)
        out = Linear(c, name="proj")(weights @ v)
        return x + out.transpose(0, 2, 1).reshape(b, c, h, w)


class Upsample(nn.Module):
    features: int

    @nn.compact
    def __call__(self, x):
        x = jnp.repeat(jnp.repeat(x, 2, axis=2), 2, axis=3)
        return conv3(self.features, "conv")(x)


class UNet(nn.Module):
    """torch_unet.UNet in Flax; same arguments."""

    shape: tuple
    base: int
    channel_mult: tuple = (1, 2, 4)
    res_blocks: int = 2
    attn_resolutions: tuple = (16,)
    mid_attention: bool = True
    num_classes: int = 0
    norm_groups: int = 8

    @nn.compact
    def __call__(self, x, t, y=None):
        check_unet_shape(self.shape, self.channel_mult)
        base, groups, emb_dim = self.base, self.norm_groups, 4 * self.base
        emb = sinusoidal_features(t.astype(x.dtype), base)
        emb = Linear(emb_dim, name="time_mlp_2")(jax.nn.silu(Linear(emb_dim, name="time_mlp_0")(emb)))
        if self.num_classes:
            emb = emb + Embedding(self.num_classes + 1, emb_dim, name="class_emb")(y)
        h = conv3(base, "conv_in")(x)
        hs = [h]
        res, i = self.shape[1], 0
        for level, mult in enumerate(self.channel_mult):
            for _ in range(self.res_blocks):
                h = ResBlock(base * mult, groups, name=f"down_{i}")(h, emb)
                i += 1
                if res in self.attn_resolutions:
                    h = Attention(groups, name=f"down_{i}")(h)
                    i += 1
                hs.append(h)
            if level != len(self.channel_mult) - 1:
                h = conv3(h.shape[1], f"down_{i}", stride=2)(h)
                i += 1
                res //= 2
                hs.append(h)
        ch = h.shape[1]
        mid = [ResBlock(ch, groups, name="mid_0")]
        if self.mid_attention:
            mid.append(Attention(groups, name="mid_1"))
        mid.append(ResBlock(ch, groups, name=f"mid_{len(mid)}"))
        for layer in mid:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
        i = 0
        for level in reversed(range(len(self.channel_mult))):
            for _ in range(self.res_blocks + 1):
                h = ResBlock(base * self.channel_mult[level], groups, name=f"up_{i}")(
                    jnp.concatenate([h, hs.pop()], axis=1), emb)
                i += 1
                if res in self.attn_resolutions:
                    h = Attention(groups, name=f"up_{i}")(h)
                    i += 1
            if level != 0:
                h = Upsample(h.shape[1], name=f"up_{i}")(h)
                i += 1
                res *= 2
        return conv3(self.shape[0], "conv_out")(jax.nn.silu(GroupNorm(groups, name="norm_out")(h)))


class ConditionalMLP(nn.Module):
    """torch_diffusion.ConditionalMLP: MLP on [x, time features, class embedding]."""

    dim: int
    width: int
    depth: int
    time_features: int
    num_classes: int = 0

    @nn.compact
    def __call__(self, x, t, y=None):
        parts = [x.reshape(x.shape[0], -1), sinusoidal_features(t.astype(x.dtype), self.time_features)]
        if self.num_classes:
            parts.append(Embedding(self.num_classes + 1, self.time_features, name="class_emb")(y))
        h = jnp.concatenate(parts, axis=1)
        for i in range(self.depth):
            h = jax.nn.silu(Linear(self.width, name=f"net_{2 * i}")(h))
        return Linear(self.dim, name=f"net_{2 * self.depth}")(h).reshape(x.shape)


def host_init(net: nn.Module, example: tuple, seed: int) -> dict:
    """Initial parameters drawn on the host with numpy, by PyTorch's laws: Linear and
    Conv2d weight and bias U(+-1/sqrt(fan_in)) (fan_in = weight.shape[1:] product),
    GroupNorm (modules named ``norm*``) 1 and 0, Embedding (``class_emb``) N(0, 1).

    Why not ``net.init``: it runs the forward pass and one threefry graph per tensor,
    which XLA compiles in tens of seconds for the U-Net on a small CPU. Only the
    shapes are traced here (``jax.eval_shape``, nothing compiled).
    """
    shapes = jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), *example))["params"]
    rng = np.random.default_rng(int(seed))

    def fill(name: str, node) -> dict:
        if "weight" not in node or hasattr(node["weight"], "items"):
            return {k: fill(k, v) for k, v in sorted(node.items())}
        w = node["weight"].shape
        if name.startswith("norm"):
            out = {"weight": np.ones(w), "bias": np.zeros(node["bias"].shape)}
        elif name == "class_emb":
            out = {"weight": rng.standard_normal(w)}
        else:
            bound = 1.0 / math.sqrt(math.prod(w[1:]))
            out = {"weight": rng.uniform(-bound, bound, w), "bias": rng.uniform(-bound, bound, node["bias"].shape)}
        return {k: jnp.asarray(v, jnp.float32) for k, v in out.items()}

    return fill("", shapes)


def params_from_torch_state(state_dict: dict) -> dict:
    """A PyTorch backbone's state dict as these modules' params: ``down.3.conv1.weight``
    becomes params["down_3"]["conv1"]["weight"] (index parts join their parent)."""
    out: dict = {}
    for key, tensor in state_dict.items():
        parts: list[str] = []
        for part in key.split("."):
            if part.isdigit() and parts:
                parts[-1] = f"{parts[-1]}_{part}"
            else:
                parts.append(part)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = jnp.asarray(tensor.detach().cpu().numpy())
    return out
