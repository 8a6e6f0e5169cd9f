"""Evaluation contexts and Gaussian samples for metric and feature tests."""
from __future__ import annotations

import numpy as np

from benchbase.contracts import DataSpec, EvalContext


def make_ctx(gen, train, test=None, ref_name: str = "train", step: int = 1, seed: int = 0, model=None,
             spec: DataSpec | None = None) -> EvalContext:
    """An EvalContext on raw arrays used as both data and features (the pixel space)."""
    gen, train = np.asarray(gen, np.float32), np.asarray(train, np.float32)
    test = train if test is None else np.asarray(test, np.float32)
    spec = spec or DataSpec(shape=tuple(train.shape[1:]))
    return EvalContext(
        gen=gen.reshape(len(gen), -1), train=train.reshape(len(train), -1), test=test.reshape(len(test), -1),
        samples=gen, train_data=train, test_data=test, spec=spec, feature_space="pixels", step=step,
        seed=seed, device="cpu", ref=(train if ref_name == "train" else test).reshape(-1, spec.dim),
        ref_name=ref_name, model=model)


def gaussian(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, d)) * scale + shift).astype(np.float32)
