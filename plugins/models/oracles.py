"""Oracle models: reference points that calibrate every metric.

``true_sampler`` returns fresh draws from the data distribution (a perfect
generalizer); ``noise`` returns uniform noise over the data's value range (zero
fidelity: the worst fd/swd, precision ~ 0). The memorizing oracles (``copy_train``
and the controlled memorizers) live in ``memorizers.py``. None trains: the core
evaluates them once, at step 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbase import Model, hookimpl


class Oracle(Model):
    """Base of the models that train nothing: the core evaluates them once, at step 0,
    and they cost no budget. The state must be a function of the data alone (``load``
    rebuilds it with ``init``)."""

    family = "oracle"
    framework = "numpy"
    trains = False

    def train_step(self, state, batch, key):
        return state, {}

    def save(self, state) -> bytes:
        return b""  # the state is a function of the data alone

    def load(self, blob: bytes, data):
        return self.init(data, 0)


@dataclass
class TrueSamplerConfig:
    pass


class TrueSampler(Oracle):
    """Fresh draws from the data distribution: the dataset's exact sampler when it has
    one, otherwise points of the held-out test split (recorded in the run's provenance
    as fresh_source). Test points are fresh for the metrics when the suite keeps them
    apart (``eval.n_test`` below the test split's size: ``held_out_test``); drawn from
    the whole test split, metrics that compare with it read them as optimistically
    close (``test_split``)."""

    name = "true_sampler"
    Config = TrueSamplerConfig

    def init(self, data, seed):
        return {"fresh": data.sample_fresh}

    def sample(self, state, n, key: np.random.Generator):
        return state["fresh"](n, int(key.integers(0, 2**31 - 1)))


class Noise(Oracle):
    """Uniform noise over the dataset's value range, in the data's shape: zero fidelity.

    Each coordinate is drawn independently from U(lo, hi), (lo, hi) = the DataSpec's
    value_range ([-1, 1] for images). Calibrates the bottom of every fidelity metric:
    it should have the worst fd/swd/kid and precision ~ 0 (in more than a few
    dimensions), and it never copies (mem_ratio ~ 0, authenticity ~ 1).
    """

    name = "noise"

    def init(self, data, seed):
        lo, hi = (float(v) for v in data.spec.value_range)
        return {"shape": tuple(data.spec.shape), "lo": lo, "hi": hi}

    def sample(self, state, n, key: np.random.Generator):
        x = key.uniform(state["lo"], state["hi"], size=(n, *state["shape"]))
        return x.astype(np.float32)


@hookimpl
def benchbase_register_models(register):
    register(TrueSampler)
    register(Noise)
