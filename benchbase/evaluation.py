"""What happens at an evaluation point: sample from the model with the run's fixed
noise, embed in the suite's feature space, and call every metric.

Features of the training subset and of the test split are computed once per
(dataset content hash, extractor, config, version) and cached on disk next to the
results, so a second run of a suite embeds no data again.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from benchbase.blame import blame, describe, expect

from benchbase.specs import RunSpec
from benchbase.structured import plugin_config
from benchbase.contracts import Batch, DataSplits, EvalContext, EvalRow
from benchbase.data import Subset, content_hash
from benchbase.frameworks import SALT_EVAL, SALT_SAMPLE, mix_seed


class Diverged(Exception):
    """Training produced NaN/Inf (loss or samples) at ``step``."""

    def __init__(self, step: int, what: str):
        self.step, self.what = step, what
        super().__init__(f"{what} is not finite at step {step}")


class FeatureCache:
    """``.npy`` files keyed by what determines the features; writes are atomic."""

    def __init__(self, directory: str | Path | None):
        self.dir = Path(directory) / "features" if directory is not None else None
        self.hits = 0
        self.misses = 0

    def get(self, key: dict, compute: Callable[[], np.ndarray]) -> np.ndarray:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
        path = self.dir / f"{digest}.npy" if self.dir is not None else None
        if path is not None and path.exists():
            try:
                out = np.load(path, allow_pickle=False)
                self.hits += 1
                return out
            except (OSError, ValueError):
                pass  # a corrupt cache file is recomputed
        self.misses += 1
        out = np.ascontiguousarray(compute(), dtype=np.float32)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
                with os.fdopen(fd, "wb") as f:
                    np.save(f, out, allow_pickle=False)
                os.replace(tmp, path)
            except OSError:
                pass  # a cache is an optimisation, never a failure
        return out


class ModelHandle:
    """Numpy in, numpy out access to a model's capabilities, for model-aware metrics."""

    def __init__(self, model: Any, state: Any, framework: Any, device: Any, seed: int, step: int):
        self.model, self.state, self.fw, self.device = model, state, framework, device
        self.seed, self.step = seed, step
        self.capabilities = frozenset(getattr(model, "capabilities", ()))

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def heldout_loss(self, x: np.ndarray, y: np.ndarray | None = None, batch_size: int = 500,
                     salt: int = 0) -> float:
        """The training objective averaged over ``x`` (fixed noise per call)."""
        total, count = 0.0, 0
        for i, start in enumerate(range(0, len(x), batch_size)):
            xb = self.fw.put(np.ascontiguousarray(x[start:start + batch_size]), self.device)
            yb = None if y is None else self.fw.put(np.ascontiguousarray(y[start:start + batch_size]), self.device)
            key = self.fw.key(mix_seed(self.seed, SALT_EVAL, salt), i, self.device)
            loss = self.model.heldout_loss(self.state, Batch(xb, yb), key)
            n = min(batch_size, len(x) - start)
            total += float(self.fw.scalars({"loss": loss})["loss"]) * n
            count += n
        return total / max(count, 1)

    def denoise(self, x_t: np.ndarray, t: float | np.ndarray) -> np.ndarray:
        out = self.model.denoise(self.state, self.fw.put(np.ascontiguousarray(x_t, dtype=np.float32), self.device), t)
        return self.fw.to_numpy(out)

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The encoder's Gaussian (mean, log variance) per example; log variance None for
        a deterministic encoder."""
        mean, log_var = self.model.encode(self.state, self.fw.put(np.ascontiguousarray(x, dtype=np.float32),
                                                                  self.device))
        return self.fw.to_numpy(mean), None if log_var is None else self.fw.to_numpy(log_var)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """The decoder's mean G(z), in data space."""
        return self.fw.to_numpy(self.model.decode(self.state, self.fw.put(np.ascontiguousarray(z, dtype=np.float32),
                                                                          self.device)))

    def log_prob(self, x: np.ndarray, salt: int = 0) -> np.ndarray:
        key = self.fw.key(mix_seed(self.seed, SALT_EVAL, salt), 0, self.device)
        out = self.model.log_prob(self.state, self.fw.put(np.ascontiguousarray(x, dtype=np.float32), self.device), key)
        return self.fw.to_numpy(out)


