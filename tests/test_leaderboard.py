"""Leaderboard aggregation on stores with known values: mean ± std over seeds, run
counts, best per column in each direction, ranks, the --at rules, and merging several
results directories (identical copies, conflicts, unfinished copies)."""
from __future__ import annotations

import json
import math
import shutil
import sqlite3

import numpy as np
import pytest
from support.suites import tiny_suite
from support.published_results import fake_results

from benchbase.cli import main
from benchbase.leaderboard import Column, build_tables, resolve_at, table_to_records
from benchbase.plugins import PluginPolicy, build_registry
from benchbase.resultset import CONFLICT, ResultSet
from benchbase.store import DB_NAME


@pytest.fixture
def registry():
    """Built-ins plus the test metrics of support.published_results (a higher-is-better and a target one)."""
    return build_registry(PluginPolicy(entry_points=False, strict=True, extra=("support.published_results",)))


STEPS = [10, 50, 100]
SUITE = tiny_suite(
    seeds=[0, 1, 2],
    models=[{"name": "rectified_flow", "label": "flow", "config": {"width": 16}}, "vae", "copy_train"],
    metrics=["mem_ratio", "fd", "coverage_test", "calibration_test"],
    budget={"batch_size": 32, "steps": 100},
    eval={"schedule": "list", "steps": STEPS, "n_samples": 100},
)

# fd[test] at the final step, per model label and seed; earlier steps are worse by (100 - step) / 10
FD_FINAL = {"flow": [1.0, 2.0, 3.0], "vae": [4.0, 4.0, 7.0], "copy_train": [0.5, 0.5, 0.5]}
# mem_ratio[train] per step, judged against a chance level of 0.04 (spread 0.006, a 2-D
# dataset): the flow memorizes at step 100 (0.05 at step 50 is 1.6 sd above chance: not
# significant at 0.01); the vae stays below chance; the copy memorizes from the start
MEM = {"flow": {10: 0.0, 50: 0.05, 100: 0.4}, "vae": {10: 0.0, 50: 0.0, 100: 0.02}, "copy_train": {0: 1.0}}
MEM_CHANCE = (0.04, 0.006)
COVERAGE = {"flow": 0.8, "vae": 0.9, "copy_train": 0.9}  # higher is better: vae and copy tie
CALIBRATION = {"flow": 0.45, "vae": 0.7, "copy_train": 0.2}  # target 0.5: flow is closest


def value(spec, step, metric, ref):
    label, seed = spec.model.label, spec.seed
    if metric == "fd":
        return FD_FINAL[label][seed] + (100 - step) / 10 if label != "copy_train" else FD_FINAL[label][seed]
    if metric == "mem_ratio":
        return MEM[label][step]
    if metric == "coverage_test":
        return COVERAGE[label]
    if metric == "calibration_test":
        return CALIBRATION[label]
    return 1.0  # fd[train]


def chance(spec, step, metric, ref):
    return MEM_CHANCE if metric == "mem_ratio" else None


@pytest.fixture
def store_dir(tmp_path, registry):
    path = tmp_path / "a"
    fake_results(path, registry, SUITE, value, chance=chance)
    return path


def _records(results, **kw) -> dict[str, dict]:
    tables = build_tables(results, **kw)
    assert len(tables) == 1
    return {r["model"]: r for r in table_to_records(tables[0])}


def test_cells_are_mean_and_sample_std_over_seeds_with_run_counts(store_dir):
    with ResultSet([store_dir]) as rs:
        recs = _records(rs, primary="fd")
    flow = recs["flow"]["metrics"]["fd[test]"]
    assert flow["mean"] == pytest.approx(2.0) and flow["std"] == pytest.approx(1.0) and flow["n"] == 3
    vae = recs["vae"]["metrics"]["fd[test]"]
    assert vae["mean"] == pytest.approx(5.0) and vae["std"] == pytest.approx(np.std([4, 4, 7], ddof=1))
    assert recs["flow"]["runs"] == 3 and recs["flow"]["statuses"] == {"done": 3}
    assert recs["flow"]["family"] == "flow" and recs["flow"]["framework"] == "torch"
    assert recs["copy_train"]["family"] == "oracle" and recs["copy_train"]["framework"] == "numpy"


