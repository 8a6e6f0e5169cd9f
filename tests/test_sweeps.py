"""The `sweep:` grid: every combination x seed is exactly one run under the suite's budget
rules, values land where their key says, and bad sweeps are clear validation errors."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from support.suites import tiny_suite

from benchbase.config import build_suite, load_suite
from benchbase.contracts import DataSplits
from benchbase.data import DataCatalog, select_subset
from benchbase.driver import run_suite
from benchbase.errors import ConfigError
from benchbase.progress import Reporter
from benchbase.store import Store

FLOW = {"name": "rectified_flow", "framework": "torch", "config": {"width": 16, "depth": 1, "sample_steps": 4}}


def _suite(registry, **kw):
    return build_suite(tiny_suite(**kw), "<sweep test>", registry=registry)


def test_every_combination_times_every_seed_is_one_run(registry):
    sweep = {"n": [16, 32, 64], "model.width": [8, 16], "budget.batch_size": [8, 32], "model.lr": [1e-3, 3e-3]}
    suite = _suite(registry, models=[FLOW], seeds=[0, 1], sweep=sweep, budget={"batch_size": 16, "examples": 3200})
    assert len(suite.runs) == 3 * 2 * 2 * 2 * 2
    combos = {(r.subset.n, r.model.config["width"], r.budget.batch_size, r.model.config["lr"], r.seed)
              for r in suite.runs}
    assert combos == set(itertools.product([16, 32, 64], [8, 16], [8, 32], [1e-3, 3e-3], [0, 1]))
    assert len({r.run_id for r in suite.runs}) == len(suite.runs)
    for r in suite.runs:
        assert r.sweep == {"n": r.subset.n, "model.width": r.model.config["width"],
                           "budget.batch_size": r.budget.batch_size, "model.lr": r.model.config["lr"]}
        assert r.model.lr == r.model.config["lr"]  # what normalized steps read
        assert "width=" in r.title and "seed" in r.title


def test_budget_rules_hold_for_every_combination(registry):
    """A budget in examples stays the same number of examples whatever the batch size."""
    suite = _suite(registry, models=[FLOW], sweep={"budget.batch_size": [8, 16, 40]},
                   budget={"batch_size": 16, "examples": 4000}, eval={"points": 4, "n_samples": 50})
    for r in suite.runs:
        B = r.budget.batch_size
        assert r.budget.examples == 4000 and r.budget.steps == 4000 // B
        assert r.eval.steps[-1] == r.budget.steps and len(r.eval.steps) <= 4
    by_steps = _suite(registry, models=[FLOW], sweep={"budget.batch_size": [8, 32]},
                      budget={"batch_size": 16, "steps": 50})
    assert sorted((r.budget.batch_size, r.budget.steps, r.budget.examples) for r in by_steps.runs) == \
        [(8, 50, 400), (32, 50, 1600)]
    # sweeping the budget kind itself replaces the suite's choice
    swept = _suite(registry, models=[FLOW], sweep={"budget.examples": [640, 1280]}, budget={"batch_size": 32, "steps": 5})
    assert sorted(r.budget.steps for r in swept.runs) == [20, 40]


def test_model_keys_apply_only_to_models_that_have_them(registry):
    suite = _suite(registry, models=[FLOW, "copy_train"], sweep={"model.width": [8, 16], "n": [16, 32]})
    flows = [r for r in suite.runs if r.model.name == "rectified_flow"]
    oracles = [r for r in suite.runs if r.model.name == "copy_train"]
    assert len(flows) == 4
    assert len(oracles) == 2 and all("model.width" not in r.sweep for r in oracles)  # once per n, not per width


def test_dataset_and_subset_keys(registry):
    suite = _suite(registry, models=[FLOW], sweep={"dataset.std": [0.05, 0.1], "subset.split": ["1 of 2", "2 of 2"],
                                                   "subset.mode": ["first", "random"]})
    assert len(suite.runs) == 8
    assert {r.dataset.config["std"] for r in suite.runs} == {0.05, 0.1}
    assert {tuple(r.subset.split) for r in suite.runs} == {(1, 2), (2, 2)}
    assert {r.subset.mode for r in suite.runs} == {"first", "random"}


def test_split_sweep_gives_disjoint_training_sets_of_equal_size(registry):
    suite = _suite(registry, models=[FLOW], sweep={"subset.split": ["1 of 2", "2 of 2"], "n": [64, 250]})
    reg = registry.get("dataset", "gmm2d")
    by_n: dict[int, list] = {}
    for r in suite.runs:
        cfg = reg.cls.Config(**r.dataset.config)
        _, splits = DataCatalog.shared().load(reg, cfg, r.dataset.config)
        sub = select_subset(splits, r.subset)
        by_n.setdefault(r.subset.n, []).append(sub)
    for n, (a, b) in by_n.items():
        assert len(a.indices) == len(b.indices) == n
        assert not set(a.indices) & set(b.indices)
        assert a.content_hash != b.content_hash


def test_split_sweep_checks_n_against_one_part(registry):
    with pytest.raises(ConfigError) as err:
        _suite(registry, models=[FLOW], sweep={"subset.split": ["1 of 2", "2 of 2"], "n": [100, 300]})
    assert "sweep.n" in str(err.value) and "n=300" in str(err.value) and "250" in str(err.value)


@pytest.mark.parametrize("sweep, where, words", [
    ({"width": [1, 2]}, "sweep.width", "sweep keys are n, budget."),
    ({"budget.batchsize": [8]}, "sweep.budget.batchsize", "batch_size"),
    ({"subset.splt": ["1 of 2"]}, "sweep.subset.splt", "split"),
    ({"model.widht": [8]}, "sweep.model.widht", "no model in this suite has a config key 'widht'"),
    ({"n": []}, "sweep.n", "non-empty list"),
    ({"n": [0, 16]}, "sweep.n", "whole number >= 1"),
    ({"n": [16.5]}, "sweep.n", "whole number >= 1"),
    ({"subset.split": ["half"]}, "subset.split", "k of K"),
])
def test_bad_sweeps_are_validation_errors(registry, sweep, where, words):
    with pytest.raises(ConfigError) as err:
        _suite(registry, models=[FLOW], sweep=sweep)
    assert where in str(err.value) and words in str(err.value)


def test_a_sweep_value_that_is_not_a_list_is_a_validation_error(registry):
    with pytest.raises(ConfigError) as err:
        _suite(registry, models=[FLOW], sweep={"n": 32})
    assert "sweep" in str(err.value)


def test_too_many_seeds_are_refused_before_the_seeds_are_expanded(registry, tmp_path, monkeypatch):
    import benchbase.config

    def expand(data):
        raise AssertionError("the suite was expanded before its run count was checked")

    monkeypatch.setattr(benchbase.config, "_normalize", expand)
    path = tmp_path / "s.yaml"
    path.write_text("name: huge\nseeds: [0]\ndatasets: [gmm2d]\nmodels: [copy_train, true_sampler]\n")
    with pytest.raises(ConfigError, match=r"seeds: this suite expands to 2,000,000,000,000 runs, more than the "
                                          r"limit of 10,000; .* BENCHBASE_MAX_RUNS=2000000000000 "):
        load_suite(path, ["seeds=1000000000000"], registry=registry)
    # an axis of one model's config: the count leaves it out, so says "at least"
    with pytest.raises(ConfigError, match=r"sweep: this suite expands to at least 8,000,000 runs"):
        build_suite(tiny_suite(seeds=1000, sweep={"n": list(range(1, 4001)), "model.width": [8, 16]}),
                    "<t>", registry=registry)


def test_whole_float_n_is_accepted(registry):
    suite = _suite(registry, models=[FLOW], sweep={"n": [32.0, 64]})
    assert sorted(r.subset.n for r in suite.runs) == [32, 64]
    assert all(isinstance(r.subset.n, int) for r in suite.runs)


def test_expansion_without_data_checks(registry):
    """check_data=False (CI validation of suites whose data is not on disk) must expand too."""
    suite = build_suite(tiny_suite(models=[FLOW], sweep={"n": [16, 32]}), "<t>", registry=registry, check_data=False)
    assert sorted(r.subset.n for r in suite.runs) == [16, 32]
    with pytest.raises(ConfigError, match="sweep.n"):
        build_suite(tiny_suite(models=[FLOW], sweep={"n": [-1]}), "<t>", registry=registry, check_data=False)


def test_sweep_yaml_with_overrides(registry, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("""
name: yaml_sweep
seeds: 2
device: cpu
datasets: [{name: gmm2d, config: {train_size: 500, test_size: 100}}]
models: [{name: rectified_flow, framework: torch, config: {width: 16, depth: 1}}]
metrics: [mem_ratio]
budget: {batch_size: 16, steps: 10}
sweep:
  n: [16, 32]
  model.width: [8, 16]
