"""The GPU paths, on a machine with an NVIDIA GPU (marker ``gpu``; skipped with the reason
elsewhere): device placement, data on the device, no host sync inside the training
loop, the process executor's ``gpus``, Ray's ``num_gpus`` (fractional too) and fleets
on a GPU. ``benchmarks/device_check.sh`` runs these first."""
from __future__ import annotations

import contextlib

import pytest
from support.executor_runs import kit_registry, run, stored_values
from support.prepared_runs import drawer, fleet_steps, prepared, prepared_runs, train_steps
from support.suites import tiny_suite

from benchbase.config import build_suite
from benchbase.errors import BenchbaseInputError
from benchbase.fleet import FleetTask, execute_fleet
from benchbase.runner import RunTask, execute_task
from benchbase.store import Store

pytestmark = pytest.mark.gpu

# TF32 and other reduced-precision kernels may serve fp32 products on a GPU, and batched
# kernels round differently from single ones: members agree with their runs to this.
GPU_RTOL, GPU_ATOL = 2e-3, 2e-3
FLOW = {"width": 64, "depth": 2, "sample_steps": 8}


def _suite(framework: str = "torch", device: str = "cuda", **overrides) -> dict:
    suite = tiny_suite(name="gpu", device=device, seeds=[0, 1],
                       models=[{"name": "rectified_flow", "framework": framework, "config": FLOW}],
                       metrics=["fd"], sweep={"n": [32, 64]}, budget={"batch_size": 32, "steps": 50},
                       eval={"points": 2, "n_samples": 100})
    suite.update(overrides)
    return suite


def _tasks(framework: str = "torch", **overrides) -> list[RunTask]:
    registry = kit_registry()
    built = build_suite(_suite(framework, **overrides), "<gpu test>", registry=registry)
    return [RunTask(spec=s, policy=registry.policy, registry=registry) for s in built.runs]


def _jax_gpu():
    jax = pytest.importorskip("jax")
    try:
        return jax.devices("gpu")[0]
    except RuntimeError:
        pytest.skip("JAX sees no GPU here (a jaxlib without CUDA)")


@contextlib.contextmanager
def no_torch_sync():
    """Any operation that waits for the GPU raises inside this block."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_a_cuda_suite_validates_here():
    build_suite(_suite(device="cuda:0"), "<gpu test>", registry=kit_registry())


def test_torch_model_and_data_live_on_the_gpu():
    import torch

    run_, started = prepared(_tasks()[0])
    with contextlib.closing(run_):
        assert run_.device.type == "cuda" and run_.data.x.device.type == "cuda"
        assert {p.device.type for p in run_.state.net.parameters()} == {"cuda"}
    device = started.provenance["device"]
    assert device.startswith("cuda") and torch.cuda.get_device_name(0) in device


def test_torch_training_steps_never_wait_for_the_gpu():
    run_, _ = prepared(_tasks()[0])
    with contextlib.closing(run_):
        draw = drawer(run_)
        state, _ = train_steps(run_, run_.state, draw, range(3))  # warm-up: lazy CUDA initialisation may sync
        with no_torch_sync():
            state, logs = train_steps(run_, state, draw, range(3, 40))
    assert run_.fw.scalars(logs)["loss"] > 0


def test_torch_fleet_steps_never_wait_for_the_gpu():
    stack, runs = prepared_runs(_tasks())
    with stack:
        fw, fleet = runs[0].fw, fleet_steps(runs)
        program, state, draw = fleet.program, fleet.state, fleet.draw
        for t in range(3):
            state, logs = program.step(state, *draw(t))
        with no_torch_sync():
            for t in range(3, 40):
                state, logs = program.step(state, *draw(t))
    assert fw.to_numpy(logs["loss"]).shape == (len(runs),)


def test_jax_model_data_and_steps_stay_on_the_gpu():
    import jax

    gpu = _jax_gpu()
    run_, _ = prepared(_tasks("jax")[0])
    with contextlib.closing(run_):
        assert run_.device == gpu and run_.data.x.devices() == {gpu}
        assert {leaf.devices().pop().platform for leaf in jax.tree_util.tree_leaves(run_.state)} == {"gpu"}
        draw = drawer(run_)
        state, _ = train_steps(run_, run_.state, draw, range(3))
        with jax.transfer_guard_device_to_host("disallow"):
            state, logs = train_steps(run_, state, draw, range(3, 40))
    assert float(logs["loss"]) > 0


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_fleet_on_the_gpu_matches_runs_alone(framework):
    if framework == "jax":
        _jax_gpu()
    tasks = _tasks(framework)
    alone, together = {}, {}

    def recorder(out):
        def emit(event):
            from benchbase.runner import Evaluated

            if isinstance(event, Evaluated):
                out.update({(event.run_id, event.step, r.metric, r.ref): r.value for r in event.rows})
        return emit

    for task in tasks:
        assert execute_task(task, recorder(alone)) == "done"
    assert set(execute_fleet(FleetTask(tasks), recorder(together)).values()) == {"done"}
    assert alone.keys() == together.keys()
    for key, value in alone.items():
        assert together[key] == pytest.approx(value, rel=GPU_RTOL, abs=GPU_ATOL), key


def test_process_executor_gives_each_worker_its_gpu(tmp_path):
    suite, result = run(_suite(), tmp_path, executor={"name": "process",
                                                      "config": {"workers": 2, "gpus": [0], "fleet": 1}})
    assert result.ok
    with Store(tmp_path) as store:
        devices = {r.provenance["device"] for r in store.runs(suite="gpu")}
    assert len(devices) == 1
    device = devices.pop()
    assert device.startswith("cuda:0") and device.endswith("[CUDA_VISIBLE_DEVICES=0]"), device


def test_process_executor_runs_a_fleet_on_the_gpu(tmp_path):
    suite, result = run(_suite(), tmp_path, executor={"name": "process", "config": {"workers": 1, "gpus": [0]}})
    assert result.ok
    with Store(tmp_path) as store:
        runs = store.runs(suite="gpu")
    assert {r.provenance["fleet"]["size"] for r in runs} == {4}
    assert stored_values(tmp_path, suite)


def test_ray_reserves_whole_and_fractional_gpus(tmp_path):
    pytest.importorskip("ray")
    for share in (1.0, 0.5):
        results = tmp_path / f"share-{share}"
        suite, result = run(_suite(), results, executor={"name": "ray", "config": {
            "num_gpus": share, "num_cpus": 1, "fleet": 1, "local_cpus": 2}})
        assert result.ok, result.failures
        with Store(results) as store:
            assert all(r.provenance["device"].startswith("cuda") for r in store.runs(suite="gpu"))


def test_ray_without_num_gpus_refuses_a_cuda_suite(tmp_path):
    pytest.importorskip("ray")
    with pytest.raises(BenchbaseInputError, match="num_gpus"):
        run(_suite(), tmp_path, executor={"name": "ray", "config": {"num_gpus": 0, "local_cpus": 2}})
