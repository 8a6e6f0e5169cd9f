"""The diffusion/flow family (ddpm, rectified_flow in torch and jax) and the
empirical_denoiser oracle: samplers, the sigma convention of ``denoise``, the twin
networks, checkpoints, class conditioning, and runs through the core."""
from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
from support.model_harness import ModelHarness, assert_repeatable_and_resumable
from support.suites import tiny_suite

from benchbase.config import build_suite, plugin_config
from benchbase.contracts import Batch
from benchbase.driver import run_suite
from benchbase.errors import ConfigError
from benchbase.progress import Reporter
from benchbase.store import Store
from benchbase_plugins.models import diffusion_process as dp

MODELS = ("ddpm", "rectified_flow")
FRAMEWORKS = ("torch", "jax")
# one config for both datasets: an MLP on gmm2d, a 2-level U-Net with attention at 4x4 on digits
TINY = {"width": 8, "depth": 2, "channel_mult": [1, 2], "res_blocks": 1, "attn_resolutions": [4],
        "sample_steps": 5}
DATASETS = {"gmm2d": {"train_size": 512, "test_size": 128}, "digits": {}}
B = 16


def needs(framework: str) -> None:
    if framework == "jax":
        pytest.importorskip("jax")


class Harness(ModelHarness):
    """ModelHarness with the diffusion configs and capabilities."""

    def __init__(self, registry, name: str, framework: str, dataset: str, n: int = 128, base=TINY, **config):
        needs(framework)
        super().__init__(registry, name, framework, dataset, {**base, **config}, DATASETS[dataset], n, B)

    def denoise(self, state, x: np.ndarray, sigma) -> np.ndarray:
        return self.fw.to_numpy(self.model.denoise(state, self.fw.put(x.astype(np.float32), self.device), sigma))

    def heldout(self, state, x: np.ndarray) -> float:
        loss = self.model.heldout_loss(state, Batch(self.fw.put(x, self.device)), self.fw.key(1, 3, self.device))
        return self.fw.scalars({"loss": loss})["loss"]


CASES = [(m, f, d) for m in MODELS for f in FRAMEWORKS for d in DATASETS]


# ------------------------------------------------------------------- model API


@pytest.mark.parametrize("name,framework,dataset", CASES, ids=["-".join(c) for c in CASES])
def test_model_trains_samples_repeats_and_round_trips(registry, name, framework, dataset):
    h = Harness(registry, name, framework, dataset)
    state, samples = h.trained(seed=123, steps=2)
    assert h.model.param_count(state) > 0

    loss = h.heldout(state, h.data.x_numpy)
    assert np.isfinite(loss) and loss > 0
    np.testing.assert_array_equal(h.sample(state), samples)  # the held-out loss did not train

    assert_repeatable_and_resumable(h, state, samples, seed=123, steps=2)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("name", MODELS)
def test_jax_network_computes_its_torch_twin(registry, name, dataset):
    """Same architecture: torch weights copied into the JAX model give the same
    denoiser (network + sigma conversion), and both start with the same init scheme."""
    pytest.importorskip("jax")
    from benchbase_plugins.models.jax_unet import params_from_torch_state

    cond = {"class_conditional": dataset == "digits"}  # the U-Net with its class embedding
    t, j = Harness(registry, name, "torch", dataset, **cond), Harness(registry, name, "jax", dataset, **cond)
    t_state, j_state = t.model.init(t.data, 0), j.model.init(j.data, 0)
    assert t.model.param_count(t_state) == j.model.param_count(j_state)

    torch_init = {k: v.detach().numpy() for k, v in t_state.net.state_dict().items()}
    jax_init = dict(_leaves(j_state["net"]["params"]))
    copied = params_from_torch_state(t_state.net.state_dict())
    assert set(dict(_leaves(copied))) == set(jax_init) == {"/".join(_flax_path(k)) for k in torch_init}
    for key, value in torch_init.items():  # init scheme: the same law for every tensor
        mine = np.asarray(jax_init["/".join(_flax_path(key))])
        assert mine.shape == value.shape, key
        if value.size >= 256:
            assert 0.8 < mine.std() / value.std() < 1.25, key
        elif ".norm" in key or key.startswith("norm"):
            np.testing.assert_array_equal(mine, value)  # GroupNorm: weight 1, bias 0

    j_state["net"]["params"] = copied
    x = np.random.default_rng(0).standard_normal((6, *t.spec.shape)).astype(np.float32)
    sigmas = np.array([0.01, 0.1, 0.5, 1.0, 3.0, 30.0])
    np.testing.assert_allclose(j.denoise(j_state, x, sigmas), t.denoise(t_state, x, sigmas), atol=2e-5, rtol=1e-4)


