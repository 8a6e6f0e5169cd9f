"""What each GAN / VAE / WAE model is, independent of the framework that runs it.

A plugin class is ``class TorchWGANGP(WGANGPVariant, TorchGANBase)``: the variant
mixin gives its name, family, Config, capabilities, documentation (the summary
``benchbase plugins`` shows), how many batches a step consumes and which losses it
optimises; the framework base gives the networks and the update. Writing the
"what" once keeps the PyTorch and JAX twins from drifting apart.
"""
from __future__ import annotations

from .objectives import f_gan_losses, nonsaturating_losses, wasserstein_losses
from .zoo_configs import FGANConfig, GANConfig, VAEConfig, WAEGANConfig, WAEMMDConfig, WGANGPConfig


class _Validated:
    def __init__(self, config=None):
        super().__init__(config)
        self.config.validate()


class GANVariant(_Validated):
    """Non-saturating GAN (Goodfellow et al. 2014): one critic and one generator update per step.

    Budget: a step receives ``batches_per_step() * B`` examples; the critic makes one
    update per B-example slice against B fresh generator samples, then the generator
    one update on B fresh latent draws (no data). The same holds for every GAN here.
    """

    name = "gan"
    family = "gan"
    Config = GANConfig

    @property
    def gp_weight(self) -> float:
        return 0.0

    def losses(self, ops):
        return nonsaturating_losses(ops)


class WGANGPVariant(GANVariant):
    """WGAN-GP (Gulrajani et al. 2017): n_critic critic updates, each on its own data batch, per generator update."""

    name = "wgan_gp"
    Config = WGANGPConfig

    @property
    def gp_weight(self) -> float:
        return float(self.config.gp_weight)

    def batches_per_step(self) -> int:
        return int(self.config.n_critic)

    def losses(self, ops):
        return wasserstein_losses(ops)


class FGANVariant(GANVariant):
    """f-GAN (Nowozin et al. 2016): variational f-divergence minimisation (kl, reverse_kl, js, pearson, hellinger)."""

    name = "fgan"
    Config = FGANConfig

    def losses(self, ops):
        return f_gan_losses(self.config.divergence, self.config.generator_loss, ops)


class VAEVariant(_Validated):
    """VAE (Kingma & Welling 2014): Gaussian encoder, Gaussian or Bernoulli decoder, beta; IWAE log-likelihood.

    heldout_loss is the negative ELBO with beta = 1 (a bound on -log p, comparable
    across beta); log_prob is the importance-weighted estimate with ``iwae_samples``
    samples (Burda et al. 2016), per example, in nats; encode gives the encoder's
    Gaussian (mean, log variance) and decode the decoder's mean in data space. A step
    spends one batch.
    """

    name = "vae"
    family = "vae"
    Config = VAEConfig
    capabilities = frozenset({"heldout_loss", "log_prob", "encode", "fleet"})
    fleet_varying = frozenset({"lr"})
    iwae_chunk = 256  # examples per log_prob pass: bounds memory at iwae_samples * 256 decodes


class WAEMMDVariant(_Validated):
    """WAE-MMD (Tolstikhin et al. 2018): deterministic autoencoder, IMQ-kernel MMD to the prior, weight lam.

    A step spends one batch: its codes are compared with as many prior draws.
    heldout_loss is the training objective (squared error + lam * MMD); encode gives
    the deterministic code (log variance None), decode the decoder's output.
    """

    name = "wae_mmd"
    family = "wae"
    Config = WAEMMDConfig
    capabilities = frozenset({"heldout_loss", "encode"})


class WAEGANVariant(_Validated):
    """WAE-GAN (Tolstikhin et al. 2018): deterministic autoencoder, latent adversary against the prior, weight lam.

    A step spends one batch, used twice as in the paper's Algorithm 1: the latent
    adversary first updates on that batch's codes against as many prior draws, then
    the autoencoder updates on the same batch against the updated adversary. The
    adversary never sees data beyond the step's batch, so no extra budget is drawn.
    heldout_loss is the autoencoder's objective (squared error + lam * -log D(code));
    encode / decode as for wae_mmd.
    """

    name = "wae_gan"
    family = "wae"
    Config = WAEGANConfig
    capabilities = frozenset({"heldout_loss", "encode"})
