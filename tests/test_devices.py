"""A suite that asks for GPUs this machine lacks is refused before anything is written
(one line, exit 2), found without importing PyTorch or JAX."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from support.suites import tiny_suite

from benchbase import devices
from benchbase.cli import main
from benchbase.config import build_suite
from benchbase.errors import BenchbaseInputError


def _suite(**overrides) -> dict:
    return tiny_suite(models=["copy_train"], **overrides)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(devices, "visible_gpus", lambda: 0)


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_is_refused_without_a_gpu(registry, no_gpu, device):
    with pytest.raises(BenchbaseInputError, match=rf"device: '{device}' asked for, but this machine has no GPU"):
        build_suite(_suite(device=device), "<test>", registry=registry)


def test_a_missing_gpu_index_is_refused(registry, monkeypatch):
    monkeypatch.setattr(devices, "visible_gpus", lambda: 2)
    build_suite(_suite(device="cuda:1"), "<test>", registry=registry)
    with pytest.raises(BenchbaseInputError, match=r"2 GPU\(s\) \(cuda:0 .. cuda:1\)"):
        build_suite(_suite(device="cuda:2"), "<test>", registry=registry)


def test_process_executor_gpus_are_checked(registry, no_gpu):
    suite = _suite(device="cpu", executor={"name": "process", "config": {"gpus": [0, 1]}})
    with pytest.raises(BenchbaseInputError, match=r"executor.config.gpus: \[0, 1\] asked for"):
        build_suite(suite, "<test>", registry=registry)


def test_a_device_a_framework_never_runs_on_is_refused_when_validated(registry, tmp_path, capsys):
    """validate refuses a PyTorch model on TPU with the line run refuses it with, on any machine."""
    torch_model = {"name": "rectified_flow", "framework": "torch"}
    with pytest.raises(BenchbaseInputError, match=r"device: 'tpu': PyTorch models do not run on TPU"):
        build_suite(tiny_suite(models=[torch_model, "copy_train"], device="tpu"), "<test>", registry=registry)
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(tiny_suite(models=[torch_model])))
    assert main(["validate", str(path), "--device", "tpu"]) == 2
    assert "device: 'tpu': PyTorch models do not run on TPU here; use a JAX model or device: auto" in \
        capsys.readouterr().err
    build_suite(_suite(device="tpu"), "<test>", registry=registry)  # numpy models run wherever


def test_cpu_and_auto_never_need_a_gpu(registry, no_gpu):
    for device in ("cpu", "auto"):
        build_suite(_suite(device=device), "<test>", registry=registry)


def test_a_ray_cluster_elsewhere_is_not_checked(registry, no_gpu):
    """The driver of a remote cluster needs no GPU of its own."""
    remote = _suite(device="cuda", executor={"name": "ray", "config": {"address": "head:6379"}})
    build_suite(remote, "<test>", registry=registry)
    local = _suite(device="cuda", executor={"name": "ray", "config": {}})
    with pytest.raises(BenchbaseInputError):
        build_suite(local, "<test>", registry=registry)


def test_visible_gpus_reads_the_driver_and_the_environment(tmp_path, monkeypatch):
    fake = tmp_path / "gpus"
    fake.mkdir()
    for bus in ("0000:01:00.0", "0000:02:00.0"):
        (fake / bus).mkdir()
    monkeypatch.setattr(devices, "NVIDIA_GPUS", fake)
    monkeypatch.setattr(devices, "ROCM_DEVICE", tmp_path / "no-kfd")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert devices.visible_gpus() == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert devices.visible_gpus() == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert devices.visible_gpus() == 0
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setattr(devices, "NVIDIA_GPUS", tmp_path / "absent")
    assert devices.visible_gpus() == 0
    (tmp_path / "kfd").touch()
    monkeypatch.setattr(devices, "ROCM_DEVICE", tmp_path / "kfd")
    assert devices.visible_gpus() is None  # another vendor: cannot tell, refuse nothing


def test_validate_exits_2_with_one_line_and_writes_nothing(tmp_path, no_gpu, capsys, monkeypatch):
    path = tmp_path / "gpu.yaml"
    path.write_text(json.dumps(_suite(device="cuda")))
    monkeypatch.chdir(tmp_path)
    for command in (["validate", str(path)], ["run", str(path), "--results", str(tmp_path / "results")]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "no GPU" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu.yaml"]


def test_the_check_imports_no_framework():
    code = ("import sys; from benchbase.devices import check_devices, visible_gpus; visible_gpus(); "
            "check_devices('s', 'cpu', {'name': 'local'}); "
            "print(any(m in sys.modules for m in ('torch', 'jax')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_gpu_provenance_names_the_physical_gpus_a_worker_was_given(monkeypatch):
    from benchbase.frameworks import _visible_gpus

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert _visible_gpus() == ""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert _visible_gpus() == " [CUDA_VISIBLE_DEVICES=3]"
