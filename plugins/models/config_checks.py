"""The checks the model Configs make on their own values.

A model's Config checks itself when it is built (:class:`SelfChecked`), and the suite
validator builds the Config of every model entry and sweep point, so a value no run
can train with is refused by ``benchbase validate`` (exit 2, before anything trains)
rather than by every run (PyTorch's Adam rejects a negative learning rate at init) or,
worse, not at all (optax ascends the gradient with one, and the run ranks first).
Each message starts with the key it is about, which is how
:func:`benchbase.structured.typed` puts it on its path (``models[0].config.lr``).
"""
from __future__ import annotations

import math

from benchbase.errors import suggest


class SelfChecked:
    """For a model Config dataclass: ``validate()`` runs when an instance is built."""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError (message starting with the key) for a value the model cannot use."""


def check_choice(value: str, valid: tuple, key: str) -> str:
    """Raise a clear error naming the config key and the valid choices."""
    if value not in valid:
        raise ValueError(f"{key} must be one of {', '.join(valid)}; got '{value}'.{suggest(value, valid)}")
    return value


def check_positive(config, *keys: str) -> None:
    """Rates, scales and standard deviations: finite and > 0 (NaN is refused too)."""
    for key in keys:
        value = getattr(config, key)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{key} must be a finite number > 0, got {value}")


def check_learning_rate(config, *keys: str) -> None:
    """Learning rates: finite and >= 0. Zero is a control (nothing is learned: twins on
    disjoint data then sample alike, ``tests/test_plots.py``); a negative rate ascends."""
    for key in keys:
        value = getattr(config, key)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{key} must be a finite number >= 0 (0 learns nothing), got {value}")


def check_non_negative(config, *keys: str) -> None:
    """Loss weights that may be switched off: finite and >= 0."""
    for key in keys:
        value = getattr(config, key)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{key} must be a finite number >= 0, got {value}")


def check_at_least(config, lowest: int, *keys: str) -> None:
    """Counts and sizes (widths, depths, steps): at least ``lowest``."""
    for key in keys:
        value = getattr(config, key)
        if value < lowest:
            raise ValueError(f"{key} must be >= {lowest}, got {value}")


def check_betas(config) -> None:
    """Adam's ``beta1`` and ``beta2`` lie in [0, 1)."""
    for key in ("beta1", "beta2"):
        value = getattr(config, key)
        if not 0 <= value < 1:
            raise ValueError(f"{key} must lie in [0, 1) (an Adam moment decay), got {value}")


def check_each(config, key: str, lowest: float, strictly: bool = False) -> None:
    """A tuple of sizes or scales: not empty, each entry >= ``lowest`` (> with ``strictly``)."""
    values = tuple(getattr(config, key))
    bad = [v for v in values if not (math.isfinite(v) and (v > lowest if strictly else v >= lowest))]
    if not values or bad:
        bound = f"> {lowest:g}" if strictly else f">= {lowest:g}"
        raise ValueError(f"{key} must be a non-empty list of numbers {bound}, got {list(values)}")
