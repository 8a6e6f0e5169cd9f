"""Derived training-dynamics quantities: onset criteria, rate, best fidelity before
memorization, normalized step, the tau_mem-vs-n fit, storage and the leaderboard JSON
(the onset rule itself: test_verdicts.py)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from support.dynamics_stores import ensure_heldout_gap, fake_store
from support.chance_levels import chance_rows
from support.suites import tiny_suite

from benchbase.cli import main
from benchbase.config import DynamicsEntry, build_suite
from benchbase.driver import run_suite
from benchbase.derived import derive_suite, dynamics_settings
from benchbase.dynamics import (Trajectory, best_before, derive_run, fit_power_law, memorization_rate, normalization,
                                relative_gap, tau_fits)
from benchbase.errors import ConfigError
from benchbase.leaderboard import build_tables, table_to_records
from benchbase.progress import Reporter
from benchbase.store import Store


@pytest.fixture
def gap_registry(registry):
    return ensure_heldout_gap(registry)


# --------------------------------------------------------------- other quantities


def _evals(steps, chance: dict | None = None, **series):
    """Store-shaped eval rows: series name 'metric' or 'metric[ref]' -> values per step;
    ``chance``: {metric: (mean, sd)} adds the chance rows of memorization metrics (train)."""
    rows = []
    for key, values in series.items():
        metric, ref = (key[:-1].split("[") if key.endswith("]") else (key, ""))
        metric = metric.replace("__", ".")
        for s, v in zip(steps, values):
            rows.append({"step": s, "examples": s, "metric": metric, "ref": ref, "value": v})
    for metric, (mean, sd) in (chance if chance is not None else {"mem_ratio": (0.0, 0.0)}).items():
        for s in steps:
            rows += [{"step": s, "examples": s, "metric": r.metric, "ref": r.ref, "value": r.value, "params": r.params}
                     for r in chance_rows(metric, mean, sd)]
    return rows


def test_relative_gap_subtracts_its_first_value():
    traj = Trajectory.from_evals(_evals([1, 2, 3], heldout_gap__train=[1.0, 0.8, 0.5],
                                        heldout_gap__test=[1.1, 0.9, 1.0]))
    gap = relative_gap(traj, "heldout_gap")
    first = (1.1 - 1.0) / 1.1
    np.testing.assert_allclose(gap, [0.0, (0.9 - 0.8) / 0.9 - first, (1.0 - 0.5) / 1.0 - first])
    assert relative_gap(Trajectory.from_evals(_evals([1], mem_ratio=[0.0])), "heldout_gap") is None


def test_memorization_rate_is_the_slope_per_decade():
    steps = np.array([10, 100, 1000, 10000])
    mem = 0.1 + 0.2 * np.log10(steps)
    assert memorization_rate(steps, mem, 1) == pytest.approx(0.2)
    assert memorization_rate(steps, mem, 3) is None  # one point after onset: no slope
    assert memorization_rate(steps, mem, None) is None


def test_best_fidelity_before_memorization_ignores_later_evals():
    traj = Trajectory.from_evals(_evals([10, 20, 40, 80], **{"swd[test]": [0.5, 0.3, 0.1, 0.05],
                                                             "swd[train]": [0.6, 0.2, 0.3, 0.01]}))
    best = best_before(traj, "swd", tau=35.0, censored=None)
    assert best["swd[test]"] == {"value": 0.3, "step": 20}
    assert best["swd[train]"] == {"value": 0.2, "step": 20}
    assert best_before(traj, "swd", None, "right")["swd[test]"] == {"value": 0.05, "step": 80}
    assert best_before(traj, "swd", 10.0, "left")["swd[test]"] == {"value": None, "step": None}


def test_derive_run_records_both_criteria_and_the_one_used():
    steps = [100, 200, 400, 800, 1600]
    evals = _evals(steps, **{"mem_ratio[train]": [0, 0, 0.005, 0.05, 0.3], "swd[test]": [0.9, 0.5, 0.4, 0.45, 0.6],
                             "heldout_gap__train": [1.0, 0.9, 0.7, 0.5, 0.4],
                             "heldout_gap__test": [1.0, 0.9, 0.8, 0.8, 0.9]})
    cfg = DynamicsEntry(loss_threshold=0.1, fidelity=["swd"])
    rec = derive_run(evals, cfg, factor=0.5)
    # chance 0 without spread: memorizing once mem_ratio exceeds chance by its minimum excess, 0.01
    assert rec["criterion"] == "copy" and rec["threshold"] is None and "above chance" in rec["rule"]
    assert rec["tau_mem_copy_eval"] == 800 and 400 < rec["tau_mem_copy"] < 800
    assert rec["tau_mem_copy_metric"] == "mem_ratio" and rec["copy_metrics"] == ["mem_ratio"]
    # relative gap: 0, 0, 1/8, 3/8, 5/9 -> crosses 0.1 between 200 and 400
    assert rec["tau_mem_loss_eval"] == 400 and 200 < rec["tau_mem_loss"] < 400
    assert rec["tau_mem"] == rec["tau_mem_copy"] and rec["tau_mem_normalized"] == pytest.approx(rec["tau_mem"] * 0.5)
    assert rec["best_before_mem"]["swd[test]"] == {"value": 0.4, "step": 400}
    assert rec["mem_rate"] == pytest.approx(np.polyfit(np.log10([800, 1600]), [0.05, 0.3], 1)[0])
    assert rec["settings"]["alpha"] == 0.001 and rec["mem_final"] == 0.3
    json.dumps(rec)  # storable as is

    by_loss = derive_run(evals, DynamicsEntry(criterion="loss", loss_threshold=0.1, fidelity=["swd"]))
    assert by_loss["criterion"] == "loss" and by_loss["tau_mem"] == by_loss["tau_mem_loss"]
    assert by_loss["best_before_mem"]["swd[test]"] == {"value": 0.5, "step": 200}
    assert by_loss["mem_rate"] == rec["mem_rate"]  # the rate once copies appear, whatever dates the onset
    no_copy = derive_run([e for e in evals if not e["metric"].startswith("mem_ratio")], DynamicsEntry())
    assert no_copy["criterion"] == "loss" and no_copy["tau_mem_copy_censored"] == "unavailable"
    # a memorization metric stored without its chance level (older stores) is not judged
    unjudged = derive_run([e for e in evals if ".chance" not in e["metric"]], DynamicsEntry())
    assert unjudged["tau_mem_copy_censored"] == "unavailable" and unjudged["mem_final"] == 0.3


def test_normalized_step_uses_the_smallest_values_of_the_sweep():
    def run(rid, B, lr, n):  # the parts of a RunRecord that normalization reads
        return SimpleNamespace(run_id=rid, spec=SimpleNamespace(budget=SimpleNamespace(batch_size=B),
                                                                model=SimpleNamespace(lr=lr),
                                                                subset=SimpleNamespace(n=n)))

    factors, refs = normalization([run("a", 32, 1e-3, 64), run("b", 128, 2e-3, 64), run("c", 64, 1e-3, 256),
                                   run("d", 32, None, 128)])
    assert refs == {"B0": 32, "lr0": 1e-3, "n0": 64}
    assert factors["a"] == pytest.approx(1.0)
    assert factors["b"] == pytest.approx(4 * 2)
    assert factors["c"] == pytest.approx(2 / 4)
    assert factors["d"] == pytest.approx(1 / 2)  # no learning rate: that term is 1


def test_power_law_fit_matches_scipy_linregress():
    from scipy.stats import linregress

    rng = np.random.default_rng(0)
    n = np.array([32, 64, 128, 256, 32, 64, 128, 256], dtype=float)
    tau = 90 * n ** 0.95 * np.exp(rng.normal(0, 0.1, len(n)))
    fit = fit_power_law(n, tau)
    ref = linregress(np.log(n), np.log(tau))
    assert fit["slope"] == pytest.approx(ref.slope) and fit["intercept"] == pytest.approx(ref.intercept)
    assert fit["r2"] == pytest.approx(ref.rvalue ** 2) and fit["stderr"] == pytest.approx(ref.stderr)
    assert fit_power_law([32, 32], [1, 2]) is None and fit_power_law([32], [1]) is None
    assert fit_power_law([], []) is None


def test_dynamics_settings_take_overrides_and_reject_bad_ones():
    cfg = dynamics_settings({"alpha": 0.05}, ["loss_threshold=0.1", "dynamics.fidelity=[fd]",
                                             "min_excess.mem_ratio=0.02"])
    assert cfg.alpha == 0.05 and cfg.loss_threshold == 0.1 and cfg.fidelity == ["fd"]
    assert cfg.min_excess == {"mem_ratio": 0.02} and cfg.copy_metric == "auto"
    with pytest.raises(ConfigError):
        dynamics_settings({}, ["criterion=sometimes"])
    with pytest.raises(ConfigError):
        dynamics_settings({}, ["treshold=0.1"])
    with pytest.raises(ConfigError, match="alpha"):
        dynamics_settings({}, ["alpha=1.5"])


def test_stored_settings_of_older_suites_are_read_with_the_calibrated_rule(registry, tmp_path):
    """A store written before chance levels holds copy_threshold and copy_metric mem_ratio:
    the threshold is dropped (the minimum excess replaced it), the metric choice becomes auto."""
    from benchbase.derived import suite_dynamics

    suite = build_suite(tiny_suite(), "<t>", registry=registry)
    resolved = dict(suite.resolved, dynamics={"criterion": "copy", "copy_metric": "mem_ratio",
                                              "copy_threshold": 0.01, "loss_threshold": 0.1})
    with Store(tmp_path) as store:
        store.register_runs(suite.name, suite.runs, {"source": "<t>", "resolved": resolved})
        cfg = suite_dynamics(store, suite.name)
    assert cfg.criterion == "copy" and cfg.copy_metric == "auto" and cfg.loss_threshold == 0.1


def test_suite_dynamics_section_is_validated(registry):
    with pytest.raises(ConfigError) as err:
        build_suite(tiny_suite(dynamics={"criterion": "copyy", "alpha": 0}), "<t>", registry=registry)
    text = str(err.value)
    assert "dynamics.criterion" in text and "copy" in text and "dynamics.alpha" in text
    with pytest.raises(ConfigError, match="dynamics.treshold"):
        build_suite(tiny_suite(dynamics={"treshold": 0.1}), "<t>", registry=registry)
    ok = build_suite(tiny_suite(dynamics={"criterion": "loss", "loss_threshold": 0.2}), "<t>", registry=registry)
    assert ok.resolved["dynamics"]["criterion"] == "loss"


def test_min_excess_names_a_memorization_metric_of_the_suite(registry):
    """A min_excess for a metric the suite does not judge would change no verdict."""
    for key in ("foo", "fd"):  # fd is in the suite, but judges no memorization
        with pytest.raises(ConfigError, match=rf"dynamics\.min_excess\.{key}: '{key}' is not a memorization "
                                              r"metric of this suite\. .*Valid: mem_ratio$"):
            build_suite(tiny_suite(models=["copy_train"], dynamics={"min_excess": {key: 1}}), "<t>", registry=registry)
    build_suite(tiny_suite(models=["copy_train"], dynamics={"min_excess": {"mem_ratio": 0.02}}), "<t>",
                registry=registry)


def test_copy_metric_names_a_memorization_metric_of_the_suite(registry):
    """A copy_metric the suite does not store would judge nothing: no run would ever memorize."""
    with pytest.raises(ConfigError, match=r"dynamics\.copy_metric: 'mem_ratoi' is not a memorization metric of "
                                          r"this suite\. Did you mean 'mem_ratio'\?"):
        build_suite(tiny_suite(models=["copy_train"], dynamics={"copy_metric": "mem_ratoi"}), "<t>",
                    registry=registry)
    build_suite(tiny_suite(models=["copy_train"], dynamics={"copy_metric": "mem_ratio"}), "<t>", registry=registry)


# ------------------------------------------------------------ stores made by hand


def test_derive_suite_recovers_linear_onset_and_stores_records(registry, tmp_path):
    suite = fake_store(registry, tmp_path, seeds=(0, 1))
    with Store(tmp_path) as store:
        records = derive_suite(store, suite.name)
        assert store.derived(suite.name) == json.loads(json.dumps(records))
        runs = store.runs(suite=suite.name)
    for r in runs:
        rec = records[r.run_id]
        n = r.spec.subset.n
        # first eval above 0.01 sits just after 40 n; interpolation lands within one eval gap
        assert 40 * n <= rec["tau_mem_eval"] and rec["tau_mem"] <= rec["tau_mem_eval"]
        assert rec["tau_mem"] == pytest.approx(40 * n * 1.04, rel=0.5)
        assert rec["norm_factor"] == pytest.approx(16 / n)
        assert rec["tau_mem_loss"] is not None
    (fit,) = tau_fits(runs, records, "tau_mem")
    assert fit["fit"]["slope"] == pytest.approx(1.0, abs=0.1) and fit["fit"]["r2"] > 0.98
    assert fit["fit"]["points"] == 8 and fit["censored"] == []


def test_runs_that_never_memorize_are_censored_not_fitted(registry, tmp_path):
    suite = fake_store(registry, tmp_path, ns=(16, 32, 64, 1024), budget=20000)
    with Store(tmp_path) as store:
        records = derive_suite(store, suite.name)
        runs = store.runs(suite=suite.name)
    big = next(r for r in runs if r.spec.subset.n == 1024)
    assert records[big.run_id]["tau_mem"] is None and records[big.run_id]["censored"] == "right"
    (fit,) = tau_fits(runs, records)
    assert fit["censored"] == [1024] and fit["fit"]["points"] == 3


def test_leaderboard_json_carries_dynamics_for_every_run_of_a_sweep(registry, tmp_path):
    suite = fake_store(registry, tmp_path, seeds=(0, 1), extra_sweep={"model.width": [16, 32]})
    with Store(tmp_path) as store:
        derive_suite(store, suite.name)
        (table,) = build_tables(store, suite=suite.name)
    records = table_to_records(table)
    assert len(records) == 8  # 4 n x 2 widths, seeds aggregated per row
    seen = set()
    for rec in records:
        assert {d["run_id"] for d in rec["dynamics"]} == set(rec["run_ids"]) and len(rec["run_ids"]) == 2
        for d in rec["dynamics"]:
            assert {"tau_mem", "tau_mem_copy", "tau_mem_loss", "mem_rate", "best_before_mem", "criterion",
                    "threshold", "tau_mem_normalized", "norm_factor"} <= set(d)
            seen.add(d["run_id"])
    assert seen == {s.run_id for s in suite.runs}
    # wider models memorize later in this fake: the fits are per width
    with Store(tmp_path) as store:
        fits = tau_fits(store.runs(suite=suite.name), store.derived(suite.name))
    assert sorted(f["group"] for f in fits) == ["rectified_flow on gmm2d (width=16)",
                                                "rectified_flow on gmm2d (width=32)"]


def test_dynamics_command_recomputes_with_overrides(registry, tmp_path, capsys):
    suite = fake_store(registry, tmp_path)
    assert main(["dynamics", "--results", str(tmp_path), "--suite", suite.name]) == 0
    out = capsys.readouterr().out
    assert "tau_mem vs n" in out and "slope" in out and "R^2" in out
    with Store(tmp_path) as store:
        before = {k: v["tau_mem"] for k, v in store.derived(suite.name).items()}
    assert main(["dynamics", "--results", str(tmp_path), "--suite", suite.name, "min_excess.mem_ratio=0.5"]) == 0
    with Store(tmp_path) as store:
        after = store.derived(suite.name)
    assert all(after[k]["tau_mem"] > before[k] for k in before)
    assert all(rec["settings"]["min_excess"] == {"mem_ratio": 0.5} for rec in after.values())
    assert main(["dynamics", "--results", str(tmp_path), "--suite", "nope"]) == 2


@pytest.mark.parametrize("override, message", [
    ("min_excess.foo=1", "'foo' is not a memorization metric of this suite"),
    ("copy_metric=fd", "'fd' is not a memorization metric of this suite"),
    ("rate_metric=nope", "'nope' is not a memorization metric of this suite"),
    ("loss_metric=nopetoo", "'nopetoo' is not a metric of this suite"),
    ("fidelity=[fdd]", "'fdd' is not a metric of this suite. Did you mean 'fd'?"),
    ("dynamics.alpha=2", "must lie in (0, 1) (got 2.0)"),
    ("min_excess.mem_ratio=-1", "must be >= 0 (got mem_ratio: -1.0)"),
    ("alpha=[", "cannot parse override value '['"),
])
def test_dynamics_command_refuses_settings_naming_no_stored_memorization_metric(registry, tmp_path, capsys,
                                                                               override, message):
    suite = fake_store(registry, tmp_path)
    with Store(tmp_path) as store:
        before = store.derived(suite.name)
    assert main(["dynamics", "--results", str(tmp_path), "--suite", suite.name, override]) == 2
    err = capsys.readouterr().err
    assert f"error: dynamics override {override}: {message}" in err and err.count("\n") == 1, err
    assert "invalid suite" not in err and "<dynamics>" not in err  # the override is what the user gave
    with Store(tmp_path) as store:
        assert store.derived(suite.name) == before


def test_every_refused_dynamics_override_is_named(registry, tmp_path, capsys):
    suite = fake_store(registry, tmp_path)
    assert main(["dynamics", "--results", str(tmp_path), "--suite", suite.name, "alpha=2", "criterion=x"]) == 2
    err = capsys.readouterr().err
    assert "2 problems with the dynamics overrides" in err
    assert "dynamics override alpha=2: must lie in (0, 1)" in err and "dynamics override criterion=x: unknown" in err


@pytest.mark.parametrize("settings, key", [
    ({"fidelity": ["fdd"]}, "dynamics.fidelity[0]"),
    ({"rate_metric": "nope"}, "dynamics.rate_metric"),
    ({"loss_metric": "nopetoo"}, "dynamics.loss_metric"),
])
def test_a_suite_whose_dynamics_name_none_of_its_metrics_is_refused(registry, settings, key):
    with pytest.raises(ConfigError) as info:
        build_suite(tiny_suite(dynamics=settings), "s.yaml", registry=registry)
    assert f"s.yaml: {key}: '" in str(info.value) and "metric of this suite" in str(info.value)
    build_suite(tiny_suite(dynamics={"fidelity": ["fd"], "rate_metric": "mem_ratio"}), "s.yaml", registry=registry)


# ------------------------------------------------------------------- end to end


def test_a_run_stores_heldout_losses_at_every_eval_and_derives_after_finishing(gap_registry, results_dir):
    data = tiny_suite(models=[{"name": "rectified_flow", "framework": "torch", "config": {"width": 16, "depth": 1, "sample_steps": 4}},
                              "copy_train"],
                      metrics=["mem_ratio", {"name": "swd", "config": {"n_projections": 10}}, "heldout_gap"],
                      sweep={"n": [16, 32]}, budget={"batch_size": 16, "steps": 40},
                      eval={"points": 3, "n_samples": 50})
    data["metrics"][2] = {"name": "heldout_gap", "optional": True}  # copy_train has no held-out loss
    suite = build_suite(data, "<t>", registry=gap_registry)
    with Store(results_dir) as store:
        result = run_suite(suite, store, gap_registry, reporter=Reporter(quiet=True))
        assert result.ok
        derived = store.derived(suite.name)
        assert set(derived) == {s.run_id for s in suite.runs}
        for spec in suite.runs:
            evals = store.evals(spec.run_id)
            if spec.model.name != "rectified_flow":
                assert derived[spec.run_id]["tau_mem"] == 0 and derived[spec.run_id]["censored"] == "left"
                continue
            for step in spec.eval.steps:
                names = {e["metric"] for e in evals if e["step"] == step}
                assert {"heldout_gap.train", "heldout_gap.test"} <= names
            assert derived[spec.run_id]["tau_mem_loss_censored"] != "unavailable"


def test_collapse_compares_level_crossings_against_step_and_normalized_step(registry, tmp_path):
    from benchbase.dynamics import collapse

    suite = fake_store(registry, tmp_path, points=24)
    with Store(tmp_path) as store:
        records = derive_suite(store, suite.name)
        runs = store.runs(suite=suite.name)
        trajs = {r.run_id: Trajectory.from_evals(store.evals(r.run_id)) for r in runs}
    (c,) = collapse(runs, trajs, records)
    assert [p["level"] for p in c["levels"]] == [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5]
    # onsets at 40 n steps: log10 spread of n itself against step, ~0 against normalized step
    assert c["spread_step"] == pytest.approx(np.log10([16, 32, 64, 128]).std(), abs=0.05)
    assert c["spread_normalized"] < 0.05
    # a quantity that does not scale with n does not collapse under the normalization
    flat = {rid: dict(rec, norm_factor=1.0) for rid, rec in records.items()}
    (c_flat,) = collapse(runs, trajs, flat)
    assert c_flat["spread_normalized"] == pytest.approx(c_flat["spread_step"])
    (gap,) = collapse(runs, trajs, records, "relative_gap")  # the loss criterion's curve: 0.3 mem_ratio
    assert [p["level"] for p in gap["levels"]][:3] == [0.05, 0.1, 0.2] and gap["spread_normalized"] < 0.05


def test_collapse_uses_the_runs_that_reach_each_level(registry, tmp_path):
    from benchbase.dynamics import collapse

    suite = fake_store(registry, tmp_path, ns=(16, 32, 64, 2048), points=24)
    with Store(tmp_path) as store:
        records = derive_suite(store, suite.name)
        runs = store.runs(suite=suite.name)
        trajs = {r.run_id: Trajectory.from_evals(store.evals(r.run_id)) for r in runs}
    (c,) = collapse(runs, trajs, records)
    assert c["levels"] and all(p["n"] == [16, 32, 64] for p in c["levels"])  # n = 2048 never memorizes
    assert c["spread_normalized"] < 0.05 < c["spread_step"]


def test_step_before_memorization_for_leaderboards():
    from benchbase.dynamics import step_before_memorization

    steps = [100, 200, 400, 800]
    evals = _evals(steps, **{"mem_ratio[train]": [0, 0, 0.2, 0.5], "swd[test]": [0.5, 0.3, 0.2, 0.1]})
    rec = derive_run(evals, DynamicsEntry(fidelity=["swd"]))
    assert rec["last_step_before_mem"] == 200
    assert step_before_memorization(rec, "swd[test]") == 200 and step_before_memorization(rec) == 200
    never = derive_run(_evals(steps, **{"mem_ratio[train]": [0, 0, 0, 0]}), DynamicsEntry())
    assert never["last_step_before_mem"] == 800
    always = derive_run(_evals(steps, **{"mem_ratio[train]": [1, 1, 1, 1]}), DynamicsEntry())
    assert always["last_step_before_mem"] is None and step_before_memorization(always, "swd[test]") is None


def test_fits_leave_out_runs_that_memorized_from_the_first_evaluation():
    runs = [SimpleNamespace(run_id=str(n), n=n, spec=SimpleNamespace(
                subset=SimpleNamespace(n=n, holdout=None), model=SimpleNamespace(label="m"), dataset=SimpleNamespace(label="d"),
                sweep={"n": n}, trains=True, identity=lambda n=n: {"seed": 0, "subset": {"n": n}}))
            for n in (8, 16, 32, 64)]  # the parts of RunRecords that tau_fits reads
    records = {"8": {"tau_mem": 0.0, "censored": "left"}, "16": {"tau_mem": 160.0, "censored": None},
               "32": {"tau_mem": 320.0, "censored": None}, "64": {"tau_mem": None, "censored": "right"}}
    (fit,) = tau_fits(runs, records)
    assert fit["left_censored"] == [8] and fit["censored"] == [64] and fit["points"] == [(16, 160.0), (32, 320.0)]
    assert fit["fit"]["slope"] == pytest.approx(1.0)


def _run(n, steps, lr=1e-3, framework="torch"):
    """The parts of a RunRecord that tau_fits and the exponents' families read."""
    ident = {"seed": 0, "subset": {"n": n, "content_hash": f"h{n}"}, "budget": {"steps": steps, "batch_size": 32},
             "model": {"name": "m", "framework": framework, "lr": lr, "config": {"lr": lr}}}
    spec = SimpleNamespace(subset=SimpleNamespace(n=n, holdout=None), model=SimpleNamespace(label="m"),
                           dataset=SimpleNamespace(label="d"), sweep={"n": n}, trains=True, identity=lambda: ident)
    return SimpleNamespace(run_id=f"{n}-{steps}-{lr}-{framework}", n=n, spec=spec)


