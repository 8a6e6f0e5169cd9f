"""Suites: the YAML schema, loading with overrides, validation, and expansion to runs.

A suite is validated completely before anything trains: every problem is collected
with its file and key path (and close matches for misspelled names) and raised as
one :class:`~benchbase.errors.ConfigError`. A valid suite expands into frozen
:class:`RunSpec` objects; a run's id is the hash of everything that changes its
numbers (not the suite name, the device or display labels).
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchbase.contracts import volatile_fields
from benchbase.errors import (BenchbaseInputError, ConfigError, MissingDataError, UnknownPluginError,
                              list_choices, suggest)

# --------------------------------------------------------------------------- schema


@dataclass
class PluginEntry:
    """A plugin reference: ``name``, an optional display ``label`` and its ``config``."""

    name: str = MISSING
    label: Optional[str] = None
    config: Dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelEntry(PluginEntry):
    framework: Optional[str] = None  # torch | jax | numpy; needed when a name has several


@dataclass
class SubsetEntry:
    mode: str = "first"  # first: the first n (the seed paper's protocol); random: n at random
    seed: int = 0  # for mode=random
    split: Optional[str] = None  # "k of K": the k-th of K disjoint parts of the train split
    dedup: Optional[float] = None  # drop near-duplicates above this correlation first
    holdout: Optional[str] = None  # "k of K": train on the n chosen examples without their k-th of K folds


@dataclass
class DatasetEntry(PluginEntry):
    n: Optional[int] = None  # training subset size; None: the whole train split
    subset: SubsetEntry = field(default_factory=SubsetEntry)
    # per-dataset metric parameters, e.g. {mem_ratio: {threshold: 0.2}}
    metric_config: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    # per-dataset model hyperparameters by model label (or name), e.g. {wae_gan: {latent_dim: 2}}
    model_config: Dict[str, Dict[str, Any]] = field(default_factory=dict)


@dataclass
class MetricEntry(PluginEntry):
    optional: bool = False  # skip models/datasets that lack what the metric requires


@dataclass
class FeatureEntry(PluginEntry):
    name: str = "pixels"


@dataclass
class ExecutorEntry(PluginEntry):
    name: str = "local"


@dataclass
class BudgetEntry:
    """Identical for every model: counted in examples drawn from the training subset."""

    examples: Optional[float] = None
    steps: Optional[int] = None  # shorthand: examples = steps * batch_size
    batch_size: int = 128


@dataclass
class EvalEntry:
    schedule: str = "log"  # log | linear | list
    points: int = 8  # evaluation points (log/linear), the final step always included
    first: Optional[int] = None  # first log-spaced step; default total/200
    steps: List[int] = field(default_factory=list)  # for schedule=list
    at_init: bool = False  # also evaluate the untrained model (step 0)
    n_samples: int = 1000  # generated samples per evaluation
    n_test: Optional[int] = None  # cap on test points used by metrics (None: all)
    keep_samples: int = 64  # generated samples stored per evaluation (for plots, reports)
    features: FeatureEntry = field(default_factory=FeatureEntry)


@dataclass
class LeaderboardEntry:
    primary: Optional[str] = None  # metric used for the rank column (default: first metric)
    metrics: List[str] = field(default_factory=list)  # columns (default: every metric)


@dataclass
class DynamicsEntry:
    """How the derived training-dynamics quantities of each run are computed
    (definitions in docs/training-dynamics.md; computed by benchbase.dynamics)."""

    criterion: str = "auto"  # headline tau_mem: copy | loss | auto (copy when stored, else loss)
    copy_metric: str = "mem_ratio"  # copy criterion: first eval where this exceeds copy_threshold
    copy_threshold: float = 0.01
    loss_metric: str = "heldout_gap"  # loss criterion reads <loss_metric>.train / <loss_metric>.test
    loss_threshold: float = 0.05  # (L_test - L_train) / L_test above its first-eval value by this
    confirm: int = 1  # later evals that must meet the criterion too (fewer if the run ends there)
    fidelity: List[str] = field(default_factory=lambda: ["swd", "fd"])  # best before tau_mem


@dataclass
class SuiteSchema:
    name: str = MISSING
    description: str = ""
    device: str = "auto"  # auto | cpu | cuda | cuda:N | tpu
    seeds: List[int] = field(default_factory=lambda: [0])
    datasets: List[DatasetEntry] = field(default_factory=list)
    models: List[ModelEntry] = field(default_factory=list)
    metrics: List[MetricEntry] = field(default_factory=list)
    budget: BudgetEntry = field(default_factory=BudgetEntry)
    eval: EvalEntry = field(default_factory=EvalEntry)
    # grid over n, budget.*, model.<key>, dataset.<key>, subset.<key>: every combination
    sweep: Dict[str, List[Any]] = field(default_factory=dict)
    executor: ExecutorEntry = field(default_factory=ExecutorEntry)
    time_limit: Optional[float] = None  # seconds per run; exceeded: status timeout
    leaderboard: LeaderboardEntry = field(default_factory=LeaderboardEntry)
    dynamics: DynamicsEntry = field(default_factory=DynamicsEntry)


SWEEP_PREFIXES = ("n", "budget.", "model.", "dataset.", "subset.")
DYNAMICS_CRITERIA = ("auto", "copy", "loss")
DEVICES = ("auto", "cpu", "cuda", "tpu")

# --------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class RunSpec:
    """One training run, fully resolved. Plain data, picklable and JSON-able."""

    suite: str
    model: dict  # name, framework, family, label, config, version
    dataset: dict  # name, label, config, version
    subset: dict  # n, mode, seed, split ([k, K] or None), dedup, holdout ([k, K]; absent when unset)
    budget: dict  # examples, batch_size, batches_per_step, steps
    eval: dict  # steps, n_samples, n_test, keep_samples, features {name, config, version}
    metrics: tuple  # each: name, config, version, direction, target, references, requires
    seed: int
    sweep: dict = field(default_factory=dict)  # the grid values that made this run
    device: str = "auto"
    time_limit: Optional[float] = None

    def identity(self) -> dict:
        """What the run id hashes: everything that changes the numbers (and not where
        the data lives, display labels, the suite name or the device)."""
        def strip(d: dict | None) -> dict | None:
            if d is None:
                return None
            volatile = set(d.get("volatile", ()))
            out = {k: v for k, v in d.items() if k not in ("label", "volatile")}
            out["config"] = {k: v for k, v in d["config"].items() if k not in volatile}
            return out

        return {
            "model": strip(self.model), "dataset": strip(self.dataset), "subset": self.subset,
            "budget": self.budget, "eval": {**self.eval, "features": strip(self.eval.get("features"))},
            "metrics": list(self.metrics),
            "seed": self.seed,
        }

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=_json_default)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self), default=_json_default))

    @classmethod
    def from_dict(cls, d: dict) -> "RunSpec":
        d = dict(d)
        d["metrics"] = tuple(d["metrics"])
        return cls(**d)

    @property
    def title(self) -> str:
        extras = "".join(f" {k}={v}" for k, v in self.sweep.items() if k not in ("n",))
        return (f"{self.model['label']} · {self.dataset['label']} · n={self.subset['n']}"
                f"{extras} · seed {self.seed}")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (tuple, set, frozenset)):
        return list(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


@dataclass
class Suite:
    name: str
    source: str
    description: str
    runs: list[RunSpec]
    executor: dict
    leaderboard: dict
    resolved: dict  # the suite after overrides and defaults, for provenance
    device: str = "auto"


# --------------------------------------------------------------------------- loading


def load_suite(path: str | Path, overrides: list[str] = (), registry=None,
               device: str | None = None, check_data: bool = True, executor: str | None = None) -> Suite:
    """Load, validate and expand a suite file. Raises ConfigError naming every problem.

    ``executor`` (``--executor``) replaces the suite's executor; the suite's executor
    config is kept only if it names the same one, and ``executor.config.*`` overrides
    then apply to the chosen executor."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise BenchbaseInputError(f"{source}: no such suite file")
    try:
        raw = OmegaConf.load(path)
    except Exception as exc:  # YAML syntax
        raise ConfigError(source, [("", f"cannot parse YAML: {exc}")]) from None
    if not isinstance(raw, DictConfig):
        raise ConfigError(source, [("", "a suite must be a mapping of keys")])
    if executor is not None:
        current = raw.get("executor")
        current = current if isinstance(current, str) else (current or {}).get("name", "local")
        if current != executor:
            raw["executor"] = {"name": executor, "config": {}}
    for item in overrides:
        _apply_override(raw, item, source)
    try:
        data = OmegaConf.to_container(raw, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(source, [(getattr(exc, "full_key", "") or "", str(exc).splitlines()[0])]) from None
    if device is not None:
        data["device"] = device
    return build_suite(data, source, registry=registry, check_data=check_data)


def _apply_override(cfg: DictConfig, item: str, source: str) -> None:
    if "=" not in item:
        raise ConfigError(source, [(item, "an override must look like key.path=value "
                                          "(e.g. budget.examples=2e5)")])
    key, value = item.split("=", 1)
    try:
        parsed = OmegaConf.from_dotlist([f"v={value}"])["v"] if value != "" else ""
    except Exception as exc:
        raise ConfigError(source, [(key, f"cannot parse override value '{value}': "
                                         f"{str(exc).splitlines()[0]}")]) from None
    if isinstance(parsed, (DictConfig, ListConfig)):
        parsed = OmegaConf.to_container(parsed)
    try:
        OmegaConf.update(cfg, key.strip(), parsed, merge=False, force_add=True)
    except Exception as exc:
        raise ConfigError(source, [(key, f"cannot apply override: {exc}")]) from None


# Shorthands users write: `- mem_ratio` for `- {name: mem_ratio}`, `features: pixels`.
def _normalize(data: dict) -> dict:
    data = copy.deepcopy(data)
    for key in ("datasets", "models", "metrics"):
        items = data.get(key)
        if isinstance(items, list):
            data[key] = [{"name": it} if isinstance(it, str) else it for it in items]
    ev = data.get("eval")
    if isinstance(ev, dict) and isinstance(ev.get("features"), str):
        ev["features"] = {"name": ev["features"]}
    if isinstance(data.get("executor"), str):
        data["executor"] = {"name": data["executor"]}
    if isinstance(data.get("seeds"), int) and not isinstance(data.get("seeds"), bool):
        data["seeds"] = list(range(data["seeds"]))
    return data


def check_keys(node: Any, schema: type, path: str, problems: list) -> None:
    """Unknown keys anywhere in ``node`` against dataclass ``schema``, with suggestions."""
    if not isinstance(node, dict):
        return
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key, value in node.items():
        here = f"{path}.{key}" if path else str(key)
        if key not in fields:
            problems.append((here, f"unknown key '{key}'.{suggest(key, fields)} "
                                   f"Valid keys: {list_choices(fields)}"))
            continue
        sub = _dataclass_of(fields[key].type)
        if sub is not None and isinstance(value, dict):
            check_keys(value, sub, here, problems)
        item = _list_item_dataclass(fields[key].type)
        if item is not None and isinstance(value, list):
            for i, v in enumerate(value):
                check_keys(v, item, f"{here}[{i}]", problems)


_SCHEMAS = {c.__name__: c for c in (PluginEntry, ModelEntry, SubsetEntry, DatasetEntry, MetricEntry,
                                    FeatureEntry, ExecutorEntry, BudgetEntry, EvalEntry,
                                    LeaderboardEntry, DynamicsEntry, SuiteSchema)}


def _dataclass_of(tp: Any) -> type | None:
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp
    if isinstance(tp, str):
        return _SCHEMAS.get(tp)
    return None


def _list_item_dataclass(tp: Any) -> type | None:
    text = tp if isinstance(tp, str) else repr(tp)
    if text.startswith(("List[", "typing.List[")):
        inner = text[text.index("[") + 1:-1].rsplit(".", 1)[-1]
        return _SCHEMAS.get(inner)
    return None


def typed(data: dict, schema: type, source: str, path: str = "") -> Any:
    """Merge ``data`` into the structured schema: wrong types become ConfigErrors."""
    problems: list = []
    check_keys(data, schema, path, problems)
    if problems:
        raise ConfigError(source, problems)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), data)
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise ConfigError(source, [(_join(path, m), "required key is missing") for m in missing])
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as exc:
        key = _join(path, getattr(exc, "full_key", "") or "")
        msg = str(exc).splitlines()[0]
        raise ConfigError(source, [(key, msg)]) from None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path and key else (path or key)


