"""Fleets of the built-in JAX models: ``jax.vmap`` of a model's own pure step and
sampler over the stacked states, keys and per-member hyperparameters (the ``fleet``
capability, see benchbase.contracts.Fleet).

A JAX model's train step is already a pure function of (state, batch, key); its
fleet is that function vmapped over a leading member axis of all three, plus the
hyperparameters that may differ between members (``Model.fleet_varying``, e.g. the
learning rate, which the step then reads as a traced value instead of a constant).
One ``jax.jit`` advances every member; the state buffers are donated, so XLA updates
them in place instead of allocating K new copies each step.

On a CPU the members are split into *parts*, one per thread of XLA's pool, each
stepped (and sampled) by its own call from its own thread: XLA computes a call in the
thread that makes it, spreading only part of the work over its pool, so one call for
the whole fleet leaves cores idle that concurrent calls fill (docs/performance.md,
"JAX fleets in parts"). On an accelerator a fleet is one call.

The jitted functions are kept per (model class, shared config, data spec): fleets of
the same model reuse one compilation per part size. Imports jax; the plugin modules
import this one lazily.
"""
from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import jax
import jax.numpy as jnp

from benchbase.contracts import Fleet

_COMPILED: OrderedDict = OrderedDict()
_COMPILED_LIMIT = 16

MIN_PART = 4  # members per part below which a CPU fleet is not split further


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


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def xla_cpu_threads() -> int:
    """The threads XLA's CPU client computes on: ``intra_op_parallelism_threads`` where
    ``XLA_FLAGS`` sets it, else every usable core (XLA's default)."""
    found = re.search(r"(?:^|\s)-{0,2}intra_op_parallelism_threads=(\d+)", os.environ.get("XLA_FLAGS", ""))
    return max(1, int(found.group(1))) if found else usable_cores()


