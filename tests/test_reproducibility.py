"""Same command, same numbers (docs/reproducibility.md): on one machine the stored
values do not depend on the machine's load or on 1 vs 2 threads, and every run
records what its bits depend on."""
from __future__ import annotations

import subprocess
import sys

from support.executor_runs import flow, run, same_numbers, stored_values, suite_of

from benchbase.store import Store

SUITE = suite_of(flow(), "copy_train", eval={"schedule": "list", "steps": [20, 60], "n_samples": 200})


def test_a_run_records_the_numerics_its_bits_depend_on(tmp_path):
    suite, result = run(SUITE, tmp_path)
    assert result.ok
    with Store(tmp_path) as store:
        numerics = {r.spec.model.label: r.provenance["numerics"] for r in store.runs()}
    assert numerics["flow"]["threads"] == 1, "the local executor's default"
    assert numerics["flow"]["cpu_capability"] and numerics["flow"]["cpu"]
    assert "env" in numerics["copy_train"]


def test_the_settings_that_pick_blas_kernels_are_recorded(monkeypatch):
    """MKL's code path (PyTorch's products) and OpenBLAS's core type (NumPy's and SciPy's:
    fd) each change the bits of a run (docs/reproducibility.md, across CPU models)."""
    from benchbase.frameworks import host_numerics

    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("MKL_CBWR", "AVX2")
    monkeypatch.delenv("MKL_ENABLE_INSTRUCTIONS", raising=False)
    env = host_numerics()["env"]
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and env["MKL_CBWR"] == "AVX2"
    assert "MKL_ENABLE_INSTRUCTIONS" not in env


def test_same_numbers_whatever_the_load_and_with_one_or_two_threads(tmp_path):
    _, _ = run(SUITE, tmp_path / "one")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        suite, _ = run(SUITE, tmp_path / "busy")
    finally:
        spinner.kill()
        spinner.wait()
    run(SUITE, tmp_path / "two", executor={"name": "local", "config": {"threads": 2}})
    reference = stored_values(tmp_path / "one", suite)
    assert reference and same_numbers(stored_values(tmp_path / "busy", suite), reference)
    assert same_numbers(stored_values(tmp_path / "two", suite), reference)
    with Store(tmp_path / "two") as store:
        assert {r.provenance["numerics"]["threads"] for r in store.runs() if r.spec.model.framework == "torch"} == {2}


def test_the_reproducibility_check_runs_the_suites_models_in_the_framework_asked(tmp_path, monkeypatch):
    """benchmarks/check_reproducibility.py --framework jax: the JAX twins, nothing else changed."""
    import importlib
    from pathlib import Path

    import yaml

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    check = importlib.import_module("check_reproducibility")
    quickstart = Path(__file__).resolve().parents[1] / "suites" / "quickstart.yaml"
    same = yaml.safe_load(check.derived_suite(quickstart, ["gmm2d"], ["rectified_flow", "vae"], 50, tmp_path)
                          .read_text())
    twins = yaml.safe_load(check.derived_suite(quickstart, ["gmm2d"], ["rectified_flow", "vae"], 50, tmp_path,
                                               framework="jax").read_text())
    assert [m["framework"] for m in same["models"]] == ["torch", "torch"]
    assert [m["framework"] for m in twins["models"]] == ["jax", "jax"]
    assert [{k: v for k, v in m.items() if k != "framework"} for m in twins["models"]] == \
        [{k: v for k, v in m.items() if k != "framework"} for m in same["models"]]
    assert [d["name"] for d in twins["datasets"]] == ["gmm2d"] and twins["budget"]["steps"] == 50
