"""The checks of a model's optional capabilities (``heldout_loss``, ``denoise``,
``log_prob``, ``encode``) for ``check_model``: each is called the way a metric calls
it, on a few test examples, and must be deterministic, leave the model unchanged and
return what the contract says. ``h`` is check_model's harness (framework, device,
data, seeded keys)."""
from __future__ import annotations

from typing import Any

import numpy as np

from benchbase.testing.common import FIX_KEY, close, same
from benchbase.testing.fleets import check_fleet
from benchbase.testing.violations import Checker

# Noise levels for denoise, variance-exploding: from nearly clean to nearly pure noise.
SIGMAS = (0.002, 0.1, 1.0, 10.0, 80.0)
_CAPABILITY = 13  # the key salt of capability calls


def _unchanged(c: Checker, h: Any, model: Any, state: Any, before: np.ndarray, cap: str) -> None:
    c.require(same(h.sample(model, state, len(before)), before), f"{cap}.no_update",
              f"calling {cap} changed the model (its samples differ afterwards)",
              f"{cap} evaluates only: no optimiser step, no parameter or buffer updates (torch: "
              "@torch.no_grad() and no BatchNorm in train mode)")


def _check_heldout_loss(c: Checker, h: Any, model: Any, state: Any, n_samples: int) -> None:
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
              "heldout_loss gave two values for the same batch and key", FIX_KEY)


def _check_denoise(c: Checker, h: Any, model: Any, state: Any, n_samples: int) -> None:
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


def _on_seven_twice(c: Checker, h: Any, model: Any, state: Any, n_samples: int, cap: str, what: str,
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


def _check_log_prob(c: Checker, h: Any, model: Any, state: Any, n_samples: int) -> None:
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
              "log_prob gave two answers for the same x and key", FIX_KEY)


def _check_encode(c: Checker, h: Any, model: Any, state: Any, n_samples: int) -> None:
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


CAPABILITY_CHECKS = {"heldout_loss": _check_heldout_loss, "denoise": _check_denoise,
                      "log_prob": _check_log_prob, "encode": _check_encode, "fleet": check_fleet}