def test_best_follows_each_metric_direction_and_ties_share_it(store_dir):
    with ResultSet([store_dir]) as rs:
        recs = _records(rs, primary="fd")
    best = {key: sorted(m for m, r in recs.items() if r["metrics"][key]["best"])
            for key in ("fd[test]", "mem_ratio[train]", "coverage_test[test]", "calibration_test[train]")}
    assert best == {"fd[test]": ["copy_train"],  # lower
                    "mem_ratio[train]": ["vae"],  # the only one not above chance
                    "coverage_test[test]": ["copy_train", "vae"],  # higher, a tie
                    "calibration_test[train]": ["flow"]}  # closest to the target 0.5


def test_memorization_columns_are_judged_against_chance_and_below_is_not_better(tmp_path, registry):
    """At chance (0.041) and far below it (0.0) are equally "no memorization": both best,
    tied in rank; a value significantly above chance is not best, and the cell shows the
    chance level and how many runs memorize."""
    mem = {"flow": 0.041, "vae": 0.0, "copy_train": 1.0}
    fake_results(tmp_path / "r", registry, {**SUITE, "leaderboard": {"primary": "mem_ratio"}},
                 lambda spec, step, metric, ref: mem[spec.model.label] if metric == "mem_ratio"
                 else value(spec, step, metric, ref), chance=chance)
    with ResultSet([tmp_path / "r"]) as rs:
        (table,) = build_tables(rs)
    recs = {r["model"]: r for r in table_to_records(table)}
    cells = {m: r["metrics"]["mem_ratio[train]"] for m, r in recs.items()}
    assert sorted(m for m, c in cells.items() if c["best"]) == ["flow", "vae"]
    assert recs["flow"]["rank"] == recs["vae"]["rank"] == 1 and recs["copy_train"]["rank"] == 3
    assert cells["vae"]["chance"] == pytest.approx(0.04) and cells["vae"]["excess"] == pytest.approx(-0.04)
    assert cells["copy_train"]["memorizing"] == 3 and cells["vae"]["memorizing"] == 0
    assert all(c["judged_against_chance"] for c in cells.values())
    assert not recs["flow"]["metrics"]["fd[test]"]["judged_against_chance"]
    column = next(c for c in table.columns if c.metric == "mem_ratio")
    assert column.judged and "chance" in column.header
    copy_row = next(r for r in table.rows if r.model == "copy_train")
    assert copy_row.values["mem_ratio[train]"].format() == "1 ± 0 (chance 0.04) †3"
    assert "judged against chance" in table.caption() and "not rewarded" in table.caption()


def test_rank_follows_the_primary_metric_and_ties_share_a_rank(store_dir):
    with ResultSet([store_dir]) as rs:
        by_fd = _records(rs, primary="fd")
        by_coverage = _records(rs, primary="coverage_test")
    assert {m: r["rank"] for m, r in by_fd.items()} == {"copy_train": 1, "flow": 2, "vae": 3}
    assert {m: r["rank"] for m, r in by_coverage.items()} == {"copy_train": 1, "vae": 1, "flow": 3}
    with ResultSet([store_dir]) as rs:
        table = build_tables(rs, primary="coverage_test")[0]
    assert [r.model for r in table.rows][-1] == "flow" and table.primary == "coverage_test[test]"
    assert table.primary_column.arrow == "↑"


def test_suite_primary_is_the_default_rank_metric(tmp_path, registry):
    fake_results(tmp_path / "r", registry, {**SUITE, "leaderboard": {"primary": "coverage_test"}}, value)
    with ResultSet([tmp_path / "r"]) as rs:
        assert build_tables(rs)[0].primary == "coverage_test[test]"


