"""Pieces shared by the built-in JAX/Flax models: the twins of torch_common.

Same layers, same parameter layouts and same initialisation as PyTorch, so a JAX
model and its PyTorch twin are one architecture: ``Linear`` keeps PyTorch's
(out, in) weight, convolutions run in NCHW with OIHW / (in, out, k, k) weights, and
every weight and bias starts U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with PyTorch's
fan_in (for a transposed conv that is out_channels * k * k, as in PyTorch).

This module imports jax, flax and optax at the top: model plugins import it lazily,
inside their methods, so they still register when jax is not installed.

State convention for the JAX models: a pytree (nested dicts of arrays plus optax
states), e.g. ``{"params": ..., "opt": ...}``; the train step is one ``jax.jit`` over
(state, batch, key). Checkpoints go through flax.serialization (msgpack), never
pickle.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import serialization

from .backbones import (ACTIVATIONS, ENCODER_ACT, KERNEL, LEAKY_SLOPE, PADDING, STRIDE, ConvPlan, check_choice,
                        conv_plan, decoder_act, resolve_backbone)
from .objectives import Ops

JAX_OPS = Ops(exp=jnp.exp, softplus=jax.nn.softplus, logsumexp=jax.nn.logsumexp)

_CONV_DIMS = ("NCHW", "OIHW", "NCHW")


# ------------------------------------------------------------------------- layers


def torch_uniform(bound: float) -> Callable:
    """Initializer U(-bound, bound); PyTorch's default for Linear/Conv uses 1/sqrt(fan_in)."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def activation(name: str) -> Callable:
    """The function for one of backbones.ACTIVATIONS (same names as torch_common)."""
    check_choice(name, ACTIVATIONS, "activation")
    return {"silu": jax.nn.silu, "relu": jax.nn.relu, "tanh": jnp.tanh, "identity": lambda x: x,
            "leaky_relu": lambda x: jax.nn.leaky_relu(x, LEAKY_SLOPE)}[name]


class Linear(nn.Module):
    """torch.nn.Linear: weight (out, in), y = x W^T + b, PyTorch's default init."""

    features: int

    @nn.compact
    def __call__(self, x):
        weight, bias = _torch_layer_params(self, (self.features, x.shape[-1]), x.shape[-1])
        return x @ weight.T + bias


def _torch_layer_params(module: nn.Module, weight_shape: tuple, fan_in: int):
    """A layer's ``weight`` and ``bias`` (bias size = weight_shape[0]) with PyTorch's init."""
    init = torch_uniform(1.0 / math.sqrt(fan_in))
    return module.param("weight", init, weight_shape), module.param("bias", init, (weight_shape[0],))


class Conv2d(nn.Module):
    """torch.nn.Conv2d on NCHW input, weight (out, in, k, k), PyTorch's default init."""

    features: int
    kernel: int = KERNEL
    stride: int = STRIDE
    padding: int = PADDING

    @nn.compact
    def __call__(self, x):
        c_in, k, p = x.shape[1], self.kernel, self.padding
        weight, bias = _torch_layer_params(self, (self.features, c_in, k, k), c_in * k * k)
        y = jax.lax.conv_general_dilated(x, weight, (self.stride, self.stride), [(p, p), (p, p)],
                                         dimension_numbers=_CONV_DIMS)
        return y + bias[:, None, None]


class ConvTranspose2d(Conv2d):
    """torch.nn.ConvTranspose2d on NCHW input, weight (in, out, k, k), PyTorch's init.

    Computed as the gradient-of-conv identity: dilate the input by the stride, pad by
    k - 1 - padding, and convolve with the spatially flipped, in/out-swapped kernel.
    """

    @nn.compact
    def __call__(self, x):
        c_in, k = x.shape[1], self.kernel
        weight = self.param("weight", torch_uniform(1.0 / math.sqrt(self.features * k * k)),
                            (c_in, self.features, k, k))
        bias = self.param("bias", torch_uniform(1.0 / math.sqrt(self.features * k * k)), (self.features,))
        kernel = jnp.flip(weight, (2, 3)).transpose(1, 0, 2, 3)
        q = k - 1 - self.padding
        y = jax.lax.conv_general_dilated(x, kernel, (1, 1), [(q, q), (q, q)],
                                         lhs_dilation=(self.stride, self.stride),
                                         dimension_numbers=_CONV_DIMS)
        return y + bias[:, None, None]


