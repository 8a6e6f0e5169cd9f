"""Framework adapters: how the core puts data on a device, draws batches there and
hands out randomness, for PyTorch, JAX and NumPy models alike.

Randomness is a pure function of (run seed, step): the batch drawn at step s and the
key handed to ``train_step`` at step s never depend on what ran before. That is
what makes a resumed run equal an uninterrupted one without saving RNG state.
Batches are drawn uniformly with replacement from the training subset, on the
device, with no host round trip.
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Callable

import numpy as np

from benchbase.contracts import Batch
from benchbase.devices import unsupported
from benchbase.errors import BenchbaseInputError

_MASK64 = (1 << 64) - 1


def mix_seed(*parts: int) -> int:
    """SplitMix64 over the parts: well-spread 63-bit seeds from (seed, step, salt)."""
    z = 0x9E3779B97F4A7C15
    for p in parts:
        z = (z + (int(p) & _MASK64) + 0x9E3779B97F4A7C15) & _MASK64
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        z ^= z >> 31
    return z & ((1 << 63) - 1)


SALT_INIT, SALT_SAMPLE, SALT_EVAL = 1, 2, 3


def _visible_gpus() -> str:
    """Which physical GPUs a process's device numbers refer to, for provenance: under
    CUDA_VISIBLE_DEVICES (the process executor's ``gpus``) every worker's GPU is cuda:0."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f" [CUDA_VISIBLE_DEVICES={visible}]" if visible else ""


class TorchFramework:
    name = "torch"

    def device(self, requested: str = "auto"):
        import torch

        if requested == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if reason := unsupported(self.name, requested):
            raise BenchbaseInputError(reason)
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise BenchbaseInputError(f"device '{requested}' requested but PyTorch sees no CUDA GPU")
        device = torch.device(requested)
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise BenchbaseInputError(f"device '{requested}' requested but PyTorch sees "
                                      f"{torch.cuda.device_count()} GPU(s) (cuda:0 .. "
                                      f"cuda:{torch.cuda.device_count() - 1})")
        return device

    def placement(self, device):
        """Make ``device`` the current one while a run executes, so a plugin that says
        just "cuda" lands on the run's GPU."""
        import torch

        if device.type == "cuda":
            return torch.cuda.device(device)
        return contextlib.nullcontext()

    def device_name(self, device) -> str:
        import torch

        if device.type == "cuda":
            index = torch.cuda.current_device() if device.index is None else device.index
            return f"cuda:{index} ({torch.cuda.get_device_name(index)}){_visible_gpus()}"
        return str(device)

    def metric_device(self, device) -> str:
        return str(device)

    def put(self, x: np.ndarray | None, device):
        import torch

        return None if x is None else torch.from_numpy(np.ascontiguousarray(x)).to(device)

    def drawer(self, x, y, batch_size: int, seed: int, device) -> Callable[[int], tuple[Batch, Any]]:
        import torch

        n = x.shape[0]
        g = torch.Generator(device=device)

        def draw(step: int):
            g.manual_seed(mix_seed(seed, step))
            idx = torch.randint(n, (batch_size,), device=device, generator=g)
            return Batch(x[idx], None if y is None else y[idx]), g

        return draw

    def key(self, seed: int, salt: int, device):
        import torch

        g = torch.Generator(device=device)
        g.manual_seed(mix_seed(seed, salt))
        return g

    def fleet_drawer(self, pool_x, pool_y, rows: list[np.ndarray], batch_size: int, seeds: list[int],
                     starts: list[int], device) -> Callable[[int], tuple[Batch, Any]]:
        """The batches of K runs at once (see FleetData): ``draw(t)`` gives member k the
        batch and generator its own ``drawer`` gives at step ``starts[k] + t``, stacked."""
        import torch

        gens = [torch.Generator(device=device) for _ in seeds]
        sizes = [len(r) for r in rows]
        table = torch.as_tensor(_pad_rows(rows), device=device)
        members = list(zip(gens, seeds, starts, sizes))

        def draw(t: int):
            idx = []
            for g, seed, start, n in members:
                g.manual_seed(mix_seed(seed, start + t))
                idx.append(torch.randint(n, (batch_size,), device=device, generator=g))
            at = table.gather(1, torch.stack(idx))
            return Batch(pool_x[at], None if pool_y is None else pool_y[at]), gens

        return draw

    def fleet_keys(self, seeds: list[int], salt: int, device) -> list:
        return [self.key(seed, salt, device) for seed in seeds]

    def to_numpy(self, a) -> np.ndarray:
        import torch

        if isinstance(a, torch.Tensor):
            return a.detach().float().cpu().numpy()
        return np.asarray(a, dtype=np.float32)

    def scalars(self, logs: dict) -> dict[str, float]:
        import torch

        if not logs:
            return {}
        keys = list(logs)
        vals = torch.stack([torch.as_tensor(logs[k]).detach().float().reshape(()).cpu() for k in keys])
        return dict(zip(keys, vals.tolist()))

    def seed_everything(self, seed: int) -> None:
        import torch

        torch.manual_seed(mix_seed(seed, SALT_INIT))

    def numerics(self) -> dict:
        """What decides the bits of a run's arithmetic here (docs/reproducibility.md)."""
        import torch

        return {**host_numerics(), "threads": torch.get_num_threads(),
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "deterministic_algorithms": torch.are_deterministic_algorithms_enabled()}


class JaxFramework:
    name = "jax"

    def __init__(self):
        # Several runs may share one GPU: never let each JAX process grab most of it.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

    def device(self, requested: str = "auto"):
        import jax

        try:
            if requested == "auto":
                return jax.devices()[0]
            if requested == "cpu":
                return jax.devices("cpu")[0]
            if requested.startswith("cuda"):
                index = int(requested.split(":")[1]) if ":" in requested else 0
                return jax.devices("gpu")[index]
            if requested == "tpu":
                return jax.devices("tpu")[0]
        except (RuntimeError, IndexError) as exc:
            raise BenchbaseInputError(f"device '{requested}' is not available to JAX: {exc}") from None
        raise BenchbaseInputError(f"unknown device '{requested}'")

    def placement(self, device):
        """Arrays a plugin creates without saying where (parameters in ``init``, keys)
        go to the run's device, not JAX's first one."""
        import jax

        return jax.default_device(device)

    def device_name(self, device) -> str:
        visible = _visible_gpus() if device.platform == "gpu" else ""
        return f"{device.platform}:{device.id} ({getattr(device, 'device_kind', '')}){visible}"

    def metric_device(self, device) -> str:
        # Metric arithmetic runs in PyTorch; use CUDA when JAX is on a GPU and torch sees it.
        import torch

        if device.platform == "gpu" and torch.cuda.is_available():
            return "cuda"
        return "cpu"

    def put(self, x, device):
        import jax

        return None if x is None else jax.device_put(np.ascontiguousarray(x), device)

    def drawer(self, x, y, batch_size: int, seed: int, device):
        import jax

        base = jax.device_put(jax.random.PRNGKey(mix_seed(seed) & 0xFFFFFFFF), device)
        _draw = _jax_draw()
        counter = _DeviceStep(device)

        def draw(step: int):
            batch, key, following = _draw(x, y, base, counter.at(step), batch_size)
            counter.advanced(step, following)
            return batch, key

        return draw

    def key(self, seed: int, salt: int, device):
        import jax

        return jax.device_put(jax.random.PRNGKey(mix_seed(seed, salt) & 0xFFFFFFFF), device)

    def fleet_drawer(self, pool_x, pool_y, rows: list[np.ndarray], batch_size: int, seeds: list[int],
                     starts: list[int], device):
        """The batches of K runs at once, one jitted call (see TorchFramework.fleet_drawer)."""
        import jax
        import jax.numpy as jnp

        put = functools.partial(jax.device_put, device=device)
        bases = put(jnp.stack([jax.random.PRNGKey(mix_seed(seed) & 0xFFFFFFFF) for seed in seeds]))
        table = put(_pad_rows(rows).astype(np.int32))
        sizes = put(np.asarray([len(r) for r in rows], np.int32))
        offsets = put(np.asarray(starts, np.int32))
        _draw = _jax_fleet_draw()
        counter = _DeviceStep(device)

        def draw(t: int):
            batch, keys, following = _draw(pool_x, pool_y, bases, offsets, sizes, table, counter.at(t), batch_size)
            counter.advanced(t, following)
            return batch, keys

        return draw

    def fleet_keys(self, seeds: list[int], salt: int, device):
        import jax
        import jax.numpy as jnp

        return jax.device_put(jnp.stack([jax.random.PRNGKey(mix_seed(seed, salt) & 0xFFFFFFFF)
                                         for seed in seeds]), device)

    def to_numpy(self, a) -> np.ndarray:
        return np.asarray(a, dtype=np.float32)

    def scalars(self, logs: dict) -> dict[str, float]:
        import jax

        host = jax.device_get(logs)
        return {k: float(np.asarray(v)) for k, v in host.items()}

    def seed_everything(self, seed: int) -> None:
        pass

    def numerics(self) -> dict:
        return host_numerics()


class _DeviceStep:
    """The step a JAX draw needs, kept on the device: the jitted draw returns step + 1,
    which the next call passes back. A Python int argument would be copied to the device
    at every step (on a GPU, a transfer per step that a bare loop does not make); a step
    out of sequence (the first, or a resume) is sent once."""

    def __init__(self, device):
        self.device, self._next, self._on_device = device, None, None

    def at(self, step: int):
        """``step`` on the device: the one the last draw returned when it is the next."""
        import jax

        return self._on_device if step == self._next else jax.device_put(np.int32(step), self.device)

    def advanced(self, step: int, following) -> None:
        """The draw at ``step`` succeeded and returned ``following`` (step + 1 on the device)."""
        self._next, self._on_device = step + 1, following


@functools.lru_cache(maxsize=None)
def _jax_draw():
    """The jitted batch draw of JaxFramework.drawer, built once per process: a jit made
    inside ``drawer`` would compile again for every run (about a second on a small CPU,
    comparable to a thousand training steps of a small model)."""
    import jax

    def draw(x, y, base, step, batch_size):
        kb, km = jax.random.split(jax.random.fold_in(base, step))
        idx = jax.random.randint(kb, (batch_size,), 0, x.shape[0])
        return Batch(x[idx], None if y is None else y[idx]), km, step + 1

    return jax.jit(draw, static_argnums=4)


@functools.lru_cache(maxsize=None)
def _jax_fleet_draw():
    """The jitted batch draw of JaxFramework.fleet_drawer: the single-run draw of every
    member (its own key, step and subset size), vmapped, then one gather from the pool."""
    import jax

    def draw(pool_x, pool_y, bases, offsets, sizes, table, t, batch_size):
        def member(base, offset, size, table_row):
            kb, km = jax.random.split(jax.random.fold_in(base, offset + t))
            return table_row[jax.random.randint(kb, (batch_size,), 0, size)], km

        at, keys = jax.vmap(member)(bases, offsets, sizes, table)
        return Batch(pool_x[at], None if pool_y is None else pool_y[at]), keys, t + 1

    return jax.jit(draw, static_argnums=7)


def _pad_rows(rows: list[np.ndarray]) -> np.ndarray:
    """(K, max n) int64: member k's subset as rows of the shared pool, padded with 0
    (never drawn: a member draws indices below its own size)."""
    out = np.zeros((len(rows), max(len(r) for r in rows)), np.int64)
    for k, r in enumerate(rows):
        out[k, :len(r)] = r
    return out


class NumpyFramework:
    name = "numpy"

    def device(self, requested: str = "auto"):
        return "cpu"

    def placement(self, device):
        return contextlib.nullcontext()

    def device_name(self, device) -> str:
        return "cpu"

    def metric_device(self, device) -> str:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def put(self, x, device):
        return x

    def drawer(self, x, y, batch_size: int, seed: int, device):
        n = x.shape[0]

        def draw(step: int):
            rng = np.random.default_rng([seed, step])
            idx = rng.integers(0, n, size=batch_size)
            return Batch(x[idx], None if y is None else y[idx]), rng

        return draw

    def key(self, seed: int, salt: int, device):
        return np.random.default_rng([seed, salt])

    def to_numpy(self, a) -> np.ndarray:
        return np.asarray(a, dtype=np.float32)

    def scalars(self, logs: dict) -> dict[str, float]:
        return {k: float(v) for k, v in logs.items()}

    def seed_everything(self, seed: int) -> None:
        pass

    def numerics(self) -> dict:
        return host_numerics()


# Settings read by the numeric libraries that change which kernels run (OPENBLAS_CORETYPE:
# NumPy's and SciPy's OpenBLAS, which fd's linear algebra runs on; docs/reproducibility.md).
NUMERICS_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY",
                "OPENBLAS_CORETYPE", "XLA_FLAGS", "CUBLAS_WORKSPACE_CONFIG")


def host_numerics() -> dict:
    """The CPU model and the environment settings that select numeric kernels."""
    return {"cpu": cpu_model(), "env": {k: os.environ[k] for k in NUMERICS_ENV if k in os.environ}}


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_FRAMEWORKS = {"torch": TorchFramework, "jax": JaxFramework, "numpy": NumpyFramework}


def framework_available(name: str | None) -> bool:
    """Whether models of framework ``name`` can run here. PyTorch and NumPy are
    dependencies of benchbase; JAX is an extra (``benchbase[jax]``)."""
    if name in (None, "numpy", "torch"):
        return True
    import importlib.util

    return importlib.util.find_spec(name) is not None


def get_framework(name: str):
    try:
        return _FRAMEWORKS[name]()
    except KeyError:
        raise BenchbaseInputError(f"unknown framework '{name}'; valid: {', '.join(_FRAMEWORKS)}") from None
