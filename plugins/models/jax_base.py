"""Base class of the built-in JAX models, importable without JAX.

JAX plugins must register even where jax is not installed (``benchbase plugins``
then lists them as unavailable), so this module and the plugin modules import jax
and jax_common only inside methods.

State layout shared by the JAX models: a dict of named parts, each
``{"params": ..., "opt": ...}`` (a network and its optax state), e.g.
``{"gen": ..., "disc": ...}``; the whole dict is the pytree the jitted step carries.
"""
from __future__ import annotations

from benchbase import Model


class JaxModel(Model):
    """Save/load through flax.serialization and parameter counting for JAX models."""

    framework = "jax"

    def _build(self, spec) -> None:
        """Create the networks, optimisers and jitted functions for data of ``spec``."""
        raise NotImplementedError

    def _ensure_built(self, spec) -> None:
        """Build once per data shape, so a second ``init`` (``load`` when a run resumes,
        a rerun with another seed) reuses the compiled functions instead of recompiling."""
        key = (tuple(spec.shape), spec.modality, spec.num_classes)
        if getattr(self, "_built_for", None) != key:
            self._build(spec)
            self._built_for = key

    def save(self, state) -> bytes:
        from .jax_common import save_tree

        return save_tree(state)

    def load(self, blob: bytes, data):
        from .jax_common import load_tree

        return load_tree(self.init(data, 0), blob, data.device)

    def param_count(self, state) -> int:
        """Every parameter trained under the budget (all parts, not optimiser state)."""
        from .jax_common import param_count

        return sum(param_count(part["params"]) for part in state.values())