# ---------------------------------------------------------------------- backbones


def layer_name(i: int) -> str:
    """Submodule names that sort in creation order (JAX tree ops sort dict keys), so
    ``torch_ordered_leaves`` lines parameters up with PyTorch's ``parameters()``."""
    return f"layer{i:03d}"


class MLP(nn.Module):
    """torch_common.mlp: ``depth`` hidden Linear layers of ``width`` with ``act``, then
    a Linear to ``d_out``."""

    width: int
    depth: int
    d_out: int
    act: str = "silu"

    @nn.compact
    def __call__(self, x):
        f = activation(self.act)
        for i in range(self.depth):
            x = f(Linear(self.width, name=layer_name(i))(x))
        return Linear(self.d_out, name=layer_name(self.depth))(x)


class MLPNet(nn.Module):
    """Flatten (B, ...) input, MLP, ``out_act``, reshape to (B, *out_shape): the vector
    backbone of torch_common.encoder / torch_common.generator."""

    width: int
    depth: int
    out_shape: tuple
    act: str = "silu"
    out_act: str = "identity"

    @nn.compact
    def __call__(self, x):
        y = MLP(self.width, self.depth, math.prod(self.out_shape), self.act, name="mlp")(
            x.reshape(x.shape[0], -1))
        return activation(self.out_act)(y).reshape(x.shape[0], *self.out_shape)


class ConvEncoder(nn.Module):
    """torch_common.ConvEncoder: (B, C, H, W) -> (B, d_out)."""

    plan: ConvPlan
    d_out: int
    act: str = "leaky_relu"

    @nn.compact
    def __call__(self, x):
        f = activation(self.act)
        for i, ch in enumerate(self.plan.channels):
            x = f(Conv2d(ch, name=layer_name(i))(x))
        return Linear(self.d_out, name=layer_name(self.plan.levels))(x.reshape(x.shape[0], -1))


class ConvGenerator(nn.Module):
    """torch_common.ConvGenerator: (B, d_in) -> (B, C, H, W)."""

    plan: ConvPlan
    act: str = "relu"
    out_act: str = "identity"

    @nn.compact
    def __call__(self, z):
        f = activation(self.act)
        ch = self.plan.channels
        x = f(Linear(self.plan.flat, name=layer_name(0))(z)).reshape(z.shape[0], ch[-1], *self.plan.base)
        for i in range(len(ch) - 1, 0, -1):
            x = f(ConvTranspose2d(ch[i - 1], name=layer_name(len(ch) - i))(x))
        out = ConvTranspose2d(self.plan.in_channels, name=layer_name(len(ch)))(x)
        return activation(self.out_act)(out)


def encoder(shape: tuple, d_out: int, width: int, depth: int, backbone: str,
            act: str = "leaky_relu") -> nn.Module:
    """(B, *shape) -> (B, d_out); twin of torch_common.encoder."""
    if backbone == "conv":
        return ConvEncoder(conv_plan(shape, width), d_out, act)
    return MLPNet(width, depth, (d_out,), act)


def generator(d_in: int, shape: tuple, width: int, depth: int, backbone: str,
              act: str = "relu", out_act: str = "identity") -> nn.Module:
    """(B, d_in) -> (B, *shape); twin of torch_common.generator (d_in is implied by input)."""
    if backbone == "conv":
        return ConvGenerator(conv_plan(shape, width), act, out_act)
    return MLPNet(width, depth, tuple(shape), act, out_act)


def autoencoder(cfg, shape: tuple, code_dim: int) -> tuple[nn.Module, nn.Module]:
    """(enc, dec) for the VAE and WAE models; twin of torch_common.autoencoder
    (enc: data -> code_dim, dec: cfg.latent_dim -> data, no output activation)."""
    backbone = resolve_backbone(cfg.backbone, shape)
    return (encoder(shape, code_dim, cfg.width, cfg.depth, backbone, ENCODER_ACT),
            generator(cfg.latent_dim, shape, cfg.width, cfg.depth, backbone, decoder_act(backbone)))


def init_autoencoder(enc: nn.Module, dec: nn.Module, key, shape: tuple, latent_dim: int) -> dict:
    """``{"enc": ..., "dec": ...}`` parameters of an ``autoencoder``."""
    k_enc, k_dec = jax.random.split(key)
    return {"enc": init_params(enc, k_enc, jnp.zeros((1, *shape))),
            "dec": init_params(dec, k_dec, jnp.zeros((1, latent_dim)))}


