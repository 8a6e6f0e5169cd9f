"""No torch tensor is turned into numpy behind the framework's back: on a GPU such a
tensor refuses ``np.asarray`` (it must be copied to the host first), so every crossing goes
through ``Framework.to_numpy``. These tests make CPU tensors refuse the same way and run
the torch paths a suite takes (one run, a fleet, a U-Net on images), so a CPU machine
catches what the first GPU run of benchmarks/device_check.sh found. The other way, JAX
training steps run under a guard that refuses host-to-device copies, which the CPU
backend enforces too (the second GPU run found one per step)."""
from __future__ import annotations

import numpy as np
import pytest
from support.executor_runs import kit_registry
from support.prepared_runs import drawer, fleet_steps, prepared, prepared_runs, train_steps
from support.suites import tiny_suite

from benchbase.config import build_suite
from benchbase.evaluation import floating_dtype
from benchbase.fleet import FleetTask, execute_fleet
from benchbase.runner import RunTask, execute_task

torch = pytest.importorskip("torch")


@pytest.fixture
def tensors_refuse_numpy(monkeypatch):
    """CPU tensors behave like GPU tensors towards numpy: no implicit conversion."""

    def refuse(self, *args, **kwargs):
        raise TypeError("implicit numpy conversion of a torch tensor (a GPU tensor refuses it)")

    monkeypatch.setattr(torch.Tensor, "__array__", refuse)


def _tasks(**overrides) -> list[RunTask]:
    registry = kit_registry()
    built = build_suite(tiny_suite(**overrides), "<host transfers>", registry=registry)
    return [RunTask(spec=s, policy=registry.policy, registry=registry) for s in built.runs]


def _errors(statuses: list) -> list:
    return [s for s in statuses if s != "done"]


def test_the_fixture_makes_tensors_refuse_numpy(tensors_refuse_numpy):
    with pytest.raises(TypeError, match="implicit numpy"):
        np.asarray(torch.zeros(2))


def test_floating_dtype_reads_a_tensor_without_converting_it(tensors_refuse_numpy):
    assert floating_dtype(torch.zeros(2, dtype=torch.bfloat16)) == "torch.bfloat16"
    assert floating_dtype(torch.zeros(2, dtype=torch.int64)) is None
    assert floating_dtype([0.5, 1.5]) == "float64"


FLOW = {"name": "rectified_flow", "framework": "torch", "config": {"width": 32, "depth": 2, "sample_steps": 4}}


def test_a_torch_run_crosses_to_numpy_only_through_the_framework(tensors_refuse_numpy):
    task = _tasks(models=[FLOW], budget={"batch_size": 32, "steps": 20}, eval={"points": 2, "n_samples": 50})[0]
    assert execute_task(task, lambda event: None) == "done"


def test_a_torch_fleet_crosses_to_numpy_only_through_the_framework(tensors_refuse_numpy):
    tasks = _tasks(models=[FLOW], seeds=[0, 1], budget={"batch_size": 32, "steps": 20},
                   eval={"points": 2, "n_samples": 50})
    assert set(execute_fleet(FleetTask(tasks), lambda event: None).values()) == {"done"}


def test_a_torch_unet_on_images_crosses_to_numpy_only_through_the_framework(tensors_refuse_numpy):
    task = _tasks(datasets=[{"name": "calpha_images", "n": 32,
                             "config": {"size": 8, "train_size": 32, "test_size": 64}}],
                  models=[{"name": "rectified_flow", "framework": "torch",
                           "config": {"backbone": "unet", "sample_steps": 2}}],
                  metrics=["fd", "swd", "mem_ratio", "blend_ratio"], budget={"batch_size": 16, "steps": 4},
                  eval={"points": 2, "n_samples": 16})[0]
    assert execute_task(task, lambda event: None) == "done"