def test_leaderboard_settings_name_the_suites_metrics(registry):
    """A column or primary naming no metric would silently show nothing or rank by another;
    with an unknown metric, the primary is not judged against a list that misses its fix."""
    from benchbase.config import build_suite
    from benchbase.errors import ConfigError

    def problems(**overrides) -> list:
        with pytest.raises(ConfigError) as err:
            build_suite(tiny_suite(models=["copy_train"], **overrides), "<t>", registry=registry)
        return err.value.problems

    valid = "Valid: fd, fd[test], fd[train], mem_ratio, mem_ratio[train], swd, swd[test], swd[train], train/loss"
    assert problems(leaderboard={"metrics": ["fd", "foo"]}) == [
        ("leaderboard.metrics[1]", f"'foo' is not among the suite's metrics. {valid}")]
    assert problems(leaderboard={"primary": "fdd"}) == [
        ("leaderboard.primary", f"'fdd' is not among the suite's metrics. Did you mean 'fd'? {valid}")]
    assert [path for path, _ in problems(leaderboard={"primary": "fd[nope]"})] == ["leaderboard.primary"]
    assert [path for path, _ in problems(metrics=["fdd"], leaderboard={"primary": "fd"})] == ["metrics[0].name"]
    for primary in ("fd", "mem_ratio[train]", "swd.test", "train/loss"):
        build_suite(tiny_suite(models=["copy_train"], leaderboard={"primary": primary}), "<t>", registry=registry)


def test_unfinished_runs_are_counted_but_not_averaged(tmp_path, registry):
    fake_results(tmp_path / "r", registry, SUITE, value,
                 status=lambda spec: "failed" if spec.model.label == "flow" and spec.seed == 2 else "done")
    with ResultSet([tmp_path / "r"]) as rs:
        table = build_tables(rs, primary="fd")[0]
    flow = next(r for r in table.rows if r.model == "flow")
    assert flow.runs == 2 and flow.statuses == {"done": 2, "failed": 1}
    assert flow.values["fd[test]"].mean == pytest.approx(1.5) and flow.values["fd[test]"].n == 2
    assert flow.runs_text == "2 (1 failed)"


def test_at_step_takes_that_evaluation_and_oracles_their_only_one(store_dir):
    with ResultSet([store_dir]) as rs:
        recs = _records(rs, at="step=50", primary="fd")
        missing = _records(rs, at="step=7", primary="fd")
    assert recs["flow"]["metrics"]["fd[test]"]["mean"] == pytest.approx(2.0 + 5.0)
    assert set(recs["flow"]["at_steps"].values()) == {50}
    assert recs["copy_train"]["metrics"]["fd[test]"]["mean"] == pytest.approx(0.5)  # trains=False: step 0
    assert missing["flow"]["runs"] == 0 and missing["flow"]["rank"] is None
    assert missing["flow"]["metrics"]["fd[test]"]["mean"] is None


def test_best_before_memorization_uses_the_best_step_before_onset(store_dir, tmp_path, registry):
    with ResultSet([store_dir]) as rs:
        recs = _records(rs, at="best-before-memorization", primary="fd")
    # flow memorizes at step 100 (0.4, far above chance): its best fd before that is at step 50
    assert set(recs["flow"]["at_steps"].values()) == {50}
    assert recs["flow"]["metrics"]["fd[test]"]["mean"] == pytest.approx(7.0)
    # vae never rises above chance: best over every step is the final one
    assert set(recs["vae"]["at_steps"].values()) == {100}
    # copy_train memorizes from its only evaluation: no value, no rank
    assert recs["copy_train"]["runs"] == 0 and recs["copy_train"]["rank"] is None
    # the onsets in the JSON say the same
    assert {o["censored"] for o in recs["copy_train"]["onsets"].values()} == {"left"}
    assert {o["tau_mem"] for o in recs["vae"]["onsets"].values()} == {None}
    assert all(50 < o["tau_mem"] <= 100 and o["metric"] == "mem_ratio" for o in recs["flow"]["onsets"].values())
    # the suite's dynamics settings set the rule: a minimum excess of 0.5 leaves only the copy memorizing
    fake_results(tmp_path / "loose", registry, {**SUITE, "dynamics": {"min_excess": {"mem_ratio": 0.5}}}, value,
                 chance=chance)
    with ResultSet([tmp_path / "loose"]) as rs:
        loose = _records(rs, at="best-before-memorization", primary="fd")
    assert set(loose["flow"]["at_steps"].values()) == {100}


