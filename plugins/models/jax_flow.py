"""Rectified flow / flow matching in JAX/Flax + optax (see
diffusion_variants.RectifiedFlowVariant); twin of torch_flow.py. Registers without jax."""
from __future__ import annotations

from benchbase import hookimpl

from .diffusion_variants import RectifiedFlowVariant
from .jax_diffusion import JaxDiffusionBase


class JaxRectifiedFlow(RectifiedFlowVariant, JaxDiffusionBase):
    pass


@hookimpl
def benchbase_register_models(register):
    register(JaxRectifiedFlow)
