"""Tests of optional libraries (the trackers' tools, Ray): skipped where the extra is
not installed, with the pip command that installs it; but where
``BENCHBASE_REQUIRE_EXTRAS=1`` (CI sets it, having installed every extra) a missing
library fails the test, so a test that CI must run cannot pass there by skipping."""
from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

REQUIRE_ENV = "BENCHBASE_REQUIRE_EXTRAS"


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0", "false", "no")


def need(module: str, extra: str) -> ModuleType:
    """``module``, imported; else a skip (a failure where extras are required)."""
    why = f"{module} is not installed: pip install 'benchbase[{extra}]'"
    if not required():
        return pytest.importorskip(module, reason=why)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"{why} ({REQUIRE_ENV} is set: this test must run here; {exc})", pytrace=False)
