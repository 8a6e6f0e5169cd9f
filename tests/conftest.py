"""Shared fixtures. Every test that needs plugins builds a fresh registry: no plugin
manager, dataset cache or environment setting leaks from one test to the next."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile

import pytest


def _share_jax_compilations() -> None:
    """The built-in JAX models share their jitted functions within a process, but each
    xdist worker, CLI subprocess and Ray worker that a test starts would compile again
    programs another process already compiled (10-20 s each on a 2-core CPU), as would
    a model built with another config that lowers to the same program. XLA's persistent
    compilation cache, in one fresh folder per session and passed on to child processes
    through the environment, turns each repeat into a file read. The programs and their
    results are the same; only compile time goes. Set before anything imports jax (jax
    reads these when it is imported); a value the caller set wins."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return
    folder = tempfile.mkdtemp(prefix="benchbase-tests-jax-cache-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def _one_thread_per_xdist_worker() -> None:
    """Under pytest-xdist (README's ``-n 2`` on a 2-core box) each worker
    process gets one CPU thread for PyTorch, BLAS and XLA: a worker's second thread would
    only spin against the other worker for the same cores. Environment variables, so the
    processes a test starts (CLI subprocesses, Ray workers) inherit them; set before
    anything imports torch, numpy or jax; a value the caller set wins. The XLA cache folder
    above was made by the controlling process and is shared by its workers: JAX writes
    whole entries, and a half-written one it reads is only a cache miss (a warning)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ.setdefault("BENCHBASE_TEST_THREADS", "1")


_share_jax_compilations()
_one_thread_per_xdist_worker()

from benchbase.data import DataCatalog
from benchbase.plugins import PluginPolicy, build_registry
from support.xdist_groups import send_each_xdist_group_to_one_worker


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    for var in ("BENCHBASE_LOAD_PLUGINS", "BENCHBASE_BLOCK_PLUGINS", "BENCHBASE_STRICT_PLUGINS",
                "BENCHBASE_RESULTS", "BENCHBASE_DATA"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    DataCatalog.shared().clear()
    yield
    DataCatalog.shared().clear()


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own group suffixes, before it sends the ids
def pytest_collection_modifyitems(config, items):
    _group_tests_sharing_a_fixture(items)
    _skip_gpu_tests_without_a_gpu(items)
    send_each_xdist_group_to_one_worker(config, items)


def _group_tests_sharing_a_fixture(items) -> None:
    """Tests that share a module- or session-scoped fixture of this folder (a fitted
    descriptor, a Ray cluster, a trained suite) get one ``xdist_group``, so under
    ``pytest -n 2 --dist loadgroup`` one worker runs them all and builds the fixture once
    instead of once per worker. Tests linked through any chain of shared fixtures land in
    the same group; every other test is scheduled on its own."""
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    keys_of = {}
    for item in items:
        keys = []
        fixture_info = getattr(item, "_fixtureinfo", None)
        for name in getattr(item, "fixturenames", ()):
            defs = fixture_info.name2fixturedefs.get(name) if fixture_info else None
            if not defs or defs[-1].scope == "function" or not defs[-1].baseid:
                continue  # per test, or a plugin's (tmp_path_factory, ...)
            fixture = defs[-1]
            keys.append(fixture.baseid if fixture.scope == "module" else f"{fixture.scope}:{fixture.argname}")
        for key in keys[1:]:
            parent[root(key)] = root(keys[0])
        keys_of[item] = keys
    for item, keys in keys_of.items():
        if keys and item.get_closest_marker("xdist_group") is None:  # a test's own group wins
            item.add_marker(pytest.mark.xdist_group(root(keys[0])))


def _skip_gpu_tests_without_a_gpu(items) -> None:
    """Tests marked ``gpu`` skip, saying why, on a machine without a usable GPU."""
    gpu_tests = [item for item in items if "gpu" in item.keywords]
    if not gpu_tests:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU: torch.cuda.is_available() is False on this machine "
                                   "(run benchmarks/device_check.sh on a GPU machine)")
    for item in gpu_tests:
        item.add_marker(skip)


@pytest.fixture
def registry():
    """Built-in plugins only (no third-party entry points), strict: a fresh manager."""
    return build_registry(PluginPolicy(entry_points=False, strict=True))


@pytest.fixture
def results_dir(tmp_path):
    path = tmp_path / "results"
    path.mkdir()
    return path


if os.environ.get("BENCHBASE_TEST_THREADS"):
    import torch

    torch.set_num_threads(int(os.environ["BENCHBASE_TEST_THREADS"]))


@pytest.fixture(scope="session")
def learned_space_results(tmp_path_factory):
    """A results folder shared by the slow tests of one session: the learned feature
    spaces (copy_descriptor, trained_encoder) cache their fit in its ``cache/`` and are
    fitted once, not once per test module."""
    return tmp_path_factory.mktemp("learned_spaces")
