"""Score generated samples with benchbase's metrics, whoever trained the model.

    from benchbase.scoring import score_samples

    scores = score_samples(samples, dataset="digits", n=512, metrics=["mem_ratio", "fd"])
    scores.value("fd", ref="test")
    scores.chance("mem_ratio")     # (mean, sd): what held-out data scores; print(scores) shows both

Samples (``(N, *shape)`` floating-point arrays, in the dataset's value range) are
compared with a dataset's training subset and test split, chosen exactly as a suite
chooses them (registry name, ``n``, subset options), or with arrays you give. Values
come from the same code a run uses (:class:`benchbase.evaluation.Scorer`): for the
same samples, references, feature space, metric configs, ``seed``, ``step`` and
metric device they are bit-identical to what a run stores. Give ``results_dir`` to
share a results directory's feature cache.

Prepare once and score many sample sets (e.g. every checkpoint of a model) with
:class:`SampleScorer`.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Union

import numpy as np

from benchbase.contracts import DataSpec, unmet_requirements
from benchbase.errors import BenchbaseInputError
from benchbase.scores import Scores
from benchbase.specs import FeatureRef, MetricRef
from benchbase.suite_checks import PointsNeeded, SetSize, too_few

DEFAULT_METRICS = ("mem_ratio", "fd", "swd")

#: a metric by name, or with its config: ``"fd"`` or ``{"name": "swd", "config": {"n_projections": 64}}``
MetricRequest = Union[str, Mapping[str, Any]]


@dataclass(frozen=True)
class DatasetReferences:
    """A registered dataset's training subset and test split, chosen as a suite chooses
    them, with the source of their chance levels: everything of a scorer but the
    feature space and the metrics, so samples can be checked against ``spec`` before
    a learned space is fitted."""

    references: Any  # benchbase.evaluation.References
    chance: Any  # benchbase.evaluation.ChanceSource

    @property
    def spec(self) -> DataSpec:
        return self.references.spec


def dataset_references(dataset: str, *, n: int | None = None, config: Mapping | None = None,
                       subset: Mapping | None = None, n_test: int | None = None,
                       registry: Any = None) -> DatasetReferences:
    """The references of :meth:`SampleScorer.for_dataset` (same arguments)."""
    from benchbase.data import DataCatalog, fresh_sampler, select_subset
    from benchbase.specs import parse_split
    from benchbase.evaluation import ChanceSource, References

    n, n_test = _count("n", n, "the whole train split"), _count("n_test", n_test, "the whole test split")
    registry = registry or _registry()
    reg = registry.get("dataset", dataset)
    cfg, plain = _config(reg, dict(config or {}), "dataset.config")
    data, splits = DataCatalog.shared().load(reg, cfg, plain)
    options = dict(subset or {})
    unknown = sorted(set(options) - {"mode", "seed", "split", "dedup"})
    if unknown:
        raise BenchbaseInputError(f"unknown subset option(s) {', '.join(unknown)}; valid: mode, seed, "
                                  "split, dedup")
    split = options.get("split")
    try:
        if isinstance(split, str):
            split = list(parse_split(split))
        elif split is not None:
            split = list(parse_split(" of ".join(map(str, split)) if isinstance(split, (list, tuple)) else split))
    except (ValueError, TypeError) as exc:
        raise BenchbaseInputError(f"--subset {exc}") from None
    mode = options.get("mode", "first")
    chosen = select_subset(splits, {"n": n, "mode": mode, "seed": options.get("seed", 0) if mode == "random"
                                    else 0, "split": split, "dedup": options.get("dedup")})
    references = References.of_run(chosen, splits, n_test)
    sample_fresh, source = fresh_sampler(data, splits, n_test)
    # chance levels measured as a run measures them, so they equal a run's stored ones
    chance = ChanceSource(dataset={"name": reg.name, "version": reg.version, "config": plain},
                          held_out=splits.test[len(references.test):],
                          exact_sampler=sample_fresh if source == "true_sampler" else None)
    return DatasetReferences(references, chance)


def check_samples(samples: Any, spec: DataSpec, *, check_range: bool = True) -> np.ndarray:
    """``samples`` as contiguous float32 ``(N, *spec.shape)``, or a BenchbaseInputError
    that says what is wrong with them (dtype, shape, fewer than 2, NaN or Inf, values far
    outside ``spec.value_range``: see :func:`benchbase.sample_files.range_problem`).
    ``check_range=False`` where no range was declared (arrays scored without a spec)."""
    from benchbase.sample_files import range_problem

    x = _floating("samples", samples)
    if x.shape[1:] != tuple(spec.shape):
        raise BenchbaseInputError(f"samples are {x.shape[1:]} each, but the reference data is "
                                  f"{tuple(spec.shape)}")
    if len(x) < 2:
        raise BenchbaseInputError(f"{len(x)} sample(s): metrics need at least 2")
    _finite("samples", x)
    problem = range_problem(float(x.min()), float(x.max()), spec) if check_range else None
    if problem:
        raise BenchbaseInputError(f"the samples' {problem}")
    return x


@dataclass
class SampleScorer:
    """References, feature space and metrics, prepared once (references embedded, or
    read from the feature cache); :meth:`score` then scores any number of sample sets.

    Build it with :meth:`for_dataset` or :meth:`for_arrays`.
    """

    scorer: Any  # benchbase.evaluation.Scorer
    metrics: tuple[MetricRef, ...] = ()
    points_needed: tuple[PointsNeeded, ...] = ()  # checked against every sample set scored
    check_range: bool = True  # refuse samples far outside spec.value_range (False: no range was declared)

    @classmethod
    def for_dataset(cls, dataset: str, *, n: int | None = None, config: Mapping | None = None,
                    subset: Mapping | None = None, n_test: int | None = None,
                    metrics: Iterable[MetricRequest] | None = DEFAULT_METRICS, features: str | Mapping = "pixels",
                    device: str = "cpu", results_dir: str | os.PathLike | None = None,
                    registry: Any = None) -> "SampleScorer":
        """Against a registered dataset: its training subset of size ``n`` (None: the
        whole train split), chosen by ``subset`` (``mode``: first | random, ``seed``,
        ``split``: "k of K", ``dedup``) as a suite's ``datasets[i].subset`` chooses
        it, and its test split (the first ``n_test`` points; None: all)."""
        registry = registry or _registry()
        references = dataset_references(dataset, n=n, config=config, subset=subset, n_test=n_test,
                                        registry=registry)
        return cls.for_references(references, metrics=metrics, features=features, device=device,
                                  results_dir=results_dir, registry=registry)

    @classmethod
    def for_references(cls, references: "DatasetReferences", *,
                       metrics: Iterable[MetricRequest] | None = DEFAULT_METRICS,
                       features: str | Mapping = "pixels", device: str = "cpu",
                       results_dir: str | os.PathLike | None = None, registry: Any = None) -> "SampleScorer":
        """Against references :func:`dataset_references` chose: read their ``spec``
        and check the samples (:func:`check_samples`) first, since preparing a
        learned feature space fits it (minutes on a CPU)."""
        return cls._build(references.references, metrics, features, device, results_dir, registry,
                          references.chance)

    @classmethod
    def for_arrays(cls, train: np.ndarray, test: np.ndarray, *, train_labels: np.ndarray | None = None,
                   test_labels: np.ndarray | None = None, spec: DataSpec | None = None,
                   n_test: int | None = None, metrics: Iterable[MetricRequest] | None = DEFAULT_METRICS,
                   features: str | Mapping = "pixels", device: str = "cpu",
                   results_dir: str | os.PathLike | None = None, registry: Any = None) -> "SampleScorer":
        """Against arrays you give, ``(N, *shape)`` floating point (images ``(N, C, H, W)``
        in [-1, 1]), of which the first ``n_test`` test points are used (None: all).
        ``spec`` defaults to the arrays' shape, image modality for 4-D arrays, the
        labels' class count and value range (-1, 1); samples are checked against its
        value range only when ``spec`` is given."""
        from benchbase.evaluation import References

        n_test = _count("n_test", n_test, "the whole test split")
        train = _finite("train", _floating("train", train))
        test = _finite("test", _floating("test", test))
        unseen = test[n_test:] if n_test else test[:0]  # no metric sees them: the chance levels' pool
        if n_test:
            test = test[:n_test]
            test_labels = None if test_labels is None else test_labels[:n_test]
        if train.shape[1:] != test.shape[1:]:
            raise BenchbaseInputError(f"train examples are {train.shape[1:]} but test examples are {test.shape[1:]}")
        ytr, yte = _labels("train_labels", train_labels, len(train)), _labels("test_labels", test_labels, len(test))
        if (ytr is None) != (yte is None):
            raise BenchbaseInputError("give labels for both train and test, or for neither")
        declared = spec is not None
        if spec is None:
            classes = 0 if ytr is None else int(max(ytr.max(initial=-1), yte.max(initial=-1))) + 1
            spec = DataSpec(shape=tuple(train.shape[1:]), modality="image" if train.ndim == 4 else "vector",
                            num_classes=classes)
        elif tuple(spec.shape) != train.shape[1:]:
            raise BenchbaseInputError(f"spec.shape is {tuple(spec.shape)} but the arrays hold {train.shape[1:]}")
        from benchbase.evaluation import ChanceSource

        # chance levels as for a registered dataset: from the test points past n_test, which no
        # metric sees, else from halves of the scored ones (benchbase.chance)
        chance = ChanceSource(dataset={"name": "<arrays>"}, held_out=unseen)
        return cls._build(References(train=train, test=test, spec=spec, train_labels=ytr, test_labels=yte),
                          metrics, features, device, results_dir, registry, chance, check_range=declared)

    @classmethod
    def _build(cls, references, metrics, features, device, results_dir, registry, chance=None,
               check_range: bool = True) -> "SampleScorer":
        from benchbase.evaluation import FeatureCache, Scorer

        device = _metric_device(device)
        results_dir = check_results_dir(results_dir)
        registry = registry or _registry()
        feature = _feature_entry(registry, features, references.spec)
        entries = _metric_entries(registry, metrics, references.spec)
        needs = _points_needed(registry, entries)
        _check_set_sizes(needs, {"train": len(references.train), "test": len(references.test)})
        cache = FeatureCache(os.path.join(os.fspath(results_dir), "cache") if results_dir is not None else None)
        # a learned space's fit (copy_descriptor: minutes on a CPU) says how it goes on stderr
        return cls(Scorer(references, feature, entries, registry, device, cache, chance,
                          report=_say), entries, needs, check_range)

    @property
    def references(self):
        return self.scorer.references

    def score(self, samples: np.ndarray, *, step: int = 0, seed: int = 0) -> Scores:
        """Score ``samples`` (``(N, *spec.shape)``, floating point, finite). What metrics
        draw at random (kid subsets, bootstrap intervals, subsamples of sets over
        ``max_points``) is drawn from ``seed`` and ``step``: pass a run's seed and
        evaluation step to reproduce its values. swd's directions come from its own
        config seed, fixed across runs and steps so its values compare."""
        step, seed = _stored_integer("step", step), _stored_integer("seed", seed)
        x = check_samples(samples, self.references.spec, check_range=self.check_range)
        _check_set_sizes(self.points_needed, {"samples": len(x)})
        rows = self.scorer.score(x, step=step, seed=seed)
        ref = self.references
        return Scores(tuple(rows), self.scorer.feature_space, len(x), len(ref.train), len(ref.test),
                      ref.train_hash, step, seed)


def score_samples(samples: np.ndarray, dataset: str | None = None, *, n: int | None = None,
                  config: Mapping | None = None, subset: Mapping | None = None, n_test: int | None = None,
                  train: np.ndarray | None = None, test: np.ndarray | None = None,
                  train_labels: np.ndarray | None = None, test_labels: np.ndarray | None = None,
                  spec: DataSpec | None = None, metrics: Iterable[MetricRequest] | None = DEFAULT_METRICS,
                  features: str | Mapping = "pixels", step: int = 0, seed: int = 0, device: str = "cpu",
                  results_dir: str | os.PathLike | None = None, registry: Any = None) -> Scores:
    """Score one sample set against a registered ``dataset`` (with ``n``, ``config``,
    ``subset``, ``n_test``) or against ``train``/``test`` arrays. See
    :meth:`SampleScorer.for_dataset`, :meth:`SampleScorer.for_arrays` and
    :meth:`SampleScorer.score`."""
    common = dict(metrics=metrics, features=features, device=device, results_dir=results_dir, registry=registry)
    if dataset is not None:
        if train is not None or test is not None:
            raise BenchbaseInputError("give a dataset name or train/test arrays, not both")
        scorer = SampleScorer.for_dataset(dataset, n=n, config=config, subset=subset, n_test=n_test, **common)
    elif train is not None and test is not None:
        scorer = SampleScorer.for_arrays(train, test, train_labels=train_labels, test_labels=test_labels,
                                         spec=spec, n_test=n_test, **common)
    else:
        raise BenchbaseInputError("give a dataset name, or both train and test arrays")
    return scorer.score(samples, step=step, seed=seed)


# ------------------------------------------------------------------------ pieces


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _registry():
    from benchbase.plugins import build_registry

    return build_registry()


def check_results_dir(results_dir: str | os.PathLike | None, option: str = "results_dir") -> str | None:
    """A results directory whose feature cache to share (None: none): a file there, or
    above it, would surface as an OS error from deep in the cache."""
    if results_dir is None:
        return None
    path = Path(os.fspath(results_dir))
    if not str(results_dir).strip():
        raise BenchbaseInputError(f"{option} is empty, which would be the current directory; name a results "
                                  "directory")
    blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        where = "is a file" if blocker == path else f"{blocker} is a file"
        raise BenchbaseInputError(f"{option} {results_dir}: {where}; name a results directory (its feature "
                                  f"cache is shared), or leave {option} out")
    return os.fspath(results_dir)


def _metric_device(device: Any) -> str:
    """A device the metrics can use, refused as ``benchbase score --device`` refuses it:
    an unknown name or a GPU this machine lacks (it would score on the CPU, or fail in a metric)."""
    from benchbase.devices import check_devices, metric_device_problem

    problem = metric_device_problem(device)
    if problem:
        raise BenchbaseInputError(f"device: {problem}")
    check_devices("benchbase.scoring", device, {"name": "local"})
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _whole(value: Any) -> bool:
    """An int, or a float with no fraction (64.0); True, 1.5 and "64" are mistakes."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) or \
        isinstance(value, (float, np.floating)) and float(value).is_integer()


