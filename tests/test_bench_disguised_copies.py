"""benchmarks/bench_disguised_copies.py: --space-config reaches the feature space's
config, and a bad one stops the benchmark before anything runs."""
from __future__ import annotations

import pytest
from support.benchmark_scripts import import_benchmark


@pytest.fixture
def bench(monkeypatch):
    return import_benchmark(monkeypatch, "bench_disguised_copies")


class Captured(Exception):
    pass


def test_a_space_config_becomes_that_spaces_feature_config(bench, monkeypatch):
    from benchbase.config import load_suite

    seen = {}

    def fake_run_space(suite_path, space, results, overrides, registry):
        seen[space] = load_suite(suite_path, [f"eval.features={space}", *overrides], registry=registry)
        raise Captured

    monkeypatch.setattr(bench, "run_space", fake_run_space)
    with pytest.raises(Captured):
        bench.main(["--spaces", "copy_descriptor", "--space-config", '{"copy_descriptor": {"whitening": 0.1}}'])
    feature = seen["copy_descriptor"].runs[0].eval.features
    assert feature.name == "copy_descriptor" and feature.config["whitening"] == 0.1


@pytest.mark.parametrize("text, says", [("{", "is not JSON"), ('{"copy_descriptor": 3}', "must map a space")])
def test_a_bad_space_config_stops_before_any_run(bench, monkeypatch, text, says):
    monkeypatch.setattr(bench, "run_space", lambda *a: pytest.fail("ran with a bad --space-config"))
    with pytest.raises(SystemExit, match=says):
        bench.main(["--space-config", text])