def test_unet_twins_on_cifar_sized_images():
    """The paper's layout (channel_mult 1, 2, 4; attention at 16x16) on 3x32x32, class-
    conditional: same parameters, same outputs in both frameworks."""
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp
    import torch

    from benchbase_plugins.models import jax_unet, torch_unet

    args = ((3, 32, 32), 8, (1, 2, 4), 1, (16,), True, 10, 8)
    t_net, j_net = torch_unet.UNet(*args), jax_unet.UNet(*args)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    t, y = np.array([0.2, 0.9], np.float32), np.array([3, 10])
    out_t = t_net(torch.from_numpy(x), torch.from_numpy(t), torch.from_numpy(y)).detach().numpy()
    params = jax_unet.params_from_torch_state(t_net.state_dict())
    out_j = np.asarray(jax.jit(j_net.apply)({"params": params}, jnp.asarray(x), jnp.asarray(t), jnp.asarray(y)))
    assert out_t.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(out_j, out_t, atol=2e-5, rtol=1e-4)


def _leaves(tree, prefix: str = ""):
    for key, value in tree.items():
        path = f"{prefix}/{key}" if prefix else key
        if hasattr(value, "items"):
            yield from _leaves(value, path)
        else:
            yield path, value


def _flax_path(torch_key: str) -> list[str]:
    parts: list[str] = []
    for part in torch_key.split("."):
        if part.isdigit():
            parts[-1] = f"{parts[-1]}_{part}"
        else:
            parts.append(part)
    return parts


# ------------------------------------------------------------ sigma convention


class _IdealNet:
    """Stands in for a network: returns the exact prediction for a known clean x and
    noise, and records the times it was asked at."""

    def __init__(self, target):
        self.target, self.times = target, []

    def __call__(self, x_t, t, y=None):
        self.times.append(t)
        return self.target

    def apply(self, variables, x_t, t, y=None):
        return self(x_t, t, y)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", MODELS)
def test_denoise_recovers_x_from_the_ideal_prediction(registry, name, framework):
    """x_noisy = x + sigma eps. Flow: t = 1/(1+sigma), x_t = t x_noisy = t x + (1-t) eps,
    ideal velocity x - eps. DDPM: sqrt(abar) = 1/sqrt(1+sigma^2), x_t = sqrt(abar) x +
    sqrt(1-abar) eps, ideal prediction eps. Either way denoise must return x exactly."""
    h = Harness(registry, name, framework, "gmm2d")
    state = h.model.init(h.data, 0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 2)).astype(np.float32)
    eps = rng.standard_normal((5, 2)).astype(np.float32)
    if name == "ddpm":  # noise levels of actual DDPM steps: k = 0, 10, 500, 999 (+ one between)
        sig_table = dp.ddpm_sigmas(h.model.process.alphas_bar)
        sigma = np.array([sig_table[0], sig_table[10], sig_table[500], sig_table[999], 0.3])
    else:
        sigma = np.array([0.01, 0.3, 1.0, 3.0, 50.0])
    target = eps if name == "ddpm" else x - eps
    net = _IdealNet(h.fw.put(target, h.device))
    if framework == "torch":
        state.net = net
    else:
        h.model._denoise = h.model._make_denoiser(net)  # not jitted: the net records concrete times
    x_noisy = x + sigma[:, None].astype(np.float32) * eps
    err = np.abs(h.denoise(state, x_noisy, sigma) - x)
    assert np.all(err <= 1e-4 * (1 + sigma[:, None])), err  # float32 rounding of x + sigma eps
    t_seen = np.asarray(h.fw.to_numpy(net.times[-1]))
    if name == "ddpm":  # the network saw the time of the matching step, (k + 1) / T
        np.testing.assert_allclose(t_seen[:4], np.array([1, 11, 501, 1000]) / 1000, rtol=1e-5)
        assert 0 < t_seen[4] < 1
    else:
        np.testing.assert_allclose(t_seen, 1 / (1 + sigma), rtol=1e-6)


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", MODELS)
def test_trained_denoiser_beats_the_noisy_input(registry, name, framework):
    h = Harness(registry, name, framework, "gmm2d", n=512, width=64)
    state, _ = h.train(h.model.init(h.data, 0), 400)
    x = h.test[:500]
    rng = np.random.default_rng(1)
    for sigma in (0.6, 1.0, 2.0):
        noise = sigma * rng.standard_normal(x.shape).astype(np.float32)
        err = ((h.denoise(state, x + noise, sigma) - x) ** 2).sum(1).mean()
        noisy = (noise ** 2).sum(1).mean()
        assert err < 0.7 * noisy, (sigma, err, noisy)


