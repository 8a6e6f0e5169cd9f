"""The plugin host: built-ins, entry points, allow/block lists, strictness, rejection of
misspelled hooks, attribution, observers, and a real third-party distribution."""
from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import pytest
from support.suites import tiny_suite

from benchbase import hookimpl
from benchbase import plugins as plugin_host
from benchbase.cli import main
from benchbase.errors import PluginError, UnknownPluginError
from benchbase.plugins import PluginLoadWarning, PluginPolicy, build_registry

EXAMPLE = Path(__file__).parent / "fixtures" / "example_plugin"


def test_builtins_are_registered_with_family_framework_and_source(registry):
    models = {(r.name, r.framework): r.describe() for r in registry.all("model")}
    assert models[("rectified_flow", "torch")]["family"] == "flow"
    assert models[("vae", "torch")]["family"] == "vae"
    assert models[("copy_train", "numpy")]["family"] == "oracle"
    assert all(m["source"] == "built-in" for m in models.values())
    assert {"gmm2d", "digits"} <= set(registry.names("dataset"))
    assert {"mem_ratio", "fd", "swd"} <= set(registry.names("metric"))
    assert registry.get("metric", "fd").cls.direction == "lower"


def test_cli_lists_plugins_as_json(capsys, monkeypatch):
    monkeypatch.setenv("BENCHBASE_LOAD_PLUGINS", "")
    assert main(["plugins", "--json"]) == 0
    items = json.loads(capsys.readouterr().out)
    by_name = {(i["kind"], i["name"], i["framework"]): i for i in items}
    assert by_name[("model", "rectified_flow", "torch")]["family"] == "flow"
    assert by_name[("model", "true_sampler", "numpy")]["kind"] == "model"
    assert {"kind", "family", "framework", "source"} <= set(by_name[("metric", "mem_ratio", None)])
    assert main(["plugins", "--kind", "metric", "--json"]) == 0
    assert {i["kind"] for i in json.loads(capsys.readouterr().out)} == {"metric"}


def test_unknown_plugin_names_close_matches(registry):
    with pytest.raises(UnknownPluginError, match="Did you mean 'rectified_flow'"):
        registry.get("model", "rectifed_flow")


# ----------------------------------------------------------------- fake entry points


class FakeDist:
    def __init__(self, name, version="1.0"):
        self.metadata = {"Name": name}
        self.version = version


class FakeEntryPoint:
    def __init__(self, name, target, dist):
        self.name, self._target, self.dist = name, target, FakeDist(dist)

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def _module(name, **attrs):
    mod = types.ModuleType(name)
    for k, v in attrs.items():
        setattr(mod, k, v)
    return mod


def _metric_plugin(metric_name):
    from benchbase import Metric

    class M(Metric):
        """A test metric."""

        name = metric_name
        direction = "higher"

        def compute(self, ctx):
            return {metric_name: 1.0}

    @hookimpl
    def benchbase_register_metrics(register):
        register(M)

    return _module(f"plug_{metric_name}", benchbase_register_metrics=benchbase_register_metrics)


@pytest.fixture
def fake_entry_points(monkeypatch):
    eps: list = []
    monkeypatch.setattr(plugin_host.importlib.metadata, "entry_points",
                        lambda group=None: [e for e in eps if group == "benchbase"])
    return eps


def test_entry_point_plugins_load_and_are_attributed(fake_entry_points):
    fake_entry_points.append(FakeEntryPoint("good", _metric_plugin("good_metric"), "good-dist"))
    reg = build_registry(PluginPolicy())
    entry = reg.get("metric", "good_metric")
    assert entry.source == "good-dist" and entry.plugin == "good"
    assert "good-dist==1.0" in entry.version


def test_allow_list_and_empty_allow_list(fake_entry_points, monkeypatch):
    fake_entry_points.append(FakeEntryPoint("a", _metric_plugin("metric_a"), "dist-a"))
    fake_entry_points.append(FakeEntryPoint("b", _metric_plugin("metric_b"), "dist-b"))
    monkeypatch.setenv("BENCHBASE_LOAD_PLUGINS", "dist-b")
    names = set(build_registry().names("metric"))
    assert "metric_b" in names and "metric_a" not in names
    monkeypatch.setenv("BENCHBASE_LOAD_PLUGINS", "")
    names = set(build_registry().names("metric"))
    assert not {"metric_a", "metric_b"} & names and "mem_ratio" in names  # built-ins stay


