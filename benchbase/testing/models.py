"""``check_model``: drives a model plugin the way the runner does, on tiny data, and
checks every clause of the model contract that can be checked without training it
to convergence: shapes, dtypes, finiteness, repeatability under a seed, that it
learns only from the batches the core hands it, save/load, and its capabilities."""
from __future__ import annotations

import contextlib
import numbers
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchbase.contracts import Batch
from benchbase.evaluation import floating_dtype
from benchbase.frameworks import get_framework
from benchbase.testing.capabilities import CAPABILITY_CHECKS
from benchbase.testing.common import FIX_KEY, check_declaration, label, make_config, require_framework, same
from benchbase.testing.toydata import first_n, resolve_dataset, train_data
from benchbase.testing.violations import Checker, Report

# Config fields that would let a model set its own budget; the core owns it.
BUDGET_FIELDS = frozenset({"batch_size", "epochs", "n_epochs", "num_epochs", "n_iter", "max_steps",
                           "train_steps", "iterations", "max_iter"})
_SAMPLE, _OTHER_SAMPLE = 11, 12


class _Harness:
    """One model class on one dataset: fresh instances, batches, keys, checked calls."""

    def __init__(self, c: Checker, cls: Any, cfg: Any, dataset: Any, device: str, seed: int,
                 n_train: int, batch_size: int):
        self.c, self.cls, self.cfg, self.seed = c, cls, cfg, seed
        self.splits, self.dataset = dataset
        self.spec = self.splits.spec
        self.subset = first_n(self.splits, n_train)
        self.fw = get_framework(cls.framework)
        self.device = self.fw.device(device)
        self.batch_size = batch_size
        self.k = 1
        self._draw = None
        self._fresh: list = []  # every TrainData.sample_fresh handed out, to count calls

    @property
    def fresh_calls(self) -> int:
        return sum(f.calls for f in self._fresh)

    # -- building -----------------------------------------------------------------
    def data(self):
        data = train_data(self.fw, self.device, self.splits, self.subset, self.dataset)
        self._fresh.append(data.sample_fresh)
        return data

    def new(self, seed: int):
        """A fresh instance initialised as the runner does; returns (model, state, data)."""
        model, data = self.cls(self.cfg), self.data()
        self.fw.seed_everything(seed)
        with self.c.calling("init", f"init(data, seed={seed})"):
            state = model.init(data, seed)
        return model, state, data

    def restore(self, blob: bytes):
        """What a resumed run does: a fresh instance, init, then load the checkpoint."""
        model, state, data = self.new(self.seed + 7)
        with self.c.calling("save_load", "load(blob, data)",
                            "load must rebuild the full state (parameters and optimiser) from "
                            "the bytes save returned"):
            state = model.load(blob, data)
        return model, state

    def key(self, salt: int):
        return self.fw.key(self.seed, salt, self.device)

    def drawer(self):
        """The core's own batch drawer over a private copy of the training subset; built
        once (draw(step) is a pure function of the step), so JAX compiles it once."""
        if self._draw is None:
            x = self.fw.put(self.subset.x.copy(), self.device)
            y = None if self.subset.y is None else self.fw.put(self.subset.y.copy(), self.device)
            self._draw = self.fw.drawer(x, y, self.batch_size * self.k, self.seed, self.device)
        return self._draw

    def batch(self, rows: np.ndarray, source: str = "train") -> Batch:
        x = self.subset.x if source == "train" else self.splits.test
        y = self.subset.y if source == "train" else self.splits.test_labels
        return Batch(self.fw.put(np.ascontiguousarray(x[rows]), self.device),
                     None if y is None else self.fw.put(np.ascontiguousarray(y[rows]), self.device))

    # -- checked calls --------------------------------------------------------------
    def native(self, out: Any, what: str, clause: str) -> None:
        """Arrays stay in the model's framework (and on its device) inside the plugin."""
        fw = self.cls.framework
        if fw == "torch":
            import torch

            want_dev = torch.device(self.device)
            ok = (isinstance(out, torch.Tensor) and out.device.type == want_dev.type
                  and want_dev.index in (None, out.device.index))
            want = f"a torch.Tensor on {self.device}"
        elif fw == "jax":
            import jax

            ok, want = isinstance(out, jax.Array), "a jax.Array"
        else:
            ok, want = isinstance(out, np.ndarray), "a numpy array"
        got = type(out).__name__ + (f" on {out.device}" if fw == "torch" and hasattr(out, "device") else "")
        self.c.require(ok, clause, f"{what} returned {got}; a {fw} model returns {want}",
                       f"return {fw} arrays on data.device; the core converts them (no host round trip "
                       f"inside the model)")
        dtype = str(getattr(out, "dtype", ""))
        self.c.require(floating_dtype(out) is not None, f"{clause}.dtype",
                       f"{what} returned dtype {dtype}; arrays cross the plugin boundary as floating point "
                       "(the core converts any float dtype to float32, as in a run)",
                       "return a float array (e.g. `.float()` in torch, `.astype(np.float32)`)")

    def sample(self, model: Any, state: Any, n: int, salt: int = _SAMPLE) -> np.ndarray:
        c = self.c
        with c.calling("sample", f"sample(state, n={n}, key)"):
            raw = model.sample(state, n, self.key(salt))
        self.native(raw, f"sample(state, n={n}, key)", "sample.type")
        arr = self.fw.to_numpy(raw)
        want = (n, *self.spec.shape)
        c.require(arr.shape == want, "sample.shape",
                  f"sample(state, n={n}, key) returned shape {arr.shape}; expected (n, *spec.shape) = {want}",
                  "return exactly n samples shaped like the data: reshape to (n, *data.spec.shape)")
        c.require(bool(np.isfinite(arr).all()), "sample.finite",
                  f"sample(state, n={n}, key) returned NaN or Inf",
                  "check the sampler's arithmetic (divisions by sigma or t near 0, exp overflow); the core "
                  "marks a run diverged when samples are not finite")
        return np.array(arr, copy=True)

    def step(self, model: Any, state: Any, batch: Batch, key: Any, clause: str = "train_step"):
        c = self.c
        with c.calling(clause, "train_step(state, batch, key)"):
            out = model.train_step(state, batch, key)
        c.require(isinstance(out, tuple) and len(out) == 2, "train_step.returns",
                  f"train_step returned {type(out).__name__}, not a (state, logs) pair",
                  "return `state, {'loss': loss}` (logs may be an empty dict)")
        state, logs = out
        c.require(isinstance(logs, dict) and all(isinstance(k, str) for k in logs), "train_step.logs",
                  f"train_step's logs are {type(logs).__name__} {logs!r:.80}, not a dict with str keys",
                  "return a dict of named scalar arrays, e.g. {'loss': loss.detach()}")
        with c.calling("train_step.logs", "converting the logs to scalars",
                       "every log value must be a scalar array of the model's framework (shape () or "
                       "(1,)); detach torch tensors, do not call .item() (it forces a host sync)"):
            values = self.fw.scalars(logs)
        return state, logs, values

    def scalar(self, out: Any, what: str, clause: str) -> float:
        with self.c.calling(clause, f"converting {what} to a float",
                            "return a scalar array of the model's framework"):
            arr = np.asarray(self.fw.to_numpy(out))
        self.c.require(arr.size == 1, clause, f"{what} returned shape {arr.shape}, not a scalar",
                       "average over the batch and return a scalar (shape ())")
        value = float(arr.reshape(()))
        self.c.require(np.isfinite(value), clause, f"{what} returned {value}",
                       "the held-out loss must be finite for any batch of data")
        return value


