"""Hyperparameters of the GAN, VAE and WAE families, shared by both frameworks.

The PyTorch and JAX plugins of a model use the SAME Config class, so their defaults
cannot differ. ``width`` is each model's one size knob: hidden units of every MLP
layer, or (conv backbone) ``width // 4`` channels at the finest level, doubling at
each halving of the resolution (backbones.conv_plan). ``depth`` only applies to MLPs;
conv depth follows the image size. Every optimiser is Adam(lr, (beta1, beta2),
eps=1e-8). Each Config checks its values when built (config_checks.SelfChecked), so
``benchbase validate`` refuses a value no run could train with.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

from .backbones import BACKBONES
from .config_checks import SelfChecked, check_at_least, check_betas, check_choice, check_each, \
    check_learning_rate, check_non_negative, check_positive

F_DIVERGENCES = ("kl", "reverse_kl", "js", "pearson", "hellinger")
GENERATOR_LOSSES = ("alternative", "saddle")
DECODERS = ("gaussian", "bernoulli")


@dataclass
class GANConfig(SelfChecked):
    latent_dim: int = 16  # dimension of the generator's N(0, I) input
    width: int = 256  # the size knob (see module docstring)
    depth: int = 3  # hidden layers of the MLP generator and discriminator
    backbone: str = "auto"  # auto (conv for images, else mlp) | mlp | conv
    lr: float = 2e-4  # Adam learning rate, generator and discriminator
    beta1: float = 0.5  # Adam betas as in DCGAN (Radford et al. 2016)
    beta2: float = 0.999

    def validate(self) -> None:
        check_choice(self.backbone, BACKBONES, "backbone")
        check_at_least(self, 1, "latent_dim", "width")
        check_at_least(self, 0, "depth")  # 0: a linear map
        check_learning_rate(self, "lr")
        check_betas(self)


@dataclass
class WGANGPConfig(GANConfig):
    lr: float = 1e-4  # Gulrajani et al. 2017, Algorithm 1
    beta1: float = 0.0
    beta2: float = 0.9
    n_critic: int = 5  # critic updates per generator update, each on its own data batch
    # lambda of the gradient penalty: 10 as in the paper's image experiments; their 2-D
    # toys use 0.1, and on gmm2d (scale ~1) 10 makes the generator drift away
    gp_weight: float = 10.0

    def validate(self) -> None:
        super().validate()
        check_at_least(self, 1, "n_critic")
        check_non_negative(self, "gp_weight")


@dataclass
class FGANConfig(GANConfig):
    # kl | reverse_kl | js | pearson | hellinger (Nowozin et al. 2016, Table 2). Not js by
    # default: with the alternative generator loss, js is the non-saturating gan exactly
    # (its losses differ by constants), so the default would duplicate `gan`.
    divergence: str = "kl"
    # alternative: the generator maximises E_Q[g_f(V(G(z)))] (Nowozin et al. 2016, Sec. 3.2);
    # saddle: it minimises the saddle objective -E_Q[f*(g_f(V(G(z))))] directly
    generator_loss: str = "alternative"

    def validate(self) -> None:
        super().validate()
        check_choice(self.divergence, F_DIVERGENCES, "divergence")
        check_choice(self.generator_loss, GENERATOR_LOSSES, "generator_loss")


@dataclass
class AutoencoderConfig(SelfChecked):
    """What the VAE and WAE configs share: the autoencoder's shape."""

    # A WAE's deterministic encoder cannot fill a prior of more dimensions than the
    # data has (use 2 on gmm2d); the VAE's noisy encoder can.
    latent_dim: int = 8
    width: int = 256  # the size knob (see module docstring)
    depth: int = 2  # hidden layers in the MLP encoder and decoder
    backbone: str = "auto"  # auto (conv for images, else mlp) | mlp | conv

    def validate(self) -> None:
        check_choice(self.backbone, BACKBONES, "backbone")
        check_at_least(self, 1, "latent_dim", "width")
        check_at_least(self, 0, "depth")  # 0: a linear map

    def check_optimizer(self) -> None:
        """The subclasses' Adam settings (each declares its own lr and betas)."""
        check_learning_rate(self, "lr")
        check_betas(self)


@dataclass
class VAEConfig(AutoencoderConfig):
    beta: float = 1.0  # weight of the KL term (beta-VAE)
    decoder: str = "gaussian"  # gaussian (fixed std) | bernoulli (on (x + 1) / 2)
    decoder_std: float = 0.1  # std of the Gaussian decoder
    lr: float = 1e-3  # Adam learning rate
    beta1: float = 0.9
    beta2: float = 0.999
    sample_mean: bool = True  # samples are decoder means (True) or means plus decoder noise
    iwae_samples: int = 64  # k of the importance-weighted log-likelihood estimate (log_prob)

    def validate(self) -> None:
        super().validate()
        self.check_optimizer()
        check_choice(self.decoder, DECODERS, "decoder")
        check_at_least(self, 1, "iwae_samples")
        check_non_negative(self, "beta")
        check_positive(self, "decoder_std")


@dataclass
class WAEMMDConfig(AutoencoderConfig):
    lam: float = 10.0  # lambda: weight of the latent divergence (Tolstikhin et al. 2018)
    lr: float = 1e-3  # Adam, as in the paper's MNIST experiments
    beta1: float = 0.5
    beta2: float = 0.999
    # IMQ kernel k(x, y) = C / (C + ||x - y||^2) summed over C = s * 2 * latent_dim * prior_var
    kernel_scales: Tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)

    def validate(self) -> None:
        super().validate()
        self.check_optimizer()
        check_non_negative(self, "lam")
        check_each(self, "kernel_scales", 0, strictly=True)


@dataclass
class WAEGANConfig(AutoencoderConfig):
    # lambda: weight of the adversarial latent penalty (1 in the paper's MNIST runs). The
    # squared error is summed over dimensions, so low-dimensional data needs a smaller
    # lambda: on gmm2d 1 lets the adversary dominate, 0.01 trains.
    lam: float = 1.0
    lr: float = 1e-3  # encoder/decoder Adam learning rate
    adversary_lr: float = 5e-4  # latent discriminator's learning rate (Tolstikhin et al. 2018)
    adversary_depth: int = 3  # hidden layers of the latent discriminator (width: the model's width)
    beta1: float = 0.5
    beta2: float = 0.999

    def validate(self) -> None:
        super().validate()
        self.check_optimizer()
        check_non_negative(self, "lam")
        check_learning_rate(self, "adversary_lr")
        check_at_least(self, 0, "adversary_depth")
