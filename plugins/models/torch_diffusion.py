"""What the PyTorch diffusion/flow models share: the backbones, the sampling driver
and one Model base whose process (flow or ddpm, ``diffusion_process.py``) decides the
corruption, the regression target and the sampler.

One ``train_step``: draw noise and a time with the step's generator, corrupt the
batch, regress the process' target (mean squared error), one Adam step; no host
sync. Class-conditional models replace a label by "no label" (index num_classes)
with probability ``label_dropout``, so one network gives both halves of
classifier-free guidance.
"""
from __future__ import annotations

from typing import Callable, ClassVar

import numpy as np
import torch
from torch import nn

from .diffusion_process import guided, integrate, make_process, per_example, python_loop, sigma_per_example
from .diffusion_variants import backbone_args, check_conditioning, clip_range
from .torch_common import TorchModel, TorchState, adam, build_seeded, mlp, optimise, sinusoidal_features
from .torch_fleet import Solo, TorchFleet
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


def sample_plan(plan, predict: Callable, shape: tuple, draw: Callable, device, dtype=torch.float32,
                clip_range: tuple | None = None) -> torch.Tensor:
    """Run a sampler plan from standard normal noise (the torch driver of
    ``diffusion_process.integrate``; also used by empirical_denoiser). ``draw(f)``
    calls ``f(generator)`` (a view's ``draw``: one run's key, or each fleet member's,
    stacked); ``shape`` is one run's; ``clip_range`` bounds DDPM's clean estimates."""
    def gaussian(key):
        return torch.randn(shape, generator=key, device=device, dtype=dtype)

    clip = None if clip_range is None else (lambda v: torch.clamp(v, *clip_range))
    return integrate(plan, draw(gaussian), predict, lambda i, like: draw(gaussian), python_loop, plan.at, clip)


