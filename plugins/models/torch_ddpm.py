"""DDPM in PyTorch (Ho et al. 2020): epsilon prediction, linear or cosine schedule,
ancestral or DDIM sampling, MLP or U-Net. ``jax_ddpm.py`` is the same model in JAX."""
from __future__ import annotations

from benchbase import hookimpl

from .diffusion_config import DDPMConfig
from .torch_diffusion import TorchDiffusionBase


class TorchDDPM(TorchDiffusionBase):
    """DDPM (epsilon prediction), linear/cosine betas, ancestral or DDIM sampling; optional CFG.

    One step: k ~ U{0..T-1}, eps ~ N(0, I), x_k = sqrt(abar_k) x + sqrt(1 - abar_k) eps,
    MSE of the predicted eps, one Adam step. ``denoise(x_noisy, sigma)`` uses
    abar = 1 / (1 + sigma^2): x_k = sqrt(abar) x_noisy at the timestep interpolated in
    log sigma, E[x | x_k] = (x_k - sqrt(1 - abar) eps_hat) / sqrt(abar).
    """

    name = "ddpm"
    family = "diffusion"
    Config = DDPMConfig
    process_name = "ddpm"


@hookimpl
def benchbase_register_models(register):
    register(TorchDDPM)