# --------------------------------------------------------------- conditioning
# on the MLP backbone (fast to compile); the U-Net's class embedding is checked by the
# twin test above

MLP_COND = {"backbone": "mlp", "class_conditional": True}


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("name", MODELS)
def test_guided_sampling_with_labels_on_digits(registry, name, framework):
    h = Harness(registry, name, framework, "digits", **MLP_COND, guidance=2.0)
    state, logs = h.train(h.model.init(h.data, 0), 2)
    guided = h.sample(state)
    assert guided.shape == (20, 1, 8, 8) and np.isfinite(guided).all()
    plain_cfg, _ = plugin_config(SimpleNamespace(cls=h.cls), {**TINY, **MLP_COND}, "<t>", "m")
    plain = h.sample(state, model=_built(h.cls(plain_cfg), h.data))
    assert not np.allclose(plain, guided)  # the guidance weight is used


def _built(model, data):
    model.init(data, 0)  # builds the networks (and, in JAX, the jitted sampler) for this data
    return model


def _class_rows(h, state) -> np.ndarray:
    if h.fw.name == "torch":
        return state.net.class_emb.weight.detach().numpy().copy()
    return np.asarray(state["net"]["params"]["class_emb"]["weight"])


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_label_dropout_decides_which_class_rows_learn(registry, framework):
    """Dropout 1: every label becomes "no label" (row 10), so rows 0-9 never move;
    dropout 0: row 10 never moves. Adam leaves a parameter with zero gradient alone."""
    for dropout, frozen, moving in ((1.0, slice(0, 10), slice(10, 11)), (0.0, slice(10, 11), slice(0, 10))):
        h = Harness(registry, "rectified_flow", framework, "digits", **MLP_COND, label_dropout=dropout)
        state = h.model.init(h.data, 0)
        before = _class_rows(h, state)
        state, _ = h.train(state, 2)
        after = _class_rows(h, state)
        np.testing.assert_array_equal(after[frozen], before[frozen])
        assert not np.allclose(after[moving], before[moving])


def test_class_conditioning_needs_labels(registry):
    h = Harness(registry, "ddpm", "torch", "gmm2d", class_conditional=True)
    with pytest.raises(ValueError, match="labelled dataset"):
        h.model.init(h.data, 0)


def test_invalid_sampler_is_a_suite_error(registry):
    bad = tiny_suite(models=[{"name": "ddpm", "framework": "torch", "config": {"sampler": "heun"}}])
    with pytest.raises(ConfigError, match=r"models\[0\]\.config.*sampler.*ancestral, ddim"):
        build_suite(bad, "<test>", registry=registry)


# ------------------------------------------------------------------- samplers

PLAN_CFG = SimpleNamespace(sample_steps=12, time_grid="uniform", sigma_min=0.002, sigma_max=80.0, T=200,
                           schedule="linear", beta_start=1e-4, beta_end=0.02, ddim_eta=0.0)
