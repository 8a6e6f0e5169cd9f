"""Wasserstein autoencoders in PyTorch (Tolstikhin et al. 2018): WAE-MMD and WAE-GAN;
twins in jax_wae.py.

A deterministic encoder Q maps x to a code, the decoder G maps codes back; the
objective is the squared reconstruction error plus lam times a divergence between
the distribution of codes and the N(0, I) prior (an IMQ-kernel MMD, or a latent
adversary). Samples decode prior draws. How each variant spends a step: see the
variant docstrings (variants.py): one batch per step for both.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from benchbase import hookimpl

from .objectives import nonsaturating_losses, wae_gan_loss, wae_mmd_loss
from .backbones import ENCODER_ACT
from .torch_base import TorchModel, no_grad
from .variants import WAEGANVariant, WAEMMDVariant

if TYPE_CHECKING:
    import torch

    from .torch_common import TorchNets, TorchState

# torch and torch_common are imported inside the methods: the plugins register without torch.


class _TorchWAE(TorchModel):
    """Decoding prior draws, shared by the two WAE variants."""

    def _prior(self, shape, key: torch.Generator, device) -> torch.Tensor:
        import torch

        return torch.randn(shape, generator=key, device=device)

    @no_grad
    def encode(self, state, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """The deterministic code (no log variance: a point mass)."""
        return self._autoencoder(state)["enc"](x), None

    @no_grad
    def decode(self, state, z: torch.Tensor) -> torch.Tensor:
        return self._autoencoder(state)["dec"](z)

    @no_grad
    def sample(self, state, n: int, key: torch.Generator) -> torch.Tensor:
        dec = self._autoencoder(state)["dec"]
        return dec(self._prior((n, self.config.latent_dim), key, next(dec.parameters()).device))


class TorchWAEMMD(WAEMMDVariant, _TorchWAE):
    def init(self, data, seed: int) -> TorchState:
        from .torch_common import TorchState, adam, autoencoder, build_seeded

        cfg = self.config
        net = build_seeded(seed, lambda: autoencoder(cfg, tuple(data.spec.shape), cfg.latent_dim)).to(data.device)
        return TorchState(net, adam(net.parameters(), cfg.lr, (cfg.beta1, cfg.beta2)))

    def _autoencoder(self, state: TorchState):
        return state.net

    def _loss(self, net, x: torch.Tensor, key: torch.Generator) -> torch.Tensor:
        z_q = net["enc"](x)
        z_p = self._prior(z_q.shape, key, x.device)
        return wae_mmd_loss(x, net["dec"](z_q), z_q, z_p, self.config.lam, self.config.kernel_scales)

    def train_step(self, state: TorchState, batch, key):
        from .torch_common import optimise

        return state, {"loss": optimise(state.opt, self._loss(state.net, batch.x, key))}

    @no_grad
    def heldout_loss(self, state: TorchState, batch, key) -> torch.Tensor:
        return self._loss(state.net, batch.x, key)


class TorchWAEGAN(WAEGANVariant, _TorchWAE):
    def init(self, data, seed: int) -> TorchNets:
        import torch

        from .torch_common import TORCH_OPS, TorchNets, adam, autoencoder, build_seeded, mlp

        cfg = self.config

        def build():
            return torch.nn.ModuleDict({
                "ae": autoencoder(cfg, tuple(data.spec.shape), cfg.latent_dim),
                "adv": mlp(cfg.latent_dim, cfg.width, cfg.adversary_depth, 1, ENCODER_ACT),
            })

        nets = build_seeded(seed, build).to(data.device)
        betas = (cfg.beta1, cfg.beta2)
        self._adv_loss, _ = nonsaturating_losses(TORCH_OPS)
        return TorchNets(nets, {"ae": adam(nets["ae"].parameters(), cfg.lr, betas),
                                "adv": adam(nets["adv"].parameters(), cfg.adversary_lr, betas)})

    def _autoencoder(self, state: TorchNets):
        return state["ae"]

    def _ae_loss(self, state: TorchNets, x: torch.Tensor) -> torch.Tensor:
        from .torch_common import TORCH_OPS

        ae = state["ae"]
        z_q = ae["enc"](x)
        return wae_gan_loss(x, ae["dec"](z_q), state["adv"](z_q), self.config.lam, TORCH_OPS)

    def train_step(self, state: TorchNets, batch, key):
        import torch

        from .torch_common import optimise, requires_grad

        x = batch.x
        with torch.no_grad():
            z_q = state["ae"]["enc"](x)
        z_p = self._prior(z_q.shape, key, x.device)
        adv_loss = optimise(state.opts["adv"], self._adv_loss(state["adv"](z_p), state["adv"](z_q)))
        with requires_grad(state["adv"], False):
            loss = optimise(state.opts["ae"], self._ae_loss(state, x))
        return state, {"loss": loss, "adv_loss": adv_loss}

    @no_grad
    def heldout_loss(self, state: TorchNets, batch, key) -> torch.Tensor:
        return self._ae_loss(state, batch.x)


@hookimpl
def benchbase_register_models(register):
    register(TorchWAEMMD)
    register(TorchWAEGAN)