# --------------------------------------------------------------------------- building


def build_suite(data: dict, source: str = "<suite>", registry=None, check_data: bool = True) -> Suite:
    """Validate a suite given as plain data and expand it into run specs."""
    from benchbase.plugins import build_registry

    registry = registry or build_registry()
    data = _normalize(data)
    schema = typed(data, SuiteSchema, source)
    problems: list[tuple[str, str]] = []
    expander = _Expander(schema, source, registry, problems, check_data)
    runs = expander.expand()
    if problems:
        raise ConfigError(source, problems)
    return Suite(
        name=schema.name, source=source, description=schema.description, runs=runs,
        executor=expander.executor, leaderboard=dataclasses.asdict(schema.leaderboard),
        resolved=OmegaConf.to_container(OmegaConf.structured(schema)), device=schema.device,
    )


def plugin_config(registered, user_config: dict, source: str, path: str) -> tuple[Any, dict]:
    """Validate a plugin's config against its Config dataclass: (instance, plain dict)."""
    cls = registered.cls.Config
    problems: list = []
    check_keys(user_config or {}, cls, path, problems)
    if problems:
        raise ConfigError(source, problems)
    obj = typed(user_config or {}, cls, source, path)
    plain = json.loads(json.dumps(dataclasses.asdict(obj), default=_json_default))
    return obj, plain


