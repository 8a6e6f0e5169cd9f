"""Rectified flow / flow matching in PyTorch, MLP or U-Net velocity field (see
diffusion_variants.RectifiedFlowVariant); ``jax_flow.py`` is its JAX twin."""
from __future__ import annotations

from benchbase import hookimpl

from .diffusion_variants import RectifiedFlowVariant
from .torch_diffusion import TorchDiffusionBase


class TorchRectifiedFlow(RectifiedFlowVariant, TorchDiffusionBase):
    pass


@hookimpl
def benchbase_register_models(register):
    register(TorchRectifiedFlow)
