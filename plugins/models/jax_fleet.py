"""Fleets of the built-in JAX models: ``jax.vmap`` of a model's own pure step and
sampler over the stacked states, keys and per-member hyperparameters (the ``fleet``
capability, see benchbase.contracts.Fleet).

A JAX model's train step is already a pure function of (state, batch, key); its
fleet is that function vmapped over a leading member axis of all three, plus the
hyperparameters that may differ between members (``Model.fleet_varying``, e.g. the
learning rate, which the step then reads as a traced value instead of a constant).
One ``jax.jit`` advances every member; the state buffers are donated, so XLA updates
them in place instead of allocating K new copies each step.

The jitted functions are kept per (model class, shared config, data spec): fleets of
the same model reuse one compilation per fleet size. Imports jax; the plugin modules
import this one lazily.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import jax
import jax.numpy as jnp

from benchbase.contracts import Fleet

_COMPILED: OrderedDict = OrderedDict()
_COMPILED_LIMIT = 16


def compiled(key: Any, build: Callable[[], tuple]) -> tuple:
    """``build()`` once per ``key`` (an LRU of a few entries): the jitted fleet functions."""
    if key not in _COMPILED:
        _COMPILED[key] = build()
        while len(_COMPILED) > _COMPILED_LIMIT:
            _COMPILED.popitem(last=False)
    _COMPILED.move_to_end(key)
    return _COMPILED[key]


def stack_trees(trees: list) -> Any:
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


class JaxFleet(Fleet):
    """``step(state, batch, key, hparams) -> (state, logs)`` and ``sample(state, key, n)``
    are one member's pure functions; ``hparams`` a dict of per-member values.

    A fleet of one is stacked twice (the copy's results are dropped): XLA compiles a
    vmap over one member into unbatched kernels whose rounding differs from the
    batched ones, and a member's numbers should not depend on how many others it has
    (a resumed fleet may have lost members that finished).
    """

    def __init__(self, key: Any, step: Callable, sample: Callable, hparams: list[dict]):
        def build():
            return (jax.jit(jax.vmap(step), donate_argnums=0),
                    jax.jit(jax.vmap(sample, in_axes=(0, 0, None)), static_argnums=2))

        self._step, self._sample = compiled(key, build)
        self.hparams = hparams
        self._hp = None

    @staticmethod
    def _rows(members: list) -> list:
        return list(members) * 2 if len(members) == 1 else list(members)

    def _set_hparams(self, hparams: list[dict]) -> None:
        self.hparams = hparams
        rows = self._rows(hparams)
        self._hp = {k: jnp.asarray([hp[k] for hp in rows], jnp.float32) for k in hparams[0]}

    def stack(self, states: list) -> Any:
        self._set_hparams(self.hparams)
        return stack_trees(self._rows(states))

    def unstack(self, state: Any, i: int) -> Any:
        return jax.tree_util.tree_map(lambda leaf: leaf[i], state)

    def select(self, state: Any, keep: list[int]) -> Any:
        self._set_hparams([self.hparams[i] for i in keep])
        return _take(state, self._rows(keep))

    def step(self, state: Any, batch, keys):
        if len(self.hparams) == 1:
            batch, keys = _take((batch, keys), [0, 0])
        return self._step(state, batch, keys, self._hp)

    def sample(self, state: Any, n: int, keys, members: list[int] | None = None):
        members = list(range(len(self.hparams))) if members is None else list(members)
        rows = self._rows(members)
        if rows != list(range(len(self._rows(self.hparams)))):
            state = _take(state, rows)
        if len(rows) != len(members):
            keys = _take(keys, [0, 0])
        return self._sample(state, keys, int(n))[:len(members)]


def _take(tree: Any, rows: list[int]) -> Any:
    idx = jnp.asarray(rows)
    return jax.tree_util.tree_map(lambda leaf: None if leaf is None else leaf[idx], tree)