def sinusoidal_features(t, n: int, max_freq: float = 1000.0):
    """[sin, cos](t * f) for n/2 log-spaced frequencies in [1, max_freq]; t in [0, 1].
    Twin of torch_common.sinusoidal_features."""
    half = n // 2
    freqs = jnp.exp(jnp.linspace(0.0, math.log(max_freq), half, dtype=t.dtype))
    angles = t.reshape(-1, 1) * freqs
    return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=1)


# -------------------------------------------------------------------------- state


def init_key(seed: int):
    """A PRNG key from a (possibly 63-bit) integer seed, using all of its bits."""
    seed = int(seed)
    return jax.random.fold_in(jax.random.PRNGKey(seed & 0xFFFFFFFF), (seed >> 32) & 0x7FFFFFFF)


def init_params(module: nn.Module, key, *example_inputs, device=None) -> dict:
    """The module's parameters (the ``params`` collection), on ``device`` when given."""
    params = module.init(key, *example_inputs)["params"]
    return jax.device_put(params, device) if device is not None else params


def adam(lr: float, betas: tuple = (0.9, 0.999), eps: float = 1e-8) -> optax.GradientTransformation:
    """torch.optim.Adam's update (eps added to sqrt(v_hat)): twin of torch_common.adam."""
    return optax.adam(lr, b1=betas[0], b2=betas[1], eps=eps)


def adam_state(params, tx: optax.GradientTransformation) -> dict:
    """``{"params", "opt"}``: one network and its optimiser state, a pytree."""
    return {"params": params, "opt": tx.init(params)}


def apply_grads(tx: optax.GradientTransformation, sub: dict, grads) -> dict:
    """One optimiser step on a ``{"params", "opt"}`` pytree; returns the new one."""
    updates, opt = tx.update(grads, sub["opt"], sub["params"])
    return {"params": optax.apply_updates(sub["params"], updates), "opt": opt}


def save_tree(tree: Any) -> bytes:
    """Serialize a state pytree with flax.serialization (msgpack, no pickle)."""
    return serialization.to_bytes(jax.device_get(tree))


def load_tree(template: Any, blob: bytes, device=None) -> Any:
    """Restore ``blob`` into the structure of ``template`` (a freshly initialised state)."""
    tree = serialization.from_bytes(jax.device_get(template), blob)
    return jax.device_put(tree, device) if device is not None else tree


def param_count(params: Any) -> int:
    return int(sum(leaf.size for leaf in jax.tree_util.tree_leaves(params)))


def params_from_torch(template: dict, module) -> dict:
    """``template``'s structure filled with a PyTorch module's parameters, in order.

    Pairs ``torch_ordered_leaves(template)`` with ``module.parameters()``: for tests
    that check a JAX network computes exactly its torch twin.
    """
    tensors = [p.detach().cpu().numpy() for p in module.parameters()]
    paths = [path for path, _ in torch_ordered_leaves(template)]
    if len(paths) != len(tensors):
        raise ValueError(f"the JAX template has {len(paths)} parameter arrays, the torch module {len(tensors)}")
    out = jax.tree_util.tree_map(lambda a: a, template)  # a copy to fill in
    for i, (path, tensor) in enumerate(zip(paths, tensors)):
        node = out
        for key in path[:-1]:
            node = node[key]
        if tuple(node[path[-1]].shape) != tensor.shape:
            raise ValueError(f"parameter {'/'.join(path)}: JAX shape {tuple(node[path[-1]].shape)} "
                             f"!= torch shape {tensor.shape} (torch parameter {i})")
        node[path[-1]] = jnp.asarray(tensor)
    return out


def torch_ordered_leaves(tree: dict, prefix: tuple = ()) -> list[tuple[tuple, Any]]:
    """(path, array) in PyTorch's ``parameters()`` order: keys sorted (see
    ``layer_name``), and within a layer ``weight`` before ``bias``."""
    rank = {"weight": 0, "bias": 1}
    out = []
    for key in sorted(tree, key=lambda k: (rank.get(k, -1), k)):
        value = tree[key]
        if isinstance(value, dict):
            out.extend(torch_ordered_leaves(value, prefix + (key,)))
        else:
            out.append((prefix + (key,), value))
    return out
