"""Save and load a numpy model's state as bytes, without pickle.

    def save(self, state):
        return pack_arrays(x=state["x"], step=np.int64(state["step"]))

    def load(self, blob, data):
        arrays = unpack_arrays(blob)
        return {"x": arrays["x"], "step": int(arrays["step"])}

The bytes are an ``.npz`` archive read back with ``allow_pickle=False``: numeric
arrays only (no object arrays, no Python objects), so loading a checkpoint can never
run code.
"""
from __future__ import annotations

import io

import numpy as np


def pack_arrays(**arrays: np.ndarray) -> bytes:
    """Named numeric arrays (or scalars) to bytes."""
    buf = io.BytesIO()
    np.savez(buf, **{name: np.asarray(a) for name, a in arrays.items()})
    return buf.getvalue()


def unpack_arrays(blob: bytes) -> dict[str, np.ndarray]:
    """The arrays of :func:`pack_arrays`, by name; refuses pickled content."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