def _stored_integer(what: str, value: Any) -> int:
    """A step or seed as a run stores it: a whole number from 0 to 2^63-1 (SQLite's
    integers), so scores made here compare with a run's; 1.5 or True is a mistake."""
    if not _whole(value) or not 0 <= int(value) < 2 ** 63:
        raise BenchbaseInputError(f"{what} must be a whole number from 0 to 2^63-1, got {value!r}")
    return int(value)


def _count(what: str, value: Any, none: str) -> int | None:
    """``n`` or ``n_test`` as ``benchbase score`` takes them: a whole number >= 1, or None
    for all (0 or a negative count would slice from the end, and did)."""
    if value is not None and (not _whole(value) or int(value) < 1):
        raise BenchbaseInputError(f"{what} must be a whole number >= 1 (None: {none}), got {value!r}")
    return None if value is None else int(value)


def _floating(what: str, a: Any) -> np.ndarray:
    from benchbase.evaluation import floating_dtype

    if callable(getattr(a, "detach", None)) and callable(getattr(a, "cpu", None)):
        # a torch tensor: off the autograd graph and the GPU; numpy has no bfloat16
        a = a.detach().cpu()
        a = a.float() if str(a.dtype) == "torch.bfloat16" else a
    try:
        floating = floating_dtype(a)
    except ValueError:  # numpy's "inhomogeneous shape": a ragged list
        raise BenchbaseInputError(f"{what} are a ragged sequence (items of different shapes); give one array "
                                  "(N, *example_shape)") from None
    if floating is None:
        raise BenchbaseInputError(f"{what} have dtype {getattr(a, 'dtype', type(a).__name__)}; give floating-point "
                                  "arrays (images scaled to [-1, 1])")
    arr = np.ascontiguousarray(np.asarray(a), dtype=np.float32)
    if arr.ndim < 2:
        raise BenchbaseInputError(f"{what} has shape {arr.shape}; expected (N, *example_shape)")
    return arr


