"""Base class of the built-in PyTorch models, importable without PyTorch.

Listing plugins and validating a suite must not load a framework, so the plugin
modules import torch and torch_common only inside methods (as the JAX models do with
jax_base); ``no_grad`` is ``torch.no_grad()`` as a method decorator that imports
torch when the method runs, not when the class is defined.
"""
from __future__ import annotations

import functools

from benchbase import Model


def no_grad(method):
    """Run ``method`` under ``torch.no_grad()`` (torch imported at call time)."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        import torch

        with torch.no_grad():
            return method(*args, **kwargs)

    return wrapper


class TorchModel(Model):
    """Save/load (state dicts, ``weights_only=True``) and parameter counting for the
    built-in PyTorch models whose state is a TorchState or TorchNets (torch_common)."""

    framework = "torch"

    def save(self, state) -> bytes:
        from .torch_common import save_state

        return save_state(state)

    def load(self, blob: bytes, data):
        from .torch_common import load_state

        return load_state(self.init(data, 0), blob)

    def param_count(self, state) -> int:
        """Every parameter trained under the budget (all networks of the state)."""
        from .torch_common import TorchNets, param_count

        return param_count(state.nets if isinstance(state, TorchNets) else state.net)
