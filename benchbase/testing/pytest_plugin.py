"""The kit as a pytest plugin (entry point ``pytest11: benchbase``), loaded in every
pytest session of an environment where benchbase is installed. It only defines
fixtures, all prefixed ``benchbase_``, and imports nothing heavy until one is used.

- ``benchbase_registry``: a fresh plugin registry (built-ins plus installed plugin
  packages, honouring BENCHBASE_LOAD_PLUGINS / BENCHBASE_BLOCK_PLUGINS), strict, so a
  plugin that fails to load fails the test instead of warning.
- ``benchbase_results``: an empty results directory under ``tmp_path``.
- ``benchbase_run``: ``benchbase_run(suite, *overrides)`` runs a suite (YAML path or
  dict) quietly into ``benchbase_results`` and returns a SuiteRun (result, rows).
"""
from __future__ import annotations

import pytest


@pytest.fixture
def benchbase_registry():
    """A fresh, strict plugin registry with built-ins and installed plugin packages."""
    from benchbase.plugins import PluginPolicy, build_registry

    return build_registry(PluginPolicy.from_env(strict=True))


@pytest.fixture
def benchbase_results(tmp_path):
    """An empty results directory for one test."""
    path = tmp_path / "benchbase-results"
    path.mkdir()
    return path


@pytest.fixture
def benchbase_run(benchbase_registry, benchbase_results):
    """Run a suite quietly: ``benchbase_run("suites/x.yaml", "budget.steps=50")``."""
    from benchbase.testing.runs import run_suite_quietly

    def run(suite, *overrides):
        return run_suite_quietly(suite, benchbase_results, registry=benchbase_registry, overrides=list(overrides))

    return run
