"""``check_model``: drives a model plugin the way the runner does, on tiny data, and
checks every clause of the model contract that can be checked without training it
to convergence: shapes, dtypes, finiteness, repeatability under a seed, that it
learns only from the batches the core hands it, save/load, and its capabilities."""
from __future__ import annotations

import numbers
import random
from typing import Any

import numpy as np

from benchbase.contracts import Batch
from benchbase.frameworks import get_framework
from benchbase.testing.common import check_declaration, close, label, make_config, require_framework, same
from benchbase.testing.toydata import first_n, resolve_dataset, train_data
from benchbase.testing.violations import Checker, Report

# Config fields that would let a model set its own budget; the core owns it.
BUDGET_FIELDS = frozenset({"batch_size", "epochs", "n_epochs", "num_epochs", "n_iter", "max_steps",
                           "train_steps", "iterations", "max_iter"})
# Noise levels for denoise, variance-exploding: from nearly clean to nearly pure noise.
SIGMAS = (0.002, 0.1, 1.0, 10.0, 80.0)
_SAMPLE, _OTHER_SAMPLE, _CAPABILITY = 11, 12, 13

_FIX_KEY = ("draw all randomness from the `key` handed to train_step/sample (a seeded torch.Generator, "
            "a JAX PRNGKey or a numpy Generator) and the `seed` handed to init; never from global RNGs "
            "(torch.manual_seed, np.random.*, random.*), the clock or object ids")


