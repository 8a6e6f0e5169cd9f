"""The public scoring API (benchbase.scoring): the values a run stores, from arrays."""
from __future__ import annotations

import re

import numpy as np
import pytest

from benchbase.errors import BenchbaseInputError, UnknownPluginError
from benchbase.plugins import PluginPolicy, build_registry
from benchbase.scoring import SampleScorer, score_samples
from benchbase.store import Store
from benchbase.testing import run_suite_quietly
from benchbase.testing.kit_plugins import KIT_PLUGINS

# every sample-only metric family, including those that draw random numbers (kid, swd)
METRICS = ["mem_ratio", "authenticity", "fd", "kid", {"name": "swd", "config": {"n_projections": 32}},
           "precision", "recall", "density", "coverage", "dcr_overfit"]
GMM = {"train_size": 600, "test_size": 300}


@pytest.fixture
def kit_registry():
    return build_registry(PluginPolicy(entry_points=False, strict=True, extra=(KIT_PLUGINS,)))


def _suite() -> dict:
    return {
        "name": "scoring", "seeds": [3], "device": "cpu",
        "datasets": [{"name": "gmm2d", "n": 128, "config": GMM},
                     {"name": "digits", "n": 96, "subset": {"mode": "random", "seed": 5}}],
        "models": ["kit_mean"],
        "metrics": METRICS,
        "budget": {"batch_size": 16, "steps": 40},
        "eval": {"points": 3, "n_samples": 150, "keep_samples": 150, "n_test": 200, "at_init": True},
    }


def test_scoring_stored_samples_gives_the_stored_values_bit_for_bit(kit_registry, results_dir):
    run = run_suite_quietly(_suite(), results_dir, registry=kit_registry)
    assert run.result.ok
    compared = 0
    with Store(results_dir) as store:
        for rec in store.runs(suite="scoring"):
            spec = rec.spec
            options = {"subset": {"mode": spec.subset.mode, "seed": spec.subset.seed},
                       "config": spec.dataset.config}
            # one scorer with the run's feature cache, one computing every feature afresh
            scorers = [SampleScorer.for_dataset(spec.dataset.name, n=spec.subset.n, n_test=200,
                                                metrics=METRICS, registry=kit_registry, results_dir=path,
                                                **options)
                       for path in (results_dir, None)]
            stored = {}
            for row in store.evals(rec.run_id):
                if not row["metric"].startswith("train/"):
                    stored.setdefault(row["step"], {})[(row["metric"], row["ref"])] = (row["value"], row["params"])
            assert len(stored) == 4  # at init + 3 points
            for step in store.sample_steps(rec.run_id):
                _, samples = store.samples(rec.run_id, step)
                assert len(samples) == 150
                for scorer in scorers:
                    scores = scorer.score(samples, step=step, seed=rec.seed)
                    got = {(r.metric, r.ref): (r.value, r.params) for r in scores.rows}
                    assert got == stored[step]
                    compared += len(got)
                other = scorers[1].score(samples, step=step + 1, seed=rec.seed)  # kid's subsets use the step
                assert other.value("kid", ref="test") != stored[step][("kid", "test")][0]
    assert compared > 200


def test_arrays_and_a_registered_dataset_give_the_same_values(kit_registry):
    from benchbase.data import DataCatalog, select_subset

    reg = kit_registry.get("dataset", "digits")
    cfg = reg.cls.Config()
    _, splits = DataCatalog.shared().load(reg, cfg, {})
    subset = select_subset(splits, {"n": 200, "mode": "first"})
    samples = splits.test[-100:] + np.float32(0.05)
    by_name = score_samples(samples, "digits", n=200, metrics=["fd", "mem_ratio"], registry=kit_registry)
    by_arrays = score_samples(samples, train=subset.x, test=splits.test, train_labels=subset.y,
                              test_labels=splits.test_labels, metrics=["fd", "mem_ratio"], registry=kit_registry)
    def values(scores):
        return [r for r in scores.rows if not r.metric.endswith((".chance", ".chance_sd"))]

    assert values(by_name) == values(by_arrays)
    # every memorization value comes with its chance level, from either kind of reference
    for scores in (by_name, by_arrays):
        assert {r.metric for r in scores.rows} >= {"mem_ratio.chance", "mem_ratio.chance_sd"}
    assert by_name.train_hash == by_arrays.train_hash
    assert by_name.value("fd", ref="test") > 0 and by_name.value("mem_ratio") == 0.0
    assert by_name.as_dict()["fd[test]"] == by_name.value("fd", ref="test")


