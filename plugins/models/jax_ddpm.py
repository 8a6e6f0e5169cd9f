"""DDPM in JAX/Flax + optax (see diffusion_variants.DDPMVariant); twin of
torch_ddpm.py. Registers without jax."""
from __future__ import annotations

from benchbase import hookimpl

from .diffusion_variants import DDPMVariant
from .jax_diffusion import JaxDiffusionBase


class JaxDDPM(DDPMVariant, JaxDiffusionBase):
    pass


@hookimpl
def benchbase_register_models(register):
    register(JaxDDPM)
