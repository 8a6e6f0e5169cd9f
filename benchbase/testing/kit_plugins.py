"""The kit's own plugins, registered from this module (``PluginPolicy(extra=(KIT_PLUGINS,))``;
worker processes import it by name): a numpy model, the toy vectors and two metrics
with the directions the core's metrics lack. They give checks of executors and
publishers real runs and real leaderboard tables to work on, without any framework.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbase.contracts import Metric, Model
from benchbase.hookspecs import hookimpl
from benchbase.testing.toydata import ToyVectors

KIT_PLUGINS = __name__


@dataclass
class KitMeanConfig:
    lr: float = 0.2
    fail: bool = False  # raise in train_step (a broken plugin)


class KitMean(Model):
    """A stand-in that tracks the data mean: it trains, is exact, and needs no framework."""

    name = "kit_mean"
    family = "baseline"
    framework = "numpy"
    Config = KitMeanConfig

    def init(self, data, seed):
        rng = np.random.default_rng(seed)
        return {"mean": rng.normal(size=data.spec.shape).astype(np.float32), "shape": data.spec.shape}

    def train_step(self, state, batch, key):
        if self.config.fail:
            raise RuntimeError("kit_mean was told to fail")
        noisy = batch.x.mean(0) + 0.01 * key.standard_normal(batch.x.shape[1:])
        mean = state["mean"] + self.config.lr * (noisy - state["mean"])
        return {**state, "mean": mean.astype(np.float32)}, {"gap": np.float32(np.abs(noisy - mean).mean())}

    def sample(self, state, n, key):
        return (state["mean"] + 0.1 * key.standard_normal((n, *state["shape"]))).astype(np.float32)

    def save(self, state) -> bytes:
        return state["mean"].tobytes()

    def load(self, blob, data):
        mean = np.frombuffer(blob, dtype=np.float32).reshape(data.spec.shape).copy()
        return {"mean": mean, "shape": data.spec.shape}

    def param_count(self, state) -> int:
        return int(state["mean"].size)


@hookimpl
def benchbase_register_models(register):
    register(KitMean)


@hookimpl
def benchbase_register_datasets(register):
    register(ToyVectors)


class KitSpread(Metric):
    """Mean per-dimension standard deviation of the generated features (more is better)."""

    name = "kit_spread"
    direction = "higher"
    conformance = {"pairs": [("true", "collapsed")], "identical": None}

    def compute(self, ctx) -> dict[str, float]:
        return {"kit_spread": float(np.asarray(ctx.gen, np.float64).std(0).mean())}


class KitCentre(Metric):
    """Distance between the means of generated and reference features, judged against 0."""

    name = "kit_centre"
    direction = "target"
    target = 0.0
    references = ("test", "train")
    conformance = {"identical": 0.0}

    def compute(self, ctx) -> dict[str, float]:
        gap = np.asarray(ctx.gen, np.float64).mean(0) - np.asarray(ctx.ref, np.float64).mean(0)
        return {"kit_centre": float(np.linalg.norm(gap))}


@hookimpl
def benchbase_register_metrics(register):
    register(KitSpread)
    register(KitCentre)
