"""What happens at an evaluation point: sample from the model with the run's fixed
noise, embed in the suite's feature space, and call every metric. Scoring (embed and
call the metrics) is one class, :class:`Scorer`, shared by the runner and the public
scoring API.

Features of the training subset and of the test split are computed once per
(dataset content hash, extractor, config, version) and cached on disk next to the
results, so a second run of a suite embeds no data again.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchbase.blame import blame, describe, expect
from benchbase.chance import (DEFAULT_DRAWS, ChanceCache, ChanceLevel, ChanceNotMeasuredWarning, ExactSampler,
                              HeldOutPoints, measure_chance)
from benchbase.contracts import Batch, DataSpec, DataSplits, EvalContext, EvalRow
from benchbase.data import Subset, content_hash
from benchbase.frameworks import SALT_EVAL, SALT_SAMPLE, mix_seed
from benchbase.specs import FeatureRef, MetricRef, RunSpec
from benchbase.structured import plugin_config


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


@dataclass
class References:
    """What generated samples are scored against: the training subset and the test
    split in data space (float32, ``(N, *spec.shape)``), with their labels.

    ``train_hash`` names the training examples (the feature cache keys on it);
    ``train_split`` is the dataset's full train split, which a learned feature space
    fits on (None: fit on ``train``). ``train_indices`` are the training examples'
    positions in that split (per-example values join across runs on them); with a
    subset holdout, ``heldout`` is the fold of the selected examples the run did not
    train on, and ``heldout_indices`` its positions."""

    train: np.ndarray
    test: np.ndarray
    spec: DataSpec
    train_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    train_hash: str = ""
    train_split: np.ndarray | None = None
    train_indices: np.ndarray | None = None
    heldout: np.ndarray | None = None
    heldout_indices: np.ndarray | None = None

    def __post_init__(self):
        if not self.train_hash:
            self.train_hash = content_hash(self.train, self.train_labels)

    @classmethod
    def of_run(cls, subset: Subset, splits: DataSplits, n_test: int | None = None) -> "References":
        """A run's references: its training subset and the first ``n_test`` test points."""
        test = splits.test if not n_test else splits.test[:n_test]
        test_y = None if splits.test_labels is None else splits.test_labels[:len(test)]
        return cls(train=subset.x, test=test, spec=splits.spec, train_labels=subset.y, test_labels=test_y,
                   train_hash=subset.content_hash, train_split=splits.train, train_indices=subset.indices,
                   heldout=subset.heldout_x, heldout_indices=subset.heldout_indices)


@dataclass
class ChanceSource:
    """Where the chance levels of memorization metrics come from (benchbase.chance): the
    dataset's exact sampler when it has one, else test points no metric sees.
    ``dataset`` (name, version, config as a run spec holds it) keys the cached level."""

    dataset: dict
    held_out: np.ndarray
    exact_sampler: Callable[[int, int], np.ndarray] | None = None


