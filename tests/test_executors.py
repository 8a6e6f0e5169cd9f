"""Executors: tasks cross process boundaries intact, the process executor gives the
local executor's numbers, --executor/overrides select and configure executors, and
devices are validated and placed."""
from __future__ import annotations

import os
import pickle
import sys

import pytest
from support.executor_runs import flow, kit_registry, leaderboard, run, same_numbers, stored_values, suite_of, torch_threads

from benchbase.config import build_suite, load_suite
from benchbase.errors import BenchbaseInputError, ConfigError
from benchbase.runner import Evaluated, Finished, Progress, RunTask, Started, execute_task
from benchbase.store import Checkpoint, Store

SUITE = suite_of(flow(), "vae", "copy_train")


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    """The tiny suite on the local executor, single-threaded like the workers."""
    path = tmp_path_factory.mktemp("local")
    with torch_threads(1):
        suite, result = run(SUITE, path)
    assert result.ok
    return suite, stored_values(path, suite), leaderboard(path, suite.name)


def test_tasks_and_events_survive_pickling(tmp_path):
    registry = kit_registry()
    suite = build_suite(suite_of("copy_train"), "<test>", registry=registry)
    task = RunTask(spec=suite.runs[0], policy=registry.policy, results_dir=str(tmp_path),
                   checkpoint=Checkpoint(3, 96, 1.5, b"blob"), registry=registry)
    copy = pickle.loads(pickle.dumps(task))
    assert copy.registry is None, "the registry (a plugin manager) must not travel"
    assert (copy.spec, copy.policy, copy.checkpoint) == (task.spec, task.policy, task.checkpoint)

    copy.checkpoint = None
    events: list = []
    assert execute_task(copy, events.append) == "done"  # the registry is rebuilt from the policy
    assert [type(e) for e in events] == [Started, Evaluated, Finished]
    assert [type(pickle.loads(pickle.dumps(e))) for e in events] == [Started, Evaluated, Finished]
    again = pickle.loads(pickle.dumps(events[1]))
    assert again.rows == events[1].rows and (again.samples == events[1].samples).all()
    assert pickle.loads(pickle.dumps(Progress("r", 1, 2, 3.0)))


def test_process_executor_matches_local(local_reference, tmp_path):
    suite, expected, board = local_reference
    _, result = run(SUITE, tmp_path, executor={"name": "process", "config": {"workers": 2, "threads": 1}})
    assert result.ok and len(result.statuses) == 3
    assert same_numbers(stored_values(tmp_path, suite), expected)
    assert leaderboard(tmp_path, suite.name) == board
    with Store(tmp_path) as store:
        pids = {r.provenance["pid"] for r in store.runs()}
    assert os.getpid() not in pids and len(pids) == 3, "each run in its own worker process"


def test_executor_flag_and_config_overrides(tmp_path):
    path = tmp_path / "suite.yaml"
    path.write_text("name: s\ndevice: cpu\nexecutor: {name: process, config: {workers: 4}}\n"
                    "datasets: [{name: gmm2d, n: 64, config: {train_size: 500, test_size: 200}}]\n"
                    "models: [copy_train]\nmetrics: [fd]\nbudget: {steps: 2, batch_size: 8}\n")
    registry = kit_registry()
    same = load_suite(path, ["executor.config.threads=1"], registry=registry, executor="process")
    assert same.executor["config"]["workers"] == 4 and same.executor["config"]["threads"] == 1
    other = load_suite(path, ["executor.config.address=auto", "executor.config.num_cpus=2"],
                       registry=registry, executor="ray")
    assert other.executor["name"] == "ray" and other.executor["config"]["address"] == "auto"
    assert "workers" not in other.executor["config"], "the suite's process config does not leak into ray"
    with pytest.raises(ConfigError, match="workers"):
        load_suite(path, ["executor.config.wrkers=3"], registry=registry)
    with pytest.raises(ConfigError, match="executor.name"):
        load_suite(path, [], registry=registry, executor="slurm")


@pytest.mark.parametrize("key, hint", [
    ("workers", "(workers is a key of the process executor: set executor.name: process)"),
    ("kill_grace", "(kill_grace is a key of the process and ray executors: set executor.name to one of them)"),
])
def test_a_key_of_another_executor_says_which_one_takes_it(tmp_path, key, hint):
    path = tmp_path / "suite.yaml"
    path.write_text("name: s\ndevice: cpu\ndatasets: [{name: gmm2d, n: 64}]\nmodels: [copy_train]\nmetrics: [fd]\n")
    with pytest.raises(ConfigError) as info:
        load_suite(path, [f"executor.config.{key}=2"], registry=kit_registry())
    assert f"executor.config.{key}: unknown key '{key}'. Valid keys: fleet, threads {hint}" in str(info.value)
    with pytest.raises(ConfigError) as info:  # a key no executor takes gets no hint
        load_suite(path, ["executor.config.wrkers=2"], registry=kit_registry())
    assert str(info.value).endswith("Valid keys: fleet, threads")


def test_missing_ray_is_a_clear_error(monkeypatch):
    from benchbase_plugins.executors.ray import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(BenchbaseInputError, match=r"benchbase\[ray\]"):
        import_ray()