def _finite(what: str, x: np.ndarray) -> np.ndarray:
    """Samples and reference arrays alike: a NaN or Inf makes every value NaN, or a
    chance level of 0 +- 0 (test all Inf) reported as if it were measured."""
    bad = ~np.isfinite(x.reshape(len(x), -1))
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise BenchbaseInputError(f"NaN or Inf in {what}: {int(bad.sum())} value(s) in {len(rows)} of {len(x)} "
                                  f"examples, the first example {int(rows[0])}")
    return x


def _labels(what: str, y: Any, n: int) -> np.ndarray | None:
    if y is None:
        return None
    y = np.asarray(y)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer) or (n and y.min() < 0):
        raise BenchbaseInputError(f"{what} must be {n} non-negative integers, got shape {y.shape} of {y.dtype}")
    return y.astype(np.int64)


def _request(item: Any, what: str) -> tuple[str, dict]:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, Mapping) and isinstance(item.get("name"), str) and set(item) <= {"name", "config"}:
        return item["name"], dict(item.get("config") or {})
    raise BenchbaseInputError(f"a {what} is a name or {{'name': ..., 'config': {{...}}}}, not {item!r}")


def _config(registered, user: dict, path: str) -> tuple[Any, dict]:
    """A plugin's config validated as a suite's is, each problem on the one error line."""
    from benchbase.structured import plugin_config
    from benchbase.errors import ConfigError

    try:
        return plugin_config(registered, user, "<score>", path)
    except ConfigError as exc:
        raise BenchbaseInputError("; ".join(f"{where}: {msg}" if where else msg
                                            for where, msg in exc.problems)) from None


