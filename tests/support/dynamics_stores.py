"""Results stores written by hand for the training-dynamics tests: runs that memorize
exactly on cue (``fake_store``), and a heldout_gap metric wherever the registry lacks one."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from benchbase import Metric, hookimpl
from benchbase.config import build_suite
from benchbase.contracts import EvalRow
from benchbase.store import Store
from support.chance_levels import chance_rows
from support.suites import tiny_suite

# ------------------------------------------------------------------ a stand-in metric


@dataclass
class _GapConfig:
    evaluations: int = 256


class HeldoutGapStandIn(Metric):
    """Stand-in for the metrics branch's heldout_gap: rows heldout_gap.train / heldout_gap.test."""

    name = "heldout_gap"
    direction = "lower"
    requires = frozenset({"capability:heldout_loss"})
    Config = _GapConfig

    def compute(self, ctx):
        def tiled(x):
            return np.concatenate([x] * -(-self.config.evaluations // len(x)))[:self.config.evaluations]
        train = ctx.model.heldout_loss(tiled(ctx.train_data))
        test = ctx.model.heldout_loss(tiled(ctx.test_data))
        return {"heldout_gap": test - train, "heldout_gap.train": train, "heldout_gap.test": test}


class _StandInPlugin:
    @hookimpl
    def benchbase_register_metrics(self, register):
        register(HeldoutGapStandIn)


def ensure_heldout_gap(registry):
    """The metrics branch's heldout_gap when registered, else the stand-in above."""
    if "heldout_gap" not in registry.names("metric"):
        registry.add_plugin(_StandInPlugin(), "heldout-gap-stand-in", source="test")
        registry.collect()
    return registry


def fake_store(registry, path, ns=(16, 32, 64, 128), seeds=(0,), per_n=40.0, budget=20000, points=12,
               suite_name="fake", extra_sweep=None, copy_at=None, label=None):
    """A store whose runs memorize exactly on cue: mem_ratio = clip((step / (per_n n) - 1) / 4, 0, 1)
    (onset at step per_n * n), swd lowest at the onset; returns the suite. ``label``: the model's."""
    sweep = {"n": list(ns), **(extra_sweep or {})}
    model = {"name": "rectified_flow", "framework": "torch", "config": {"width": 16, "depth": 1},
             **({"label": label} if label else {})}
    suite = build_suite(tiny_suite(name=suite_name, models=[model],
                                   seeds=list(seeds), sweep=sweep, budget={"batch_size": 32, "steps": budget},
                                   eval={"points": points, "n_samples": 100, "keep_samples": 8},
                                   datasets=[{"name": "gmm2d", "config": {"train_size": 4000, "test_size": 200}}]),
                        "<fake>", registry=registry)
    with Store(path) as store:
        store.register_runs(suite.name, suite.runs, {"source": "<fake>", "resolved": suite.resolved,
                                                     "leaderboard": suite.leaderboard})
        for spec in suite.runs:
            n = spec.subset.n
            onset_step = (copy_at or per_n) * n * (spec.model.config["width"] / 16)
            for step in spec.eval.steps:
                mem = float(np.clip((step / onset_step - 1) / 4, 0, 1))
                swd = 0.1 + abs(math.log(step / onset_step))
                rows = [EvalRow("mem_ratio", mem, "train"), *chance_rows("mem_ratio", 0.0, 0.0),
                        EvalRow("swd", swd, "test"),
                        EvalRow("swd", swd + 0.01, "train"),
                        EvalRow("heldout_gap.train", 1.0 - 0.3 * mem, "train"),
                        EvalRow("heldout_gap.test", 1.0, "train")]
                store.write_eval(spec.run_id, step, step * 32, rows,
                                 samples=np.zeros((4, 2), np.float32) + step)
            store.finish_run(spec.run_id, "done", {"steps": budget})
    return suite
