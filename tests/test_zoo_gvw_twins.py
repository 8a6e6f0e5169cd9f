"""Each JAX model is its PyTorch twin, step for step.

The two frameworks draw different random numbers, so trained models can only agree
statistically (tests/test_parity*.py). Here the randomness is taken out: the
framework samplers the models use (torch.randn/rand, jax.random.normal/uniform)
are replaced by the same deterministic pattern, the JAX model gets the PyTorch
model's initial weights, and both take the same batches. Then every update (losses,
gradient penalty, critic slices, update order, Adam) must give the same parameters,
logs and samples, up to float32 rounding.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

jax = pytest.importorskip("jax")
jnp = jax.numpy

from benchbase.config import plugin_config  # noqa: E402
from benchbase.contracts import Batch, TrainData  # noqa: E402
from benchbase.data import DataCatalog  # noqa: E402
from benchbase.frameworks import get_framework  # noqa: E402
from benchbase_plugins.models import jax_common as jc  # noqa: E402

MODELS = {  # name -> config shared by both frameworks (kl: the f-GAN that is not the GAN)
    "gan": {}, "wgan_gp": {"n_critic": 2}, "fgan": {"divergence": "kl"},
    "vae": {"iwae_samples": 3}, "wae_mmd": {}, "wae_gan": {"adversary_depth": 1},
}
DATASETS = {"gmm2d": {"train_size": 256, "test_size": 64}, "digits": {}}
SIZE = {"width": 16, "depth": 2, "latent_dim": 3}
B, STEPS = 8, 3


def _pattern(shape, scale: float, offset: float) -> np.ndarray:
    n = math.prod(shape)
    return (np.sin(np.arange(n) * scale + offset).reshape(shape)).astype(np.float32)


def fake_normal(shape):
    return 1.3 * _pattern(shape, 0.7, 0.3)


def fake_uniform(shape):
    return (_pattern(shape, 1.3, 0.1) + 1.0) / 2.0


@pytest.fixture
def same_noise(monkeypatch):
    """Both frameworks' samplers return the same deterministic arrays for a shape."""

    def _shape(size):
        return tuple(size[0]) if len(size) == 1 and not isinstance(size[0], int) else tuple(size)

    monkeypatch.setattr(torch, "randn", lambda *size, device=None, **kw: torch.from_numpy(
        fake_normal(_shape(size))).to(device))
    monkeypatch.setattr(torch, "rand", lambda *size, device=None, **kw: torch.from_numpy(
        fake_uniform(_shape(size))).to(device))
    monkeypatch.setattr(jax.random, "normal", lambda key, shape=(), dtype=None: jnp.asarray(fake_normal(shape)))
    monkeypatch.setattr(jax.random, "uniform", lambda key, shape=(), dtype=None, minval=0.0, maxval=1.0:
                        minval + (maxval - minval) * jnp.asarray(fake_uniform(shape)))


def _torch_parts(name: str, state) -> dict:
    """The networks of a torch state, under the keys of the JAX state's parts."""
    if name in ("gan", "wgan_gp", "fgan"):
        return {("gen",): state["gen"], ("disc",): state["disc"]}
    if name == "vae":
        return {("vae", "enc"): state.net["enc"], ("vae", "dec"): state.net["dec"]}
    if name == "wae_mmd":
        return {("ae", "enc"): state.net["enc"], ("ae", "dec"): state.net["dec"]}
    return {("ae", "enc"): state["ae"]["enc"], ("ae", "dec"): state["ae"]["dec"], ("adv",): state["adv"]}


def _jax_params(state: dict, path: tuple) -> dict:
    params = state[path[0]]["params"]
    return params[path[1]] if len(path) > 1 else params


def _assert_same_params(name: str, t_state, j_state, where: str) -> None:
    for path, module in _torch_parts(name, t_state).items():
        leaves = jc.torch_ordered_leaves(_jax_params(j_state, path))
        for (p, got), want in zip(leaves, module.parameters(), strict=True):
            np.testing.assert_allclose(np.asarray(got), want.detach().numpy(), rtol=2e-4, atol=2e-5,
                                       err_msg=f"{where}: {'/'.join(path + p)}")