PLANS = [("flow", "euler", "uniform"), ("flow", "heun", "uniform"), ("flow", "euler", "karras"),
         ("flow", "heun", "karras"), ("ddpm", "ancestral", None), ("ddpm", "ddim", None)]


@pytest.mark.parametrize("process,sampler,grid", PLANS)
def test_every_sampler_lands_on_a_single_training_point(process, sampler, grid):
    """With one training point y the posterior mean is y at every noise level, so an
    exact sampler must end exactly at y whatever the noise it starts from."""
    cfg = SimpleNamespace(**{**vars(PLAN_CFG), "time_grid": grid or "uniform"})
    proc = dp.make_process(process, cfg)
    plan = proc.plan(sampler)
    y = np.array([[0.3, -0.7]])
    rng = np.random.default_rng(0)

    def predict(x, t):
        a, _ = proc.at_time(t)
        return proc.prediction(x, np.broadcast_to(y, x.shape), a)

    out = dp.integrate(plan, rng.standard_normal((50, 2)), predict,
                       lambda i, x: rng.standard_normal(x.shape), dp.python_loop, plan.at)
    np.testing.assert_allclose(out, np.broadcast_to(y, out.shape), atol=1e-9)
    assert plan.steps == cfg.sample_steps


def test_schedules_and_ancestral_variance():
    for schedule in ("linear", "cosine"):
        ab = dp.ddpm_alphas_bar(schedule, 1000)
        assert np.all(np.diff(ab) < 0) and 0 < ab[-1] < 1e-3 and ab[0] > 0.999
    ab = dp.ddpm_alphas_bar("linear", 50, 1e-3, 0.1)
    plan = dp.ddpm_plan(ab, 50, eta=1.0)  # every step: DDPM's posterior variance beta_tilde
    betas = 1 - ab / np.concatenate([[1.0], ab[:-1]])
    beta_tilde = (1 - ab[:-1]) / (1 - ab[1:]) * betas[1:]
    np.testing.assert_allclose(plan.tables["cz"][:-1] ** 2, beta_tilde[::-1], rtol=1e-10)
    assert plan.tables["cz"][-1] == 0  # no noise added on the last step
    assert not dp.ddpm_plan(ab, 10, eta=0.0).stochastic


def test_clipping_the_clean_estimate_keeps_cosine_ddim_in_range():
    """abar at T-1 is ~1e-9 with the cosine schedule: a slightly biased eps_hat throws
    unclipped DDIM far outside the data range; clip_x0 keeps it inside."""
    ab = dp.ddpm_alphas_bar("cosine", 1000)
    plan = dp.ddpm_plan(ab, 50, eta=0.0)
    x = np.random.default_rng(0).standard_normal((10, 2))

    def biased(x, t):
        return x + 0.01

    free = dp.integrate(plan, x, biased, None, dp.python_loop, plan.at)
    clipped = dp.integrate(plan, x, biased, None, dp.python_loop, plan.at, lambda v: np.clip(v, -1, 1))
    assert np.abs(free).max() > 3 and np.abs(clipped).max() <= 1


def test_karras_grid_spans_sigma_max_to_sigma_min():
    t = dp.flow_time_grid(10, "karras", sigma_min=1e-3, sigma_max=50.0)
    assert len(t) == 11 and t[0] == 0 and t[-1] == 1 and np.all(np.diff(t) > 0)
    np.testing.assert_allclose([t[1], t[-2]], [1 / 51, 1 / 1.001])


def test_ddpm_time_for_sigma_interpolates_between_steps():
    ab = dp.ddpm_alphas_bar("linear", 100)
    sig = dp.ddpm_sigmas(ab)
    t, sqrt_ab = dp.ddpm_time_for_sigma(np.array([sig[3], np.sqrt(sig[3] * sig[4]), 1e-9, 1e9]), ab)
    np.testing.assert_allclose(t[[0, 2, 3]], [4 / 100, 1 / 100, 1.0])  # exact step; clamped below/above
    assert 4 / 100 < t[1] < 5 / 100
    np.testing.assert_allclose(sqrt_ab[0], np.sqrt(ab[3]))


# --------------------------------------------------------- empirical denoiser


