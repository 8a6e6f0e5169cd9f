"""The GAN, VAE and WAE models in both frameworks: through the core on a vector and an
image dataset, and through the model API for shapes, determinism, checkpoints,
parameter counts and how a step spends the examples budget."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from support.model_harness import ModelHarness, assert_repeatable_and_resumable
from support.suites import tiny_suite

from benchbase.config import build_suite
from benchbase.driver import run_suite
from benchbase.errors import ConfigError
from benchbase.progress import Reporter
from benchbase.store import Store

pytest.importorskip("jax")

MODELS = ("gan", "wgan_gp", "fgan", "vae", "wae_mmd", "wae_gan")
FRAMEWORKS = ("torch", "jax")
TINY = {"width": 8, "depth": 1, "latent_dim": 2}
EXTRA = {"wgan_gp": {"n_critic": 3}, "fgan": {"divergence": "kl"}, "vae": {"iwae_samples": 4},
         "wae_gan": {"adversary_depth": 1}}
DATASETS = {"gmm2d": {"train_size": 256, "test_size": 64}, "digits": {}}
B = 16


def tiny_config(name: str) -> dict:
    return {**TINY, **EXTRA.get(name, {})}


def _linear(d_in, d_out):
    return d_in * d_out + d_out


def _conv(c_in, c_out, k=4):
    return c_in * c_out * k * k + c_out


def hand_count(name: str, dataset: str) -> int:
    """Parameters of the tiny config, counted from the architecture by hand.

    gmm2d (2-D): MLPs with one hidden layer of 8. digits (1x8x8): conv backbone with
    width 8 -> 2 channels at 4x4, i.e. encoder Conv(1->2) + Linear(2*4*4 -> out) and
    generator Linear(in -> 2*4*4) + ConvT(2->1)."""
    latent = 2
    if dataset == "gmm2d":
        def enc(d_out): return _linear(2, 8) + _linear(8, d_out)  # noqa: E704
        def dec(d_in): return _linear(d_in, 8) + _linear(8, 2)  # noqa: E704
    else:
        def enc(d_out): return _conv(1, 2) + _linear(32, d_out)  # noqa: E704
        def dec(d_in): return _linear(d_in, 32) + _conv(2, 1)  # noqa: E704
    if name in ("gan", "wgan_gp", "fgan"):
        return dec(latent) + enc(1)
    if name == "vae":
        return enc(2 * latent) + dec(latent)
    if name == "wae_mmd":
        return enc(latent) + dec(latent)
    return enc(latent) + dec(latent) + _linear(latent, 8) + _linear(8, 1)  # wae_gan: + adversary


class Harness(ModelHarness):
    """ModelHarness with the zoo's tiny configs and datasets."""

    def __init__(self, registry, name: str, framework: str, dataset: str):
        super().__init__(registry, name, framework, dataset, tiny_config(name), DATASETS[dataset], 128, B)
        self.per_step = B * self.model.batches_per_step()


# the conv (digits) cases compile bigger JAX programs: slow; the core test below runs
# every model on digits by default
CASES = [pytest.param(m, f, d, id=f"{m}-{f}-{d}", marks=[pytest.mark.slow] if d == "digits" else [])
         for m in MODELS for f in FRAMEWORKS for d in DATASETS]


@pytest.mark.parametrize("name,framework,dataset", CASES)
def test_model_trains_samples_repeats_and_round_trips(registry, name, framework, dataset):
    h = Harness(registry, name, framework, dataset)
    state, samples = h.trained(seed=123, steps=2)
    if h.spec.modality == "image" and h.model.family == "gan":
        assert np.abs(samples).max() <= 1.0  # tanh output for images in [-1, 1]

    assert h.model.param_count(state) == hand_count(name, dataset)
    assert_repeatable_and_resumable(h, state, samples, seed=123, steps=2, tol=1e-6)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", MODELS)
def test_model_runs_through_the_core_on_vectors_and_images(registry, tmp_path, name, framework):
    steps = 3
    suite = build_suite(tiny_suite(
        datasets=[{"name": d, "n": 100, "config": c} for d, c in DATASETS.items()],
        models=[{"name": name, "framework": framework, "config": tiny_config(name)}],
        metrics=["fd", {"name": "swd", "config": {"n_projections": 10}}],
        budget={"batch_size": B, "examples": steps * B * (3 if name == "wgan_gp" else 1)},
        eval={"points": 2, "n_samples": 50}), "<test>", registry=registry)
    with Store(tmp_path) as store:
        result = run_suite(suite, store, registry, reporter=Reporter(quiet=True))
        assert result.ok
        runs = store.runs(suite="tiny")
        assert len(runs) == 2 and {r.status for r in runs} == {"done"}
        for run in runs:
            k = 3 if name == "wgan_gp" else 1
            assert run.summary["steps"] == steps
            assert run.summary["examples"] == steps * B * k  # every critic batch is counted
            assert run.summary["param_count"] == hand_count(name, run.spec.dataset.name)
            values = [e["value"] for e in store.evals(run.run_id) if e["metric"] in ("fd", "swd")]
            assert values and np.isfinite(values).all()


