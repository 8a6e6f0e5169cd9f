"""The fleet contract: K runs of one model trained as one vectorized program. A part of
the plugin contract (re-exported by :mod:`benchbase.contracts`), in a module of its own
because only models with the ``fleet`` capability implement it."""
from __future__ import annotations

from typing import Any


class Fleet:
    """K runs of one model trained as one vectorized program (capability ``fleet``).

    Small models leave most of a CPU's or GPU's arithmetic idle; a fleet stacks the
    members' states on a leading axis and advances all of them with one call per
    step. Each member is still its own run: the core draws its batches from its own
    training subset with its own seed, evaluates it on its own schedule and stores
    its own rows and checkpoints. A member's numbers must equal the same run trained
    alone up to floating-point reordering, so a fleet must use the randomness the
    core hands each member exactly as ``train_step`` and ``sample`` use theirs.

    ``keys`` are per member, in member order: a list of ``torch.Generator`` (PyTorch)
    or a stacked (K, 2) array of PRNG keys (JAX); batches are stacked (K, B, ...).
    """

    def stack(self, states: list) -> Any:
        """The fleet state of K single-run states (from ``init`` or ``load``)."""
        raise NotImplementedError

    def unstack(self, state: Any, i: int) -> Any:
        """Member ``i``'s single-run state: what ``save``, ``heldout_loss`` and the
        other single-run methods of the member's model accept."""
        raise NotImplementedError

    def select(self, state: Any, keep: list[int]) -> Any:
        """The fleet state of the members ``keep`` (the others finished or diverged)."""
        return self.stack([self.unstack(state, i) for i in keep])

    def step(self, state: Any, batch: Any, keys: Any) -> tuple[Any, dict]:
        """One ``train_step`` of every member; log values have one entry per member."""
        raise NotImplementedError

    def sample(self, state: Any, n: int, keys: Any, members: list[int] | None = None) -> Any:
        """``n`` samples of each of ``members`` (default: all), stacked (K', n, ...),
        each as its own ``sample(state_i, n, key_i)`` would draw them."""
        raise NotImplementedError