def test_stored_training_dynamics_give_the_onset_and_appear_in_json(store_dir, monkeypatch):
    """The store keeps a derived training-dynamics record per (suite, run) (Store.derived);
    when present its tau_mem is the onset, and the record is in the row's JSON."""
    from benchbase.store import Store

    def derived(self, suite):
        return {r.run_id: ({"criterion": "copy", "tau_mem": 30.0, "censored": None}
                              if r.model_label == "flow" else
                              {"criterion": "copy", "tau_mem": None, "censored": "left"})
                for r in self.runs(suite=suite) if r.model_label in ("flow", "vae")}

    monkeypatch.setattr(Store, "derived", derived, raising=False)
    with ResultSet([store_dir]) as rs:
        recs = _records(rs, at="best-before-memorization", primary="fd")
        caption = build_tables(rs, at="best-before-memorization", primary="fd")[0].caption()
    assert set(recs["flow"]["at_steps"].values()) == {10}  # the only step before tau_mem = 30
    assert recs["vae"]["runs"] == 0  # memorized before its first evaluation
    assert set(recs["copy_train"]["at_steps"].values()) == {None}  # no record: the fallback rule
    assert len(recs["flow"]["dynamics"]) == 3 and recs["flow"]["dynamics"][0]["tau_mem"] == 30.0
    assert recs["copy_train"]["dynamics"] == [] and "tau_mem from the stored training dynamics" in caption


def test_best_before_memorization_without_mem_ratio_gives_no_values(tmp_path, registry):
    fake_results(tmp_path / "r", registry, {**SUITE, "metrics": ["fd"]}, value)
    with ResultSet([tmp_path / "r"]) as rs:
        table = build_tables(rs, at="best-before-memorization")[0]
    assert all(r.runs == 0 and not r.values for r in table.rows)


@pytest.mark.parametrize("at", ["bogus", "step=x", "step=-1", "step=1.5"])
def test_bad_at_is_a_clear_error(at):
    with pytest.raises(ValueError, match="final|step=N|whole number"):
        resolve_at(at)


def test_metric_slice_and_reference_choice(store_dir):
    with ResultSet([store_dir]) as rs:
        table = build_tables(rs, metrics=["fd", "mem_ratio"], ref="train")[0]
    assert [c.key for c in table.columns] == ["fd[train]", "mem_ratio[train]"]
    assert table.primary == "fd[train]"


def test_column_header_and_direction_text():
    assert Column("fd", "test", "lower").header == "fd (test) ↓"
    assert Column("cov", "", "higher").header == "cov ↑"
    assert Column("cal", "train", "target", 0.5).arrow == "→0.5"
    assert Column("cal", "train", "target", 0.5).badness(0.3) == pytest.approx(0.2)


# ---------------------------------------------------------------- merging