def _adam_counts(state, framework: str) -> dict:
    """Optimiser steps taken so far, per network."""
    if framework == "torch":
        return {name: int(next(iter(opt.state.values()))["step"]) for name, opt in state.opts.items()}
    import jax

    out = {}
    for name, part in state.items():
        leaves = jax.tree_util.tree_flatten_with_path(part["opt"])[0]
        out[name] = int(next(v for path, v in leaves if "count" in jax.tree_util.keystr(path)))
    return out


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_wgan_gp_critic_takes_n_critic_updates_on_separate_batches(registry, framework):
    h = Harness(registry, "wgan_gp", framework, "gmm2d")
    assert h.model.batches_per_step() == 3 and h.per_step == 3 * B
    state, _ = h.train(h.model.init(h.data, 0), 4)
    assert _adam_counts(state, framework) == {"gen": 4, "disc": 12}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_wae_gan_adversary_updates_once_per_step(registry, framework):
    h = Harness(registry, "wae_gan", framework, "gmm2d")
    assert h.model.batches_per_step() == 1
    state, _ = h.train(h.model.init(h.data, 0), 3)
    assert _adam_counts(state, framework) == {"ae": 3, "adv": 3}


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_vae_capabilities(registry, framework):
    from benchbase.contracts import Batch

    h = Harness(registry, "vae", framework, "gmm2d")
    state = h.model.init(h.data, 0)
    x = np.concatenate([h.data.x_numpy] * 3)[:300]  # more than one IWAE chunk of 256
    key = h.fw.key(1, 3, h.device)
    log_p = h.fw.to_numpy(h.model.log_prob(state, h.fw.put(x, h.device), key))
    assert log_p.shape == (300,) and np.isfinite(log_p).all()
    loss = h.fw.scalars({"l": h.model.heldout_loss(state, Batch(h.fw.put(x, h.device)), key)})["l"]
    # E[log-IWAE] >= ELBO = -heldout_loss; both are noisy, so a loose check of the sign
    assert log_p.mean() >= -loss - 1.0


def test_invalid_model_config_is_a_suite_error(registry):
    bad = tiny_suite(models=[{"name": "fgan", "framework": "torch", "config": {"divergence": "tv"}}])
    with pytest.raises(ConfigError, match=r"models\[0\]\.config.*divergence.*kl, reverse_kl, js, pearson, hellinger"):
        build_suite(bad, "<test>", registry=registry)


def test_jax_models_register_without_importing_jax():
    code = ("import sys; from benchbase.plugins import build_registry, PluginPolicy; "
            "r = build_registry(PluginPolicy(entry_points=False, strict=True)); "
            "print(json.dumps([[e.name for e in r.all('model') if e.framework == 'jax'], 'jax' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True,
                         check=True).stdout
    names, imported = json.loads(out)
    assert set(MODELS) <= set(names) and imported is False


@pytest.mark.slow
@pytest.mark.timeout(1200)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_trained_models_beat_their_untrained_selves_on_gmm2d(registry, tmp_path, framework):
    """At a modest budget every model moves far from its initial (noise-like) samples:
    final swd below 0.7x and fd below 0.5x their step-0 values (against the test split).
    Configs: the gmm2d settings of the parity test."""
    from test_parity import PARITY_MODELS

    configs = dict(PARITY_MODELS)
    suite = build_suite({
        "name": "beats_init", "seeds": [0], "device": "cpu",
        "datasets": [{"name": "gmm2d", "n": 2000}],
        "models": [{"name": m, "framework": framework, "config": configs[m]} for m in MODELS],
        "metrics": ["fd", {"name": "swd", "config": {"n_projections": 100}}],
        "budget": {"batch_size": 128, "steps": 1000},
        "eval": {"points": 1, "at_init": True, "n_samples": 1000, "keep_samples": 0},
    }, "<test>", registry=registry)
    report, failures = [], []
    with Store(tmp_path) as store:
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
        for run in store.runs():
            evals = store.evals(run.run_id)
            last = max(e["step"] for e in evals)
            for metric, factor in (("swd", 0.7), ("fd", 0.5)):
                first, final = (next(e["value"] for e in evals
                                     if e["step"] == s and e["metric"] == metric and e["ref"] == "test")
                                for s in (0, last))
                report.append(f"{run.spec.model.name} {metric}: {first:.4f} -> {final:.4f}")
                if not final < factor * first:
                    failures.append(report[-1])
    print("\n" + "\n".join(report))
    assert not failures, failures


def test_without_jax_the_jax_models_are_listed_unavailable_and_rejected(monkeypatch):
    """As on a machine without jax: find_spec('jax') is None."""
    import importlib.util

    from benchbase.plugins import PluginPolicy, build_registry

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.split(".")[0] == "jax" else real(name, *a))
    registry = build_registry(PluginPolicy(entry_points=False, strict=True))
    described = {(e.name, e.framework): e.describe()["available"] for e in registry.all("model")}
    for name in MODELS:
        assert described[(name, "jax")] is False and described[(name, "torch")] is True
    with pytest.raises(ConfigError, match=r"benchbase\[jax\]"):
        build_suite(tiny_suite(models=[{"name": "gan", "framework": "jax"}]), "<test>", registry=registry)
