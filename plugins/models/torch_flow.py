"""Rectified flow / flow matching in PyTorch, MLP or U-Net velocity field.

x_t = t x1 + (1 - t) x0 with x0 ~ N(0, I) and x1 a data point; the network regresses
the velocity x1 - x0 (Liu et al. 2023; Lipman et al. 2023). Sampling integrates
dx/dt = v(x, t) from t = 0 to 1 with Euler or Heun steps, from the core's fixed
noise, so every evaluation of a run starts from the same x0. ``jax_flow.py`` is the
same model in JAX.
"""
from __future__ import annotations

from benchbase import hookimpl

from .diffusion_config import RectifiedFlowConfig
from .torch_diffusion import TorchDiffusionBase


class TorchRectifiedFlow(TorchDiffusionBase):
    """Rectified flow (velocity prediction), MLP or U-Net; Euler or Heun sampling; optional CFG.

    One step: t ~ U(0, 1), x0 ~ N(0, I), x_t = t x + (1 - t) x0, MSE to x - x0, one
    Adam step. ``denoise(x_noisy, sigma)`` uses t = 1 / (1 + sigma): x_t = t x_noisy
    and E[x | x_t] = x_t + (1 - t) v(x_t, t).
    """

    name = "rectified_flow"
    family = "flow"
    Config = RectifiedFlowConfig
    process_name = "flow"


@hookimpl
def benchbase_register_models(register):
    register(TorchRectifiedFlow)
