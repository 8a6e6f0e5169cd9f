"""Base class of the built-in JAX models, importable without JAX.

JAX plugins must register even where jax is not installed (``benchbase plugins``
then lists them as unavailable), so this module and the plugin modules import jax
and jax_common only inside methods.

State layout shared by the JAX models: a dict of named parts, each
``{"params": ..., "opt": ...}`` (a network and its optax state), e.g.
``{"gen": ..., "disc": ...}``; the whole dict is the pytree the jitted step carries.
"""
from __future__ import annotations

from collections import OrderedDict

from benchbase import Model

_BUILT: OrderedDict = OrderedDict()  # compile key -> the attributes _build set; see _ensure_built
_BUILT_LIMIT = 16


class JaxModel(Model):
    """Save/load through flax.serialization and parameter counting for JAX models."""

    framework = "jax"

    def _build(self, spec) -> None:
        """Create the networks, optimisers and jitted functions for data of ``spec``."""
        raise NotImplementedError

    def _ensure_built(self, spec) -> None:
        """Build once per process for each compile key, not once per instance: every run
        of a suite's grid (seeds, subsets, and values of ``fleet_varying`` fields, which
        the jitted step reads as arguments) and a resumed run's ``load`` reuse the same
        jitted functions, so XLA compiles each program once. ``_build`` must therefore
        depend only on the config (fleet-varying fields aside) and ``spec``."""
        key = self._compile_key(spec)
        if getattr(self, "_built_for", None) != key:
            built = _BUILT.get(key)
            if built is None:
                for name in getattr(self, "_built_names", ()):  # an earlier build's, for another spec
                    del self.__dict__[name]
                before = set(vars(self))
                self._build(spec)
                built = {k: v for k, v in vars(self).items() if k not in before}
                _BUILT[key] = built
                while len(_BUILT) > _BUILT_LIMIT:
                    _BUILT.popitem(last=False)
            _BUILT.move_to_end(key)
            self.__dict__.update(built)
            self._built_names, self._built_for = tuple(built), key
        self._spec = spec

    def _compile_key(self, spec) -> tuple:
        """What the jitted functions (of a run and of a fleet) depend on: the class, the
        config except the fields members may vary, and the data's shape."""
        shared = {k: v for k, v in vars(self.config).items() if k not in self.fleet_varying}
        return (type(self), repr(sorted(shared.items())), tuple(spec.shape), spec.modality, spec.num_classes)

    def _traced_hparams(self, device) -> dict:
        """This run's values of its ``fleet_varying`` fields as float32 scalars on the
        run's device, passed to the jitted step as an argument: a constant baked into the
        program would make every value of a learning-rate sweep a new compilation."""
        import jax
        import numpy as np

        return {k: jax.device_put(np.float32(getattr(self.config, k)), device) for k in sorted(self.fleet_varying)}

    def _fleet(self, members: list, step, sample):
        """A JaxFleet over this model's pure ``step(state, batch, key, hparams)`` and
        ``sample(state, key, n)``; each member's hyperparameters from its own config."""
        from .jax_fleet import JaxFleet

        hparams = [{k: float(getattr(m.config, k)) for k in sorted(self.fleet_varying)} for m in members]
        return JaxFleet(self._compile_key(self._spec), step, sample, hparams)

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