class _Harness:
    """One model class on one dataset: fresh instances, batches, keys, checked calls."""

    def __init__(self, c: Checker, cls: Any, cfg: Any, dataset: Any, device: str, seed: int,
                 n_train: int, batch_size: int):
        self.c, self.cls, self.cfg, self.seed = c, cls, cfg, seed
        self.splits, self.dataset = resolve_dataset(dataset)
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
        self.c.require(dtype.endswith("float32"), f"{clause}.dtype",
                       f"{what} returned dtype {dtype}; data crosses the plugin boundary as float32",
                       "cast the output to float32 (e.g. `.float()` in torch, `.astype(jnp.float32)`)")

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
    """
    c = Checker(label("model", model_cls))
    check_declaration(c, "model", model_cls)
    require_framework(model_cls.framework)
    cfg = make_config(c, model_cls, config)
    budget_knobs = sorted(BUDGET_FIELDS & {f for f in getattr(cfg, "__dataclass_fields__", {})})
    c.require(not budget_knobs, "config.no_budget",
              f"Config has {', '.join(budget_knobs)}: a model that sets its own budget breaks the "
              "identical-budget comparison",
              "remove them; the suite's budget (batch_size, examples or steps) is the same for every "
              "model, and batches_per_step() is how a model asks for several batches per update")
    trains = bool(getattr(model_cls, "trains", True))
    c.require(trains or model_cls.family == "oracle", "family.trains",
              f"trains=False but family is '{model_cls.family}'",
              "only oracles skip training; a trainable model keeps trains=True")

    h = _Harness(c, model_cls, cfg, dataset, device, seed, n_train, batch_size)
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
              "return the number of trainable scalars (an int; > 0 for a model that trains)")

    at_init = h.sample(model, state, n_samples)
    h.sample(model, state, 1)
    c.require(same(h.sample(model, state, n_samples), at_init), "sample.deterministic",
              "two calls of sample(state, n, key) with equal keys gave different samples", _FIX_KEY)
    c.require(not same(h.sample(model, state, n_samples, _OTHER_SAMPLE), at_init), "sample.uses_key",
              "sample(state, n, key) gave the same samples for two different keys",
              "draw the sampler's noise from `key`: the core hands a fixed key per run, so samples "
              "along training are comparable, and different runs differ")

    if trains:
        state = _check_training(c, h, model, state, at_init, steps, n_samples)
    else:
        c.skip("train_step", "trains=False: the core never calls train_step")

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
        _CAPABILITY_CHECKS[cap](c, h, model, state, n_samples)
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
              "two instances initialised with the same seed sample differently", _FIX_KEY)
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
              _FIX_KEY)
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


def _unchanged(c: Checker, h: _Harness, model: Any, state: Any, before: np.ndarray, cap: str) -> None:
    c.require(same(h.sample(model, state, len(before)), before), f"{cap}.no_update",
              f"calling {cap} changed the model (its samples differ afterwards)",
              f"{cap} evaluates only: no optimiser step, no parameter or buffer updates (torch: "
              "@torch.no_grad() and no BatchNorm in train mode)")


def _check_heldout_loss(c: Checker, h: _Harness, model: Any, state: Any, n_samples: int) -> None:
    before = h.sample(model, state, n_samples)
    n_test = len(h.splits.test)
    values = []
    for i, rows in enumerate((np.arange(min(h.batch_size, n_test)), np.arange(min(h.batch_size, n_test)),
                              np.arange(min(5, n_test)))):
        with c.calling("heldout_loss", f"heldout_loss(state, batch of {len(rows)}, key)"):
            out = model.heldout_loss(state, h.batch(rows, "test"), h.key(_CAPABILITY))
        values.append(h.scalar(out, f"heldout_loss(state, batch of {len(rows)}, key)", "heldout_loss.scalar"))
        if i == 0:
            _unchanged(c, h, model, state, before, "heldout_loss")
    c.require(values[0] == values[1], "heldout_loss.deterministic",
              "heldout_loss gave two values for the same batch and key", _FIX_KEY)


def _check_denoise(c: Checker, h: _Harness, model: Any, state: Any, n_samples: int) -> None:
    before = h.sample(model, state, n_samples)
    clean = h.splits.test[:5]
    rng = np.random.default_rng(0)
    for sigma in SIGMAS:
        noisy = (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32)
        what = f"denoise(state, x_noisy of shape {noisy.shape}, sigma={sigma})"
        outs = []
        for x in (noisy, noisy, noisy[:1]):
            with c.calling("denoise", what, "denoise takes any sigma > 0 of the variance-exploding "
                                            "convention x_noisy = x + sigma * eps, including sigma > 1"):
                raw = model.denoise(state, h.fw.put(x, h.device), sigma)
            h.native(raw, what, "denoise.type")
            outs.append(np.array(h.fw.to_numpy(raw), copy=True))
            if len(outs) == 1 and sigma == SIGMAS[0]:
                _unchanged(c, h, model, state, before, "denoise")
        out = outs[0]
        c.require(out.shape == noisy.shape, "denoise.shape", f"{what} returned shape {out.shape}",
                  "return an estimate of the clean x with the shape of x_noisy")
        c.require(bool(np.isfinite(out).all()), "denoise.finite", f"{what} returned NaN or Inf",
                  "sigma follows the variance-exploding convention (x_noisy = x + sigma * eps, sigma "
                  "from ~0.002 to ~80): convert it to your own schedule, e.g. t = 1 / (1 + sigma) for a "
                  "rectified flow or alpha_bar = 1 / (1 + sigma^2) for a VP/DDPM model, and rescale "
                  "x_noisy accordingly")
        c.require(same(outs[1], out), "denoise.deterministic", f"{what} gave two different answers",
                  "denoise is a function of (state, x_noisy, sigma): no randomness")
        c.require(close(outs[2], out[:1]), "denoise.per_example",
                  f"{what}: row 0 denoised alone differs from row 0 denoised in the batch",
                  "denoise each example independently (no batch statistics, BatchNorm in eval mode)")


def _on_seven_twice(c: Checker, h: _Harness, model: Any, state: Any, n_samples: int, cap: str, what: str,
                    call, convert) -> list:
    """``call(x)`` on 7 test examples, twice, each result through ``convert``; the model
    must be unchanged after the first call."""
    before = h.sample(model, state, n_samples)
    x = h.fw.put(np.ascontiguousarray(h.splits.test[:7]), h.device)
    outs = []
    for _ in range(2):
        with c.calling(cap, what):
            raw = call(x)
        outs.append(convert(raw))
        if len(outs) == 1:
            _unchanged(c, h, model, state, before, cap)
    return outs


def _check_log_prob(c: Checker, h: _Harness, model: Any, state: Any, n_samples: int) -> None:
    def convert(raw):
        h.native(raw, "log_prob(state, x, key)", "log_prob.type")
        return np.array(h.fw.to_numpy(raw), copy=True)

    outs = _on_seven_twice(c, h, model, state, n_samples, "log_prob", "log_prob(state, x of 7 examples, key)",
                           lambda x: model.log_prob(state, x, h.key(_CAPABILITY)), convert)
    c.require(outs[0].shape == (7,), "log_prob.shape", f"log_prob of 7 examples returned shape {outs[0].shape}",
              "return one log-likelihood (nats) per example: shape (n,)")
    c.require(bool(np.isfinite(outs[0]).all()), "log_prob.finite", "log_prob returned NaN or Inf",
              "use log-sum-exp for mixtures and importance weights; clamp variances away from 0")
    c.require(same(outs[0], outs[1]), "log_prob.deterministic",
              "log_prob gave two answers for the same x and key", _FIX_KEY)


def _check_encode(c: Checker, h: _Harness, model: Any, state: Any, n_samples: int) -> None:
    def convert(raw):
        c.require(isinstance(raw, tuple) and len(raw) == 2, "encode.pair",
                  f"encode returned {type(raw).__name__}, not a (mean, log_var) pair",
                  "return (mean, log_var), log_var None for a deterministic encoder")
        mean, log_var = raw
        h.native(mean, "encode(state, x) mean", "encode.type")
        return (np.array(h.fw.to_numpy(mean), copy=True),
                None if log_var is None else np.array(h.fw.to_numpy(log_var), copy=True))

    codes = _on_seven_twice(c, h, model, state, n_samples, "encode", "encode(state, x of 7 examples)",
                            lambda x: model.encode(state, x), convert)
    mean, log_var = codes[0]
    c.require(mean.ndim == 2 and len(mean) == 7, "encode.shape", f"encode of 7 examples gave a mean of shape "
              f"{mean.shape}", "one latent code per example: shape (n, latent_dim)")
    c.require(log_var is None or log_var.shape == mean.shape, "encode.log_var",
              f"log_var has shape {None if log_var is None else log_var.shape}, mean {mean.shape}",
              "a diagonal Gaussian: log_var shaped like the mean (or None for a point mass)")
    c.require(bool(np.isfinite(mean).all()) and (log_var is None or bool(np.isfinite(log_var).all())),
              "encode.finite", "encode returned NaN or Inf", "clamp the log variance")
    c.require(same(codes[1][0], mean), "encode.deterministic", "encode gave two codes for the same x",
              "encode returns the encoder's distribution, not a draw from it")
    with c.calling("encode", "decode(state, z of 7 codes)"):
        out = h.fw.to_numpy(model.decode(state, h.fw.put(np.ascontiguousarray(mean, dtype=np.float32), h.device)))
    c.require(out.shape == tuple(h.splits.test[:7].shape), "encode.decode_shape",
              f"decode of 7 codes returned shape {out.shape}", "decode returns the decoder's mean in data space")


_CAPABILITY_CHECKS = {"heldout_loss": _check_heldout_loss, "denoise": _check_denoise,
                      "log_prob": _check_log_prob, "encode": _check_encode}


# Usual size knobs and the small values that keep a conformance check to a second
# (`steps`: the fitting steps of a learned feature space).
SMALL_VALUES = {"width": 32, "hidden": 32, "hidden_dim": 32, "channels": 16, "base_channels": 16,
                "res_blocks": 1, "sample_steps": 8, "num_sample_steps": 8, "timesteps": 50, "iwae_k": 4,
                "iwae_samples": 4, "steps": 50, "loglik_steps": 4}


def small_config(plugin_cls: Any) -> dict:
    """Overrides that shrink the usual size knobs a plugin's Config has (width, sample
    steps, fitting steps...) for quick checks; knobs it lacks, or already smaller, are
    left alone."""
    import dataclasses

    out = {}
    for f in dataclasses.fields(plugin_cls.Config):
        small = SMALL_VALUES.get(f.name)
        default = f.default if f.default is not dataclasses.MISSING else None
        if small is not None and isinstance(default, int) and not isinstance(default, bool) and default > small:
            out[f.name] = small
    return out
