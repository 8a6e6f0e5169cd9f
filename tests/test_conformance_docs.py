"""docs/writing-plugins.md keeps up with the code: every hook, every kit function and
fixture, and every contract clause the kit reports is documented there."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np

from benchbase import hookspecs, testing
from benchbase.testing import pytest_plugin
from benchbase.testing.kit_plugins import KitMean

DOC = Path(__file__).resolve().parents[1] / "docs" / "writing-plugins.md"


def _documented() -> set[str]:
    return set(re.findall(r"`([^`\s(]+)", DOC.read_text(encoding="utf-8")))


class _Capable(KitMean):
    """KitMean with every optional capability, so every capability clause is reached."""

    capabilities = frozenset({"heldout_loss", "denoise", "log_prob"})

    def heldout_loss(self, state, batch, key):
        return np.float32(((batch.x - state["mean"]) ** 2).mean())

    def denoise(self, state, x_noisy, sigma):
        w = 0.01 / (0.01 + sigma ** 2)
        return (w * x_noisy + (1 - w) * state["mean"]).astype(np.float32)

    def log_prob(self, state, x, key):
        return (-0.5 * ((x - state["mean"]).reshape(len(x), -1) ** 2).sum(1)).astype(np.float32)


def test_every_hook_is_documented():
    text = DOC.read_text(encoding="utf-8")
    hooks = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("benchbase_")]
    assert hooks and not [h for h in hooks if h not in text]


def test_every_kit_function_and_fixture_is_documented():
    documented = _documented()
    public = [n for n in testing.__all__ if callable(getattr(testing, n)) and not n[0].isupper()]
    fixtures = [n for n in dir(pytest_plugin) if n.startswith("benchbase_")]
    assert fixtures and not [n for n in public + fixtures if n not in documented]


def test_every_clause_the_kit_reports_is_documented():
    from benchbase_plugins.executors.local import LocalExecutor
    from benchbase_plugins.features.pixels import Pixels
    from benchbase_plugins.metrics.fidelity import FD
    from benchbase_plugins.publishers.tables import CSV, Markdown
    from support.tracker_plugins import RecordingTracker

    reports = [testing.check_model(_Capable, dataset="image"), testing.check_dataset(testing.ToyVectors),
               testing.check_dataset(testing.ToyImages), testing.check_metric(FD, identical=0.0),
               testing.check_feature_extractor(Pixels), testing.check_publisher(Markdown),
               testing.check_publisher(CSV), testing.check_executor(LocalExecutor),
               testing.check_tracker(RecordingTracker)]
    clauses = {c for r in reports for c in r.checked} | {c for r in reports for c, _ in r.skipped}
    assert len(clauses) > 60
    missing = sorted(clauses - _documented() - {"train_step", "capabilities"})
    assert not missing, f"clauses missing from {DOC.name}: {missing}"