class Scorer:
    """Samples in, the rows a run stores out: embeds the references once (through the
    feature cache), then embeds each set of generated samples and calls every metric
    once per reference split. The runner's :class:`Evaluator` and the public scoring
    API (:mod:`benchbase.scoring`) both score through this class, so a value computed
    from arrays is the value a run stores for the same samples. With a
    :class:`ChanceSource`, every memorization metric's value gets its chance level
    beside it (``<metric>.chance`` and ``.chance_sd``). ``report`` hears a learned
    feature space's fit progress (``FeatureExtractor.report``)."""

    def __init__(self, references: References, features: FeatureRef, metrics: tuple[MetricRef, ...], registry,
                 device: str, cache: FeatureCache, chance: ChanceSource | None = None,
                 report: Callable[[str], None] | None = None):
        self.references, self.device, self.chance = references, device, chance
        reg = registry.get("feature", features.name)
        cfg, _ = plugin_config(reg, features.config, "<run spec>", "eval.features.config")
        with blame("feature space", features.name, "__init__"):
            self.extractor = reg.cls(cfg)
        self.feature_space = features.name
        if cache.dir is not None:
            self.extractor.cache_dir = str(cache.dir.parent)
        self.extractor.train_split = references.train_split if references.train_split is not None \
            else references.train
        self.extractor.report = report
        with blame("feature space", features.name, "prepare"):
            self.extractor.prepare(references.train, references.spec, device)
        feat_key = {"extractor": features.name, "config": features.config, "version": features.version,
                    **(self.extractor.cache_key() if hasattr(self.extractor, "cache_key") else {})}
        # frozen: metrics must not write into them, and memoised reference statistics
        # (benchbase.neighbors.ReferenceMemo) hash them once instead of at every evaluation
        self.train_f = _frozen(cache.get({**feat_key, "data": references.train_hash},
                                         lambda: self.embed(references.train)))
        self.test_hash = content_hash(references.test)
        self.test_f = _frozen(cache.get({**feat_key, "data": self.test_hash},
                                        lambda: self.embed(references.test)))
        self.feat_key = feat_key
        self.chance_cache = ChanceCache(str(cache.dir.parent) if cache.dir is not None else None)
        self.chances: dict[tuple[str, str, int, int], ChanceLevel] = {}
        self.metrics = []
        for m in metrics:
            mreg = registry.get("metric", m.name)
            mcfg, _ = plugin_config(mreg, m.config, "<run spec>", f"metrics.{m.name}")
            with blame("metric", m.name, "__init__"):
                self.metrics.append((m, mreg.cls(mcfg)))
        self.needs_model = any(r.startswith("capability:") for m, _ in self.metrics for r in m.requires)

    def embed(self, x: np.ndarray, batch: int = 4096) -> np.ndarray:
        parts = []
        for i in range(0, len(x), batch):
            with blame("feature space", self.feature_space, "embed"):
                out = self.extractor.embed(x[i:i + batch])
            expect(floating_dtype(out) is not None, "feature space", self.feature_space, "embed",
                   f"returned {describe(out)}; features must be floating point")
            parts.append(np.asarray(out, dtype=np.float32))
        out = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        expect(out.ndim == 2 and len(out) == len(x), "feature space", self.feature_space, "embed",
               f"returned shape {out.shape} for {len(x)} inputs; expected (N, d)")
        return out

    def score(self, samples: np.ndarray, step: int, seed: int, model: "ModelHandle | None" = None) -> list[EvalRow]:
        """Every metric on ``samples`` (float32, ``(N, *spec.shape)``, finite): the rows
        a run stores at evaluation ``step`` of seed ``seed`` (metrics draw their
        randomness from both). ``model`` serves metrics that need a capability."""
        if self.needs_model and model is None:
            wanting = sorted(m.name for m, _ in self.metrics
                             if any(r.startswith("capability:") for r in m.requires))
            raise ValueError(f"metric(s) {', '.join(wanting)} need the model itself (a capability), "
                             "not only its samples")
        gen_f = self.embed(samples)
        rows: list[EvalRow] = []
        for entry, metric in self.metrics:
            params = metric.params()
            for ref_name in entry.references:
                ctx = self.context(gen_f, samples, step, seed, ref_name, model)
                with blame("metric", entry.name, "compute"):
                    values = metric.compute(ctx)
                rows += _metric_rows(entry.name, values, ref_name, self.feature_space, params)
                if self.chance is not None and getattr(type(metric), "memorizes", None):
                    rows.extend(self.chance_rows(entry, metric, ref_name, len(samples), seed))
        return rows

    def context(self, gen_f: np.ndarray, samples: np.ndarray, step: int, seed: int, ref_name: str,
                model: "ModelHandle | None" = None) -> EvalContext:
        """What a metric reads: these samples against the references."""
        ref = self.references
        return EvalContext(
            gen=gen_f, train=self.train_f, test=self.test_f, samples=samples,
            train_data=ref.train, test_data=ref.test, spec=ref.spec,
            feature_space=self.feature_space, step=step, seed=seed, device=self.device,
            ref=self.train_f if ref_name == "train" else self.test_f, ref_name=ref_name,
            model=model, extractor=self.extractor,
            train_labels=ref.train_labels, test_labels=ref.test_labels, train_indices=ref.train_indices,
            heldout_data=ref.heldout, heldout_indices=ref.heldout_indices)

    def chance_rows(self, entry: MetricRef, metric: Any, ref_name: str, m: int, seed: int) -> list[EvalRow]:
        """``<metric>.chance`` and ``.chance_sd`` beside the metric's value: its chance level
        at sample size ``m`` (benchbase.chance), measured once and cached."""
        source = self.chance
        assert source is not None, "chance rows need a ChanceSource"
        slot = (entry.name, ref_name, m, seed)
        if slot not in self.chances:
            shape = self.references.spec.shape
            none = np.zeros((0, self.train_f.shape[1]), np.float32)
            ctx = self.context(none, np.zeros((0, *shape), np.float32), 0, seed, ref_name)
            exact = ExactSampler(source.exact_sampler, self.embed) if source.exact_sampler is not None else None
            held_out = exact is None and len(source.held_out) > 0
            key = {"metric": entry.name, "version": entry.version, "config": metric.params(),
                   "ref": ctx.ref_name, "m": m, "draws": DEFAULT_DRAWS,
                   "source": "true_sampler" if exact else ("held_out_test" if held_out else "test_split"),
                   "dataset": source.dataset,
                   "train": self.references.train_hash, "test": self.test_hash,
                   "held_out": content_hash(source.held_out) if held_out else None, "features": self.feat_key}

            def measure(seed: int) -> ChanceLevel:
                points = HeldOutPoints(source.held_out, self.embed(source.held_out)) if held_out else None
                return measure_chance(metric, ctx, m, DEFAULT_DRAWS, exact, points, seed)

            self.chances[slot] = self.chance_cache.get(key, measure)
            if self.chances[slot].not_measured:  # once per slot: a run evaluates many times
                warnings.warn(f"{entry.name} ({ref_name}): chance level not measured "
                              f"({self.chances[slot].not_measured}); its values get no verdict",
                              ChanceNotMeasuredWarning, stacklevel=2)
        level = self.chances[slot]
        params = {**metric.params(),
                  "chance": {**level.describe(), "min_excess": float(getattr(type(metric), "min_excess", 0.0))}}
        # a level from too small a pool (possibly cached before the rule) is stored as NaN: no verdict
        mean, sd = (math.nan, math.nan) if level.not_measured else (level.mean, level.sd)
        return [EvalRow(metric=f"{entry.name}.chance", value=mean, ref=ref_name,
                        feature_space=self.feature_space, params=params),
                EvalRow(metric=f"{entry.name}.chance_sd", value=sd, ref=ref_name,
                        feature_space=self.feature_space, params=params)]


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