def _perturb_global_rngs(value: int, framework: str) -> None:
    """Different global RNG states in two runs that must agree: global RNG use shows."""
    random.seed(value)
    np.random.seed(value)
    if framework == "torch":
        import torch

        torch.manual_seed(value)


def _poison(data: Any, framework: str) -> None:
    """Overwrite the training data the model was initialised with by NaN (in place where
    the framework allows, and in the TrainData fields), so reading it later shows."""
    data.x_numpy[...] = np.nan
    if framework == "torch":
        import torch

        data.x.fill_(float("nan"))
        data.x = torch.full_like(data.x, float("nan"))
    elif framework == "jax":
        import jax.numpy as jnp

        data.x = jnp.full_like(data.x, jnp.nan)  # immutable: only a model that kept `data` sees it
    else:
        data.x[...] = np.nan


def check_model(model_cls: Any, dataset: Any = None, config: Any = None, *, device: str = "cpu",
                seed: int = 0, n_train: int = 64, batch_size: int = 8, steps: int = 3,
                n_samples: int = 6) -> Report:
    """Check a model plugin class against the model contract; raise ContractViolation.

    ``dataset``: "vector" (default, 2-D, no labels), "image" (1x8x8 with labels), a
    Dataset class or instance, or DataSplits. ``config``: a dict (validated like a
    suite's) or a Config instance; None uses the defaults. Keep sizes tiny: every
    clause runs in a few steps. Returns a Report of the clauses that hold.

    A model that reads its inputs from disk (samples made elsewhere) defines a
    classmethod ``conformance_config(splits, folder) -> dict`` that writes inputs
    shaped like ``splits`` into the temporary ``folder`` and returns the config
    entries that point at them; ``config`` overrides them.
    """
    c = Checker(label("model", model_cls))
    check_declaration(c, "model", model_cls)
    require_framework(model_cls.framework)
    resolved = resolve_dataset(dataset)
    with contextlib.ExitStack() as cleanup:
        if hasattr(model_cls, "conformance_config") and (config is None or isinstance(config, dict)):
            # a model that reads inputs from disk writes some for the kit's data
            folder = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="benchbase-kit-")))
            with c.calling("conformance_config", "conformance_config(splits, folder)"):
                config = {**model_cls.conformance_config(resolved[0], folder), **(config or {})}
        return _check_model(c, model_cls, make_config(c, model_cls, config), resolved, device, seed, n_train,
                            batch_size, steps, n_samples)