def test_block_list_covers_third_party_and_builtin(fake_entry_points, monkeypatch):
    fake_entry_points.append(FakeEntryPoint("a", _metric_plugin("metric_a"), "dist-a"))
    monkeypatch.setenv("BENCHBASE_BLOCK_PLUGINS", "a,benchbase_plugins.metrics.fidelity")
    names = set(build_registry().names("metric"))
    assert "metric_a" not in names and "fd" not in names and "mem_ratio" in names


def test_plugin_that_fails_to_import_is_a_warning_naming_it(fake_entry_points, capsys):
    fake_entry_points.append(FakeEntryPoint("broken", ImportError("no module named torchy"), "broken-dist"))
    with pytest.warns(PluginLoadWarning, match="broken.*broken-dist.*torchy"):
        reg = build_registry(PluginPolicy())
    assert "mem_ratio" in reg.names("metric")
    with pytest.warns(PluginLoadWarning):
        assert main(["plugins", "--kind", "dataset"]) == 0  # the CLI still works
    assert "gmm2d" in capsys.readouterr().out


def test_strict_mode_makes_a_broken_plugin_an_error(fake_entry_points, monkeypatch):
    fake_entry_points.append(FakeEntryPoint("broken", ImportError("nope"), "broken-dist"))
    monkeypatch.setenv("BENCHBASE_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="broken"):
        build_registry()


def test_misspelled_hook_implementation_is_rejected(fake_entry_points):
    @hookimpl
    def benchbase_register_model(register):  # missing the final "s"
        pass

    fake_entry_points.append(FakeEntryPoint(
        "typo", _module("typo", benchbase_register_model=benchbase_register_model), "typo-dist"))
    with pytest.warns(PluginLoadWarning, match="benchbase_register_model.*Did you mean 'benchbase_register_models'"):
        reg = build_registry(PluginPolicy())
    assert not reg.pm.has_plugin("typo")
    with pytest.raises(PluginError, match="not a benchbase hook"):
        build_registry(PluginPolicy(strict=True))


def test_hook_with_wrong_arguments_is_rejected(fake_entry_points):
    @hookimpl
    def benchbase_register_models(registrar):  # not a spec argument
        pass

    fake_entry_points.append(FakeEntryPoint(
        "badargs", _module("badargs", benchbase_register_models=benchbase_register_models), "bad-dist"))
    with pytest.warns(PluginLoadWarning, match="badargs"):
        build_registry(PluginPolicy())


def test_component_breaking_the_contract_is_refused(fake_entry_points):
    from benchbase import Model

    class NoFamily(Model):
        name = "nofamily"
        family = "Transformer LM"  # families are open, but lowercase names
        framework = "torch"

    @hookimpl
    def benchbase_register_models(register):
        register(NoFamily)

    fake_entry_points.append(FakeEntryPoint(
        "nofam", _module("nofam", benchbase_register_models=benchbase_register_models), "nofam-dist"))
    with pytest.warns(PluginLoadWarning, match="family must be a lowercase name such as gan, vae"):
        reg = build_registry(PluginPolicy())
    assert "nofamily" not in reg.names("model")


def test_duplicate_names_keep_the_builtin(fake_entry_points):
    fake_entry_points.append(FakeEntryPoint("dup", _metric_plugin("fd"), "dup-dist"))
    with pytest.warns(PluginLoadWarning, match="registered by both"):
        reg = build_registry(PluginPolicy())
    assert reg.get("metric", "fd").source == "built-in"


def test_an_allow_list_naming_no_installed_plugin_warns_in_one_line(fake_entry_points):
    fake_entry_points.append(FakeEntryPoint("good", _metric_plugin("good_metric"), "good-dist"))
    with pytest.warns(PluginLoadWarning, match=r"BENCHBASE_LOAD_PLUGINS names 'goood', which is no installed "
                                               r"plugin .*Did you mean 'good'\? Installed: good, good-dist") as caught:
        reg = build_registry(PluginPolicy(allow=frozenset({"goood"})))
    assert len(caught) == 1 and "\n" not in str(caught[0].message)
    assert "good_metric" not in reg.names("metric")


def test_a_duplicate_name_in_strict_mode_stops_once_without_keeping_anything(fake_entry_points):
    fake_entry_points.append(FakeEntryPoint("dup", _metric_plugin("fd"), "dup-dist"))
    with pytest.raises(PluginError) as info:
        build_registry(PluginPolicy(strict=True))
    message = str(info.value)
    assert message.count("stopping because BENCHBASE_STRICT_PLUGINS is set") == 1
    assert "registered by both" in message and "kept" not in message and "keeping" not in message
    with pytest.warns(PluginLoadWarning, match="the one of 'dup' is skipped, the first kept"):
        build_registry(PluginPolicy())


# ------------------------------------------------------------------------- observers


def test_observer_hooks_see_every_event_and_a_failing_observer_only_warns(results_dir):
    from benchbase.config import build_suite
    from benchbase.driver import run_suite
    from benchbase.progress import Reporter
    from benchbase.store import Store

    seen = []

    @hookimpl
    def benchbase_run_started(spec, run_id, provenance):
        seen.append(("started", run_id, provenance["dataset_content_hash"]))

    @hookimpl
    def benchbase_evaluated(run_id, step, results):
        seen.append(("evaluated", run_id, step, len(results)))

    @hookimpl
    def benchbase_run_finished(run_id, status, summary):
        seen.append(("finished", run_id, status))
        raise RuntimeError("tracker down")

    reg = build_registry(PluginPolicy(entry_points=False, strict=True))
    reg.add_plugin(_module("tracker", benchbase_run_started=benchbase_run_started,
                           benchbase_evaluated=benchbase_evaluated,
                           benchbase_run_finished=benchbase_run_finished), "tracker", source="test")
    suite = build_suite(tiny_suite(models=["copy_train"]), "<test>", registry=reg)
    with Store(results_dir) as store, pytest.warns(PluginLoadWarning, match="tracker down"):
        result = run_suite(suite, store, reg, reporter=Reporter(quiet=True))
    assert result.ok
    kinds = [e[0] for e in seen]
    assert kinds == ["started", "evaluated", "finished"]
    assert seen[1][3] > 0 and seen[2][2] == "done"


# ---------------------------------------------------------- a real installed package


@pytest.fixture(scope="module")
def installed_example():
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(pip + ["install", "--no-deps", "--no-build-isolation", str(EXAMPLE)], check=True)
    try:
        yield
    finally:
        subprocess.run(pip + ["uninstall", "-y", "benchbase-example-plugin"], check=False)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "benchbase.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env={**__import__("os").environ, "BENCHBASE_STRICT_PLUGINS": "1"})


# pip-installs into this environment: one xdist group with the other tests that install or list plugins
@pytest.mark.xdist_group("installs_plugins")
def test_third_party_distribution_is_listed_and_runs_in_a_suite(installed_example, tmp_path):
    out = _cli("plugins", "--json")
    assert out.returncode == 0, out.stderr
    items = {(i["kind"], i["name"]): i for i in json.loads(out.stdout)}
    model = items[("model", "example_gaussian")]
    assert model["source"] == "benchbase-example-plugin" and model["family"] == "flow"
    assert items[("metric", "example_mean_shift")]["source"] == "benchbase-example-plugin"

    suite = tiny_suite(models=["example_gaussian", "copy_train"],
                       metrics=["mem_ratio", "example_mean_shift"], name="thirdparty")
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps(suite))  # JSON is YAML
    run = _cli("run", str(path), "--results", str(tmp_path / "res"), "--quiet")
    assert run.returncode == 0, run.stdout + run.stderr
    board = _cli("leaderboard", "--results", str(tmp_path / "res"), "--format", "json")
    rows = {r["model"]: r for r in json.loads(board.stdout)}
    shift = rows["example_gaussian"]["metrics"]["example_mean_shift[test]"]["mean"]
    assert shift is not None and shift < 0.5
