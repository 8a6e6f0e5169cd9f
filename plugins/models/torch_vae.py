"""Variational autoencoder in PyTorch (Kingma & Welling 2014); twin of jax_vae.py.

The encoder outputs (mu, log variance) of a Gaussian q(z | x); the decoder outputs
the means (Gaussian, fixed std) or logits (Bernoulli) of p(x | z). Losses come from
objectives.py. A step spends one batch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from benchbase import hookimpl

from .objectives import iwae_log_likelihood, neg_elbo
from .torch_base import TorchModel, no_grad
from .variants import VAEVariant
from .zoo_configs import VAEConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .torch_common import TorchState
    from .torch_fleet import TorchFleet

# torch, torch_common and torch_fleet are imported inside the methods: the plugin registers without torch.


class TorchVAE(VAEVariant, TorchModel):
    def init(self, data, seed: int) -> TorchState:
        from .torch_common import TorchState, adam, autoencoder, build_seeded

        cfg: VAEConfig = self.config
        self.shape = tuple(data.spec.shape)
        net = build_seeded(seed, lambda: autoencoder(cfg, self.shape, 2 * cfg.latent_dim)).to(data.device)
        self.device, self._template = data.device, net
        return TorchState(net, adam(net.parameters(), cfg.lr, (cfg.beta1, cfg.beta2)))

    def _objective(self, net: nn.ModuleDict, x: torch.Tensor, eps: torch.Tensor, beta: float) -> torch.Tensor:
        from .torch_common import TORCH_OPS

        mu, logvar = net["enc"](x).chunk(2, dim=1)
        cfg = self.config
        return neg_elbo(x, mu, logvar, eps, net["dec"], cfg.decoder, cfg.decoder_std, beta, TORCH_OPS)

    def _loss(self, view, x: torch.Tensor, beta: float) -> torch.Tensor:
        """The negative ELBO through ``view`` (torch_fleet.Solo or FleetView)."""
        import torch

        latent = self.config.latent_dim
        eps = view.draw(lambda key, x: torch.randn((len(x), latent), generator=key, device=x.device), x)
        return view.apply(lambda net, x, eps: self._objective(net, x, eps, beta), x, eps)

    def train_step(self, state: TorchState, batch, key):
        from .torch_common import optimise
        from .torch_fleet import Solo

        loss = self._loss(Solo(state.net, key), batch.x, self.config.beta)
        return state, {"loss": optimise(state.opt, loss)}

    @no_grad
    def heldout_loss(self, state: TorchState, batch, key) -> torch.Tensor:
        """The negative ELBO with beta = 1 (a bound on -log p, comparable across beta)."""
        from .torch_fleet import Solo

        return self._loss(Solo(state.net, key), batch.x, 1.0)

    def fleet(self, members: list) -> TorchFleet:
        """Members may differ in seed, data and ``lr`` (fleet_varying)."""
        from .torch_fleet import TorchFleet

        beta = self.config.beta
        return TorchFleet(self._template, lambda view, batch: self._loss(view, batch.x, beta), self._sample)

    @no_grad
    def log_prob(self, state: TorchState, x: torch.Tensor, key: torch.Generator) -> torch.Tensor:
        """IWAE estimate of log p(x) with ``iwae_samples`` samples, per example, nats."""
        import torch

        from .torch_common import TORCH_OPS

        cfg, net = self.config, state.net
        out = []
        for chunk in x.split(self.iwae_chunk):
            mu, logvar = net["enc"](chunk).chunk(2, dim=1)
            eps = torch.randn((cfg.iwae_samples, *mu.shape), generator=key, device=x.device)
            out.append(iwae_log_likelihood(chunk, mu, logvar, eps, net["dec"], cfg.decoder, cfg.decoder_std,
                                           TORCH_OPS))
        return torch.cat(out)

    @no_grad
    def encode(self, state: TorchState, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's Gaussian q(z | x): (mean, log variance)."""
        mu, logvar = state.net["enc"](x).chunk(2, dim=1)
        return mu, logvar

    @no_grad
    def decode(self, state: TorchState, z: torch.Tensor) -> torch.Tensor:
        """The decoder's mean in data space (Bernoulli: 2 sigmoid(logits) - 1)."""
        import torch

        out = state.net["dec"](z)
        return out if self.config.decoder == "gaussian" else 2 * torch.sigmoid(out) - 1

    def _sample(self, view, n: int) -> torch.Tensor:
        import torch

        cfg, device = self.config, self.device
        z = view.draw(lambda key: torch.randn((n, cfg.latent_dim), generator=key, device=device))
        out = view.apply(lambda net, z: net["dec"](z), z)
        if cfg.decoder == "gaussian":
            if cfg.sample_mean:
                return out
            return out + cfg.decoder_std * view.draw(
                lambda key, out: torch.randn(out.shape, generator=key, device=device), out)
        p = torch.sigmoid(out)
        return 2 * (p if cfg.sample_mean else view.draw(lambda key, p: torch.bernoulli(p, generator=key), p)) - 1

    @no_grad
    def sample(self, state: TorchState, n: int, key: torch.Generator) -> torch.Tensor:
        from .torch_fleet import Solo

        return self._sample(Solo(state.net, key), n)


@hookimpl
def benchbase_register_models(register):
    register(TorchVAE)