def test_copies_of_the_training_set_read_as_memorized(registry):
    rng = np.random.default_rng(0)
    train = rng.uniform(-1, 1, (300, 1, 6, 6)).astype(np.float32)
    test = rng.uniform(-1, 1, (200, 1, 6, 6)).astype(np.float32)
    scorer = SampleScorer.for_arrays(train, test, metrics=["mem_ratio"], registry=registry)
    assert scorer.references.spec.modality == "image"
    assert scorer.score(train[:100]).value("mem_ratio") == 1.0
    assert scorer.score(rng.uniform(-1, 1, (100, 1, 6, 6))).value("mem_ratio") == 0.0  # float64 is fine
    # arrays given without a spec declare no value range: nothing is refused for its scale
    assert scorer.score(rng.uniform(-1, 1, (100, 1, 6, 6)) * 50).value("mem_ratio") == 0.0


@pytest.mark.parametrize("kwargs,match", [
    ({"samples": np.zeros((10, 3), np.float32)}, r"samples are \(3,\) each"),
    ({"samples": np.zeros((10, 2), np.int64)}, "floating-point"),
    ({"samples": np.full((10, 2), np.nan, np.float32)}, "NaN"),
    ({"samples": np.full((10, 2), -40.0, np.float32)}, r"values span \[-40, -40\], far outside .* rescale them"),
    ({"metrics": ["heldout_gap"]}, "capability 'heldout_loss'.*cannot score samples alone"),
    ({"metrics": [{"name": "fd", "config": {"nope": 1}}]}, "nope"),
    ({"subset": {"mode": "random", "sed": 1}}, "unknown subset option"),
    ({"features": "inception"}, "image"),
    ({"seed": 2 ** 63}, r"seed must be a whole number from 0 to 2\^63-1, got 9223372036854775808"),
    ({"seed": -1}, "seed must be a whole number"),  # numpy refused it from inside a metric
    ({"seed": 1.5}, "seed must be a whole number"),  # was truncated to 1
    ({"step": True}, "step must be a whole number"),
])
def test_bad_requests_are_one_clear_input_error(registry, kwargs, match):
    args = {"samples": np.zeros((10, 2), np.float32), "metrics": ["fd"]}
    args.update(kwargs)
    with pytest.raises(BenchbaseInputError, match=match):
        score_samples(args.pop("samples"), "gmm2d", n=64, config=GMM, registry=registry, **args)


def test_unknown_names_suggest_the_close_ones(registry):
    with pytest.raises(UnknownPluginError, match="Did you mean 'mem_ratio'"):
        score_samples(np.zeros((10, 2), np.float32), "gmm2d", n=64, config=GMM, metrics=["mem_ratio_"],
                      registry=registry)


def _gmm_refs(registry):
    from benchbase.scoring import dataset_references

    return lambda **kw: dataset_references("gmm2d", config=GMM, registry=registry, **kw)


@pytest.mark.parametrize("kwargs,match", [
    ({"n": -3}, r"n must be a whole number >= 1 \(None: the whole train split\), got -3"),  # was 597 points
    ({"n": 0}, "n must be a whole number >= 1"),  # was the whole split
    ({"n": 1.5}, "got 1.5"), ({"n": True}, "got True"), ({"n": "64"}, "got '64'"),  # were 1, 1 and 64 points
    ({"n": 64, "n_test": -1}, r"n_test must be a whole number >= 1 \(None: the whole test split\), got -1"),
    ({"n": 64, "n_test": 0}, "n_test must be"), ({"n": 64, "n_test": 1.5}, "got 1.5"),
])
def test_counts_are_whole_numbers_from_one_as_the_command_takes_them(registry, kwargs, match):
    with pytest.raises(BenchbaseInputError, match=match):
        _gmm_refs(registry)(**kwargs)


def test_a_whole_valued_float_count_is_taken(registry):
    refs = _gmm_refs(registry)(n=64.0, n_test=50.0)
    assert (len(refs.references.train), len(refs.references.test)) == (64, 50)


@pytest.mark.parametrize("n_test,match", [(-100, "got -100"), (1.5, "got 1.5")])  # -100 dropped 100 test points
def test_n_test_of_arrays_is_checked_too(registry, n_test, match):
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(2, 300, 2)).astype(np.float32)
    with pytest.raises(BenchbaseInputError, match="n_test must be a whole number >= 1.*" + match):
        SampleScorer.for_arrays(train, test, n_test=n_test, metrics=["fd"], registry=registry)