def _feature_entry(registry, features: Any, spec: DataSpec) -> FeatureRef:
    name, user = _request(features, "feature space")
    reg = registry.get("feature", name)
    modalities = getattr(reg.cls, "modalities", ("vector", "image"))
    if spec.modality not in modalities:
        raise BenchbaseInputError(f"feature space '{name}' takes {', '.join(modalities)} data; these are "
                                  f"{spec.modality}")
    _, plain = _config(reg, user, "features.config")
    return FeatureRef.of(reg, plain)


def _metric_entries(registry, metrics: Iterable[Any] | None, spec: DataSpec) -> tuple[MetricRef, ...]:
    if metrics is None:  # as a left-out metrics argument
        metrics = DEFAULT_METRICS
    if isinstance(metrics, (str, Mapping)):
        metrics = [metrics]
    entries = []
    for item in metrics:
        name, user = _request(item, "metric")
        reg = registry.get("metric", name)
        missing = unmet_requirements(reg.cls, None, spec)  # no model: only samples
        if missing:
            raise BenchbaseInputError(f"metric '{name}' needs {', '.join(missing)}: it cannot score "
                                      "samples alone")
        _, plain = _config(reg, user, f"metrics.{name}.config")
        entries.append(MetricRef.of(reg, plain))
    if not entries:
        raise BenchbaseInputError("no metrics to compute")
    return tuple(entries)


def _points_needed(registry, entries: tuple[MetricRef, ...]) -> tuple[PointsNeeded, ...]:
    """What each metric needs; a value its config type allowed but the metric refuses is
    an input error here, before anything is embedded or fitted."""
    out = []
    for entry in entries:
        reg = registry.get("metric", entry.name)
        cfg, _ = _config(reg, dict(entry.config), f"metrics.{entry.name}.config")
        try:
            points = int(reg.cls(cfg).min_points())
        except ValueError as exc:
            raise BenchbaseInputError(f"metrics.{entry.name}.config: {exc}") from None
        out.append(PointsNeeded(entry.name, entry.references, points))
    return tuple(out)


def _check_set_sizes(needs: tuple[PointsNeeded, ...], sizes: dict[str, int]) -> None:
    """Refuse a set smaller than a metric needs (``sizes``: samples/train/test -> points):
    the metric would fail on it after the references were embedded."""
    problems = too_few(list(needs), {name: SetSize(count, name, f"the {name} set holds {count} point(s)",
                                                   "give at least {need}") for name, count in sizes.items()})
    if problems:
        raise BenchbaseInputError(problems[0][1])


__all__ = ["DEFAULT_METRICS", "SampleScorer", "Scores", "score_samples"]