class _Expander:
    """Turns a typed suite into RunSpecs, collecting every problem on the way."""

    def __init__(self, suite: SuiteSchema, source: str, registry, problems: list, check_data: bool):
        self.s, self.source, self.reg, self.problems, self.check_data = suite, source, registry, problems, check_data
        self.executor: dict = {}
        self._hashes: dict[str, str] = {}

    def fail(self, path: str, msg: str) -> None:
        self.problems.append((path, msg))

    def lookup(self, kind: str, name: str, path: str, framework: str | None = None):
        try:
            return self.reg.get(kind, name, framework)
        except UnknownPluginError as exc:
            self.fail(path, str(exc))
            return None

    def config(self, registered, cfg: dict, path: str):
        try:
            return plugin_config(registered, cfg, self.source, path)
        except ConfigError as exc:
            self.problems.extend(exc.problems)
            return None, None

    def expand(self) -> list[RunSpec]:
        s = self.s
        for key, entries in (("datasets", s.datasets), ("models", s.models), ("metrics", s.metrics)):
            if not entries:
                self.fail(key, f"at least one entry is required under '{key}'")
        if not s.seeds:
            self.fail("seeds", "at least one seed is required")
        if not re.fullmatch(r"auto|cpu|tpu|cuda(:\d+)?", s.device):
            self.fail("device", f"unknown device '{s.device}'. Valid: auto, cpu, cuda, cuda:N, tpu")
        self._check_budget()
        self._check_eval()
        self._check_sweep()
        self._check_dynamics()

        executor = self.lookup("executor", s.executor.name, "executor.name")
        if executor is not None:
            _, plain = self.config(executor, s.executor.config, "executor.config")
            self.executor = {"name": s.executor.name, "config": plain or {}}

        feature = self.lookup("feature", s.eval.features.name, "eval.features.name")
        feature_ref = None
        if feature is not None:
            _, plain = self.config(feature, s.eval.features.config, "eval.features.config")
            if plain is not None:
                feature_ref = {"name": feature.name, "config": plain, "version": feature.version,
                               "volatile": volatile_fields(feature.cls.Config)}

        models = [self._model(i, m) for i, m in enumerate(s.models)]
        datasets = [self._dataset(i, d) for i, d in enumerate(s.datasets)]
        metric_regs = [(i, m, self.lookup("metric", m.name, f"metrics[{i}].name")) for i, m in enumerate(s.metrics)]
        _check_unique_labels(models, "models", self)
        _check_unique_labels(datasets, "datasets", self)
        self._check_sweep_targets(models, datasets)
        if self.problems:
            return []

        runs: dict[str, RunSpec] = {}
        grid = list(itertools.product(*s.sweep.values())) if s.sweep else [()]
        for (mi, model), (di, dataset) in itertools.product(enumerate(models), enumerate(datasets)):
            for values in grid:
                point = dict(zip(s.sweep.keys(), values))
                spec_parts = self._apply_sweep(point, model, dataset, mi, di)
                if spec_parts is None:
                    continue
                m, d, subset, budget, applied = spec_parts
                metrics = self._metrics(metric_regs, m, d, mi, di)
                if feature_ref is not None and feature is not None:
                    modalities = getattr(feature.cls, "modalities", ("vector", "image"))
                    if d["spec"] is not None and d["spec"].modality not in modalities:
                        self.fail("eval.features.name",
                                  f"feature space '{feature.name}' takes {', '.join(modalities)} data, "
                                  f"but dataset '{d['label']}' is {d['spec'].modality}")
                if self.problems:
                    continue
                for seed in s.seeds:
                    spec = RunSpec(
                        suite=s.name,
                        model={k: m[k] for k in ("name", "framework", "family", "label", "config", "version",
                                                 "lr", "volatile")},
                        dataset={k: d[k] for k in ("name", "label", "config", "version", "volatile")},
                        subset=subset, budget=budget,
                        eval=self._eval_points(budget["steps"], m["trains"], feature_ref),
                        metrics=tuple(metrics), seed=int(seed), sweep=applied,
                        device=s.device, time_limit=s.time_limit,
                    )
                    runs.setdefault(spec.run_id, spec)
        return list(runs.values())

    # -- pieces ---------------------------------------------------------------
    def _check_budget(self) -> None:
        b = self.s.budget
        if (b.examples is None) == (b.steps is None):
            self.fail("budget", "give exactly one of budget.examples or budget.steps")
        if b.batch_size < 1:
            self.fail("budget.batch_size", "must be >= 1")
        if b.examples is not None and (b.examples < 1 or b.examples != int(b.examples)):
            self.fail("budget.examples", f"must be a positive whole number (got {b.examples})")
        if b.steps is not None and b.steps < 1:
            self.fail("budget.steps", "must be >= 1")

    def _check_eval(self) -> None:
        e = self.s.eval
        if e.schedule not in ("log", "linear", "list"):
            self.fail("eval.schedule", f"unknown schedule '{e.schedule}'.{suggest(e.schedule, ['log', 'linear', 'list'])} "
                                       "Valid: log, linear, list")
        if e.schedule == "list" and not e.steps:
            self.fail("eval.steps", "schedule 'list' needs eval.steps")
        if e.points < 1:
            self.fail("eval.points", "must be >= 1")
        if e.n_samples < 2:
            self.fail("eval.n_samples", "must be >= 2")

    def _check_sweep(self) -> None:
        for key, values in self.s.sweep.items():
            if not (key == "n" or key.startswith(SWEEP_PREFIXES[1:])):
                self.fail(f"sweep.{key}", "sweep keys are n, budget.<key>, model.<key>, dataset.<key> "
                                          "or subset.<key>")
            if not isinstance(values, list) or not values:
                self.fail(f"sweep.{key}", "a sweep key takes a non-empty list of values")
            if key.startswith("budget."):
                sub = key.split(".", 1)[1]
                if sub not in {f.name for f in dataclasses.fields(BudgetEntry)}:
                    self.fail(f"sweep.{key}", f"unknown budget key '{sub}'.{suggest(sub, ['examples', 'steps', 'batch_size'])}")
            if key.startswith("subset."):
                sub = key.split(".", 1)[1]
                if sub not in {f.name for f in dataclasses.fields(SubsetEntry)}:
                    self.fail(f"sweep.{key}", f"unknown subset key '{sub}'.{suggest(sub, [f.name for f in dataclasses.fields(SubsetEntry)])}")

    def _check_dynamics(self) -> None:
        dyn = self.s.dynamics
        if dyn.criterion not in DYNAMICS_CRITERIA:
            self.fail("dynamics.criterion", f"unknown criterion '{dyn.criterion}'."
                                            f"{suggest(dyn.criterion, DYNAMICS_CRITERIA)} "
                                            f"Valid: {', '.join(DYNAMICS_CRITERIA)}")
        for key in ("copy_threshold", "loss_threshold"):
            if not getattr(dyn, key) > 0:
                self.fail(f"dynamics.{key}", f"must be > 0 (got {getattr(dyn, key)})")
        if dyn.confirm < 0:
            self.fail("dynamics.confirm", f"must be >= 0 (got {dyn.confirm})")

    def _model(self, i: int, entry: ModelEntry) -> dict | None:
        reg = self.lookup("model", entry.name, f"models[{i}].name", entry.framework)
        if reg is None:
            return None
        if reg.framework == "jax" and not _importable("jax"):
            self.fail(f"models[{i}]", f"model '{entry.name}' (jax) needs JAX: pip install 'benchbase[jax]'")
        return {"reg": reg, "entry": entry, "user_config": dict(entry.config), "index": i,
                "label": entry.label or entry.name}

    def _dataset(self, i: int, entry: DatasetEntry) -> dict | None:
        reg = self.lookup("dataset", entry.name, f"datasets[{i}].name")
        if reg is None:
            return None
        for metric_name in entry.metric_config:
            if metric_name not in [m.name for m in self.s.metrics]:
                self.fail(f"datasets[{i}].metric_config.{metric_name}",
                          f"'{metric_name}' is not among the suite's metrics."
                          f"{suggest(metric_name, [m.name for m in self.s.metrics])}")
        model_keys = {m.label or m.name for m in self.s.models} | {m.name for m in self.s.models}
        for model_key in entry.model_config:
            if model_key not in model_keys:
                self.fail(f"datasets[{i}].model_config.{model_key}",
                          f"'{model_key}' is not a model label or name of this suite."
                          f"{suggest(model_key, model_keys)} Valid: {list_choices(model_keys)}")
        return {"reg": reg, "entry": entry, "user_config": dict(entry.config), "index": i,
                "label": entry.label or entry.name}

    def _apply_sweep(self, point: dict, model: dict, dataset: dict, mi: int, di: int):
        s = self.s
        entry: DatasetEntry = dataset["entry"]
        m_cfg, d_cfg = dict(model["user_config"]), dict(dataset["user_config"])
        # the model entry's config, then this dataset's overrides (by label, else name)
        override_key = model["label"] if model["label"] in entry.model_config else model["entry"].name
        m_cfg.update(entry.model_config.get(override_key, {}))
        n = entry.n
        subset = dataclasses.asdict(entry.subset)
        budget = dataclasses.asdict(s.budget)
        applied = {}
        for key, value in point.items():
            if key == "n":
                n = value
                applied[key] = value
            elif key.startswith("budget."):
                budget[key.split(".", 1)[1]] = value
                if key == "budget.examples":
                    budget["steps"] = None
                if key == "budget.steps":
                    budget["examples"] = None
                applied[key] = value
            elif key.startswith("subset."):
                subset[key.split(".", 1)[1]] = value
                applied[key] = value
            elif key.startswith("model."):
                field_name = key.split(".", 1)[1]
                if field_name in {f.name for f in dataclasses.fields(model["reg"].cls.Config)}:
                    m_cfg[field_name] = value
                    applied[key] = value
            elif key.startswith("dataset."):
                field_name = key.split(".", 1)[1]
                if field_name in {f.name for f in dataclasses.fields(dataset["reg"].cls.Config)}:
                    d_cfg[field_name] = value
                    applied[key] = value
        mpath, dpath = f"models[{mi}].config", f"datasets[{di}].config"
        if override_key in entry.model_config:
            mpath = f"datasets[{di}].model_config.{override_key}"
        m_obj, m_plain = self.config(model["reg"], m_cfg, mpath)
        d_obj, d_plain = self.config(dataset["reg"], d_cfg, dpath)
        if m_obj is None or d_obj is None:
            return None
        try:
            model_inst = model["reg"].cls(m_obj)
        except ValueError as exc:  # the model rejects a value its Config type allowed
            self.fail(mpath, str(exc))
            return None
        m = {"name": model["reg"].name, "framework": model["reg"].framework,
             "family": model["reg"].family, "label": model["label"], "config": m_plain,
             "version": model["reg"].version, "reg": model["reg"],
             "volatile": volatile_fields(model["reg"].cls.Config),
             "trains": bool(getattr(model["reg"].cls, "trains", True)),
             "lr": _float_or_none(model_inst.learning_rate())}
        k = int(model_inst.batches_per_step())
        budget = self._resolve_budget(budget, k)
        if budget is None:
            return None

        from benchbase.data import DataCatalog, parse_split, subset_problems

        split = None
        if subset.get("split") is not None:
            try:
                split = list(parse_split(subset["split"]))
            except ValueError as exc:
                self.fail(f"datasets[{di}].subset.split", str(exc))
                return None
        holdout = None
        if subset.get("holdout") is not None:
            try:
                holdout = list(parse_split(subset["holdout"]))
            except ValueError as exc:
                self.fail(f"datasets[{di}].subset.holdout", str(exc).replace("split", "holdout"))
                return None
        if subset["mode"] not in ("first", "random"):
            self.fail(f"datasets[{di}].subset.mode",
                      f"unknown mode '{subset['mode']}'.{suggest(subset['mode'], ['first', 'random'])} "
                      "Valid: first, random")
            return None
        spec = None
        d = {"name": dataset["reg"].name, "label": dataset["label"], "config": d_plain,
             "version": dataset["reg"].version, "reg": dataset["reg"], "spec": None,
             "volatile": volatile_fields(dataset["reg"].cls.Config),
             "metric_config": entry.metric_config}
        n_path = f"datasets[{di}].n" if "n" not in point else "sweep.n"
        if n is not None:
            n = _whole_number(n)
            if n is None or n < 1:
                self.fail(n_path, f"n must be a whole number >= 1 (got {point.get('n', entry.n)!r})")
                return None
        if self.check_data:
            try:
                info = DataCatalog.shared().describe(dataset["reg"], d_obj, d_plain)
            except MissingDataError:
                raise  # one clear error that says where to put which files
            except BenchbaseInputError as exc:
                self.fail(f"datasets[{di}]", str(exc))
                return None
            spec = info.spec
            for problem in subset_problems(subset, info):
                self.fail(f"datasets[{di}].subset", problem)
            pool = info.train_size // (split[1] if split else 1)
            if n is not None and n > pool:
                where = f" (one of {split[1]} disjoint parts of {info.train_size})" if split else ""
                self.fail(n_path, f"n={n} is larger than dataset '{d['label']}', whose train split has "
                                  f"{pool} examples{where}")
                return None
            n = n if n is not None else pool
        if holdout and n is not None and holdout[1] > n:
            self.fail(f"datasets[{di}].subset.holdout", f"{holdout[1]} folds of n={n} examples: K must be <= n")
            return None
        d["spec"] = spec
        subset_out = {"n": n, "mode": subset["mode"], "seed": subset["seed"] if subset["mode"] == "random" else 0,
                      "split": split, "dedup": subset.get("dedup")}
        if holdout:  # only when set, so the ids of runs without it do not change
            subset_out["holdout"] = holdout
        if self.check_data:
            digest = self._content_hash(dataset["reg"], d_obj, d_plain, subset_out, f"datasets[{di}]")
            if digest is None:
                return None
            subset_out["content_hash"] = digest
        return m, d, subset_out, budget, applied

    def _content_hash(self, reg, d_obj, d_plain: dict, subset: dict, path: str) -> str | None:
        """The hash of the exact training examples: part of the run id, so results follow
        the data, not the folder it was read from; the runner checks it again."""
        from benchbase.data import DataCatalog, select_subset

        key = json.dumps([reg.name, reg.version, d_plain, subset], sort_keys=True, default=str)
        if key not in self._hashes:
            try:
                _, splits = DataCatalog.shared().load(reg, d_obj, d_plain)
                self._hashes[key] = select_subset(splits, subset).content_hash
            except BenchbaseInputError as exc:
                self.fail(path, str(exc))
                return None
        return self._hashes[key]

    def _check_sweep_targets(self, models: list, datasets: list) -> None:
        """A model./dataset. sweep key must exist in at least one of the suite's plugins."""
        for key in self.s.sweep:
            kind = key.split(".")[0]
            if kind not in ("model", "dataset"):
                continue
            field_name = key.split(".", 1)[1]
            items = models if kind == "model" else datasets
            if not any(field_name in {f.name for f in dataclasses.fields(it["reg"].cls.Config)}
                       for it in items if it is not None):
                self.fail(f"sweep.{key}", f"no {kind} in this suite has a config key '{field_name}'")

    def _resolve_budget(self, budget: dict, k: int) -> dict | None:
        B = int(budget["batch_size"])
        if budget.get("examples") is not None:
            examples = int(budget["examples"])
        elif budget.get("steps") is not None:
            examples = int(budget["steps"]) * B
        else:
            return None
        steps = examples // (B * k)
        if steps < 1:
            self.fail("budget", f"budget of {examples} examples is less than one step "
                                f"({B} x {k} batches per step)")
            return None
        return {"examples": examples, "batch_size": B, "batches_per_step": k, "steps": steps}

    def _eval_points(self, total: int, trains: bool, feature_ref) -> dict:
        e = self.s.eval
        steps = eval_schedule(total, e.schedule, e.points, e.first, e.steps, e.at_init) if trains else [0]
        return {"steps": steps, "n_samples": e.n_samples, "n_test": e.n_test,
                "keep_samples": e.keep_samples, "features": feature_ref}

    def _metrics(self, metric_regs, m: dict, d: dict, mi: int, di: int) -> list[dict]:
        out = []
        for i, entry, reg in metric_regs:
            if reg is None:
                continue
            cfg = dict(entry.config)
            cfg.update(d["metric_config"].get(entry.name, {}))
            path = f"metrics[{i}].config" if entry.name not in d["metric_config"] \
                else f"datasets[{di}].metric_config.{entry.name}"
            _, plain = self.config(reg, cfg, path)
            if plain is None:
                continue
            missing = _unmet_requirements(reg, m["reg"], d["spec"])
            if missing:
                if entry.optional:
                    continue
                self.fail(f"metrics[{i}]", f"metric '{entry.name}' needs {', '.join(missing)}, which "
                                           f"model '{m['label']}' on dataset '{d['label']}' lacks; "
                                           f"set `optional: true` on the metric to skip such runs")
                continue
            out.append({"name": reg.name, "config": plain, "version": reg.version,
                        "direction": reg.cls.direction, "target": getattr(reg.cls, "target", None),
                        "references": list(getattr(reg.cls, "references", ("train",))),
                        "requires": sorted(getattr(reg.cls, "requires", ()))})
        return out