def test_reference_arrays_with_nan_or_inf_are_refused_naming_the_array(registry):
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(2, 300, 2)).astype(np.float32)
    x = rng.normal(size=(100, 2)).astype(np.float32)
    bad_train = train.copy()
    bad_train[[4, 9], 0], bad_train[9, 1] = np.nan, np.inf
    with pytest.raises(BenchbaseInputError, match=r"^NaN or Inf in train: 3 value\(s\) in 2 of 300 examples, "
                                                  r"the first example 4$"):  # gave fd[train] nan
        score_samples(x, train=bad_train, test=test, metrics=["mem_ratio", "fd"], registry=registry)
    with pytest.raises(BenchbaseInputError, match=r"^NaN or Inf in test: 600 value\(s\) in 300 of 300"):
        score_samples(x, train=train, test=np.full_like(test, np.inf), metrics=["mem_ratio"], registry=registry)
    # the test points past n_test are read too: they are the chance levels' pool
    with pytest.raises(BenchbaseInputError, match=r"^NaN or Inf in test: 100 value\(s\) in 50 of 300 examples, "
                                                  r"the first example 250$"):
        score_samples(x, train=train, test=np.concatenate([test[:250], np.full_like(test[:50], np.nan)]),
                      n_test=250, metrics=["mem_ratio"], registry=registry)


@pytest.mark.parametrize("kwargs,match", [
    ({"device": "gpu0"}, r"^device: unknown device 'gpu0'; valid: cpu, cuda, cuda:N, auto$"),  # a metric's fault
    ({"device": "cuda"}, "'cuda' asked for, but this machine has no GPU"),  # scored on the CPU
    ({"samples": [[1.0, 2.0], [1.0]]}, "samples are a ragged sequence"),  # numpy's inhomogeneous shape
    ({"seed": "a"}, "seed must be a whole number from 0 to 2\\^63-1, got 'a'"),
])
def test_other_bad_arguments_are_input_errors(registry, monkeypatch, kwargs, match):
    monkeypatch.setattr("benchbase.devices.visible_gpus", lambda: 0)
    args = {"samples": np.zeros((10, 2), np.float32), "metrics": ["fd"]}
    args.update(kwargs)
    with pytest.raises(BenchbaseInputError, match=match):
        score_samples(args.pop("samples"), "gmm2d", n=64, config=GMM, registry=registry, **args)


def test_a_results_dir_that_is_a_file_is_refused(registry, tmp_path):
    (tmp_path / "f").write_text("")
    for path, match in [(tmp_path / "f", "is a file"), (tmp_path / "f" / "sub", f"{tmp_path / 'f'} is a file")]:
        with pytest.raises(BenchbaseInputError, match=f"^results_dir {path}: {match}; name a results directory"):
            score_samples(np.zeros((10, 2), np.float32), "gmm2d", n=64, config=GMM, metrics=["fd"],
                          results_dir=path, registry=registry)


def test_torch_tensors_score_off_the_graph_and_in_bfloat16(registry):
    import torch

    x = np.random.default_rng(0).uniform(-1, 1, (50, 2)).astype(np.float32)
    args = {"dataset": "gmm2d", "n": 64, "config": GMM, "metrics": ["fd"], "registry": registry}
    plain = score_samples(x, **args).value("fd", ref="test")
    assert score_samples(torch.from_numpy(x).requires_grad_(), **args).value("fd", ref="test") == plain
    rounded = torch.from_numpy(x).bfloat16()
    assert score_samples(rounded, **args).value("fd", ref="test") == \
        score_samples(rounded.float().numpy(), **args).value("fd", ref="test")


def test_metrics_none_are_the_default_metrics(registry):
    scores = score_samples(np.zeros((10, 2), np.float32) + np.arange(10)[:, None] / 10, "gmm2d", n=64, config=GMM,
                           metrics=None, registry=registry)
    assert {r.metric for r in scores.headline()} == {"mem_ratio", "fd", "swd"}


def test_a_memorization_value_is_shown_with_its_chance_level_and_verdict(registry):
    from benchbase.data import DataCatalog, select_subset

    reg = registry.get("dataset", "gmm2d")
    _, splits = DataCatalog.shared().load(reg, reg.cls.Config(**GMM), GMM)
    copies = select_subset(splits, {"n": 64, "mode": "first"}).x[:50]
    scorer = SampleScorer.for_dataset("gmm2d", n=64, config=GMM, metrics=["mem_ratio", "fd"], registry=registry)
    fresh, copied = scorer.score(splits.test[:50]), scorer.score(copies)
    mean, sd = copied.chance("mem_ratio")
    assert 0 < mean < 0.5 and sd > 0
    assert copied.verdict("mem_ratio").memorizing and not fresh.verdict("mem_ratio").memorizing
    with pytest.raises(KeyError, match="fd has no chance level.*these have: mem_ratio"):
        copied.chance("fd", ref="test")
    text = str(copied)
    assert re.search(rf"\nmem_ratio\[train\] +1 +{mean:.3g} ± {sd:.2g} +memorizing\n", text)
    assert "fd[test]" in text and "EvalRow" not in text and "chance: what held-out data scores" in text
    assert "not memorizing" in str(fresh)
    assert repr(copied).startswith("Scores(50 samples, pixels, seed 0, step 0: mem_ratio[train]=1 (chance ")
    assert "EvalRow" not in repr(copied) and len(repr(copied)) < 200
