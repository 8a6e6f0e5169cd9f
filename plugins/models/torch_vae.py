"""Variational autoencoder in PyTorch with MLP encoder and decoder (Kingma & Welling 2014)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from benchbase import Model, hookimpl

from .torch_common import TorchState, build_seeded, load_state, mlp, param_count, save_state


@dataclass
class VAEConfig:
    latent_dim: int = 8
    width: int = 256  # hidden units per layer (the model-size knob)
    depth: int = 2  # hidden layers in encoder and decoder
    beta: float = 1.0  # weight of the KL term (beta-VAE)
    decoder: str = "gaussian"  # gaussian (fixed std) | bernoulli (on (x + 1) / 2)
    decoder_std: float = 0.1  # std of the Gaussian decoder
    lr: float = 1e-3  # Adam learning rate
    sample_mean: bool = True  # samples are decoder means (True) or means plus decoder noise


class VAENet(nn.Module):
    def __init__(self, dim: int, cfg: VAEConfig):
        super().__init__()
        self.encoder = mlp(dim, cfg.width, cfg.depth, 2 * cfg.latent_dim)
        self.decoder = mlp(cfg.latent_dim, cfg.width, cfg.depth, dim)


class TorchVAE(Model):
    """Gaussian-encoder VAE, Gaussian or Bernoulli decoder; held-out loss: the negative ELBO."""

    name = "vae"
    family = "vae"
    framework = "torch"
    Config = VAEConfig
    capabilities = frozenset({"heldout_loss"})

    def init(self, data, seed: int) -> TorchState:
        if self.config.decoder not in ("gaussian", "bernoulli"):
            raise ValueError(f"decoder must be gaussian or bernoulli, got '{self.config.decoder}'")
        self.shape = tuple(data.spec.shape)
        self.dim = data.spec.dim
        net = build_seeded(seed, lambda: VAENet(self.dim, self.config)).to(data.device)
        return TorchState(net, torch.optim.Adam(net.parameters(), lr=self.config.lr))

    def _neg_elbo(self, net: VAENet, x: torch.Tensor, key: torch.Generator, beta: float) -> torch.Tensor:
        """Per-example negative ELBO in nats (reconstruction + beta * KL), batch mean."""
        x = x.reshape(len(x), -1)
        mu, logvar = net.encoder(x).chunk(2, dim=1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=key, device=x.device)
        out = net.decoder(z)
        if self.config.decoder == "gaussian":
            s = self.config.decoder_std
            rec = 0.5 * ((x - out) / s).pow(2).sum(1) + x.shape[1] * (math.log(s) + 0.5 * math.log(2 * math.pi))
        else:
            rec = F.binary_cross_entropy_with_logits(out, (x + 1) / 2, reduction="none").sum(1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
        return (rec + beta * kl).mean()

    def train_step(self, state: TorchState, batch, key):
        loss = self._neg_elbo(state.net, batch.x, key, self.config.beta)
        state.opt.zero_grad(set_to_none=True)
        loss.backward()
        state.opt.step()
        return state, {"loss": loss.detach()}

    @torch.no_grad()
    def heldout_loss(self, state: TorchState, batch, key) -> torch.Tensor:
        """The negative ELBO with beta = 1 (a bound on -log p, comparable across beta)."""
        return self._neg_elbo(state.net, batch.x, key, 1.0)

    @torch.no_grad()
    def sample(self, state: TorchState, n: int, key: torch.Generator) -> torch.Tensor:
        device = next(state.net.parameters()).device
        z = torch.randn((n, self.config.latent_dim), generator=key, device=device)
        out = state.net.decoder(z)
        if self.config.decoder == "gaussian":
            x = out
            if not self.config.sample_mean:
                x = x + self.config.decoder_std * torch.randn(x.shape, generator=key, device=device)
        else:
            p = torch.sigmoid(out)
            x = 2 * (p if self.config.sample_mean else torch.bernoulli(p, generator=key)) - 1
        return x.reshape(n, *self.shape)

    def save(self, state: TorchState) -> bytes:
        return save_state(state)

    def load(self, blob: bytes, data) -> TorchState:
        return load_state(self.init(data, 0), blob)

    def param_count(self, state: TorchState) -> int:
        return param_count(state.net)


@hookimpl
def benchbase_register_models(register):
    register(TorchVAE)
