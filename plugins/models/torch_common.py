"""Pieces shared by the built-in PyTorch models: MLPs, time features, state I/O."""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


def sinusoidal_features(t: torch.Tensor, n: int, max_freq: float = 1000.0) -> torch.Tensor:
    """[sin, cos](t * f) for n/2 log-spaced frequencies in [1, max_freq]; t in [0, 1]."""
    half = n // 2
    freqs = torch.exp(torch.linspace(0.0, math.log(max_freq), half, device=t.device, dtype=t.dtype))
    angles = t.reshape(-1, 1) * freqs
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def mlp(d_in: int, width: int, depth: int, d_out: int) -> nn.Sequential:
    """depth hidden layers of ``width`` with SiLU; PyTorch's default initialisation."""
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.SiLU()]
        d = width
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


@dataclass
class TorchState:
    """A network and its optimiser; the core treats it as opaque."""

    net: nn.Module
    opt: torch.optim.Optimizer
    extra: dict | None = None


def build_seeded(seed: int, factory) -> Any:
    """Create modules under a private RNG so initialisation depends on ``seed`` only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


def save_state(state: TorchState) -> bytes:
    buf = io.BytesIO()
    torch.save({"net": state.net.state_dict(), "opt": state.opt.state_dict()}, buf)
    return buf.getvalue()


def load_state(state: TorchState, blob: bytes) -> TorchState:
    """Load a checkpoint without unpickling arbitrary objects (weights_only=True)."""
    device = next(state.net.parameters()).device
    payload = torch.load(io.BytesIO(blob), map_location=device, weights_only=True)
    state.net.load_state_dict(payload["net"])
    state.opt.load_state_dict(payload["opt"])
    return state


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
