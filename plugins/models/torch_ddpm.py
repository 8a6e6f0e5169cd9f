"""DDPM in PyTorch (Ho et al. 2020), MLP or U-Net epsilon network (see
diffusion_variants.DDPMVariant); ``jax_ddpm.py`` is its JAX twin."""
from __future__ import annotations

from benchbase import hookimpl

from .diffusion_variants import DDPMVariant
from .torch_diffusion import TorchDiffusionBase


class TorchDDPM(DDPMVariant, TorchDiffusionBase):
    pass


@hookimpl
def benchbase_register_models(register):
    register(TorchDDPM)
