"""Train/test features are computed once per (content hash, extractor, config,
version) and cached next to the results: a second run of a suite embeds no training
or test data again, and a learned space is not refitted."""
from __future__ import annotations

from support.suites import tiny_suite

from benchbase.config import build_suite
from benchbase.driver import run_suite
from benchbase.evaluation import FeatureCache
from benchbase.progress import Reporter
from benchbase.store import Store
from benchbase_plugins.features import trained_encoder as te_module
from benchbase_plugins.features.pixels import Pixels


def _run(registry, results_dir, suite_dict):
    suite = build_suite(suite_dict, "<test>", registry=registry)
    with Store(results_dir) as store:
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok


def _count(monkeypatch, cls, attr="embed"):
    """Record the batch sizes every call of ``cls.embed`` sees, and FeatureCache hits."""
    seen = {"rows": [], "hits": 0}
    real = getattr(cls, attr)

    def spy(self, x):
        seen["rows"].append(len(x))
        return real(self, x)

    monkeypatch.setattr(cls, attr, spy)
    real_get = FeatureCache.get

    def get(self, key, compute):
        before = self.hits
        out = real_get(self, key, compute)
        seen["hits"] += self.hits - before
        return out

    monkeypatch.setattr(FeatureCache, "get", get)
    return seen


def test_second_suite_embeds_only_generated_samples(registry, results_dir, monkeypatch):
    base = dict(datasets=[{"name": "digits", "n": 300}], metrics=["fd", "mem_ratio"],
                eval={"points": 1, "n_samples": 50, "n_test": 100})
    seen = _count(monkeypatch, Pixels)
    _run(registry, results_dir, tiny_suite(models=["copy_train"], **base))
    # train, test, samples, and the 397 test points no metric sees (mem_ratio's chance level)
    assert sorted(seen["rows"]) == [50, 100, 300, 397] and seen["hits"] == 0
    seen["rows"].clear()
    _run(registry, results_dir, tiny_suite(models=["true_sampler", "noise"], **base))
    assert seen["rows"] == [50, 50]  # only each model's samples
    assert seen["hits"] == 4  # train + test features for both runs, from the cache


def test_trained_encoder_is_fitted_once_across_suites_and_subset_sizes(registry, results_dir, monkeypatch):
    fits = []
    real_fit = te_module.fit_autoencoder

    def counting_fit(x, cfg, device):
        fits.append(len(x))
        return real_fit(x, cfg, device)

    monkeypatch.setattr(te_module, "fit_autoencoder", counting_fit)
    features = {"name": "trained_encoder", "config": {"steps": 20, "width": 16, "depth": 1, "latent_dim": 3}}
    suite = dict(datasets=[{"name": "digits", "n": 200}], metrics=["fd"], models=["copy_train"],
                 eval={"points": 1, "n_samples": 40, "features": features})
    _run(registry, results_dir, tiny_suite(**suite))
    assert fits == [1300]  # the dataset's whole train split, not the run's subset
    seen = _count(monkeypatch, te_module.TrainedEncoder)
    _run(registry, results_dir, tiny_suite(**{**suite, "datasets": [{"name": "digits", "n": 400}]}))
    assert fits == [1300]  # weights from the cache
    assert seen["rows"] == [400, 40]  # new subset's training features; test features cached
    assert seen["hits"] == 1
    assert len(list((results_dir / "cache" / "encoders").glob("*.pt"))) == 1