def _frozen(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def floating_dtype(raw: Any) -> str | None:
    """The dtype name of a framework array when it is floating point, else None. Reads
    ``dtype`` without converting: a GPU tensor refuses an implicit copy to numpy."""
    dtype = getattr(raw, "dtype", None)
    dtype = str(np.asarray(raw).dtype if dtype is None else dtype)
    return dtype if "float" in dtype else None


def boundary_samples(raw: Any, framework: Any, expected: tuple[int, ...], model: str) -> np.ndarray:
    """Samples as they cross into the core: any floating dtype of the model's framework
    becomes float32 numpy (a numpy model may compute in float64); another dtype, or
    the wrong shape, is the fault of ``model``'s ``sample``. The conformance kit
    applies the same rule."""
    expect(floating_dtype(raw) is not None, "model", model, "sample",
           f"returned {describe(raw)}; samples must be floating point (the core converts any float dtype "
           "to float32)")
    arr = np.ascontiguousarray(framework.to_numpy(raw), dtype=np.float32)
    expect(arr.shape == tuple(expected), "model", model, "sample",
           f"returned samples of shape {arr.shape}; expected {tuple(expected)}")
    return arr


class Evaluator:
    """Built once per run; ``evaluate`` samples the model at an evaluation step and
    scores the samples with the run's :class:`Scorer`."""

    def __init__(self, spec: RunSpec, subset: Subset, splits: DataSplits, registry, framework,
                 device, cache: FeatureCache, exact_sampler: Callable[[int, int], np.ndarray] | None = None,
                 report: Callable[[str], None] | None = None):
        self.spec, self.fw, self.device = spec, framework, device
        references = References.of_run(subset, splits, spec.eval.n_test)
        dataset = spec.dataset
        chance = ChanceSource(dataset={"name": dataset.name, "version": dataset.version, "config": dataset.config},
                              held_out=splits.test[len(references.test):],  # test points no metric sees
                              exact_sampler=exact_sampler)
        self.scorer = Scorer(references, spec.eval.features, spec.metrics, registry,
                             framework.metric_device(device), cache, chance, report)

    @property
    def metrics(self) -> list:
        """(MetricRef, metric instance) pairs of the run."""
        return self.scorer.metrics

    def chance_rows(self, entry: MetricRef, metric: Any, ref_name: str) -> list[EvalRow]:
        return self.scorer.chance_rows(entry, metric, ref_name, self.spec.eval.n_samples, self.spec.seed)

    def evaluate(self, model: Any, state: Any, step: int, examples: int,
                 samples: Any = None) -> tuple[list[EvalRow], np.ndarray]:
        """The rows and kept samples of evaluation ``step``. ``samples``: drawn already
        with this run's noise (a fleet samples its members in one call); else drawn here."""
        raw = self.sample(model, state) if samples is None else samples
        return self.score(raw, model, state, step)

    def sample(self, model: Any, state: Any) -> Any:
        """The run's samples, drawn with the same noise at every evaluation."""
        spec = self.spec
        key = self.fw.key(spec.seed, SALT_SAMPLE, self.device)
        with blame("model", spec.model.name, "sample"):
            return model.sample(state, spec.eval.n_samples, key)

    def score(self, raw: Any, model: Any, state: Any, step: int) -> tuple[list[EvalRow], np.ndarray]:
        """Checks ``raw`` at the boundary and scores it through the run's :class:`Scorer`;
        ``state`` is read only by metrics that ask the model."""
        spec = self.spec
        raw = boundary_samples(raw, self.fw, (spec.eval.n_samples, *self.scorer.references.spec.shape),
                               spec.model.name)
        if not np.isfinite(raw).all():
            raise Diverged(step, "generated samples")
        handle = ModelHandle(model, state, self.fw, self.device, spec.seed, step) if self.scorer.needs_model else None
        rows = self.scorer.score(raw, step, spec.seed, handle)
        keep = raw[: spec.eval.keep_samples]
        return rows, keep
