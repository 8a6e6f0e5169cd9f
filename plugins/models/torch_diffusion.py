"""What the PyTorch diffusion/flow models share: one Model base whose process (flow or
ddpm, ``diffusion_process.py``) decides the corruption, the regression target and the
sampler (the networks and the sampling driver are torch_diffusion_nets.py).

One ``train_step``: draw noise and a time with the step's generator, corrupt the
batch, regress the process' target (mean squared error), one Adam step; no host
sync. Class-conditional models replace a label by "no label" (index num_classes)
with probability ``label_dropout``, so one network gives both halves of
classifier-free guidance.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from .diffusion_process import guided, make_process, per_example, sigma_per_example
from .diffusion_variants import check_conditioning, clip_range
from .torch_base import TorchModel, no_grad

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .torch_common import TorchState

# torch, torch_common and the networks (torch_diffusion_nets) are imported inside the
# methods, so the plugins register without loading PyTorch.


class TorchDiffusionBase(TorchModel):
    """Shared body of the PyTorch ddpm and rectified_flow plugins; a variant mixin
    (diffusion_variants.py) gives the name, Config and ``process_name``."""

    process_name: ClassVar[str]

    def init(self, data, seed: int) -> TorchState:
        import torch

        from .torch_common import TorchState, adam, build_seeded
        from .torch_diffusion_nets import build_backbone

        cfg = self.config
        self.process = make_process(self.process_name, cfg)
        self.plan = self.process.plan(cfg.sampler)
        self.shape = tuple(data.spec.shape)
        self.num_classes = check_conditioning(cfg, data.spec)
        self.clip_range = clip_range(cfg, data.spec)
        net = build_seeded(seed, lambda: build_backbone(cfg, data.spec)).to(data.device)
        if self.process_name == "ddpm":
            self.tables = torch.tensor(np.stack([self.process.sqrt_ab, self.process.sqrt_1m_ab]),
                                       dtype=torch.float32, device=data.device)
        return TorchState(net, adam(net.parameters(), cfg.lr))

    # ------------------------------------------------------------------ training
    def _labels(self, y, n: int, key: torch.Generator, device, dropout: float):
        if not self.num_classes:
            return None
        import torch

        null = torch.full((n,), self.num_classes, dtype=torch.long, device=device)
        if y is None:
            return null
        y = y.long()
        if dropout <= 0:
            return y
        drop = torch.rand(n, generator=key, device=device) < dropout
        return torch.where(drop, null, y)

    def _loss(self, net: nn.Module, batch, key: torch.Generator, dropout: float) -> torch.Tensor:
        import torch

        x = batch.x
        n, device = len(x), x.device
        eps = torch.randn(x.shape, generator=key, device=device, dtype=x.dtype)
        if self.process_name == "flow":
            t = torch.rand(n, generator=key, device=device, dtype=x.dtype)
            a, b = t, 1 - t
        else:
            k = torch.randint(self.process.cfg.T, (n,), generator=key, device=device)
            a, b = self.tables[0, k], self.tables[1, k]
            t = (k + 1).to(x.dtype) / self.process.cfg.T
        x_t = per_example(a, x) * x + per_example(b, x) * eps
        y = self._labels(batch.y, n, key, device, dropout)
        return ((net(x_t, t, y) - self.process.target(x, eps)) ** 2).mean()

    def train_step(self, state: TorchState, batch, key):
        from .torch_common import optimise

        loss = self._loss(state.net, batch, key, self.config.label_dropout)
        return state, {"loss": optimise(state.opt, loss)}

    @no_grad
    def heldout_loss(self, state: TorchState, batch, key) -> torch.Tensor:
        """The training objective on ``batch`` (labels kept as given), no update."""
        return self._loss(state.net, batch, key, 0.0)

    # ------------------------------------------------------------------ sampling
    def _predictor(self, net: nn.Module, y: torch.Tensor | None, n: int):
        import torch

        w = float(self.config.guidance)

        def predict(x, t):
            tt = torch.full((n,), t, device=x.device, dtype=x.dtype)
            if y is None or w == 0:
                return net(x, tt, y)
            null = torch.full_like(y, self.num_classes)
            cond, uncond = net(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([y, null])).chunk(2)
            return guided(cond, uncond, w)

        return predict

    @no_grad
    def sample(self, state: TorchState, n: int, key: torch.Generator) -> torch.Tensor:
        import torch

        from .torch_diffusion_nets import sample_plan

        device = next(state.net.parameters()).device
        y = torch.randint(self.num_classes, (n,), generator=key, device=device) if self.num_classes else None
        return sample_plan(self.plan, self._predictor(state.net, y, n), (n, *self.shape), key, device,
                           clip_range=self.clip_range)

    @no_grad
    def denoise(self, state: TorchState, x_noisy: torch.Tensor, sigma) -> torch.Tensor:
        """E[x | x_noisy = x + sigma * eps] (VE convention; sigma a float or one per
        example). The process rescales: x_t = a * x_noisy with a = 1 / (1 + sigma) (flow,
        t = a) or a = sqrt(abar) = 1 / sqrt(1 + sigma^2) (ddpm, timestep interpolated
        in log sigma), then converts the network's prediction to a clean estimate.
        Class-conditional models denoise without a label."""
        import torch

        n = len(x_noisy)
        sig = sigma_per_example(sigma, n)
        a_np, t_np = self.process.at_sigma(sig)
        a = per_example(torch.as_tensor(a_np, dtype=x_noisy.dtype, device=x_noisy.device), x_noisy)
        t = torch.as_tensor(t_np, dtype=x_noisy.dtype, device=x_noisy.device)
        y = (torch.full((n,), self.num_classes, dtype=torch.long, device=x_noisy.device)
             if self.num_classes else None)
        x_t = a * x_noisy
        return self.process.clean(x_t, state.net(x_t, t, y), a)
