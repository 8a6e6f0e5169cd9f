"""Rectified flow / flow matching in PyTorch with an MLP velocity field.

x_t = (1 - t) x0 + t x1 with x0 ~ N(0, I) and x1 a data point; the network regresses
the velocity x1 - x0 (Liu et al. 2023; Lipman et al. 2023). Sampling integrates
dx/dt = v(x, t) from t = 0 to 1 with Euler or Heun steps, from the core's fixed
noise, so every evaluation of a run starts from the same x0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from benchbase import Model, hookimpl

from .torch_common import TorchState, build_seeded, load_state, mlp, param_count, save_state, sinusoidal_features


@dataclass
class RectifiedFlowConfig:
    width: int = 256  # hidden units per layer (the model-size knob)
    depth: int = 3  # hidden layers
    time_features: int = 32  # sinusoidal features of t fed with x
    lr: float = 1e-3  # Adam learning rate (betas 0.9, 0.999)
    sample_steps: int = 50  # integration steps when sampling
    sampler: str = "euler"  # euler | heun


class VelocityMLP(nn.Module):
    def __init__(self, dim: int, cfg: RectifiedFlowConfig):
        super().__init__()
        self.time_features = cfg.time_features
        self.net = mlp(dim + cfg.time_features, cfg.width, cfg.depth, dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, sinusoidal_features(t, self.time_features)], dim=1))


class TorchRectifiedFlow(Model):
    """Rectified flow (velocity prediction) with an MLP; Euler or Heun sampling."""

    name = "rectified_flow"
    family = "flow"
    framework = "torch"
    Config = RectifiedFlowConfig
    capabilities = frozenset({"heldout_loss", "denoise"})

    def init(self, data, seed: int) -> TorchState:
        if self.config.sampler not in ("euler", "heun"):
            raise ValueError(f"sampler must be euler or heun, got '{self.config.sampler}'")
        self.shape = tuple(data.spec.shape)
        self.dim = data.spec.dim
        net = build_seeded(seed, lambda: VelocityMLP(self.dim, self.config)).to(data.device)
        opt = torch.optim.Adam(net.parameters(), lr=self.config.lr)
        return TorchState(net, opt)

    def _loss(self, net: nn.Module, x1: torch.Tensor, key: torch.Generator) -> torch.Tensor:
        x1 = x1.reshape(len(x1), -1)
        x0 = torch.randn(x1.shape, generator=key, device=x1.device)
        t = torch.rand(len(x1), generator=key, device=x1.device)
        xt = x0 + t[:, None] * (x1 - x0)
        return ((net(xt, t) - (x1 - x0)) ** 2).mean()

    def train_step(self, state: TorchState, batch, key):
        loss = self._loss(state.net, batch.x, key)
        state.opt.zero_grad(set_to_none=True)
        loss.backward()
        state.opt.step()
        return state, {"loss": loss.detach()}

    @torch.no_grad()
    def heldout_loss(self, state: TorchState, batch, key) -> torch.Tensor:
        return self._loss(state.net, batch.x, key)

    @torch.no_grad()
    def sample(self, state: TorchState, n: int, key: torch.Generator) -> torch.Tensor:
        net = state.net
        device = next(net.parameters()).device
        x = torch.randn((n, self.dim), generator=key, device=device)
        steps = self.config.sample_steps
        dt = 1.0 / steps
        for i in range(steps):
            t = torch.full((n,), i * dt, device=device)
            v = net(x, t)
            if self.config.sampler == "heun":
                x_next = x + dt * v
                v = 0.5 * (v + net(x_next, t + dt))
            x = x + dt * v
        return x.reshape(n, *self.shape)

    @torch.no_grad()
    def denoise(self, state: TorchState, x_noisy: torch.Tensor, sigma: float) -> torch.Tensor:
        """E[x | x + sigma * eps]. With t = 1 / (1 + sigma), x_t = t * x_noisy is the flow's
        state at time t, and its clean estimate is x_t + (1 - t) v(x_t, t)."""
        flat = x_noisy.reshape(len(x_noisy), -1)
        t = 1.0 / (1.0 + float(sigma))
        x_t = t * flat
        tt = torch.full((len(flat),), t, dtype=flat.dtype, device=flat.device)
        return (x_t + (1 - t) * state.net(x_t, tt)).reshape(x_noisy.shape)

    def save(self, state: TorchState) -> bytes:
        return save_state(state)

    def load(self, blob: bytes, data) -> TorchState:
        return load_state(self.init(data, 0), blob)

    def param_count(self, state: TorchState) -> int:
        return param_count(state.net)


@hookimpl
def benchbase_register_models(register):
    register(TorchRectifiedFlow)