def _check_model(c: Checker, model_cls: Any, cfg: Any, resolved: tuple, device: str, seed: int, n_train: int,
                 batch_size: int, steps: int, n_samples: int) -> Report:
    budget_knobs = sorted(BUDGET_FIELDS & {f for f in getattr(cfg, "__dataclass_fields__", {})})
    c.require(not budget_knobs, "config.no_budget",
              f"Config has {', '.join(budget_knobs)}: a model that sets its own budget breaks the "
              "identical-budget comparison",
              "remove them; the suite's budget (batch_size, examples or steps) is the same for every "
              "model, and batches_per_step() is how a model asks for several batches per update")
    trains = bool(getattr(model_cls, "trains", True))
    for clause, reason in getattr(model_cls, "opt_outs", {}).items():
        c.opt_out(clause, reason)

    h = _Harness(c, model_cls, cfg, resolved, device, seed, n_train, batch_size)
    model, state, _ = h.new(seed)
    with c.calling("batches_per_step", "batches_per_step()"):
        k = model.batches_per_step()
    c.require(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1, "batches_per_step",
              f"batches_per_step() returned {k!r}", "return an int >= 1")
    h.k = int(k)
    with c.calling("learning_rate", "learning_rate()"):
        lr = model.learning_rate()
    c.require(lr is None or isinstance(lr, numbers.Real), "learning_rate",
              f"learning_rate() returned {type(lr).__name__}", "return the step size as a float, or None")
    with c.calling("param_count", "param_count(state)"):
        params = model.param_count(state)
    c.require(isinstance(params, (int, np.integer)) and params >= (1 if trains else 0), "param_count",
              f"param_count(state) returned {params!r}",
              "return how many numbers the model holds to generate: trained parameters, or the training "
              "values a non-parametric model keeps (an int; > 0 for a model that trains)")

    at_init = h.sample(model, state, n_samples)
    h.sample(model, state, 1)
    c.require(same(h.sample(model, state, n_samples), at_init), "sample.deterministic",
              "two calls of sample(state, n, key) with equal keys gave different samples", FIX_KEY)
    c.require(not same(h.sample(model, state, n_samples, _OTHER_SAMPLE), at_init), "sample.uses_key",
              "sample(state, n, key) gave the same samples for two different keys",
              "draw the sampler's noise from `key`: the core hands a fixed key per run, so samples "
              "along training are comparable, and different runs differ")

    if trains:
        state = _check_training(c, h, model, state, at_init, steps, n_samples)
    else:
        c.skip("train_step", "trains=False: the core never calls train_step")
        twin, twin_state, _ = h.new(h.seed)
        c.require(same(h.sample(twin, twin_state, n_samples), at_init), "init.deterministic",
                  "two instances initialised with the same seed sample differently", FIX_KEY)
        state = _check_replay(c, h, model, state, at_init, n_samples)
    c.require(model_cls.family == "oracle" or h.fresh_calls == 0, "fresh_data.oracles_only",
              f"a model of family '{model_cls.family}' called data.sample_fresh {h.fresh_calls} time(s)",
              "fresh draws of the true distribution are for oracles (family 'oracle'), which calibrate "
              "metrics; any other model learns from the training subset only")

    blob = _check_save(c, model, state)
    restored, restored_state = h.restore(blob)
    reference = h.sample(model, state, n_samples)
    c.require(same(h.sample(restored, restored_state, n_samples), reference), "save_load.samples",
              "a model restored from save() samples differently from the saved one",
              "save every parameter and buffer; load them in load(blob, data) (torch: state_dict with "
              "torch.load(..., weights_only=True); JAX: flax.serialization)")
    if trains:
        batch, key = h.drawer()(steps + 5)
        state, _, _ = h.step(model, state, batch, key)
        batch, key = h.drawer()(steps + 5)
        restored_state, _, _ = h.step(restored, restored_state, batch, key)
        c.require(same(h.sample(restored, restored_state, n_samples), h.sample(model, state, n_samples)),
                  "save_load.resume",
                  "one more train_step after save/load gave a different model than without the round trip",
                  "save the optimiser state (and step counters, EMA weights...) too: a resumed run "
                  "must equal an uninterrupted one")

    for cap in sorted(getattr(model_cls, "capabilities", ())):
        CAPABILITY_CHECKS[cap](c, h, model, state, n_samples)
    if not getattr(model_cls, "capabilities", ()):
        c.skip("capabilities", "none declared")
    return c.report


