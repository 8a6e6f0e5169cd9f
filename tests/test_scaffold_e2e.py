"""The issue's check, end to end: scaffold one plugin of each kind (a JAX model among
them) in a temporary directory, pip-install them into this environment, see them in
`benchbase plugins`, run their generated tests (the conformance kit) and their suites,
and uninstall them again, whatever happened."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import uuid
from xml.etree import ElementTree

import pytest

from benchbase.leaderboard import build_tables, table_to_records
from benchbase.scaffold import scaffold
from benchbase.store import Store

# This test pip-installs plugins into the environment for a while: it shares one xdist group
# with tests/test_startup.py (which lists every installed entry point) and test_plugins'
# installed distribution, so under `pytest -n 2 --dist loadgroup` they never overlap.
pytestmark = pytest.mark.xdist_group("installs_plugins")


PREFIX = "kite2e"  # every distribution this test installs is benchbase-kite2e-...
PLUGINS = [("model", "torch"), ("model", "jax"), ("dataset", None), ("metric", None)]


def _pip(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=timeout)


def _installed_leftovers() -> list[str]:
    """Distributions an interrupted earlier run of this test may have left installed."""
    names = {(d.metadata["Name"] or "") for d in importlib.metadata.distributions()}
    return sorted(n for n in names if n.lower().replace("_", "-").startswith(f"benchbase-{PREFIX}"))


def _run(args: list[str], cwd, timeout: int = 900) -> subprocess.CompletedProcess:
    # One intra-op thread per child: on a small shared CPU, torch's thread pool spinning
    # against other processes made these runs four times slower.
    threads = os.environ.get("BENCHBASE_TEST_THREADS", "1")
    env = {**os.environ, "BENCHBASE_TEST_THREADS": threads,
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", threads)}
    env.pop("BENCHBASE_LOAD_PLUGINS", None)
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def installed(tmp_path):
    """Scaffold and install the four packages; uninstall them at the end, always."""
    if importlib.util.find_spec("jax") is None:
        pytest.skip("the JAX model needs benchbase[jax]")
    leftovers = _installed_leftovers()
    if leftovers:
        _pip("uninstall", "-y", *leftovers)
    tag = uuid.uuid4().hex[:6]
    packages = []
    for kind, framework in PLUGINS:
        name = f"{PREFIX}_{kind}_{framework or 'np'}_{tag}"
        packages.append((kind, framework, name, scaffold(kind, name, framework, tmp_path / "src")))
    # Build with this environment's setuptools (no download); without it pip fetches one.
    flags = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    dists = [f"benchbase-{name.replace('_', '-')}" for _, _, name, _ in packages]
    try:
        result = _pip("install", "-q", "--no-deps", *flags, *[a for *_, path in packages for a in ("-e", str(path))])
        assert result.returncode == 0, result.stderr[-3000:]
        importlib.invalidate_caches()
        yield packages
    finally:
        _pip("uninstall", "-y", *dists)
        importlib.invalidate_caches()
        assert not _installed_leftovers(), "the scaffolded packages could not be uninstalled"


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_scaffolded_plugins_install_pass_their_tests_and_run_in_their_suites(installed, tmp_path):
    cli = [sys.executable, "-m", "benchbase.cli"]
    listing = _run(cli + ["plugins", "--json"], tmp_path)
    assert listing.returncode == 0, listing.stderr
    seen = {(p["kind"], p["name"]): p for p in json.loads(listing.stdout)}
    for kind, framework, name, _ in installed:
        entry = seen.get((kind, name))
        assert entry is not None, f"{kind} {name} missing from `benchbase plugins`"
        assert entry["source"] == f"benchbase-{name.replace('_', '-')}"
        if framework:
            assert entry["framework"] == framework

    # The generated tests of all four packages, in one pytest session (one interpreter start).
    report = tmp_path / "generated-tests.xml"
    tests = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
                  *[str(path / "tests") for *_, path in installed]], tmp_path)
    assert tests.returncode == 0, f"generated tests failed:\n{tests.stdout[-6000:]}{tests.stderr[-2000:]}"
    cases = ElementTree.parse(report).getroot().iter("testcase")
    outcome = {(c.get("classname").rsplit(".", 1)[-1], c.get("name")): [e.tag for e in c] for c in cases}
    for kind, framework, name, path in installed:
        ran = {test: tags for (module, test), tags in outcome.items() if module == f"test_{name}"}
        assert any(t.startswith("test_keeps_the_contract") for t in ran), f"no conformance test ran for {name}"
        assert "test_runs_in_its_suite" in ran and "test_is_registered_through_its_entry_point" in ran
        assert not [t for t, tags in ran.items() if {"failure", "error", "skipped"} & set(tags)], ran

    for kind, framework, name, path in installed:
        results = tmp_path / f"results-{name}"
        run = _run(cli + ["run", str(path / "suites" / f"{name}.yaml"), "--results", str(results),
                          "--device", "cpu", "--quiet"], path)
        assert run.returncode == 0, f"suite of {name} failed:\n{run.stdout[-3000:]}{run.stderr[-3000:]}"
        with Store(results, create=False) as store:
            rows = [r for t in build_tables(store) for r in table_to_records(t)]
        assert rows and all(r["statuses"] == {"done": 1} for r in rows)
        if kind == "model":
            assert name in {r["name"] for r in rows}
        elif kind == "dataset":
            assert {r["dataset"] for r in rows} == {name}
        else:
            assert all(r["metrics"][f"{name}[test]"]["mean"] is not None for r in rows)
