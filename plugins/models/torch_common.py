"""Pieces shared by the built-in PyTorch models: backbones, time features, state I/O.

Layers keep PyTorch's default initialisation, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
weights and biases; jax_common reproduces it so both frameworks start alike.
"""
from __future__ import annotations

import io
import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import (ACTIVATIONS, ENCODER_ACT, KERNEL, LEAKY_SLOPE, PADDING, STRIDE, ConvPlan, check_choice,
                        conv_plan, decoder_act, resolve_backbone)
from .objectives import Ops

TORCH_OPS = Ops(exp=torch.exp, softplus=F.softplus, logsumexp=torch.logsumexp)


def sinusoidal_features(t: torch.Tensor, n: int, max_freq: float = 1000.0) -> torch.Tensor:
    """[sin, cos](t * f) for n/2 log-spaced frequencies in [1, max_freq]; t in [0, 1]."""
    half = n // 2
    freqs = torch.exp(torch.linspace(0.0, math.log(max_freq), half, device=t.device, dtype=t.dtype))
    angles = t.reshape(-1, 1) * freqs
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def activation(name: str) -> nn.Module:
    """The module for one of backbones.ACTIVATIONS."""
    check_choice(name, ACTIVATIONS, "activation")
    return {"silu": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh, "identity": nn.Identity,
            "leaky_relu": lambda: nn.LeakyReLU(LEAKY_SLOPE)}[name]()


def mlp(d_in: int, width: int, depth: int, d_out: int, act: str = "silu") -> nn.Sequential:
    """depth hidden layers of ``width`` with activation ``act``; PyTorch's default init."""
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(depth):
        layers += [nn.Linear(d, width), activation(act)]
        d = width
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, d_out): stride-2 convs down to the plan's base, then a dense layer."""

    def __init__(self, plan: ConvPlan, d_out: int, act: str = "leaky_relu"):
        super().__init__()
        layers: list[nn.Module] = []
        c = plan.in_channels
        for ch in plan.channels:
            layers += [nn.Conv2d(c, ch, KERNEL, STRIDE, PADDING), activation(act)]
            c = ch
        layers += [nn.Flatten(), nn.Linear(plan.flat, d_out)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvGenerator(nn.Module):
    """(B, d_in) -> (B, C, H, W): a dense layer to the plan's base, then transposed convs."""

    def __init__(self, d_in: int, plan: ConvPlan, act: str = "relu", out_act: str = "identity"):
        super().__init__()
        ch = plan.channels
        layers: list[nn.Module] = [nn.Linear(d_in, plan.flat), activation(act),
                                   nn.Unflatten(1, (ch[-1], *plan.base))]
        for i in range(len(ch) - 1, 0, -1):
            layers += [nn.ConvTranspose2d(ch[i], ch[i - 1], KERNEL, STRIDE, PADDING), activation(act)]
        layers += [nn.ConvTranspose2d(ch[0], plan.in_channels, KERNEL, STRIDE, PADDING), activation(out_act)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def encoder(shape: tuple, d_out: int, width: int, depth: int, backbone: str,
            act: str = "leaky_relu") -> nn.Module:
    """(B, *shape) -> (B, d_out) with a resolved backbone (mlp flattens its input)."""
    if backbone == "conv":
        return ConvEncoder(conv_plan(shape, width), d_out, act)
    return nn.Sequential(nn.Flatten(), mlp(math.prod(shape), width, depth, d_out, act))


def generator(d_in: int, shape: tuple, width: int, depth: int, backbone: str,
              act: str = "relu", out_act: str = "identity") -> nn.Module:
    """(B, d_in) -> (B, *shape) with a resolved backbone; ``out_act`` on the output."""
    if backbone == "conv":
        return ConvGenerator(d_in, conv_plan(shape, width), act, out_act)
    return nn.Sequential(mlp(d_in, width, depth, math.prod(shape), act), activation(out_act),
                         nn.Unflatten(1, tuple(shape)))


def autoencoder(cfg, shape: tuple, code_dim: int) -> nn.ModuleDict:
    """``enc`` (data -> code_dim) and ``dec`` (cfg.latent_dim -> data, no output
    activation) for the VAE and WAE models; cfg has latent_dim, width, depth, backbone."""
    backbone = resolve_backbone(cfg.backbone, shape)
    return nn.ModuleDict({
        "enc": encoder(shape, code_dim, cfg.width, cfg.depth, backbone, ENCODER_ACT),
        "dec": generator(cfg.latent_dim, shape, cfg.width, cfg.depth, backbone, decoder_act(backbone)),
    })


def adam(params, lr: float, betas: tuple = (0.9, 0.999), eps: float = 1e-8) -> torch.optim.Adam:
    """The optimiser every built-in model uses (jax_common.adam is its twin)."""
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), eps=eps)


@dataclass
class TorchState:
    """A network and its optimiser; the core treats it as opaque."""

    net: nn.Module
    opt: torch.optim.Optimizer
    extra: dict | None = None


@dataclass
class TorchNets:
    """Several networks, each with its own optimiser (a GAN's generator and critic)."""

    nets: nn.ModuleDict
    opts: dict[str, torch.optim.Optimizer]

    def __getitem__(self, name: str) -> nn.Module:
        return self.nets[name]


def optimise(opt: torch.optim.Optimizer, loss: torch.Tensor) -> torch.Tensor:
    """One update of ``opt`` on ``loss``; returns the loss, detached, for the logs."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


@contextmanager
def requires_grad(module: nn.Module, flag: bool):
    """Temporarily switch a network's parameters' ``requires_grad`` (e.g. freeze the
    critic during the generator's update so no gradients are computed for it)."""
    params = list(module.parameters())
    for p in params:
        p.requires_grad_(flag)
    try:
        yield module
    finally:
        for p in params:
            p.requires_grad_(not flag)


def build_seeded(seed: int, factory) -> Any:
    """Create modules under a private RNG so initialisation depends on ``seed`` only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def save_state(state: TorchState | TorchNets) -> bytes:
    buf = io.BytesIO()
    if isinstance(state, TorchNets):
        payload = {"nets": state.nets.state_dict(), "opts": {k: o.state_dict() for k, o in state.opts.items()}}
    else:
        payload = {"net": state.net.state_dict(), "opt": state.opt.state_dict()}
    torch.save(payload, buf)
    return buf.getvalue()


def load_state(state: TorchState | TorchNets, blob: bytes) -> TorchState | TorchNets:
    """Load a checkpoint without unpickling arbitrary objects (weights_only=True)."""
    module = state.nets if isinstance(state, TorchNets) else state.net
    device = next(module.parameters()).device
    payload = torch.load(io.BytesIO(blob), map_location=device, weights_only=True)
    if isinstance(state, TorchNets):
        state.nets.load_state_dict(payload["nets"])
        for name, opt in state.opts.items():
            opt.load_state_dict(payload["opts"][name])
    else:
        state.net.load_state_dict(payload["net"])
        state.opt.load_state_dict(payload["opt"])
    return state


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