""")
    suite = load_suite(path, registry=registry)
    assert len(suite.runs) == 2 * 2 * 2
    wider = load_suite(path, ["sweep.n=[16,32,64]"], registry=registry)
    assert len(wider.runs) == 3 * 2 * 2
    # an axis whose name has a dot is one key: replaced, not nested
    narrower = load_suite(path, ["sweep.model.width=[4]"], registry=registry)
    assert {r.model.config["width"] for r in narrower.runs} == {4} and len(narrower.runs) == 2 * 2
    added = load_suite(path, ["sweep.model.depth=[1,2]", "sweep.budget.batch_size=[8]"], registry=registry)
    assert {(r.model.config["depth"], r.budget.batch_size) for r in added.runs} == {(1, 8), (2, 8)}
    assert len(added.runs) == 2 * 2 * 2 * 2


def test_every_combination_runs_with_the_same_budget(registry, results_dir):
    suite = _suite(registry, models=[FLOW], metrics=["mem_ratio"], seeds=[0, 1],
                   sweep={"n": [16, 32], "budget.batch_size": [8, 16]},
                   budget={"batch_size": 16, "examples": 320}, eval={"points": 2, "n_samples": 20})
    with Store(results_dir) as store:
        result = run_suite(suite, store, registry, reporter=Reporter(quiet=True))
        assert result.ok and len(result.statuses) == 8
        for r in store.runs(suite=suite.name):
            assert r.status == "done" and r.summary["examples"] == 320
            assert r.summary["steps"] == 320 // r.spec.budget.batch_size
            steps = sorted({e["step"] for e in store.evals(r.run_id)})
            assert steps == list(r.spec.eval.steps)


def test_data_splits_are_untouched_by_sweeps(registry):
    """select_subset never mutates the cached splits (a sweep reuses them across runs)."""
    suite = _suite(registry, models=[FLOW], sweep={"subset.mode": ["first", "random"], "n": [16, 32]})
    reg = registry.get("dataset", "gmm2d")
    cfg = reg.cls.Config(**suite.runs[0].dataset.config)
    _, splits = DataCatalog.shared().load(reg, cfg, suite.runs[0].dataset.config)
    before = splits.train.copy()
    for r in suite.runs:
        select_subset(splits, r.subset)
    assert isinstance(splits, DataSplits) and np.array_equal(before, splits.train)