def _check_training(c: Checker, h: _Harness, model: Any, state: Any, at_init: np.ndarray, steps: int,
                    n_samples: int) -> Any:
    fw_name = h.cls.framework
    draw = h.drawer()
    _perturb_global_rngs(1, fw_name)
    for s in range(steps):
        batch, key = draw(s)
        state, _, values = h.step(model, state, batch, key)
        c.require(all(np.isfinite(v) for v in values.values()), "train_step.finite",
                  f"train_step logged non-finite values at step {s}: {values}",
                  "check the loss on a fresh model (learning rate, log of 0, division by a tiny sigma)")
    trained = h.sample(model, state, n_samples)
    c.require(not same(trained, at_init), "train_step.updates",
              f"after {steps} train_step calls the model samples exactly as at init",
              "update the parameters in train_step and return the new state (JAX: return the new "
              "pytree; torch: step the optimiser); a model that never trains sets trains=False")

    # A twin from the same seed, trained on the same batches after the data it was
    # initialised with was overwritten with NaN, and with other global RNG states.
    twin, twin_state, twin_data = h.new(h.seed)
    c.require(same(h.sample(twin, twin_state, n_samples), at_init), "init.deterministic",
              "two instances initialised with the same seed sample differently", FIX_KEY)
    _poison(twin_data, fw_name)
    _perturb_global_rngs(2, fw_name)
    draw = h.drawer()
    finite = True
    for s in range(steps):
        batch, key = draw(s)
        twin_state, _, values = h.step(twin, twin_state, batch, key)
        finite = finite and all(np.isfinite(v) for v in values.values())
    with c.calling("train_step.only_batches", "sample after training on poisoned TrainData"):
        twin_raw = h.fw.to_numpy(twin.sample(twin_state, n_samples, h.key(_SAMPLE)))
    c.require(finite and bool(np.isfinite(twin_raw).all()), "train_step.only_batches",
              "after init the kit overwrote the TrainData the model was given with NaN; training on "
              "the core's batches then gave NaN, so the model reads data.x / data.x_numpy outside "
              "the batches",
              "use only batch.x (and batch.y) in train_step and sample: the core draws every batch, so "
              "every model spends the same examples budget. Keep what you need from the data at init "
              "(shapes, statistics) in the state, not a reference to the data")
    c.require(same(twin_raw, trained), "train_step.deterministic",
              "two runs with the same seed and the same batches and keys ended with different models",
              FIX_KEY)
    c.require(h.fresh_calls == 0, "train_step.no_fresh_data",
              f"the model called data.sample_fresh {h.fresh_calls} time(s)",
              "sample_fresh is for oracles that do not train; a trained model that draws fresh data "
              "learns from examples outside the budget")

    other, other_state, _ = h.new(h.seed + 1)
    c.require(not same(h.sample(other, other_state, n_samples), at_init), "init.uses_seed",
              "init with two different seeds gave identical models",
              "initialise the parameters from the `seed` argument (torch: build under "
              "torch.random.fork_rng + manual_seed(seed); JAX: jax.random.PRNGKey(seed))")
    _check_uses_every_chunk(c, h, model, state, n_samples)
    return state


