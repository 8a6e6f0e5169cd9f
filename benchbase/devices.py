"""Which accelerators this machine has, found without importing PyTorch or JAX
(``benchbase validate`` must stay fast and trains nothing), and the check that a
suite's ``device`` and executor GPUs exist before anything is written.

NVIDIA's driver lists one folder per GPU under /proc/driver/nvidia/gpus;
CUDA_VISIBLE_DEVICES narrows what a process may use. Where neither tells (another
vendor's GPU, an unusual container), the count is unknown and nothing is refused:
the runs then fail one by one with the framework's own message, as before.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from benchbase.errors import BenchbaseInputError

NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")
ROCM_DEVICE = Path("/dev/kfd")
#: (framework, device) pairs that never work, on any machine, and what to do instead
UNSUPPORTED = {("torch", "tpu"): "PyTorch models do not run on TPU here; use a JAX model or device: auto"}


def unsupported(framework: str, device: str) -> str | None:
    """Why a model of ``framework`` can never run on ``device`` (None: it may): known from
    the suite alone, so validation refuses it as ``run`` would."""
    return UNSUPPORTED.get((framework, device))


def metric_device_problem(device: object) -> str | None:
    """Why ``device`` names no device metrics can place arrays on (None: it names one)."""
    if isinstance(device, str) and re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
        return None
    return f"unknown device {device!r}; valid: cpu, cuda, cuda:N, auto"


def visible_gpus() -> int | None:
    """How many GPUs a process here may use: 0, a count, or None when it cannot tell."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return 0
    if NVIDIA_GPUS.is_dir():
        count = sum(1 for _ in NVIDIA_GPUS.iterdir())
    elif ROCM_DEVICE.exists():
        return None
    else:
        count = 0
    if visible is not None and count:
        count = min(count, len([v for v in visible.split(",") if v.strip()]))
    return count


def runs_here(executor: dict) -> bool:
    """False when the runs execute on another machine (a Ray cluster given by address)."""
    cfg = executor.get("config") or {}
    return not (executor.get("name") == "ray" and (cfg.get("address") or os.environ.get("RAY_ADDRESS")))


def check_devices(source: str, device: str, executor: dict, gpus: int | None = None) -> None:
    """Refuse (one line) a suite that asks for GPUs this machine does not have."""
    if not runs_here(executor):
        return
    gpus = visible_gpus() if gpus is None else gpus
    if gpus is None:
        return
    cfg = executor.get("config") or {}
    wanted = [int(g) for g in (cfg.get("gpus") or [])]
    if device.startswith("cuda"):
        index = int(device.split(":")[1]) if ":" in device else 0
        if index >= gpus:
            have = "no GPU" if not gpus else f"{gpus} GPU(s) (cuda:0 .. cuda:{gpus - 1})"
            raise BenchbaseInputError(f"{source}: device: '{device}' asked for, but this machine has {have}; "
                                      f"use device: cpu or auto")
    if wanted and max(wanted) >= gpus:
        have = "no GPU" if not gpus else f"{gpus} GPU(s) (0 .. {gpus - 1})"
        raise BenchbaseInputError(f"{source}: executor.config.gpus: {wanted} asked for, but this machine has "
                                  f"{have}; remove gpus or list existing ones")
