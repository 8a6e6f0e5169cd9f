"""GANs in PyTorch: non-saturating GAN, WGAN-GP and f-GAN (twins in jax_gan.py).

How a step spends the budget: the core hands ``train_step`` one batch of
``batches_per_step() * B`` training examples. The discriminator (critic) makes one
update per B-example slice of it (1 for gan/fgan, ``n_critic`` for wgan_gp), each
against B fresh generator samples; then the generator makes one update on B fresh
latent draws, which touches no data. So every real example a GAN sees is counted
by the core's examples budget.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from benchbase import hookimpl

from .backbones import ENCODER_ACT, decoder_act, resolve_backbone
from .objectives import gradient_penalty
from .torch_base import TorchModel, no_grad
from .variants import FGANVariant, GANVariant, WGANGPVariant
from .zoo_configs import GANConfig

if TYPE_CHECKING:
    import torch
    from torch import nn

    from .torch_common import TorchNets

# torch is imported inside the functions: the plugins register without loading it.


def gan_networks(cfg: GANConfig, shape: tuple, image: bool) -> nn.ModuleDict:
    """Generator (latent -> data; tanh output for images in [-1, 1]) and critic (data -> 1)."""
    from torch import nn

    from .torch_common import encoder, generator

    backbone = resolve_backbone(cfg.backbone, shape)
    return nn.ModuleDict({
        "gen": generator(cfg.latent_dim, shape, cfg.width, cfg.depth, backbone, decoder_act(backbone),
                         "tanh" if image else "identity"),
        "disc": encoder(shape, 1, cfg.width, cfg.depth, backbone, ENCODER_ACT),
    })


class _TorchGAN(TorchModel):
    """The PyTorch GAN update; a variant mixin (variants.py) supplies the losses,
    ``gp_weight`` and ``batches_per_step``."""

    def init(self, data, seed: int) -> TorchNets:
        from .torch_common import TORCH_OPS, TorchNets, adam, build_seeded

        cfg = self.config
        self.shape = tuple(data.spec.shape)
        nets = build_seeded(seed, lambda: gan_networks(cfg, self.shape, data.spec.modality == "image"))
        nets = nets.to(data.device)
        opts = {name: adam(net.parameters(), cfg.lr, (cfg.beta1, cfg.beta2)) for name, net in nets.items()}
        self._d_loss, self._g_loss = self.losses(TORCH_OPS)
        return TorchNets(nets, opts)

    def _latent(self, n: int, key: torch.Generator, device) -> torch.Tensor:
        import torch

        return torch.randn((n, self.config.latent_dim), generator=key, device=device)

    def _critic_loss(self, disc: nn.Module, real: torch.Tensor, fake: torch.Tensor, key) -> torch.Tensor:
        loss = self._d_loss(disc(real), disc(fake))
        if self.gp_weight:
            import torch

            eps = torch.rand((len(real),) + (1,) * (real.dim() - 1), generator=key, device=real.device)
            x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
            grads, = torch.autograd.grad(disc(x_hat).sum(), x_hat, create_graph=True)
            loss = loss + self.gp_weight * gradient_penalty(grads)
        return loss

    def train_step(self, state: TorchNets, batch, key):
        import torch

        from .torch_common import optimise, requires_grad

        gen, disc = state["gen"], state["disc"]
        k = self.batches_per_step()
        b = len(batch.x) // k
        d_total = 0.0
        for real in batch.x.split(b):
            with torch.no_grad():
                fake = gen(self._latent(b, key, real.device))
            d_total = d_total + optimise(state.opts["disc"], self._critic_loss(disc, real, fake, key))
        with requires_grad(disc, False):  # the generator step needs no critic gradients
            g_loss = optimise(state.opts["gen"], self._g_loss(disc(gen(self._latent(b, key, batch.x.device)))))
        return state, {"d_loss": d_total / k, "g_loss": g_loss}

    @no_grad
    def sample(self, state: TorchNets, n: int, key: torch.Generator) -> torch.Tensor:
        gen = state["gen"]
        return gen(self._latent(n, key, next(gen.parameters()).device))


class TorchGAN(GANVariant, _TorchGAN):
    pass


class TorchWGANGP(WGANGPVariant, _TorchGAN):
    pass


class TorchFGAN(FGANVariant, _TorchGAN):
    pass


@hookimpl
def benchbase_register_models(register):
    register(TorchGAN)
    register(TorchWGANGP)
    register(TorchFGAN)
