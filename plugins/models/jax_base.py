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
        self._spec = spec

    def _fleet_key(self, spec) -> tuple:
        """What the jitted fleet functions depend on: the class, the config except the
        fields members may vary, and the data's shape."""
        shared = {k: v for k, v in vars(self.config).items() if k not in self.fleet_varying}
        return (type(self), repr(sorted(shared.items())), tuple(spec.shape), spec.modality, spec.num_classes)

    def _fleet(self, members: list, step, sample):
        """A JaxFleet over this model's pure ``step(state, batch, key, hparams)`` and
        ``sample(state, key, n)``; each member's hyperparameters from its own config."""
        from .jax_fleet import JaxFleet

        hparams = [{k: float(getattr(m.config, k)) for k in sorted(self.fleet_varying)} for m in members]
        return JaxFleet(self._fleet_key(self._spec), step, sample, hparams)

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
