"""The model Configs refuse values no run can train with when the suite is validated:
a negative, zero or NaN learning rate (PyTorch would fail every run at init, JAX would
train by gradient ascent and rank first), zero widths, Adam betas outside [0, 1)."""
from __future__ import annotations

import math

import pytest
from support.suites import tiny_suite

from benchbase.cli import main
from benchbase.config import build_suite
from benchbase.errors import ConfigError

TRAINED = ("rectified_flow", "ddpm", "gan", "wgan_gp", "fgan", "vae", "wae_mmd", "wae_gan")


def _error(registry, model: dict, **suite) -> str:
    with pytest.raises(ConfigError) as info:
        build_suite(tiny_suite(models=[model], **suite), "s.yaml", registry=registry)
    return str(info.value)


@pytest.mark.parametrize("framework", ["torch", "jax"])
@pytest.mark.parametrize("name", TRAINED)
@pytest.mark.parametrize("lr", [-0.001, math.nan, math.inf])
def test_a_learning_rate_that_is_not_positive_is_refused(registry, name, framework, lr):
    if framework == "jax":
        pytest.importorskip("jax")
    message = _error(registry, {"name": name, "framework": framework, "config": {"lr": lr}})
    assert message == f"invalid suite: s.yaml: models[0].config.lr: must be a finite number >= 0 (0 learns nothing), got {lr}"


@pytest.mark.parametrize("name, key, value, says", [
    ("wae_gan", "adversary_lr", -1.0, "finite number >= 0"),
    ("gan", "width", 0, ">= 1"),
    ("vae", "latent_dim", 0, ">= 1"),
    ("gan", "beta1", 1.0, "[0, 1)"),
    ("wae_mmd", "beta2", -0.5, "[0, 1)"),
    ("vae", "decoder_std", 0.0, "finite number > 0"),
    ("wgan_gp", "gp_weight", -1.0, "finite number >= 0"),
    ("wae_mmd", "kernel_scales", [1.0, 0.0], "non-empty list of numbers > 0"),
    ("rectified_flow", "channel_mult", [], "non-empty list"),
    ("ddpm", "ddim_eta", -1.0, "finite number >= 0"),
    ("rectified_flow", "sample_steps", 0, ">= 1"),
])
def test_other_positive_hyperparameters_are_refused_under_their_key(registry, name, key, value, says):
    message = _error(registry, {"name": name, "framework": "torch", "config": {key: value}})
    assert f"models[0].config.{key}: must" in message and says in message


def test_a_swept_learning_rate_is_checked_too(registry):
    message = _error(registry, {"name": "vae", "framework": "torch"}, sweep={"model.lr": [1e-3, -1.0]})
    assert "models[0].config.lr: must be a finite number >= 0 (0 learns nothing), got -1.0" in message


def test_the_cli_refuses_it_in_one_line_with_exit_2(tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text("name: t\ndatasets: [{name: gmm2d, n: 64}]\nmetrics: [fd]\nbudget: {steps: 10}\n"
                     "models: [{name: vae, framework: torch, config: {backbone: mlp, width: 16, lr: -0.001}}]\n")
    assert main(["validate", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{suite}: models[0].config.lr: must be a finite number >= 0 (0 learns nothing), got -0.001")
    assert len(err.splitlines()) == 1