def test_knn_takes_tensors_where_they_are(tensors_refuse_numpy):
    from benchbase import neighbors

    rng = np.random.default_rng(0)
    query, ref = rng.standard_normal((30, 5), dtype=np.float32), rng.standard_normal((80, 5), dtype=np.float32)
    from_numpy = neighbors.knn(query, ref, k=3)
    from_tensors = neighbors.knn(torch.from_numpy(query), torch.from_numpy(ref), k=3)
    np.testing.assert_array_equal(from_numpy[1], from_tensors[1])
    np.testing.assert_allclose(from_numpy[0], from_tensors[0])


def _learned_spaces():
    from benchbase_plugins.features.copy_descriptor import CopyDescriptor, CopyDescriptorConfig
    from benchbase_plugins.features.random_conv import RandomConv, RandomConvConfig
    from benchbase_plugins.features.trained_encoder import TrainedEncoder, TrainedEncoderConfig

    return {
        "random_conv": lambda: RandomConv(RandomConvConfig(width=16, depth=2)),
        "trained_encoder": lambda: TrainedEncoder(TrainedEncoderConfig(latent_dim=4, width=16, depth=1, steps=8,
                                                                       batch_size=16)),
        "copy_descriptor": lambda: CopyDescriptor(CopyDescriptorConfig(dim=8, width=8, blocks=1, steps=6,
                                                                       batch_size=16)),
        "copy_descriptor, whitened members": lambda: CopyDescriptor(CopyDescriptorConfig(
            dim=8, width=8, blocks=1, steps=6, batch_size=16, members=2, low_pass_members=1, whitening=0.1)),
    }


@pytest.mark.parametrize("space", ["random_conv", "trained_encoder", "copy_descriptor",
                                   "copy_descriptor, whitened members"])
def test_feature_spaces_cross_to_numpy_only_explicitly(space, tensors_refuse_numpy, tmp_path):
    from benchbase.contracts import DataSpec

    x = np.random.default_rng(0).uniform(-1, 1, (96, 1, 8, 8)).astype(np.float32)
    built = _learned_spaces()[space]()
    built.cache_dir, built.train_split = str(tmp_path), x
    built.prepare(x[:48], DataSpec(shape=(1, 8, 8), modality="image"), "cpu")
    assert np.isfinite(built.embed(x[48:60])).all()


def _prepared_jax_runs(seeds: list[int]):
    tasks = _tasks(models=[{**FLOW, "framework": "jax"}], seeds=seeds, budget={"batch_size": 32, "steps": 20},
                   eval={"points": 2, "n_samples": 50})
    return prepared_runs(tasks)


def test_jax_training_steps_send_nothing_from_the_host():
    """After the first steps, a JAX step (its batch draw included) needs no host-to-device
    copy: a Python int step would be one per step, which a GPU pays for."""
    jax = pytest.importorskip("jax")
    stack, (run_,) = _prepared_jax_runs([0])
    with stack:
        draw = drawer(run_)
        state, _ = train_steps(run_, run_.state, draw, range(2))
        with jax.transfer_guard_host_to_device("disallow"):
            state, logs = train_steps(run_, state, draw, range(2, 12))
    assert float(logs["loss"]) > 0


@pytest.mark.parametrize("parts", [1, 2])
def test_jax_fleet_steps_send_nothing_from_the_host(parts):
    """Neither in one part nor in parts (a CPU fleet's: plugins/models/jax_fleet.py), nor
    sampling every member."""
    jax = pytest.importorskip("jax")
    stack, runs = _prepared_jax_runs([0, 1, 2, 3])
    with stack:
        fw, fleet = runs[0].fw, fleet_steps(runs, configure=lambda program: setattr(program, "parts", parts))
        program, state, draw = fleet.program, fleet.state, fleet.draw
        for t in range(2):
            state, _ = program.step(state, *draw(t))
        keys = fw.fleet_keys([r.spec.seed for r in runs], 7, runs[0].device)
        with jax.transfer_guard_host_to_device("disallow"):
            for t in range(2, 12):
                state, logs = program.step(state, *draw(t))
            samples = program.sample(state, 8, keys)  # every member: what an evaluation samples
    assert len(state) == parts and fw.to_numpy(logs["loss"]).shape == (4,)
    assert fw.to_numpy(samples).shape[:2] == (4, 8)
