"""Config checks shared by the dataset plugins: one clear input error naming the dataset."""
from __future__ import annotations

from benchbase.errors import BenchbaseInputError, suggest


def require(ok: bool, dataset: str, message: str) -> None:
    """Raise a bad-input error for ``dataset`` unless ``ok``."""
    if not ok:
        raise BenchbaseInputError(f"dataset '{dataset}': {message}")


def require_choice(value: str, choices: tuple, dataset: str, key: str) -> None:
    require(value in choices, dataset, f"config.{key} must be one of {', '.join(choices)} "
                                       f"(got '{value}').{suggest(value, choices)}")
