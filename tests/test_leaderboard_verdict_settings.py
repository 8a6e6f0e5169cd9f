"""What a leaderboard ranks and judges by: a memorization metric is never the default rank
column, ``--at best-before-memorization`` picks each run's checkpoint by the dynamics
fidelity metric (as ``benchbase dynamics`` records it), and verdicts follow the settings
the stored dynamics records were derived with, saying so when overrides changed them."""
from __future__ import annotations

import pytest
from support.published_results import fake_results
from support.suites import tiny_suite

from benchbase.cli import main
from benchbase.derived import derive_suite, dynamics_settings
from benchbase.leaderboard import build_tables
from benchbase.plugins import PluginPolicy, build_registry
from benchbase.store import Store

# no leaderboard.primary, as every suite `benchbase new` writes
SUITE = tiny_suite(name="defaults", seeds=[0], metrics=["mem_ratio", "fd"], budget={"batch_size": 32, "steps": 100},
                   eval={"schedule": "list", "steps": [1, 30, 100], "n_samples": 100},
                   models=[{"name": "rectified_flow", "label": "good", "config": {"width": 16}},
                           {"name": "rectified_flow", "label": "bad", "config": {"width": 24}}])
# bad: never memorizes but fits badly (fd 5, best at step 30); good: fd 0.1 at step 100, copies
# nothing; mem_ratio lowest at step 1 for both (the untrained model)
MEM = {1: 0.0, 30: 0.04, 100: 0.04}
FD = {("good", 1): 9.0, ("good", 30): 1.0, ("good", 100): 0.1, ("bad", 1): 5.21, ("bad", 30): 5.08,
      ("bad", 100): 5.5}


def value(spec, step, metric, ref):
    if metric == "mem_ratio":
        return MEM[step]
    return FD[(spec.model.label, step)] + (1.0 if ref == "train" else 0.0)


def chance(spec, step, metric, ref):
    return (0.04, 0.006) if metric == "mem_ratio" else None


@pytest.fixture()
def results(tmp_path):
    fake_results(tmp_path, build_registry(PluginPolicy(entry_points=False, strict=True)), SUITE, value,
                 chance=chance)
    return tmp_path


def test_the_default_rank_is_the_first_non_memorization_metric(results):
    with Store(results) as store:
        (table,) = build_tables(store)
    assert table.primary == "fd[test]"
    assert [r.model for r in table.rows] == ["good", "bad"]
    assert "ranked by fd (test) ↓" in table.caption()


def test_best_before_memorization_picks_the_lowest_fidelity_checkpoint_not_the_untrained_one(results):
    with Store(results) as store:
        derive_suite(store, "defaults")
        (table,) = build_tables(store, at="best-before-memorization")
        records = store.derived("defaults")
    steps = {r.model: list(r.at_steps.values()) for r in table.rows}
    assert steps == {"good": [100], "bad": [30]}  # not step 1, where mem_ratio is lowest
    bad = next(r for r in table.rows if r.model == "bad")
    assert bad.values["fd[test]"].mean == pytest.approx(5.08)
    run = bad.run_ids[0]
    assert records[run]["best_before_mem"]["fd[test]"] == {"value": pytest.approx(5.08), "step": 30}
    assert any("lowest fd (test) step (dynamics.fidelity)" in n for n in table.notes)


def test_verdicts_follow_the_settings_of_the_stored_dynamics_and_say_when_overrides_changed_them(results, capsys):
    """alpha 0.9 and min_excess 0 make mem_ratio at chance (steps 30, 100) count as memorizing:
    the onset and the judged column then agree, and the table says which settings rule."""
    assert main(["dynamics", "--results", str(results), "--suite", "defaults", "alpha=0.9",
                 "min_excess.mem_ratio=0"]) == 0
    err = capsys.readouterr().err
    assert "now follow alpha=0.9, min_excess.mem_ratio=0 instead of the suite's dynamics settings" in err
    assert "`benchbase dynamics --suite defaults` without overrides restores them" in err
    with Store(results) as store:
        (final,) = build_tables(store)
        (best,) = build_tables(store, at="best-before-memorization")
    for table in (final, best):
        assert table.alpha == 0.9 and "alpha 0.9" in table.caption() and "mem_ratio: 0" in table.caption()
        assert any("derived with alpha=0.9, min_excess.mem_ratio=0" in n for n in table.notes)
    assert all(r.values["mem_ratio[train]"].memorizing == 1 for r in final.rows)  # the final table agrees
    assert all(list(r.at_steps.values()) == [1] for r in best.rows)  # the one step before that onset

    assert main(["dynamics", "--results", str(results), "--suite", "defaults"]) == 0
    assert "now follow" not in capsys.readouterr().err
    with Store(results) as store:
        (final,) = build_tables(store)
    assert final.alpha == 0.001 and not any("derived with" in n for n in final.notes)
    assert not any(r.values["mem_ratio[train]"].memorizing for r in final.rows)
    assert dynamics_settings({}).alpha == 0.001
