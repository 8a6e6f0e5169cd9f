"""The primary metric and the metric slice name columns a table can show, or are refused
(exit 2, one line naming the valid names): a primary that matches no column used to rank
by the first column in silence. validate and leaderboard accept the same names."""
from __future__ import annotations

import pytest
from support.published_results import fake_results
from support.suites import tiny_suite

from benchbase.cli import main
from benchbase.config import build_suite
from benchbase.errors import ConfigError
from benchbase.leaderboard import build_tables
from benchbase.plugins import PluginPolicy, build_registry
from benchbase.resultset import ResultSet

SUITE = tiny_suite(name="prim", seeds=[0], metrics=["mem_ratio", "fd"], budget={"batch_size": 32, "steps": 100},
                   eval={"schedule": "list", "steps": [100], "n_samples": 100},
                   models=[{"name": "rectified_flow", "label": "a", "config": {"width": 16}},
                           {"name": "rectified_flow", "label": "b", "config": {"width": 24}}])
# b has the lower fd[train] and train/loss, a the lower mem_ratio and fd[test]
VALUES = {("a", "mem_ratio", "train"): 0.0, ("b", "mem_ratio", "train"): 0.5,
          ("a", "fd", "test"): 1.0, ("b", "fd", "test"): 2.0, ("a", "fd", "train"): 3.0, ("b", "fd", "train"): 0.1}


def value(spec, step, metric, ref):
    return VALUES[(spec.model.label, metric, ref)]


def with_losses(path, suite: dict):
    """Fake results of ``suite`` with the training loss, as a run that trains stores it."""
    from benchbase.contracts import EvalRow
    from benchbase.store import Store

    registry = build_registry(PluginPolicy(entry_points=False, strict=True))
    specs = fake_results(path, registry, suite, value)
    with Store(path) as store:
        for spec in specs:
            loss = {"a": 2.0, "b": 1.0}[spec.model.label]
            store.write_eval(spec.run_id, 100, 3200, [EvalRow(metric="train/loss", value=loss, ref="train")])
    return path


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return with_losses(tmp_path_factory.mktemp("prim"), SUITE)


def _order(path, **kw) -> tuple[str, list[str], list[str]]:
    with ResultSet([path]) as rs:
        (table,) = build_tables(rs, **kw)
    return table.primary, [c.key for c in table.columns], [r.model for r in table.rows]


@pytest.mark.parametrize("kw, primary, columns, order", [
    ({"primary": "fd[train]"}, "fd[train]", ["mem_ratio[train]", "fd[test]", "fd[train]"], ["b", "a"]),
    ({"primary": "fd.train"}, "fd[train]", ["mem_ratio[train]", "fd[test]", "fd[train]"], ["b", "a"]),
    ({"primary": "train/loss"}, "train/loss[train]", ["mem_ratio[train]", "fd[test]", "train/loss[train]"],
     ["b", "a"]),
    ({"metrics": ["mem_ratio"], "primary": "fd"}, "fd[test]", ["mem_ratio[train]", "fd[test]"], ["a", "b"]),
    ({"metrics": ["fd[train]"]}, "fd[train]", ["fd[train]"], ["b", "a"]),
    ({"metrics": ["fd[test]", "fd[train]"], "primary": "fd[train]"}, "fd[train]", ["fd[test]", "fd[train]"],
     ["b", "a"]),
])
def test_the_asked_for_column_is_shown_and_ranks(results, kw, primary, columns, order):
    assert _order(results, **kw) == (primary, columns, order)


@pytest.mark.parametrize("args, bad", [
    (["--primary", "fd[nope]"], "primary 'fd[nope]'"),
    (["--primary", "loss"], "primary 'loss'"),
    (["--metric", "fd[nope]"], "metric 'fd[nope]'"),
])
def test_a_name_of_no_column_is_refused_naming_the_valid_ones(results, capsys, args, bad):
    assert main(["leaderboard", "--results", str(results), *args]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert bad in line and "fd[test], fd[train], mem_ratio, mem_ratio[train], train/loss" in line
    assert captured.out == ""


def test_a_suites_primary_that_validate_accepts_ranks_the_table(tmp_path):
    """validate accepts train/loss; the leaderboard then shows and ranks by it."""
    registry = build_registry(PluginPolicy(entry_points=False, strict=True))
    suite = {**SUITE, "leaderboard": {"primary": "train/loss"}}
    build_suite(suite, "<t>", registry=registry)  # valid
    with_losses(tmp_path, suite)
    assert _order(tmp_path)[0] == "train/loss[train]" and _order(tmp_path)[2] == ["b", "a"]
    with pytest.raises(ConfigError, match="fd\\[nope\\]"):
        build_suite({**SUITE, "leaderboard": {"primary": "fd[nope]"}}, "<t>", registry=registry)
