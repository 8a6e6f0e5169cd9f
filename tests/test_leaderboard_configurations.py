"""A results folder that holds one label under several configurations (a suite edited
and rerun into the same folder) never averages them into one row: one row per
configuration, told apart by the spec values that differ, in every publisher, with a
note in the caption and one warning per label; ``run --fresh`` leaves only the suite
as it is now."""
from __future__ import annotations

import csv
import io
import json

import pytest
from support.published_results import fake_results
from support.suites import tiny_suite

from benchbase.cli import main
from benchbase.leaderboard import MixedConfigurationsWarning, build_tables, table_to_records
from benchbase.plugins import PluginPolicy, build_registry
from benchbase.resultset import ResultSet
from benchbase.store import Store


@pytest.fixture(scope="module")
def registry():
    return build_registry(PluginPolicy(entry_points=False, strict=True))


def suite(steps: int = 100, lr: float | None = None) -> dict:
    config = {"width": 16} | ({"lr": lr} if lr is not None else {})
    return tiny_suite(name="edit", seeds=[0, 1], metrics=["fd"], budget={"batch_size": 32, "steps": steps},
                      eval={"schedule": "list", "steps": [steps], "n_samples": 100},
                      models=[{"name": "rectified_flow", "label": "flow", "config": config}, "copy_train"])


def fd(spec, step, metric, ref):
    """1 for every seed of the 100-step (or default-lr) runs, 9 for the edited ones."""
    return 9.0 if spec.budget.steps != 100 or spec.model.config.get("lr") == 0.01 else 1.0


def _records(path) -> list[dict]:
    with ResultSet([path]) as rs:
        return [rec for t in build_tables(rs, primary="fd") for rec in table_to_records(t)]


def test_an_edited_budget_gives_one_row_per_configuration_not_a_mean(tmp_path, registry):
    fake_results(tmp_path, registry, suite(steps=50), fd)
    fake_results(tmp_path, registry, suite(steps=100), fd)
    with pytest.warns(MixedConfigurationsWarning, match=r"flow has runs of 2 different configurations .*"
                                                        r"budget\.steps.*fresh --results folder") as caught:
        records = _records(tmp_path)
    assert len(caught) == 1  # one line per label; copy_train does not train: one configuration
    flows = sorted((r for r in records if r["model"] == "flow"), key=lambda r: r["steps"])
    assert [(r["steps"], r["runs"], r["metrics"]["fd[test]"]["mean"], r["metrics"]["fd[test]"]["std"])
            for r in flows] == [(50, 2, 9.0, 0.0), (100, 2, 1.0, 0.0)]
    assert [r["params"]["budget.steps"] for r in flows] == [50, 100]
    assert "budget.steps" not in next(r for r in records if r["model"] == "copy_train")["params"]


def test_an_edited_learning_rate_is_named_in_every_format(tmp_path, registry, capsys):
    fake_results(tmp_path, registry, suite(lr=0.01), fd)
    fake_results(tmp_path, registry, suite(lr=0.001), fd)
    outputs = {}
    for fmt in ("markdown", "csv", "json", "html", "latex"):
        with pytest.warns(MixedConfigurationsWarning) as caught:  # the CLI prints it as one stderr line
            assert main(["leaderboard", "--results", str(tmp_path), "--format", fmt]) == 0
        outputs[fmt] = capsys.readouterr().out
        (line,) = [str(w.message) for w in caught]
        assert "flow has runs of 2 different configurations" in line and "model.config.lr" in line
        assert "\n" not in line and "--fresh" in line
    for fmt in ("markdown", "html"):
        assert "model.config.lr=0.01" in outputs[fmt] and "model.config.lr=0.001" in outputs[fmt]
        assert "runs of 2 configurations, one row each" in outputs[fmt]
    assert "model.config.lr=0.01" in outputs["latex"] and "2 configurations" in outputs["latex"]
    rows = list(csv.DictReader(io.StringIO(outputs["csv"])))
    assert sorted((json.loads(r["params"])["model.config.lr"], r["fd[test] mean"]) for r in rows
                  if r["model"] == "flow") == [(0.001, "1.0"), (0.01, "9.0")]
    assert sorted(r["params"]["model.config.lr"] for r in json.loads(outputs["json"]) if r["model"] == "flow") \
        == [0.001, 0.01]


def test_one_configuration_per_label_reads_as_before(tmp_path, registry, recwarn):
    fake_results(tmp_path, registry, suite(), fd)
    with ResultSet([tmp_path]) as rs:
        (table,) = build_tables(rs, primary="fd")
    assert [r.label for r in table.rows] == ["flow", "copy_train"] or [r.label for r in table.rows] == [
        "copy_train", "flow"]
    assert all(r.config == {} and r.runs == 2 for r in table.rows) and not table.notes
    assert not [w for w in recwarn if issubclass(w.category, MixedConfigurationsWarning)]


def test_fresh_registration_leaves_only_the_suites_current_runs(tmp_path, registry):
    """What the warning tells users to do works: run --fresh registers the suite's runs
    with only=True, and runs an earlier version planned leave the suite (not the store)."""
    from benchbase.config import build_suite

    fake_results(tmp_path, registry, suite(steps=50), fd)
    fake_results(tmp_path, registry, suite(steps=100), fd)
    now = build_suite(suite(steps=100), "<t>", registry=registry)
    with Store(tmp_path) as store:
        store.register_runs(now.name, now.runs, only=True)
        assert sorted(r.run_id for r in store.runs(suite="edit")) == sorted(s.run_id for s in now.runs)
        assert len(store.runs()) == len(now.runs) + 4  # the 50-step runs stay in the store
    assert {r["steps"] for r in _records(tmp_path) if r["model"] == "flow"} == {100}
