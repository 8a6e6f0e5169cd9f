"""The pixel (identity) feature space: the embedded default, needs nothing."""
from __future__ import annotations

import numpy as np

from benchbase import FeatureExtractor, hookimpl


class Pixels(FeatureExtractor):
    """Flattened raw values: L2 in pixel space, as in the mem_ratio literature."""

    name = "pixels"

    def embed(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(len(x), -1))


@hookimpl
def benchbase_register_features(register):
    register(Pixels)