def test_runs_of_one_label_under_another_budget_are_never_fitted_together():
    runs = [_run(n, steps) for n in (16, 32) for steps in (100, 200)]
    records = {r.run_id: {"tau_mem": 10.0 * r.n * (r.spec.identity()["budget"]["steps"] / 100), "censored": None}
               for r in runs}
    fits = tau_fits(runs, records)
    assert sorted(f["group"] for f in fits) == ["m on d (budget.steps=100)", "m on d (budget.steps=200)"]
    assert all(f["fit"]["slope"] == pytest.approx(1.0) and f["runs"] == 2 for f in fits)
    (alone,) = tau_fits(runs[::2], records)  # one configuration: the label reads as before
    assert alone["group"] == "m on d"


def test_the_exponents_families_split_configurations_but_not_their_axes():
    from benchbase.exponents import family_key, family_label

    same = {family_key(_run(n, 100, lr).spec) for n in (16, 32) for lr in (1e-3, 2e-3)}
    assert len(same) == 1  # n and the learning rate are axes of one family
    keys = {family_key(_run(16, 100, framework=f).spec) for f in ("torch", "jax")}
    assert len(keys) == 2
    assert sorted(family_label(k, keys) for k in keys) == ["m on d (model.framework=jax)",
                                                         "m on d (model.framework=torch)"]


