"""Test-only model plugins for executor and fault tests (register with
``PluginPolicy(extra=("support.faulty_plugins",))``; worker processes import this
module by name, so the tests directory must be on their path).

- ``faulty_flow`` (torch): the built-in rectified flow plus an injected fault after
  ``at_step`` train steps of this process: raise, NaN loss, ``os._exit``, SIGKILL of
  its own process, or hang. With ``once`` (a file path) the fault fires only while
  that file does not exist, and creates it: a worker that dies once, then succeeds.
  ``step_sleep`` slows every step down without using CPU. ``record`` (a file path)
  gets one JSON line per attempt (pid, CUDA_VISIBLE_DEVICES) when it starts. ``method`` moves the fault
  out of ``train_step`` into ``init``, ``sample``, ``save``, ``load`` or
  ``param_count`` (there ``fault: wrong_type`` returns a value of the wrong type).
- ``faulty_metric``, ``faulty_features``, ``faulty_data``: a metric, a feature space
  and a dataset that raise (or return the wrong thing) where their config says
  (``faulty_features`` can also report fit progress lines, as a learned space does).
  (``faulty_observer`` is a separate module: observer hooks that raise.)
- ``numpy_gauss`` (numpy): a trainable diagonal Gaussian, for numpy resume tests.
- ``jax_flow`` (jax): a small rectified flow in plain JAX + optax, for JAX resume and
  worker-environment tests (needs ``benchbase[jax]``).
"""
from __future__ import annotations

import functools
import io
import json
import os
import signal
import time
from dataclasses import dataclass

import numpy as np

from benchbase import Dataset, FeatureExtractor, Metric, Model, hookimpl
from benchbase.contracts import DataSpec, DataSplits
from benchbase_plugins.models.torch_flow import TorchRectifiedFlow

RectifiedFlowConfig = TorchRectifiedFlow.Config

FAULTS = ("none", "raise", "nan", "exit", "sigkill", "hang", "wrong_type")
MODEL_METHODS = ("init", "train_step", "sample", "save", "load", "param_count")


@dataclass
class FaultyFlowConfig(RectifiedFlowConfig):
    fault: str = "none"  # one of FAULTS
    at_step: int = 10  # train steps (in this process) before the fault fires
    once: str = ""  # marker file: fire only while it does not exist
    step_sleep: float = 0.0  # seconds slept in every train step
    record: str = ""  # file: one JSON line per attempt with the worker's pid and visible GPUs
    method: str = "train_step"  # one of MODEL_METHODS: where the fault fires


WRONG = {"init": None, "sample": "not an array", "save": {"not": "bytes"}, "load": None,
         "param_count": "many"}