def test_process_executor_rejects_zero_workers(tmp_path):
    with pytest.raises(BenchbaseInputError, match="workers"):
        run(suite_of("copy_train"), tmp_path, executor={"name": "process", "config": {"workers": 0}})


@pytest.mark.parametrize("device", ["cpu", "auto", "cuda", "cuda:1", "tpu"])
def test_device_values_validate(device, monkeypatch):
    monkeypatch.setattr("benchbase.devices.visible_gpus", lambda: 2)  # cuda:1 exists here
    suite = build_suite(suite_of("copy_train", device=device), "<test>", registry=kit_registry())
    assert {r.device for r in suite.runs} == {device}


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "cpu:0"])
def test_bad_device_values_are_rejected(device):
    with pytest.raises(ConfigError, match="device"):
        build_suite(suite_of("copy_train", device=device), "<test>", registry=kit_registry())


def test_torch_device_errors_are_clear():
    import torch

    from benchbase.frameworks import TorchFramework

    fw = TorchFramework()
    assert fw.device("cpu") == torch.device("cpu")
    with fw.placement(fw.device("cpu")):
        assert torch.zeros(1).device.type == "cpu"
    with pytest.raises(BenchbaseInputError, match="TPU"):
        fw.device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(BenchbaseInputError, match="no CUDA GPU"):
            fw.device("cuda:0")
    else:
        with pytest.raises(BenchbaseInputError, match="GPU"):
            fw.device(f"cuda:{torch.cuda.device_count()}")


def test_jax_placement_puts_new_arrays_on_the_run_device():
    pytest.importorskip("jax")
    import jax.numpy as jnp

    from benchbase.frameworks import JaxFramework

    fw = JaxFramework()
    device = fw.device("cpu")
    with fw.placement(device):
        assert jnp.zeros(3).devices() == {device}
    with pytest.raises(BenchbaseInputError, match="not available to JAX"):
        fw.device("tpu")


def test_cpu_threads_sets_torch_and_blas_threads_and_restores_them():
    """The local executor's thread setting reaches PyTorch; NumPy's BLAS (the metrics'
    linear algebra) runs on one thread whatever PyTorch's count, so that its spinning
    threads never compete with PyTorch's; both counts come back afterwards."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from benchbase_plugins.executors.common import cpu_threads

    def blas() -> set[int]:
        return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}

    # Two threads to start from, so that lowering them to one shows even in a process
    # that already runs on one (a pytest-xdist worker, tests/conftest.py).
    outer = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threadpool_limits(limits=2, user_api="blas"):
            torch_before, blas_before = torch.get_num_threads(), blas()
            assert torch_before == 2 and blas_before <= {2}
            with cpu_threads(1):
                assert torch.get_num_threads() == 1
                assert blas() <= {1}
            assert (torch.get_num_threads(), blas()) == (torch_before, blas_before)
            with cpu_threads(3):
                assert torch.get_num_threads() == 3
                assert blas() <= {1}
            assert (torch.get_num_threads(), blas()) == (torch_before, blas_before)
            with cpu_threads(0):  # 0: leave both alone
                assert (torch.get_num_threads(), blas()) == (torch_before, blas_before)
    finally:
        torch.set_num_threads(outer)


def test_cpu_threads_reaches_blas_libraries_loaded_inside_the_block(tmp_path):
    """SciPy's own OpenBLAS loads when a metric first imports scipy.linalg, after the
    block began: it must start with one thread (the block's BLAS count), not one per
    core nor PyTorch's count. A fresh interpreter, so that SciPy is not loaded yet."""
    import json
    import subprocess

    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: a library's default is one thread already")
    probe = (
        "import json, threadpoolctl\n"
        "from benchbase_plugins.executors.common import cpu_threads\n"
        "with cpu_threads(2):\n"
        "    import scipy.linalg\n"
        "    pools = [(p['filepath'], p['num_threads']) for p in threadpoolctl.threadpool_info()\n"
        "             if p['user_api'] == 'blas']\n"
        "print(json.dumps(pools))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    pools = json.loads(done.stdout.strip().splitlines()[-1])
    assert pools and all(n == 1 for _, n in pools), pools


def test_prepare_worker_gives_the_frameworks_the_threads_and_blas_one(monkeypatch):
    """A worker process reads the thread variables when its libraries load: PyTorch's
    pools get the run's count, NumPy/SciPy's OpenBLAS one thread (plugins/executors/common.py)."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from benchbase_plugins.executors.common import prepare_worker

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "false"))
    outer = torch.get_num_threads()
    try:
        with threadpool_limits(limits=2, user_api="blas"):  # a reused worker's OpenBLAS, loaded already
            prepare_worker(3)
            assert (os.environ["OMP_NUM_THREADS"], os.environ["MKL_NUM_THREADS"]) == ("3", "3")
            assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
            assert torch.get_num_threads() == 3
            assert {pool["num_threads"] for pool in threadpool_info() if pool["internal_api"] == "openblas"} <= {1}
    finally:
        torch.set_num_threads(outer)