def _unmet_requirements(metric_reg, model_reg, spec) -> list[str]:
    missing = []
    for req in getattr(metric_reg.cls, "requires", ()):
        if req.startswith("capability:"):
            cap = req.split(":", 1)[1]
            if cap not in getattr(model_reg.cls, "capabilities", ()):
                missing.append(f"model capability '{cap}'")
        elif req == "true_sampler":
            if spec is not None and not spec.has_true_sampler:
                missing.append("a dataset with a true sampler")
        elif req == "labels":
            if spec is not None and spec.num_classes == 0:
                missing.append("class labels")
        elif req.startswith("modality:"):
            if spec is not None and spec.modality != req.split(":", 1)[1]:
                missing.append(f"{req.split(':', 1)[1]} data")
    return missing


def _check_unique_labels(items: list, key: str, exp: _Expander) -> None:
    seen: dict = {}
    for item in items:
        if item is None:
            continue
        entry = item["entry"]
        ident = (item["label"], getattr(entry, "framework", None) or item["reg"].framework)
        if ident in seen and seen[ident] != (entry.name, json.dumps(item["user_config"], sort_keys=True, default=str)):
            exp.fail(f"{key}[{item['index']}].label",
                     f"two {key} entries are labelled '{item['label']}' with different configs; "
                     "give each a distinct `label:`")
        seen[ident] = (entry.name, json.dumps(item["user_config"], sort_keys=True, default=str))


def _whole_number(v) -> int | None:
    """32, 32.0 and 1e3 are whole numbers; True, 32.5 and "32" are not."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return None
    return int(v) if float(v).is_integer() else None


def _float_or_none(v) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def eval_schedule(total: int, schedule: str = "log", points: int = 8, first: int | None = None,
                  steps: list[int] = (), at_init: bool = False) -> list[int]:
    """Evaluation steps: log- or linearly spaced (or listed), always ending at ``total``."""
    if schedule == "list":
        out = {int(s) for s in steps if 0 < int(s) <= total}
    elif schedule == "linear":
        out = {int(round(x)) for x in np.linspace(total / points, total, points)}
    else:
        lo = max(1, first if first is not None else math.ceil(total / 200))
        lo = min(lo, total)
        out = {int(round(x)) for x in np.geomspace(lo, total, points)} if points > 1 else set()
    out.add(total)
    if at_init:
        out.add(0)
    return sorted(s for s in out if 0 <= s <= total)