@pytest.mark.parametrize("dataset", DATASETS)
def test_empirical_denoiser_matches_a_direct_float64_computation(registry, dataset):
    h = Harness(registry, "empirical_denoiser", "torch", dataset, n=300, base={})
    state = h.model.init(h.data, 0)
    y = h.data.x_numpy.reshape(300, -1).astype(np.float64)
    rng = np.random.default_rng(0)
    x = (y[:8] + rng.standard_normal((8, y.shape[1])) * 0.05).astype(np.float32)
    sigmas = np.array([1e-3, 0.01, 0.05, 0.2, 1.0, 5.0, 30.0, 0.03])
    for sigma in (0.05, sigmas):  # one level for all, or one per example
        s = np.broadcast_to(np.asarray(sigma, np.float64).reshape(-1), (8,))
        logits = -((x.astype(np.float64)[:, None] - y[None]) ** 2).sum(-1) / (2 * s[:, None] ** 2)
        w = np.exp(logits - logits.max(1, keepdims=True))
        expected = (w / w.sum(1, keepdims=True)) @ y
        got = h.denoise(state, x.reshape(8, *h.spec.shape), sigma).reshape(8, -1)
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_empirical_denoiser_reproduces_training_points_through_the_core(registry, tmp_path):
    suite = build_suite(tiny_suite(
        datasets=[{"name": "gmm2d", "n": 1000, "config": {"train_size": 2000, "test_size": 200}},
                  {"name": "digits", "n": 500}],
        models=["empirical_denoiser",
                {"name": "empirical_denoiser", "label": "ed_ddim", "config": {"process": "ddpm", "sampler": "ddim"}}],
        metrics=[{"name": "mem_ratio", "config": {"bootstrap": 0}}],
        eval={"points": 1, "n_samples": 300}), "<test>", registry=registry)
    with Store(tmp_path) as store:
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
        mem = {(r.model_label, r.spec.dataset.name): next(e["value"] for e in store.evals(r.run_id)
                                                      if e["metric"] == "mem_ratio")
               for r in store.runs()}
    assert mem[("empirical_denoiser", "gmm2d")] >= 0.95 and mem[("empirical_denoiser", "digits")] >= 0.95
    assert mem[("ed_ddim", "digits")] >= 0.95  # the DDPM sampler too (its last sigma, 0.01, is small for digits)


# ------------------------------------------------------------------- the core


def test_every_diffusion_model_runs_through_the_core(registry, tmp_path):
    frameworks = FRAMEWORKS if _has_jax() else ("torch",)
    steps = 3
    suite = build_suite(tiny_suite(
        datasets=[{"name": d, "n": 100, "config": c} for d, c in DATASETS.items()],
        models=[{"name": m, "framework": f, "label": f"{m}-{f}", "config": TINY}
                for m in MODELS for f in frameworks],
        metrics=["fd", {"name": "swd", "config": {"n_projections": 10}}],
        budget={"batch_size": B, "steps": steps}, eval={"points": 2, "n_samples": 40}), "<test>", registry=registry)
    with Store(tmp_path) as store:
        result = run_suite(suite, store, registry, reporter=Reporter(quiet=True))
        runs = store.runs(suite="tiny")
        assert result.ok, [r.error for r in runs if r.status != "done"]
        assert len(runs) == 2 * len(MODELS) * len(frameworks)
        for run in runs:
            assert run.summary["steps"] == steps and run.summary["param_count"] > 0
            values = [e["value"] for e in store.evals(run.run_id) if e["metric"] in ("fd", "swd")]
            assert values and np.isfinite(values).all()


def _has_jax() -> bool:
    try:
        import jax  # noqa: F401
    except ImportError:
        return False
    return True


def test_diffusion_plugins_register_without_importing_jax():
    code = ("import json, sys; from benchbase.plugins import build_registry, PluginPolicy; "
            "r = build_registry(PluginPolicy(entry_points=False, strict=True)); "
            "print(json.dumps([[e.name for e in r.all('model') if e.framework == 'jax'], 'jax' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    names, imported = json.loads(out)
    assert set(MODELS) <= set(names) and imported is False