def test_dynamics_of_a_suite_whose_runs_all_timed_out_says_so(registry, tmp_path, capsys):
    suite = build_suite(tiny_suite(name="failonly", seeds=[0, 1], models=["copy_train"]), "<t>", registry=registry)
    with Store(tmp_path) as store:
        store.register_runs(suite.name, suite.runs, {"source": "<t>", "resolved": suite.resolved})
        for spec in suite.runs:
            store.finish_run(spec.run_id, "timeout", {"steps": 0})
    assert main(["dynamics", "--results", str(tmp_path), "--suite", "failonly"]) == 0  # as leaderboard and plot
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no run has evaluations to derive training dynamics from (2 runs timed out)" in captured.err
    assert main(["dynamics", "--results", str(tmp_path), "--suite", "failonly", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {}


def test_dynamics_and_plot_say_which_runs_they_leave_out(registry, tmp_path, capsys):
    from benchbase.driver import run_suite
    from benchbase.progress import Reporter

    suite = build_suite(tiny_suite(name="partly", seeds=[0, 1], models=["copy_train"]), "<t>", registry=registry)
    with Store(tmp_path) as store:
        run_suite(suite, store, registry, reporter=Reporter(quiet=True))
        store.finish_run(suite.runs[1].run_id, "timeout", {"steps": 0})  # one of the two did not finish
    assert main(["dynamics", "--results", str(tmp_path), "--suite", "partly"]) == 0
    assert "training dynamics of 1 run; left out 1 run timed out" in capsys.readouterr().err
    assert main(["plot", "--results", str(tmp_path), "--suite", "partly", "--out", str(tmp_path / "plots"),
                 "--format", "png"]) == 0
    assert "plotted 1 finished run; left out 1 run timed out" in capsys.readouterr().err