def part_count(members: int, platform: str) -> int:
    """How many parts a fleet of ``members`` on ``platform`` is stepped in: one per
    thread of XLA's CPU pool, each of at least ``MIN_PART`` members; one elsewhere.

    By XLA's pool, not by the executor's ``threads``: that pool spans every core of the
    process whatever the executor sets for PyTorch and BLAS (a JAX run alone already
    computes on all of them), so the parts only let a fleet use what a run alone does."""
    if platform != "cpu":
        return 1
    return max(1, min(xla_cpu_threads(), members // MIN_PART))


def split(members: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` contiguous (start, end) ranges over ``members``, sizes differing by at most one."""
    edges = [members * i // parts for i in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:]))


class _Parts:
    """The threads that run a fleet's parts: grown to the most parts seen, shared by
    every fleet of the process."""

    def __init__(self):
        self.pool: ThreadPoolExecutor | None = None
        self.size = 0
        self.lock = threading.Lock()

    def run(self, calls: list[Callable[[], Any]]) -> list:
        """Each call's result, the calls run concurrently: all but the first on the
        pool, the first on this thread. JAX releases the GIL while a call computes."""
        if len(calls) == 1:
            return [calls[0]()]
        with self.lock:
            if self.size < len(calls) - 1:
                if self.pool is not None:
                    self.pool.shutdown(wait=False)
                self.size = len(calls) - 1
                self.pool = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="benchbase-fleet-part")
            pool = self.pool
        futures = [pool.submit(call) for call in calls[1:]]
        first = calls[0]()
        return [first] + [f.result() for f in futures]


_PARTS = _Parts()


class JaxFleet(Fleet):
    """``step(state, batch, key, hparams) -> (state, logs)`` and ``sample(state, key, n)``
    are one member's pure functions; ``hparams`` a dict of per-member values.

    The fleet state is a list of part states, each the members of one part stacked.
    A part of one member is stacked twice (the copy's results are dropped), so every
    member is computed by batched kernels as in any larger fleet: XLA compiles a vmap
    over one member into unbatched kernels, whose rounding differs more (a resumed
    fleet may have lost members that finished).

    ``parts``: None chooses by the members' device (``part_count``); a number fixes it
    (tests use it to split a fleet on any machine).
    """

    def __init__(self, key: Any, step: Callable, sample: Callable, hparams: list[dict], parts: int | None = None):
        def build():
            return (jax.jit(jax.vmap(step), donate_argnums=0),
                    jax.jit(jax.vmap(sample, in_axes=(0, 0, None)), static_argnums=2))

        self._step, self._sample = compiled(key, build)
        self.hparams = hparams
        self.parts = parts
        self._bounds: list[tuple[int, int]] = []
        self._hp: list[dict] = []

    @property
    def part_sizes(self) -> list[int]:
        """Members per part, in stack order (one entry: the fleet is not split)."""
        return [b - a for a, b in self._bounds]

    @staticmethod
    def _rows(members: list) -> list:
        return list(members) * 2 if len(members) == 1 else list(members)

    def _layout(self, platform: str) -> None:
        """The parts of a fleet of the members in ``self.hparams``, and each part's values of them."""
        hparams = self.hparams
        count = self.parts if self.parts is not None else part_count(len(hparams), platform)
        self._bounds = split(len(hparams), max(1, min(count, len(hparams))))
        self._hp = [{k: jnp.asarray([hp[k] for hp in self._rows(hparams[a:b])], jnp.float32) for k in hparams[0]}
                    for a, b in self._bounds]

    def stack(self, states: list) -> list:
        leaves = jax.tree_util.tree_leaves(states[0])
        platform = next(iter(leaves[0].devices())).platform if leaves else "cpu"
        self._layout(platform)
        return [stack_trees(self._rows(states[a:b])) for a, b in self._bounds]

    def _locate(self, i: int) -> tuple[int, int]:
        """(part, row in that part) of member ``i``."""
        for p, (a, b) in enumerate(self._bounds):
            if a <= i < b:
                return p, i - a
        raise IndexError(f"fleet member {i} out of range 0..{self._bounds[-1][1] - 1}")

    def unstack(self, state: list, i: int) -> Any:
        p, row = self._locate(i)
        return jax.tree_util.tree_map(lambda leaf: leaf[row], state[p])

    def select(self, state: list, keep: list[int]) -> list:
        singles = [self.unstack(state, i) for i in keep]
        self.hparams = [self.hparams[i] for i in keep]
        return self.stack(singles)

    def step(self, state: list, batch, keys):
        calls = []
        for (a, b), part, hp in zip(self._bounds, state, self._hp):
            part_batch, part_keys = _slice((batch, keys), a, b) if len(self._bounds) > 1 else (batch, keys)
            if b - a == 1:
                part_batch, part_keys = _twice((part_batch, part_keys))
            calls.append(lambda part=part, pb=part_batch, pk=part_keys, hp=hp: self._step(part, pb, pk, hp))
        results = _PARTS.run(calls)
        states = [s for s, _ in results]
        logs = [_slice(log, 0, 1) if b - a == 1 else log
                for (a, b), (_, log) in zip(self._bounds, results)]
        if len(logs) == 1:
            return states, logs[0]
        return states, {k: jnp.concatenate([log[k] for log in logs]) for k in logs[0]}

    def sample(self, state: list, n: int, keys, members: list[int] | None = None):
        members = list(range(self._bounds[-1][1])) if members is None else list(members)
        calls, order = [], []
        for p, (a, b) in enumerate(self._bounds):
            mine = [j for j, i in enumerate(members) if a <= i < b]
            if not mine:
                continue
            local = [members[j] - a for j in mine]
            part = state[p] if local == list(range(b - a)) else _take(state[p], self._rows(local))
            contiguous = len(mine) > 1 and mine == list(range(mine[0], mine[0] + len(mine)))
            part_keys = _slice(keys, mine[0], mine[-1] + 1) if contiguous else _take(keys, self._rows(mine))
            calls.append(lambda part=part, pk=part_keys, k=len(mine): _slice(self._sample(part, pk, int(n)), 0, k))
            order.extend(mine)
        out = _PARTS.run(calls)
        samples = out[0] if len(out) == 1 else jnp.concatenate(out)
        if order != list(range(len(members))):
            samples = _take(samples, sorted(range(len(order)), key=order.__getitem__))
        return samples


def _slice(tree: Any, start: int, end: int) -> Any:
    """Rows ``start:end`` of every leaf, the bounds static (``leaf[start:end]`` would send
    them to the device at every step)."""
    return jax.tree_util.tree_map(lambda leaf: None if leaf is None else jax.lax.slice_in_dim(leaf, start, end),
                                  tree)


def _twice(tree: Any) -> Any:
    """Every leaf's rows repeated once (a one-member part's batch and key, stacked twice)."""
    return jax.tree_util.tree_map(lambda leaf: None if leaf is None else jnp.concatenate([leaf, leaf]), tree)


def _take(tree: Any, rows: list[int]) -> Any:
    idx = jnp.asarray(rows)
    return jax.tree_util.tree_map(lambda leaf: None if leaf is None else leaf[idx], tree)
