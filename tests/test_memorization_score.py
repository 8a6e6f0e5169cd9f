"""The leave-one-out memorization score (van den Burg & Williams 2021): the metric on
exact mixtures, the fold join of benchbase.memscore, and a suite end to end with a
model that memorizes by construction and one that cannot.

Memorizer: ``empirical_denoiser``, whose log_prob is the kernel density of its own
training points at sigma_min (training points sit on a kernel; held-out ones far from
every kernel). Cannot memorize: ``rectified_flow`` with lr = 0: every fold's model is
the seed's untrained network, so log p(x | S) = log p(x | S without x) exactly.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from support.metric_contexts import make_ctx

from benchbase.cli import main
from benchbase.memscore import fold_scores, is_per_example_row, logp_row, summarize
from benchbase.testing.scenarios import Mixture, make_world
from benchbase_plugins.metrics.likelihood import MemorizationScore, MemorizationScoreConfig


class Handle:
    """ModelHandle stand-in: log_prob of a mixture."""

    def __init__(self, mixture):
        self.mixture = mixture

    def log_prob(self, x, salt=0):
        return self.mixture.log_prob(np.asarray(x)).astype(np.float64)


def _ctx(world, mixture, heldout=None):
    ctx = make_ctx(world.test, world.train, world.test, model=Handle(mixture), spec=world.spec)
    ctx.train_indices = np.arange(len(world.train)) + 100
    if heldout is not None:
        ctx.heldout_data, ctx.heldout_indices = heldout, np.arange(len(heldout)) + 1000
    return ctx


def test_metric_is_large_for_a_copier_and_near_chance_for_the_truth():
    world = make_world((2,), n_train=60, n_test=300, seed=0)
    copier = Mixture(world.train.astype(np.float64), 0.01)
    out = MemorizationScore().compute(_ctx(world, copier))
    assert out["memorization_score"] > 5 * out["memorization_score.se"] > 0
    # every training point sits on its own kernel: log p >= log N(0; 0, 0.01^2 I) - log 60 = 3.28
    assert out["memorization_score.train"] > 3.28
    truth = MemorizationScore().compute(_ctx(world, world.truth))
    assert abs(truth["memorization_score"]) < 3 * truth["memorization_score.se"]
    assert truth["memorization_score"] == pytest.approx(truth["memorization_score.train"]
                                                        - truth["memorization_score.test"])


def test_metric_stores_per_example_rows_by_train_split_index():
    world = make_world((2,), n_train=10, n_test=50, seed=1)
    held = world.test[:3]
    out = MemorizationScore(MemorizationScoreConfig(max_test=20)).compute(_ctx(world, world.truth, held))
    train_rows = {k for k in out if k.startswith("memorization_score.logp.")}
    held_rows = {k for k in out if k.startswith("memorization_score.heldout_logp.")}
    assert train_rows == {logp_row("memorization_score", i) for i in range(100, 110)}
    assert held_rows == {logp_row("memorization_score", i, heldout=True) for i in (1000, 1001, 1002)}
    assert all(is_per_example_row(k) for k in train_rows | held_rows)
    assert not any(is_per_example_row(k) for k in ("memorization_score", "memorization_score.se"))
    np.testing.assert_allclose(out[logp_row("memorization_score", 1001, heldout=True)],
                               world.truth.log_prob(held[1:2])[0], rtol=1e-6)
    assert out["memorization_score.heldout"] == pytest.approx(world.truth.log_prob(held).mean(), rel=1e-6)
    off = MemorizationScore(MemorizationScoreConfig(per_example=False)).compute(_ctx(world, world.truth, held))
    assert not any(is_per_example_row(k) for k in off)


def test_fold_join_is_the_full_model_minus_the_model_without_the_fold():
    """M(x_i) pairs seeds: (full_s - without_s) averaged over s, with its standard error."""
    full = {0: {1: -1.0, 2: -2.0, 3: -3.0, 4: -4.0}, 1: {1: -1.5, 2: -2.0, 3: -2.0, 4: -5.0}}
    folds = {1: {0: {1: -3.0, 2: -2.0}, 1: {1: -2.5, 2: -3.0}},
             2: {0: {3: -3.0, 4: -10.0}, 1: {3: -3.0, 4: -9.0}}}
    got = fold_scores(full, folds, step=0)
    assert got["indices"] == [1, 2, 3, 4] and got["fold"] == [1, 1, 2, 2]
    np.testing.assert_allclose(got["score"], [1.5, 0.5, 0.5, 5.0])
    np.testing.assert_allclose(got["score_se"], [0.5, 0.5, 0.5, 1.0])
    s = summarize(got["score"])
    assert s["examples"] == 4 and s["max"] == 5.0 and s["frac_positive"] == 1.0 and s["mean"] == 1.875



def test_seed_null_is_the_spread_of_log_p_between_models_trained_on_the_same_data():
    """Two seeds whose log p differ by exactly +-1 on every example: the null band is
    [-1, 1]; per-seed scores of 5 lie above it, of 0 inside it."""
    from benchbase.memscore import judged_against_null, seed_null

    full = {0: {i: -1.0 for i in range(10)}, 1: {i: -2.0 if i % 2 else 0.0 for i in range(10)}}
    null = seed_null(full)
    assert null["pairs"] == 1 and null["values"] == 10 and null["rms"] == pytest.approx(1.0)
    assert null["band95"] == pytest.approx([-1.0, 1.0])
    folds = {1: {0: {i: -6.0 for i in range(5)}, 1: {i: full[1][i] - 5.0 for i in range(5)}},
             2: {0: {i: -1.0 for i in range(5, 10)}, 1: {i: full[1][i] for i in range(5, 10)}}}
    judged = judged_against_null(full, folds, null)
    assert judged == {"scores": 20, "frac_above": 0.5, "frac_below": 0.0}
    assert seed_null({0: full[0]}) == {"pairs": 0, "values": 0}
    assert judged_against_null(full, folds, seed_null({0: full[0]})) is None

MEMTEST = {
    "name": "memtest", "seeds": [0], "device": "cpu",
    "datasets": [{"name": "gmm2d", "n": 8, "config": {"train_size": 200, "test_size": 100}}],
    "models": ["empirical_denoiser",
               {"name": "rectified_flow", "framework": "torch",
                "config": {"width": 8, "depth": 1, "lr": 0.0, "loglik_steps": 2, "sample_steps": 2}}],
    "metrics": [{"name": "memorization_score", "config": {"max_test": 50}}],
    "sweep": {"subset.holdout": [None, "1 of 2", "2 of 2"]},
    "budget": {"batch_size": 4, "steps": 4},
    "eval": {"points": 1, "n_samples": 20},
}


def test_fold_score_end_to_end_on_a_memorizer_and_a_model_that_cannot(tmp_path, capsys):
    suite = tmp_path / "memtest.yaml"
    suite.write_text(yaml.safe_dump(MEMTEST))
    results = str(tmp_path / "results")
    assert main(["run", str(suite), "--results", results, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["dynamics", "--results", results, "--suite", "memtest", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    scored = [r["memorization_score"] for r in records.values() if "memorization_score" in r]
    assert len(scored) == 2  # one record per model, on its run trained on all of S
    for rec in scored:
        assert rec["K"] == 2 and rec["n"] == 8 and sorted(rec["indices"]) == list(range(8))
    memorizer = max(scored, key=lambda r: r["summary"]["mean"])
    untrained = min(scored, key=lambda r: r["summary"]["mean"])
    assert memorizer["summary"]["min"] > 100  # every x_i is far more likely under the model that saw it
    # Identical models with and without each fold, so 0 up to float32 rounding: log p(x_i)
    # comes from a batch of 8 training examples in one run and of 4 held-out ones in the
    # other, and on some CPUs (AVX-512 here) a linear layer rounds a row differently with
    # the batch's size (2.4e-7 apart for 8 x 3 inputs).
    assert untrained["score"] == pytest.approx([0.0] * 8, abs=1e-5)
