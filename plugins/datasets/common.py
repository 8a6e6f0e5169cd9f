"""Config checks shared by the dataset plugins: one clear input error naming the dataset."""
from __future__ import annotations

import math

from benchbase.errors import BenchbaseInputError, suggest


def require(ok: bool, dataset: str, message: str) -> None:
    """Raise a bad-input error for ``dataset`` unless ``ok``."""
    if not ok:
        raise BenchbaseInputError(f"dataset '{dataset}': {message}")


def non_negative(config, *keys: str) -> None:
    """For a Config's ``__post_init__``: a scale (a standard deviation, a radius) must be a
    finite number >= 0; the message starts with the key, so the error names its path."""
    for key in keys:
        value = getattr(config, key)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{key} must be a finite number >= 0, got {value}")


def require_choice(value: str, choices: tuple, dataset: str, key: str) -> None:
    require(value in choices, dataset, f"config.{key} must be one of {', '.join(choices)} "
                                       f"(got '{value}').{suggest(value, choices)}")