def _check_replay(c: Checker, h: _Harness, model: Any, state: Any, at_init: np.ndarray, n_samples: int) -> Any:
    """A model that replays samples made elsewhere: its steps, and seeking between them."""
    with c.calling("eval_steps", "eval_steps()"):
        steps = model.eval_steps()
    if steps is None:
        c.skip("eval_steps", "evaluated once, at step 0")
        return state
    c.require(isinstance(steps, list) and steps and steps == sorted(set(steps))
              and all(isinstance(s, (int, np.integer)) and s >= 0 for s in steps), "eval_steps",
              f"eval_steps() returned {steps!r}", "return the training steps with samples: a sorted, "
              "non-empty list of distinct ints >= 0")
    with c.calling("seek", f"seek(state, {steps[-1]})"):
        last = model.seek(state, steps[-1])
    h.sample(model, last, n_samples)
    with c.calling("seek", f"seek(state, {steps[0]})"):
        first = model.seek(last, steps[0])
    c.require(same(h.sample(model, first, n_samples), at_init), "seek.first",
              f"after init the model samples differently than after seek(state, {steps[0]}), its first step",
              "start init at the first of eval_steps(), and make seek(state, step) depend on the step only")
    return last


def _check_uses_every_chunk(c: Checker, h: _Harness, model: Any, state: Any, n_samples: int) -> None:
    """Changing any one of the k batches of a step must change the model."""
    blob = model.save(state)
    n, size = len(h.subset.x), h.batch_size
    per_step = size * h.k
    rows = np.arange(per_step) % max(n // 2, 1)
    follow = h.batch(np.arange(per_step) % n)

    def two_steps(first_rows: np.ndarray) -> tuple:
        twin, twin_state = h.restore(blob)
        twin_state, _, logs1 = h.step(twin, twin_state, h.batch(first_rows), h.key(50))
        twin_state, _, logs2 = h.step(twin, twin_state, follow, h.key(51))
        return logs1, logs2, h.sample(twin, twin_state, n_samples)

    a1, a2, sa = two_steps(rows)
    for j in range(h.k):
        changed = rows.copy()
        changed[j * size:(j + 1) * size] = n // 2 + np.arange(size) % max(n - n // 2, 1)
        b1, b2, sb = two_steps(changed)
        what = "the batch" if h.k == 1 else (f"rows {j * size}:{(j + 1) * size} of the batch (batch "
                                             f"{j + 1} of the {h.k} that batches_per_step() asks for)")
        c.require(not (same(sa, sb) and a1 == b1 and a2 == b2), "train_step.uses_batch",
                  f"train_step gave the same model whatever {what} held",
                  "learn from batch.x: it holds batches_per_step() * batch_size rows that the core drew "
                  "for this step; split it with x.reshape(k, -1, ...) or chunk when k > 1")


def _check_save(c: Checker, model: Any, state: Any) -> bytes:
    with c.calling("save", "save(state)"):
        blob = model.save(state)
    c.require(isinstance(blob, bytes), "save.bytes", f"save(state) returned {type(blob).__name__}",
              "return bytes (e.g. a torch.save or flax.serialization.to_bytes buffer)")
    return blob