class FaultyFlow(TorchRectifiedFlow):
    """Rectified flow with an injected fault (tests only)."""

    name = "faulty_flow"
    Config = FaultyFlowConfig

    def _fires(self, method: str) -> bool:
        """Outside train_step the fault fires once ``at_step`` steps were trained (always
        for init and load)."""
        cfg = self.config
        if cfg.method != method or cfg.fault == "none":
            return False
        trained = getattr(self, "calls", 0)
        return (method in ("init", "load") or trained >= cfg.at_step) and self._armed()

    def _fault(self, method: str, value):
        if self.config.fault == "wrong_type":
            return WRONG[method]
        if self.config.fault == "exit":
            os._exit(3)
        raise RuntimeError(f"injected failure in {method}")

    def init(self, data, seed):
        if self.config.record:
            with open(self.config.record, "a", encoding="utf-8") as f:
                f.write(json.dumps({"pid": os.getpid(), "gpus": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\n")
        if self._fires("init"):
            return self._fault("init", None)
        return super().init(data, seed)

    def sample(self, state, n, key):
        if self._fires("sample"):
            return self._fault("sample", None)
        return super().sample(state, n, key)

    def save(self, state):
        if self._fires("save"):
            return self._fault("save", None)
        return super().save(state)

    def load(self, blob, data):
        if self._fires("load"):
            return self._fault("load", None)
        return super().load(blob, data)

    def param_count(self, state):
        if self._fires("param_count"):
            return self._fault("param_count", None)
        return super().param_count(state)

    def train_step(self, state, batch, key):
        cfg = self.config
        self.calls = getattr(self, "calls", 0) + 1
        if cfg.step_sleep:
            time.sleep(cfg.step_sleep)
        if cfg.method == "train_step" and cfg.fault != "none" and self.calls >= cfg.at_step and self._armed():
            if cfg.fault == "raise":
                raise RuntimeError(f"injected failure at call {self.calls}")
            if cfg.fault == "exit":
                os._exit(3)
            if cfg.fault == "sigkill":
                os.kill(os.getpid(), signal.SIGKILL)
            if cfg.fault == "hang":
                time.sleep(3600)
            if cfg.fault == "wrong_type":
                return state, "not a dict"
        state, logs = super().train_step(state, batch, key)
        if cfg.method == "train_step" and cfg.fault == "nan" and self.calls >= cfg.at_step:
            logs = {"loss": logs["loss"] * float("nan")}
        return state, logs

    def _armed(self) -> bool:
        once = self.config.once
        if not once:
            return True
        if os.path.exists(once):
            return False
        open(once, "w").close()
        return True


# ------------------------------------------------------------------------ numpy


@dataclass
class GaussConfig:
    lr: float = 0.05
    noise: float = 0.01  # gradient noise drawn from the step's key, so keys matter


class NumpyGauss(Model):
    """Diagonal Gaussian fitted by noisy gradient descent on the NLL (tests only)."""

    name = "numpy_gauss"
    family = "vae"
    framework = "numpy"
    Config = GaussConfig

    def init(self, data, seed):
        rng = np.random.default_rng(seed)
        self.shape = tuple(data.spec.shape)
        d = data.spec.dim
        return {"mu": rng.normal(size=d).astype(np.float64), "log_std": np.zeros(d)}

    def train_step(self, state, batch, key: np.random.Generator):
        x = batch.x.reshape(len(batch.x), -1).astype(np.float64)
        mu, log_std = state["mu"], state["log_std"]
        var = np.exp(2 * log_std)
        g_mu = -(x - mu).mean(0) / var
        g_ls = 1 - ((x - mu) ** 2).mean(0) / var
        noise = self.config.noise
        new = {"mu": mu - self.config.lr * (g_mu + noise * key.normal(size=mu.shape)),
               "log_std": log_std - self.config.lr * (g_ls + noise * key.normal(size=mu.shape))}
        nll = float((0.5 * ((x - mu) ** 2) / var + log_std).mean())
        return new, {"loss": nll}

    def sample(self, state, n, key: np.random.Generator):
        z = key.normal(size=(n, len(state["mu"])))
        return (state["mu"] + np.exp(state["log_std"]) * z).astype(np.float32).reshape(n, *self.shape)

    def save(self, state) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **state)
        return buf.getvalue()

    def load(self, blob: bytes, data):
        self.shape = tuple(data.spec.shape)
        with np.load(io.BytesIO(blob), allow_pickle=False) as f:
            return {k: f[k] for k in f.files}

    def param_count(self, state) -> int:
        return sum(v.size for v in state.values())


# -------------------------------------------------------------------------- jax


@dataclass
class JaxFlowConfig:
    width: int = 32
    lr: float = 1e-3
    sample_steps: int = 10
    # fail init unless the worker disabled JAX's GPU memory preallocation before JAX started
    require_no_prealloc: bool = False


class JaxFlow(Model):
    """Rectified flow with a one-hidden-layer MLP in plain JAX + optax (tests only)."""

    name = "jax_flow"
    family = "flow"
    framework = "jax"
    Config = JaxFlowConfig

    def _setup(self, data):
        import optax

        self.shape = tuple(data.spec.shape)
        self.dim = data.spec.dim
        self.opt = optax.adam(self.config.lr)
        self._step, self._sample = _jax_flow_functions(self.dim, self.config.lr, self.config.sample_steps)

    def init(self, data, seed):
        if self.config.require_no_prealloc and os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE") != "false":
            raise RuntimeError("XLA_PYTHON_CLIENT_PREALLOCATE is not 'false' in this worker")
        import jax

        self._setup(data)
        k1, k2 = jax.random.split(jax.random.PRNGKey(seed & 0xFFFFFFFF))
        w = self.config.width
        params = {"w1": jax.random.normal(k1, (self.dim + 1, w)) / np.sqrt(self.dim + 1),
                  "b1": jax.numpy.zeros(w),
                  "w2": jax.random.normal(k2, (w, self.dim)) / np.sqrt(w),
                  "b2": jax.numpy.zeros(self.dim)}
        return (params, self.opt.init(params))

    def train_step(self, state, batch, key):
        params, opt_state = state
        x = batch.x.reshape(batch.x.shape[0], -1)
        params, opt_state, value = self._step(params, opt_state, x, key)
        return (params, opt_state), {"loss": value}

    def sample(self, state, n, key):
        return self._sample(state[0], key, n).reshape(n, *self.shape)

    def save(self, state) -> bytes:
        import jax

        leaves = jax.tree_util.tree_leaves(state)
        buf = io.BytesIO()
        np.savez(buf, *[np.asarray(leaf) for leaf in leaves])
        return buf.getvalue()

    def load(self, blob: bytes, data):
        import jax

        template = self.init(data, 0)
        treedef = jax.tree_util.tree_structure(template)
        with np.load(io.BytesIO(blob), allow_pickle=False) as f:
            leaves = [jax.numpy.asarray(f[f"arr_{i}"]) for i in range(len(f.files))]
        return jax.tree_util.tree_unflatten(treedef, leaves)

    def param_count(self, state) -> int:
        return sum(int(np.prod(v.shape)) for v in state[0].values())


@functools.lru_cache(maxsize=None)
def _jax_flow_functions(dim: int, lr: float, sample_steps: int):
    """Jitted step and sampler, shared by every instance with these settings so a test
    that builds the model several times (run, resume) compiles once."""
    import jax
    import jax.numpy as jnp
    import optax

    opt = optax.adam(lr)

    def velocity(params, x, t):
        h = jnp.concatenate([x, t[:, None]], axis=1)
        h = jax.nn.silu(h @ params["w1"] + params["b1"])
        return h @ params["w2"] + params["b2"]

    def loss(params, x1, key):
        k0, kt = jax.random.split(key)
        x0 = jax.random.normal(k0, x1.shape)
        t = jax.random.uniform(kt, (x1.shape[0],))
        xt = x0 + t[:, None] * (x1 - x0)
        return jnp.mean((velocity(params, xt, t) - (x1 - x0)) ** 2)

    def step(params, opt_state, x1, key):
        value, grads = jax.value_and_grad(loss)(params, x1, key)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    def sample(params, key, n):
        x = jax.random.normal(key, (n, dim))
        dt = 1.0 / sample_steps
        for i in range(sample_steps):
            x = x + dt * velocity(params, x, jnp.full((n,), i * dt))
        return x

    return jax.jit(step), jax.jit(sample, static_argnums=2)


# ------------------------------------------------------- metric, features, data


@dataclass
class FaultyMetricConfig:
    fault: str = "raise"  # raise | nan | missing_headline | not_a_number | not_a_dict
    at_step: int = 0  # fires at evaluations at or after this step


class FaultyMetric(Metric):
    """A metric that breaks at ``at_step`` (tests only)."""

    name = "faulty_metric"
    direction = "lower"
    Config = FaultyMetricConfig

    def compute(self, ctx):
        cfg = self.config
        if ctx.step < cfg.at_step:
            return {"faulty_metric": 0.0}
        if cfg.fault == "raise":
            raise RuntimeError("injected failure in compute")
        if cfg.fault == "nan":
            return {"faulty_metric": float("nan")}
        if cfg.fault == "missing_headline":
            return {"something_else": 1.0}
        if cfg.fault == "not_a_number":
            return {"faulty_metric": "high"}
        return [1.0]


@dataclass
class FaultyFeaturesConfig:
    method: str = "embed"  # prepare | embed | none (the flattened data, no fault)
    fault: str = "raise"  # raise | wrong_shape
    report_lines: int = 0  # lines prepare says through self.report, as a long fit does


class FaultyFeatures(FeatureExtractor):
    """A feature space that raises, or embeds to the wrong shape (tests only)."""

    name = "faulty_features"
    Config = FaultyFeaturesConfig

    def prepare(self, train, spec, device):
        for i in range(self.config.report_lines):
            if self.report is not None:
                self.report(f"fitting, line {i + 1} of {self.config.report_lines}")
        if self.config.method == "prepare":
            raise RuntimeError("injected failure in prepare")

    def embed(self, x):
        if self.config.method == "embed":
            if self.config.fault == "wrong_shape":
                return np.zeros((len(x) + 1, 3), np.float32)
            raise RuntimeError("injected failure in embed")
        return np.ascontiguousarray(np.asarray(x, np.float32).reshape(len(x), -1))


@dataclass
class FaultyDataConfig:
    fault: str = "raise"  # raise | wrong_dtype | not_splits


class FaultyData(Dataset):
    """A dataset whose load() breaks (tests only)."""

    name = "faulty_data"
    Config = FaultyDataConfig

    def load(self):
        if self.config.fault == "raise":
            raise RuntimeError("injected failure in load")
        if self.config.fault == "not_splits":
            return "not splits"
        x = np.zeros((10, 2), np.float64)
        return DataSplits(train=x, test=x, spec=DataSpec(shape=(2,), modality="vector"))


@hookimpl
def benchbase_register_models(register):
    register(FaultyFlow)
    register(NumpyGauss)
    register(JaxFlow)


@hookimpl
def benchbase_register_metrics(register):
    register(FaultyMetric)


@hookimpl
def benchbase_register_features(register):
    register(FaultyFeatures)


@hookimpl
def benchbase_register_datasets(register):
    register(FaultyData)
