"""Pieces every conformance check shares: the registration rules (the registry's own),
building a plugin's config, and skipping when a framework is not installed."""
from __future__ import annotations

import dataclasses
import importlib.util
import inspect
from typing import Any

import numpy as np

from benchbase.errors import PluginError
from benchbase.testing.violations import Checker


def label(kind: str, cls: Any) -> str:
    name = getattr(cls, "name", getattr(cls, "__name__", "?"))
    if kind == "model":
        return f"model '{name}' ({getattr(cls, 'framework', '?')})"
    return f"{kind} '{name}'"


def check_declaration(c: Checker, kind: str, cls: Any) -> None:
    """The registry's checks (name, Config, required methods, declared enums) plus a
    docstring of its own, whose first line ``benchbase plugins`` shows."""
    from benchbase.plugins import _validate_component

    try:
        _validate_component(kind, cls, "check")
    except PluginError as exc:
        c.fail("registration", str(exc), "fix the class attributes named above; the registry refuses "
                                        "the plugin until they are valid")
    c.passed("registration")
    # The first class in the MRO with a docstring documents the plugin (variants may share
    # one through a mixin); the generic docstrings of benchbase's own bases do not count.
    owner = next((k for k in inspect.getmro(cls) if (k.__dict__.get("__doc__") or "").strip()), None)
    c.require(owner is not None and owner.__module__ != "benchbase.contracts", "docstring",
              f"{cls.__name__} has no docstring (only benchbase's base class has one)",
              "add a class docstring; its first line is the summary `benchbase plugins` shows")


def make_config(c: Checker, cls: Any, config: Any) -> Any:
    """None: the defaults (which must exist); a dict: validated as a suite's config is."""
    if config is None:
        with c.calling("config.defaults", f"{cls.__name__}.Config()",
                       "give every field of Config a default, so a suite may omit it"):
            obj = cls.Config()
        c.passed("config.defaults")
        return obj
    if isinstance(config, dict):
        from benchbase.structured import typed

        return typed(config, cls.Config, "<conformance check>", "config")
    if dataclasses.is_dataclass(config):
        return config
    raise TypeError(f"config must be None, a dict or a {cls.Config.__name__} instance, "
                    f"not {type(config).__name__}")


def require_framework(framework: str) -> None:
    """Skip (under pytest) when the plugin's framework is not installed here."""
    if framework in ("numpy", "torch") or importlib.util.find_spec(framework) is not None:
        return
    import pytest

    pytest.skip(f"{framework} is not installed (pip install 'benchbase[{framework}]')")


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equal arrays (NaN equal to NaN), the standard for 'repeatable'."""
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def close(a: np.ndarray, b: np.ndarray, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Equal up to float32 rounding at the scale of the whole array (not per element:
    a denoiser's x_noisy - sigma * eps_hat cancels to small values whose rounding error
    is that of the large terms)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return False
    return bool(np.abs(a - b).max(initial=0.0) <= atol + rtol * np.abs(b).max(initial=0.0))


def fingerprint(*arrays: Any) -> list:
    """A cheap snapshot to prove a plugin left its inputs untouched."""
    return [None if a is None else np.array(a, copy=True) for a in arrays]


FIX_KEY = ("draw all randomness from the `key` handed to train_step/sample (a seeded torch.Generator, "
           "a JAX PRNGKey or a numpy Generator) and the `seed` handed to init; never from global RNGs "
           "(torch.manual_seed, np.random.*, random.*), the clock or object ids")


# Usual size knobs and the small values that keep a conformance check to a second
# (`steps`: the fitting steps of a learned feature space; `batch_size`: its fitting batch
# or an embedding block, which a check's two dozen examples never fill).
SMALL_VALUES = {"width": 32, "hidden": 32, "hidden_dim": 32, "channels": 16, "base_channels": 16,
                "res_blocks": 1, "sample_steps": 8, "num_sample_steps": 8, "timesteps": 50, "iwae_k": 4,
                "iwae_samples": 4, "steps": 50, "loglik_steps": 4, "batch_size": 32}


def small_config(plugin_cls: Any) -> dict:
    """Overrides that shrink the usual size knobs a plugin's Config has (width, sample
    steps, fitting steps...) for quick checks; knobs it lacks, or already smaller, are
    left alone."""
    import dataclasses

    out = {}
    for f in dataclasses.fields(plugin_cls.Config):
        small = SMALL_VALUES.get(f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        if small is not None and isinstance(default, int) and not isinstance(default, bool) and default > small:
            out[f.name] = small
    return out