@pytest.mark.parametrize("dataset", [pytest.param("gmm2d"), pytest.param("digits", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", MODELS)
def test_jax_model_takes_the_same_steps_as_its_torch_twin(registry, same_noise, name, dataset):
    data_reg = registry.get("dataset", dataset)
    data_cfg, plain = plugin_config(data_reg, DATASETS[dataset], "<test>", "dataset.config")
    _, splits = DataCatalog.shared().load(data_reg, data_cfg, plain)
    x = splits.train[:64]
    models, states, fws, datas = {}, {}, {}, {}
    for framework in ("torch", "jax"):
        reg = registry.get("model", name, framework)
        cfg, _ = plugin_config(reg, {**SIZE, **MODELS[name]}, "<test>", "model.config")
        fw = get_framework(framework)
        device = fw.device("cpu")
        datas[framework] = TrainData(x=fw.put(x, device), y=None, spec=splits.spec, device=device, x_numpy=x,
                                     sample_fresh=lambda n, seed: x[:n])
        models[framework], fws[framework] = reg.cls(cfg), fw
        states[framework] = models[framework].init(datas[framework], 5)

    j_state = states["jax"]  # start from the torch weights (Adam moments are zero in both)
    for path, module in _torch_parts(name, states["torch"]).items():
        part = j_state[path[0]]["params"]
        filled = jc.params_from_torch(_jax_params(j_state, path), module)
        if len(path) > 1:
            part[path[1]] = filled
        else:
            j_state[path[0]]["params"] = filled
    _assert_same_params(name, states["torch"], j_state, "init")

    k = models["torch"].batches_per_step()
    t_key, j_key = fws["torch"].key(0, 0, "cpu"), jax.random.PRNGKey(0)
    for step in range(STEPS):
        xb = x[step * B * k:(step + 1) * B * k]
        states["torch"], t_logs = models["torch"].train_step(states["torch"], Batch(torch.from_numpy(xb)), t_key)
        j_state, j_logs = models["jax"].train_step(j_state, Batch(jnp.asarray(xb)), j_key)
        t_logs, j_logs = fws["torch"].scalars(t_logs), fws["jax"].scalars(j_logs)
        assert t_logs.keys() == j_logs.keys()
        for key in t_logs:
            assert j_logs[key] == pytest.approx(t_logs[key], rel=2e-4, abs=2e-5), f"step {step} {key}"
        _assert_same_params(name, states["torch"], j_state, f"after step {step + 1}")

    t_samples = fws["torch"].to_numpy(models["torch"].sample(states["torch"], 6, t_key))
    j_samples = fws["jax"].to_numpy(models["jax"].sample(j_state, 6, j_key))
    np.testing.assert_allclose(j_samples, t_samples, rtol=2e-4, atol=2e-5)
    if "heldout_loss" in models["torch"].capabilities:
        xb = x[:B]
        t_loss = fws["torch"].scalars({"l": models["torch"].heldout_loss(states["torch"], Batch(torch.from_numpy(xb)),
                                                                         t_key)})["l"]
        j_loss = fws["jax"].scalars({"l": models["jax"].heldout_loss(j_state, Batch(jnp.asarray(xb)), j_key)})["l"]
        assert j_loss == pytest.approx(t_loss, rel=2e-4, abs=2e-5)
    if "log_prob" in models["torch"].capabilities:
        t_lp = fws["torch"].to_numpy(models["torch"].log_prob(states["torch"], torch.from_numpy(x[:B]), t_key))
        j_lp = fws["jax"].to_numpy(models["jax"].log_prob(j_state, jnp.asarray(x[:B]), j_key))
        np.testing.assert_allclose(j_lp, t_lp, rtol=2e-4, atol=2e-4)
