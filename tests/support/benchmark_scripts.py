"""Import a script of benchmarks/ as a module in a test (they are scripts, not a package),
and forget it afterwards so that every test gets it fresh."""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def import_benchmark(monkeypatch, name: str):
    """``benchmarks/<name>.py`` as a module; ``monkeypatch`` undoes the path change, and
    the module is dropped from ``sys.modules`` when the test ends."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.delitem(sys.modules, name, raising=False)
    module = importlib.import_module(name)
    monkeypatch.setitem(sys.modules, name, module)
    return module
