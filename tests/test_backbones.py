"""The shared backbones: the JAX twins compute exactly what the PyTorch ones compute,
start from the same initialisation scheme, and pick layers from the image size."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchbase_plugins.models import torch_common as tc
from benchbase_plugins.models.backbones import conv_plan, resolve_backbone

jax = pytest.importorskip("jax")
jnp = jax.numpy
from benchbase_plugins.models import jax_common as jc  # noqa: E402

CASES = [  # (kind, shape, d_latent, width, depth, backbone, act, out_act)
    ("generator", (2,), 3, 16, 2, "mlp", "silu", "identity"),
    ("encoder", (2,), 5, 16, 3, "mlp", "leaky_relu", None),
    ("generator", (1, 8, 8), 4, 16, 0, "conv", "relu", "tanh"),
    ("encoder", (1, 8, 8), 1, 16, 0, "conv", "leaky_relu", None),
    ("generator", (3, 32, 32), 6, 16, 0, "conv", "relu", "tanh"),
    ("encoder", (3, 32, 32), 2, 16, 0, "conv", "leaky_relu", None),
    ("generator", (1, 28, 28), 3, 8, 0, "conv", "silu", "identity"),
    ("generator", (3, 64, 64), 4, 8, 0, "conv", "relu", "tanh"),
    ("encoder", (3, 64, 64), 1, 8, 0, "conv", "leaky_relu", None),
]


def _pair(kind, shape, d, width, depth, backbone, act, out_act, seed=0):
    torch.manual_seed(seed)
    if kind == "generator":
        t_net = tc.generator(d, shape, width, depth, backbone, act, out_act)
        j_net = jc.generator(d, shape, width, depth, backbone, act, out_act)
        x = np.random.default_rng(seed).normal(size=(5, d)).astype(np.float32)
    else:
        t_net = tc.encoder(shape, d, width, depth, backbone, act)
        j_net = jc.encoder(shape, d, width, depth, backbone, act)
        x = np.random.default_rng(seed).uniform(-1, 1, size=(5, *shape)).astype(np.float32)
    params = jc.init_params(j_net, jax.random.PRNGKey(seed), jnp.asarray(x))
    return t_net, j_net, params, x


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[5]}-{'x'.join(map(str, c[1]))}")
def test_jax_backbone_computes_its_torch_twin(case):
    t_net, j_net, params, x = _pair(*case)
    assert jc.param_count(params) == tc.param_count(t_net)
    shared = jc.params_from_torch(params, t_net)
    with torch.no_grad():
        want = t_net(torch.from_numpy(x)).numpy()
    got = np.asarray(j_net.apply({"params": shared}, jnp.asarray(x)))
    expected_shape = (5, *case[1]) if case[0] == "generator" else (5, case[2])
    assert want.shape == got.shape == expected_shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _layer_bounds(tensors):
    """(max |w|, std) of every weight/bias tensor with enough entries to estimate them."""
    return [(float(np.abs(t).max()), float(t.std())) for t in tensors if t.size >= 256]


@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[5]], ids=["mlp", "convT", "conv"])
def test_jax_init_matches_torch_default_init_scheme(case):
    """Every layer is U(-b, b) with the same b in both frameworks (b = 1/sqrt(fan_in))."""
    t_net, _, params, _ = _pair(*case)
    t_stats = _layer_bounds([p.detach().numpy() for p in t_net.parameters()])
    j_stats = _layer_bounds([np.asarray(leaf) for _, leaf in jc.torch_ordered_leaves(params)])
    assert len(t_stats) == len(j_stats) > 0
    for (t_max, t_std), (j_max, j_std) in zip(t_stats, j_stats):
        assert j_max == pytest.approx(t_max, rel=0.05)
        assert j_std == pytest.approx(t_std, rel=0.15)
        assert j_std == pytest.approx(j_max / np.sqrt(3), rel=0.15)  # uniform, not normal


def test_conv_param_count_by_hand():
    """(3, 32, 32), width 16: channels 4-8-16 down to 4x4 (kernel 4x4 everywhere)."""
    enc = tc.encoder((3, 32, 32), 1, 16, 0, "conv")
    assert tc.param_count(enc) == (3 * 4 * 16 + 4) + (4 * 8 * 16 + 8) + (8 * 16 * 16 + 16) + (16 * 16 + 1)
    gen = tc.generator(5, (3, 32, 32), 16, 0, "conv")
    assert tc.param_count(gen) == (5 * 256 + 256) + (16 * 8 * 16 + 8) + (8 * 4 * 16 + 4) + (4 * 3 * 16 + 3)


def test_sinusoidal_features_match():
    t = np.linspace(0, 1, 7, dtype=np.float32)
    want = tc.sinusoidal_features(torch.from_numpy(t), 16).numpy()
    got = np.asarray(jc.sinusoidal_features(jnp.asarray(t), 16))
    # angles reach 1000 rad, where one float32 ulp is 6e-5: agree to a few ulps
    np.testing.assert_allclose(got, want, atol=1e-3)


def test_conv_plan_follows_image_size():
    assert conv_plan((1, 8, 8), 256).channels == (64,)
    assert conv_plan((3, 32, 32), 256).channels == (64, 128, 256)
    plan = conv_plan((3, 64, 64), 256)
    assert plan.channels == (64, 128, 256, 512) and plan.base == (4, 4) and plan.flat == 512 * 16
    assert conv_plan((1, 28, 28), 64).base == (7, 7)
    with pytest.raises(ValueError, match="backbone: mlp"):
        conv_plan((1, 5, 5), 64)
    with pytest.raises(ValueError, match="backbone: mlp"):
        conv_plan((2,), 64)


def test_auto_backbone():
    assert resolve_backbone("auto", (2,)) == "mlp"
    assert resolve_backbone("auto", (1, 8, 8)) == "conv"
    assert resolve_backbone("auto", (1, 5, 5)) == "mlp"
    assert resolve_backbone("mlp", (1, 8, 8)) == "mlp"
    with pytest.raises(ValueError, match="backbone.*auto, mlp, conv"):
        resolve_backbone("resnet", (2,))
    with pytest.raises(ValueError, match="backbone: mlp"):
        resolve_backbone("conv", (2,))


def test_state_round_trip_and_adam_twin():
    """Serialized state restores exactly, and one optax Adam step equals torch's."""
    t_net, j_net, params, x = _pair(*CASES[1])
    params = jc.params_from_torch(params, t_net)
    tx = jc.adam(1e-2, (0.5, 0.9))
    state = jc.adam_state(params, tx)

    def loss(p):
        return (j_net.apply({"params": p}, jnp.asarray(x)) ** 2).mean()

    for _ in range(3):
        state = jc.apply_grads(tx, state, jax.grad(loss)(state["params"]))
    opt = tc.adam(t_net.parameters(), 1e-2, (0.5, 0.9))
    for _ in range(3):
        opt.zero_grad()
        (t_net(torch.from_numpy(x)) ** 2).mean().backward()
        opt.step()
    for (_, got), want in zip(jc.torch_ordered_leaves(state["params"]), t_net.parameters()):
        np.testing.assert_allclose(np.asarray(got), want.detach().numpy(), rtol=1e-4, atol=1e-6)

    blob = jc.save_tree(state)
    fresh = jc.adam_state(jc.init_params(j_net, jax.random.PRNGKey(9), jnp.asarray(x)), tx)
    restored = jc.load_tree(fresh, blob)
    for a, b in zip(jax.tree_util.tree_leaves(restored), jax.tree_util.tree_leaves(state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_init_key_uses_high_bits():
    a, b = jc.init_key(5), jc.init_key(5 + (1 << 40))
    assert not np.array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(jc.init_key(5)), np.asarray(a))