class Evaluator:
    """Built once per run; ``evaluate`` is called at every evaluation step."""

    def __init__(self, spec: RunSpec, subset: Subset, splits: DataSplits, registry, framework,
                 device, cache: FeatureCache):
        self.spec, self.subset, self.fw, self.device = spec, subset, framework, device
        self.metric_device = framework.metric_device(device)
        feat = spec.eval.features
        reg = registry.get("feature", feat.name)
        cfg, _ = plugin_config(reg, feat.config, "<run spec>", "eval.features.config")
        with blame("feature space", feat.name, "__init__"):
            self.extractor = reg.cls(cfg)
        self.feature_space = feat.name
        self.data_spec = splits.spec
        n_test = spec.eval.n_test
        self.test_x = splits.test if not n_test else splits.test[:n_test]
        self.test_y = None if splits.test_labels is None else splits.test_labels[:len(self.test_x)]
        if cache.dir is not None:
            self.extractor.cache_dir = str(cache.dir.parent)
        self.extractor.train_split = splits.train
        with blame("feature space", feat.name, "prepare"):
            self.extractor.prepare(subset.x, splits.spec, self.metric_device)
        feat_key = {"extractor": feat.name, "config": feat.config, "version": feat.version,
                    **(self.extractor.cache_key() if hasattr(self.extractor, "cache_key") else {})}
        self.train_f = cache.get({**feat_key, "data": subset.content_hash}, lambda: self._embed(subset.x))
        self.test_f = cache.get({**feat_key, "data": content_hash(self.test_x)}, lambda: self._embed(self.test_x))
        self.metrics = []
        for m in spec.metrics:
            mreg = registry.get("metric", m.name)
            mcfg, _ = plugin_config(mreg, m.config, "<run spec>", f"metrics.{m.name}")
            with blame("metric", m.name, "__init__"):
                self.metrics.append((m, mreg.cls(mcfg)))
        self.needs_model = any(r.startswith("capability:") for m, _ in self.metrics for r in m.requires)

    def _embed(self, x: np.ndarray, batch: int = 4096) -> np.ndarray:
        with blame("feature space", self.feature_space, "embed"):
            parts = [np.asarray(self.extractor.embed(x[i:i + batch]), dtype=np.float32)
                     for i in range(0, len(x), batch)]
            out = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        expect(out.ndim == 2 and len(out) == len(x), "feature space", self.feature_space, "embed",
               f"returned shape {out.shape} for {len(x)} inputs; expected (N, d)")
        return out

    def evaluate(self, model: Any, state: Any, step: int, examples: int) -> tuple[list[EvalRow], np.ndarray]:
        spec = self.spec
        key = self.fw.key(spec.seed, SALT_SAMPLE, self.device)  # same noise at every eval
        with blame("model", spec.model.name, "sample"):
            raw = self.fw.to_numpy(model.sample(state, spec.eval.n_samples, key))
        expect(isinstance(raw, np.ndarray) and raw.dtype.kind in "fiu", "model", spec.model.name, "sample",
               f"returned {describe(raw)}; expected an array of numbers")
        expected = (spec.eval.n_samples, *self.data_spec.shape)
        expect(raw.shape == expected, "model", spec.model.name, "sample",
               f"returned samples of shape {raw.shape}; expected {expected}")
        if not np.isfinite(raw).all():
            raise Diverged(step, "generated samples")
        gen_f = self._embed(raw)
        handle = ModelHandle(model, state, self.fw, self.device, spec.seed, step) if self.needs_model else None
        rows: list[EvalRow] = []
        for entry, metric in self.metrics:
            params = metric.params()
            for ref_name in entry.references:
                ctx = EvalContext(
                    gen=gen_f, train=self.train_f, test=self.test_f, samples=raw,
                    train_data=self.subset.x, test_data=self.test_x, spec=self.data_spec,
                    feature_space=self.feature_space, step=step, seed=spec.seed,
                    device=self.metric_device,
                    ref=self.train_f if ref_name == "train" else self.test_f, ref_name=ref_name,
                    model=handle, extractor=self.extractor,
                    train_labels=self.subset.y, test_labels=self.test_y, train_indices=self.subset.indices,
                    heldout_data=self.subset.heldout_x, heldout_indices=self.subset.heldout_indices)
                with blame("metric", entry.name, "compute"):
                    values = metric.compute(ctx)
                rows += _metric_rows(entry.name, values, ref_name, self.feature_space, params)
        keep = raw[: spec.eval.keep_samples]
        return rows, keep


def _metric_rows(name: str, values: Any, ref: str, feature_space: str, params: dict) -> list[EvalRow]:
    """A metric's ``compute`` result as rows: a mapping with its headline value ``name``,
    every value a number (NaN is a value: stored as missing)."""
    expect(isinstance(values, Mapping), "metric", name, "compute",
           f"returned {describe(values)}; expected a dict of values")
    expect(name in values, "metric", name, "compute",
           f"returned {sorted(map(str, values))} without its headline value '{name}'")
    rows = []
    for key, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            expect(False, "metric", name, "compute", f"returned {describe(value)} for '{key}'; expected a number")
        rows.append(EvalRow(metric=key, value=number, ref=ref, feature_space=feature_space, params=params))
    return rows