class TorchDiffusionBase(TorchModel):
    """Shared body of the PyTorch ddpm and rectified_flow plugins; a variant mixin
    (diffusion_variants.py) gives the name, Config and ``process_name``."""

    process_name: ClassVar[str]

    def init(self, data, seed: int) -> TorchState:
        cfg = self.config
        self.process = make_process(self.process_name, cfg)
        self.plan = self.process.plan(cfg.sampler)
        self.shape = tuple(data.spec.shape)
        self.num_classes = check_conditioning(cfg, data.spec)
        self.clip_range = clip_range(cfg, data.spec)
        net = build_seeded(seed, lambda: build_backbone(cfg, data.spec)).to(data.device)
        self.device, self._template = data.device, net
        if self.process_name == "ddpm":
            self.tables = torch.tensor(np.stack([self.process.sqrt_ab, self.process.sqrt_1m_ab]),
                                       dtype=torch.float32, device=data.device)
        return TorchState(net, adam(net.parameters(), cfg.lr))

    # ------------------------------------------------------------------ training
    def _labels(self, y, n: int, drop, device):
        if not self.num_classes:
            return None
        null = torch.full((n,), self.num_classes, dtype=torch.long, device=device)
        if y is None:
            return null
        y = y.long()
        return y if drop is None else torch.where(drop, null, y)

    def _noise(self, key: torch.Generator, x: torch.Tensor, y, dropout: float) -> tuple:
        """A step's randomness (noise, time, label dropout), drawn from ``key`` in a fixed order."""
        n, device = len(x), x.device
        eps = torch.randn(x.shape, generator=key, device=device, dtype=x.dtype)
        if self.process_name == "flow":
            time = torch.rand(n, generator=key, device=device, dtype=x.dtype)
        else:
            time = torch.randint(self.process.cfg.T, (n,), generator=key, device=device)
        drop = None
        if self.num_classes and y is not None and dropout > 0:
            drop = torch.rand(n, generator=key, device=device) < dropout
        return eps, time, drop

    def _objective(self, net: nn.Module, x: torch.Tensor, y, noise: tuple) -> torch.Tensor:
        eps, time, drop = noise
        if self.process_name == "flow":
            t = time
            a, b = t, 1 - t
        else:
            a, b = self.tables[0, time], self.tables[1, time]
            t = (time + 1).to(x.dtype) / self.process.cfg.T
        x_t = per_example(a, x) * x + per_example(b, x) * eps
        y = self._labels(y, len(x), drop, x.device)
        return ((net(x_t, t, y) - self.process.target(x, eps)) ** 2).mean()

    def _loss(self, view, batch, dropout: float) -> torch.Tensor:
        """The training objective through ``view`` (torch_fleet.Solo or FleetView)."""
        noise = view.draw(lambda key, x, y: self._noise(key, x, y, dropout), batch.x, batch.y)
        return view.apply(self._objective, batch.x, batch.y, noise)

    def train_step(self, state: TorchState, batch, key):
        loss = self._loss(Solo(state.net, key), batch, self.config.label_dropout)
        return state, {"loss": optimise(state.opt, loss)}

    @torch.no_grad()
    def heldout_loss(self, state: TorchState, batch, key) -> torch.Tensor:
        """The training objective on ``batch`` (labels kept as given), no update."""
        return self._loss(Solo(state.net, key), batch, 0.0)

    def fleet(self, members: list) -> TorchFleet:
        """Members may differ in seed, data and ``lr`` (fleet_varying)."""
        dropout = self.config.label_dropout
        return TorchFleet(self._template, lambda view, batch: self._loss(view, batch, dropout), self._sample)

    # ------------------------------------------------------------------ sampling
    def _predictor(self, net: nn.Module, y: torch.Tensor | None, n: int):
        w = float(self.config.guidance)

        def predict(x, t):
            tt = torch.full((n,), t, device=x.device, dtype=x.dtype)
            if y is None or w == 0:
                return net(x, tt, y)
            null = torch.full_like(y, self.num_classes)
            cond, uncond = net(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y, null])).chunk(2)
            return guided(cond, uncond, w)

        return predict

    def _sample(self, view, n: int) -> torch.Tensor:
        """``n`` samples through ``view``: labels first, then the sampler's noise, from each key."""
        device = self.device
        y = None
        if self.num_classes:
            y = view.draw(lambda key: torch.randint(self.num_classes, (n,), generator=key, device=device))

        def predict(x, t):
            return view.apply(lambda net, x, y: self._predictor(net, y, n)(x, t), x, y)

        return sample_plan(self.plan, predict, (n, *self.shape), view.draw, device, clip_range=self.clip_range)

    @torch.no_grad()
    def sample(self, state: TorchState, n: int, key: torch.Generator) -> torch.Tensor:
        return self._sample(Solo(state.net, key), n)

    @torch.no_grad()
    def denoise(self, state: TorchState, x_noisy: torch.Tensor, sigma) -> torch.Tensor:
        """E[x | x_noisy = x + sigma * eps] (VE convention; sigma a float or one per
        example). The process rescales: x_t = a * x_noisy with a = 1 / (1 + sigma) (flow,
        t = a) or a = sqrt(abar) = 1 / sqrt(1 + sigma^2) (ddpm, timestep interpolated
        in log sigma), then converts the network's prediction to a clean estimate.
        Class-conditional models denoise without a label."""
        n = len(x_noisy)
        sig = sigma_per_example(sigma, n)
        a_np, t_np = self.process.at_sigma(sig)
        a = per_example(torch.as_tensor(a_np, dtype=x_noisy.dtype, device=x_noisy.device), x_noisy)
        t = torch.as_tensor(t_np, dtype=x_noisy.dtype, device=x_noisy.device)
        y = (torch.full((n,), self.num_classes, dtype=torch.long, device=x_noisy.device)
             if self.num_classes else None)
        x_t = a * x_noisy
        return self.process.clean(x_t, state.net(x_t, t, y), a)
