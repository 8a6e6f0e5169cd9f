"""Suites as plain dicts, small enough for tests to run in seconds."""
from __future__ import annotations


def tiny_suite(**overrides) -> dict:
    """A suite small enough to run in a second or two; tests override what they need."""
    suite = {
        "name": "tiny",
        "seeds": [0],
        "device": "cpu",
        "datasets": [{"name": "gmm2d", "n": 64, "config": {"train_size": 500, "test_size": 200}}],
        "models": [{"name": "rectified_flow", "framework": "torch",
                    "config": {"width": 32, "depth": 2, "sample_steps": 10}},
                   "copy_train"],
        "metrics": ["mem_ratio", "fd", {"name": "swd", "config": {"n_projections": 20}}],
        "budget": {"batch_size": 32, "steps": 60},
        "eval": {"points": 3, "n_samples": 100},
    }
    suite.update(overrides)
    return suite