def test_identical_copies_merge_into_one_run(store_dir, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(store_dir, copy)
    with ResultSet([store_dir]) as one, ResultSet([store_dir, copy]) as both:
        assert both.conflicts == []
        assert table_to_records(build_tables(one)[0]) == table_to_records(build_tables(both)[0])
        assert len(both.runs()) == len(one.runs()) == 9


def test_runs_from_different_machines_merge(tmp_path, registry):
    fake_results(tmp_path / "a", registry, {**SUITE, "seeds": [0, 1]}, value)
    fake_results(tmp_path / "b", registry, {**SUITE, "seeds": [2]}, value)
    with ResultSet([tmp_path / "a", tmp_path / "b"]) as rs:
        recs = _records(rs, primary="fd")
        assert rs.conflicts == []
    assert recs["flow"]["runs"] == 3 and recs["flow"]["metrics"]["fd[test]"]["mean"] == pytest.approx(2.0)


def test_a_finished_copy_wins_over_an_unfinished_one(store_dir, tmp_path, registry):
    fake_results(tmp_path / "b", registry, SUITE, value, status=lambda spec: "timeout")
    with ResultSet([tmp_path / "b", store_dir]) as rs:
        assert rs.conflicts == []
        assert {r.status for r in rs.runs()} == {"done"}
        assert {r.source for r in rs.runs()} == {str(store_dir)}


def _change_one_value(results_dir, run_id, new_value=99.0):
    with sqlite3.connect(results_dir / DB_NAME) as conn:
        conn.execute("UPDATE evals SET value=? WHERE run_id=? AND metric='fd' AND ref='test' AND step=100",
                     (new_value, run_id))


def test_conflicting_copies_are_reported_and_left_out(store_dir, tmp_path):
    other = tmp_path / "b"
    shutil.copytree(store_dir, other)
    with ResultSet([store_dir]) as rs:
        flow_seed0 = next(r.run_id for r in rs.runs() if r.model_label == "flow" and r.seed == 0)
    _change_one_value(other, flow_seed0)
    with ResultSet([store_dir, other]) as rs:
        assert [c.run_id for c in rs.conflicts] == [flow_seed0]
        text = rs.conflicts[0].describe()
        assert "fd[test] at step 100: 1 vs 99" in text and str(other) in text and str(store_dir) in text
        assert rs.run(flow_seed0).status == CONFLICT
        recs = _records(rs, primary="fd")
    flow = recs["flow"]
    assert flow["statuses"] == {"done": 2, "conflict": 1} and flow["runs"] == 2
    assert flow["metrics"]["fd[test]"]["mean"] == pytest.approx(2.5)  # seeds 1 and 2 only, not 99


def test_cli_leaderboard_merges_directories_and_fails_on_conflicts(store_dir, tmp_path, capsys):
    other = tmp_path / "b"
    shutil.copytree(store_dir, other)
    assert main(["leaderboard", "--results", str(store_dir), "--results", str(other), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["model"] for r in rows} == {"flow", "vae", "copy_train"}
    with ResultSet([store_dir]) as rs:
        run_id = next(r.run_id for r in rs.runs() if r.model_label == "vae")
    _change_one_value(other, run_id)
    code = main(["leaderboard", "--results", str(store_dir), "--results", str(other)])
    out = capsys.readouterr()
    assert code == 1 and "conflict" in out.err and run_id in out.err
    assert "| rank" in out.out  # the table is still published, without the conflicting run


@pytest.mark.parametrize("args, message", [
    (["--suite", "nope"], "unknown suite 'nope'"),
    (["--at", "sometime"], "unknown --at"),
    (["--format", "nope"], "unknown publisher"),
    (["--dataset", "nope"], "dataset 'nope' has no stored run; stored: "),  # printed "_No results._"
    (["--metric", "nope"], "metric 'nope' is not among the stored metrics: "),  # a table without metrics
    (["--primary", "nope"], "primary 'nope' is not among the stored metrics: "),  # ranked by another metric
])
def test_cli_leaderboard_bad_input_exits_2(store_dir, capsys, args, message):
    assert main(["leaderboard", "--results", str(store_dir)] + args) == 2
    assert message in capsys.readouterr().err


def test_a_primary_may_name_a_column(store_dir):
    with ResultSet([store_dir]) as rs:
        assert build_tables(rs, primary="fd[test]")[0].primary == "fd[test]"
        for key in ("mem_ratio.train", "train/loss"):  # a value key and the training loss, as a suite's primary
            assert build_tables(rs, primary=key)


def test_cli_report_and_plot_refuse_a_metric_that_is_not_stored(store_dir, tmp_path, capsys):
    suite = SUITE["name"]
    assert main(["report", "--results", str(store_dir), "--out", str(tmp_path / "site"), "--metric", "nope"]) == 2
    assert main(["plot", "--results", str(store_dir), "--suite", suite, "--out", str(tmp_path / "figs"),
                 "--metric", "nope"]) == 2
    err = capsys.readouterr().err
    assert "metric 'nope' is not among the stored metrics" in err and f"not among the metrics of suite '{suite}'" in err
    assert not (tmp_path / "site").exists() and not (tmp_path / "figs").exists()


def test_cli_leaderboard_without_results_exits_2(tmp_path, capsys):
    assert main(["leaderboard", "--results", str(tmp_path / "missing")]) == 2
    assert "no results" in capsys.readouterr().err


def test_std_is_finite_and_zero_for_one_seed(tmp_path, registry):
    fake_results(tmp_path / "r", registry, {**SUITE, "seeds": [1]}, value)
    with ResultSet([tmp_path / "r"]) as rs:
        recs = _records(rs)
    cell = recs["flow"]["metrics"]["fd[test]"]
    assert cell["n"] == 1 and cell["std"] == 0.0 and math.isfinite(cell["mean"])
