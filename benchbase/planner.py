"""The run planner: a typed suite becomes the list of :class:`~benchbase.specs.RunSpec`
it stands for (models x datasets x sweep grid x seeds), with every problem collected.

Each piece of a run is resolved once per distinct input and cached (a model's config per
(model, config), a dataset and its size checks per (dataset, config, subset), a budget per
(budget, batches per step)), so a mistake is reported once and a large suite plans quickly.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
from dataclasses import dataclass
from typing import Any, Callable

from benchbase.blame import PluginFault
from benchbase.contracts import unmet_requirements, volatile_fields, without_unset
from benchbase.devices import unsupported
from benchbase.errors import BenchbaseInputError, ConfigError, MissingDataError, UnknownPluginError, list_choices, \
    suggest
from benchbase.frameworks import framework_available
from benchbase.schedules import eval_schedule
from benchbase.suite_checks import PointsNeeded, metric_name_problems, set_sizes, too_few, too_many_runs
from benchbase.specs import (Budget, DatasetRef, EvalPlan, FeatureRef, MetricRef, ModelRef, RunSpec, SubsetPlan,
                             json_default, parse_split)
from benchbase.structured import located, plugin_config
from benchbase.suite_schema import DatasetEntry, ModelEntry, PluginEntry, SuiteSchema, schema_problems, whole_number

_PRETTY = {"jax": "JAX", "torch": "PyTorch"}


class Problems(list):
    """(key path, message) pairs; the same problem found twice is kept once."""

    def add(self, path: str, message: str) -> None:
        if (path, message) not in self:
            self.append((path, message))

    def extend(self, items) -> None:
        for path, message in items:
            self.add(path, message)


def _cached(method: Callable) -> Callable:
    """Memoise a resolver on its JSON-able arguments, per planner."""
    def wrapper(self, *args):
        key = (method.__name__, json.dumps(args, sort_keys=True, default=_key_default))
        if key not in self._cache:
            self._cache[key] = method(self, *args)
        return self._cache[key]
    return wrapper


def _key_default(o):
    if isinstance(o, PluginChoice):
        return o.index
    if isinstance(o, (ResolvedModel, ResolvedData)):
        return id(o)  # made once by a cached resolver, so the same object for the same input
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    return json_default(o)


# ------------------------------------------------------------------- choices


@dataclass(frozen=True)
class PluginChoice:
    """An entry of the suite (a model, dataset or metric) and the plugin it names."""

    index: int  # position in its list, for key paths such as models[1]
    entry: PluginEntry
    registered: Any  # benchbase.plugins.Registered

    @property
    def label(self) -> str:
        return self.entry.label or self.entry.name

    @property
    def config_keys(self) -> set[str]:
        return {f.name for f in dataclasses.fields(self.registered.cls.Config)}


@dataclass(frozen=True)
class ResolvedModel:
    ref: ModelRef
    batches_per_step: int
    trains: bool
    registered: Any
    instance: Any  # the model built from its config, asked about data it will meet (Model.problems)
    replay: tuple[int, ...] | None = None  # the steps a model replaying samples made elsewhere has


@dataclass(frozen=True)
class ResolvedData:
    ref: DatasetRef
    config: Any  # the plugin's Config instance
    info: Any  # benchbase.data.DataInfo; None when data is not checked
    registered: Any


@dataclass(frozen=True)
class GridPoint:
    """One combination of the sweep's values."""

    values: dict

    def prefixed(self, prefix: str) -> dict:
        return {k[len(prefix):]: v for k, v in self.values.items() if k.startswith(prefix)}

    def applied(self, model: PluginChoice, dataset: PluginChoice) -> dict:
        """The values that change this (model, dataset) run: a model./dataset. key only
        where that plugin's Config has it."""
        return {k: v for k, v in self.values.items()
                if not (k.startswith("model.") and k[6:] not in model.config_keys)
                and not (k.startswith("dataset.") and k[8:] not in dataset.config_keys)}


# ------------------------------------------------------------------- planner


class RunPlanner:
    """Turns a typed suite into run specs, collecting every problem on the way."""

    def __init__(self, suite: SuiteSchema, source: str, registry, check_data: bool = True):
        self.s, self.source, self.registry, self.check_data = suite, source, registry, check_data
        self.problems = Problems()
        self.executor: dict = {}
        self._cache: dict = {}
        self._drawn: dict[str, dict[str, Budget]] = {}  # budget asked -> trained model's label -> its budget

    def fail(self, path: str, message: str) -> None:
        self.problems.add(path, message)

    def lookup(self, kind: str, name: str, path: str, framework: str | None = None):
        try:
            return self.registry.get(kind, name, framework)
        except UnknownPluginError as exc:
            self.fail(path, str(exc))
            return None

    def config(self, registered, cfg: dict, path: str) -> tuple[Any, dict | None]:
        try:
            return plugin_config(registered, cfg, self.source, path)
        except ConfigError as exc:
            self.problems.extend(exc.problems)
            return None, None

    # ---------------------------------------------------------------- plan
    def plan(self) -> list[RunSpec]:
        s = self.s
        self.problems.extend(schema_problems(s))
        executor = self.lookup("executor", s.executor.name, "executor.name")
        if executor is not None:
            _, plain = self.config(executor, s.executor.config, "executor.config")
            self.executor = {"name": s.executor.name, "config": plain or {}}
        feature = self._feature()
        models = [c for c in (self._model_choice(i, m) for i, m in enumerate(s.models)) if c]
        datasets = [c for c in (self._dataset_choice(i, d) for i, d in enumerate(s.datasets)) if c]
        metrics = [PluginChoice(i, m, self.lookup("metric", m.name, f"metrics[{i}].name"))
                   for i, m in enumerate(s.metrics)]
        self._check_unique_labels(models, "models")
        self._check_unique_labels(datasets, "datasets")
        self._check_sweep_targets(models, datasets)
        self.problems.extend(metric_name_problems(s, metrics))
        self._check_size(models, datasets)
        if self.problems:
            return []
        runs: dict[str, RunSpec] = {}
        entries: dict[str, tuple[PluginChoice, PluginChoice]] = {}  # run id -> the entries that made it
        grid = [GridPoint(dict(zip(s.sweep, values))) for values in itertools.product(*s.sweep.values())]
        for model, dataset, point in itertools.product(models, datasets, grid):
            for spec in self._runs(model, dataset, point, feature, metrics):
                if spec.run_id in runs:
                    self._check_same_labels(runs[spec.run_id], spec, entries[spec.run_id], (model, dataset))
                    continue
                runs[spec.run_id], entries[spec.run_id] = spec, (model, dataset)
        return list(runs.values())

    def _check_same_labels(self, first: RunSpec, again: RunSpec, made: tuple, making: tuple) -> None:
        """Two entries that plan the same run (same plugin, config and data) under different
        labels would silently become one run under the first label: a label names a run, it
        does not make another."""
        for kind, a, b, before, now in (("models", first.model.label, again.model.label, made[0], making[0]),
                                         ("datasets", first.dataset.label, again.dataset.label, made[1], making[1])):
            if a != b:
                self.fail(f"{kind}[{now.index}]", f"'{b}' plans the same runs as '{a}' ({kind}[{before.index}]): "
                                                  "same plugin, config and data, and a label does not change "
                                                  "results. Remove one, or make their configs differ")

    def _runs(self, model: PluginChoice, dataset: PluginChoice, point: GridPoint, feature: FeatureRef | None,
              metrics: list[PluginChoice]) -> list[RunSpec]:
        m = self._resolve_model(model, *self._model_config(model, dataset, point))
        d = self._resolve_dataset(dataset, {**dataset.entry.config, **point.prefixed("dataset.")}, feature)
        if m is None or d is None:
            return []
        if d.info is not None and not self._fits(m, model, d, dataset):
            return []
        n_path = "sweep.n" if "n" in point.values else f"datasets[{dataset.index}].n"
        subset = self._resolve_subset(dataset, d, point.values.get("n", dataset.entry.n),
                                      {**dataclasses.asdict(dataset.entry.subset), **point.prefixed("subset.")}, n_path)
        request = self._budget_request(point)
        budget = self._resolve_budget(request, m.batches_per_step)
        if budget is not None and m.trains:
            self._drawn.setdefault(json.dumps(request, sort_keys=True), {})[model.label] = budget
        sizes = set_sizes(self.s.eval, subset, n_path, d.info, dataset) if subset is not None else {}
        refs = self._metrics(metrics, model, dataset, m, d, sizes)
        if subset is None or budget is None or refs is None or feature is None:
            return []
        e = self.s.eval  # a step asked for (listed, or the first log-spaced one) must lie within the budget
        asked = {"list": [("eval.steps", s) for s in e.steps], "log": [("eval.first", e.first or 0)]}
        beyond = [(key, step) for key, step in asked.get(e.schedule, []) if step > budget.steps and m.trains]
        if beyond:
            return self.fail(beyond[0][0], f"step {beyond[0][1]} is beyond the budget of {budget.steps} steps") or []
        if m.replay is not None:  # samples made elsewhere: evaluated at the steps they were made
            steps = list(m.replay)
        else:
            steps = eval_schedule(budget.steps, e.schedule, e.points, e.first, e.steps, e.at_init) if m.trains else [0]
        plan = EvalPlan(steps=tuple(steps), n_samples=e.n_samples, n_test=e.n_test, keep_samples=e.keep_samples,
                        features=feature)
        return [RunSpec(suite=self.s.name, model=m.ref, dataset=d.ref, subset=subset, budget=budget, eval=plan,
                        metrics=refs, seed=int(seed), sweep=point.applied(model, dataset), device=self.s.device,
                        time_limit=self.s.time_limit)
                for seed in self.s.seeds]

    def unequal_budgets(self) -> list[str]:
        """Where the trained models of one budget draw examples more than 1% apart (a step draws
        batch_size x batches_per_step; budgets round down to whole steps per model): warnings."""
        out = []
        for budgets in self._drawn.values():
            drawn = {label: b.steps * b.examples_per_step for label, b in budgets.items()}
            lo, hi = min(drawn.values()), max(drawn.values())
            if hi > lo * 1.01:
                multiple = math.lcm(*(b.examples_per_step for b in budgets.values()))
                out.append(f"budget: the models draw unequal numbers of examples, {hi / lo - 1:.0%} apart ("
                           + ", ".join(f"{label}: {n:,}" for label, n in drawn.items())
                           + "): a step draws batch_size x batches_per_step examples; for identical budgets "
                           f"give budget.examples as a multiple of {multiple:,}")
        return out

    def resolved_datasets(self) -> list[ResolvedData]:
        """Every dataset entry as resolved (ref and info: sizes read, or None), for suite-wide checks."""
        return [v for (kind, _), v in self._cache.items() if kind == "_resolve_dataset" and v is not None]

    def _check_size(self, models: list[PluginChoice], datasets: list[PluginChoice]) -> None:
        """Count the runs before expanding the grid (a typo can ask for millions): per
        (model, dataset), the seeds times the sweep axes that apply to it, as ``applied``."""
        s, count = self.s, 0
        for m, d in ((m, d) for m in models for d in datasets):
            axes = GridPoint({k: None for k in s.sweep}).applied(m, d)
            count += math.prod(len(v) if isinstance(v, list) else 1 for k, v in s.sweep.items() if k in axes) \
                * max(len(s.seeds), 1)
        problem = too_many_runs(count)
        if problem:
            self.fail("sweep" if s.sweep else "seeds", problem)

    # ------------------------------------------------------------ plugins
    def _feature(self) -> FeatureRef | None:
        entry = self.s.eval.features
        reg = self.lookup("feature", entry.name, "eval.features.name")
        if reg is None:
            return None
        obj, plain = self.config(reg, entry.config, "eval.features.config")
        if plain is None:
            return None
        if self.check_data:  # weight files: one clear error now, not one in every run
            try:
                getattr(reg.cls(obj), "check_available", lambda: None)()
            except MissingDataError as exc:
                raise exc.located(self.source, "eval.features.name") from None
        self._feature_registered = reg
        return FeatureRef.of(reg, plain)

    def _model_choice(self, i: int, entry: ModelEntry) -> PluginChoice | None:
        reg = self.lookup("model", entry.name, f"models[{i}].name", entry.framework)
        if reg is None:
            return None
        if not framework_available(reg.framework):
            self.fail(f"models[{i}]", f"model '{entry.name}' ({reg.framework}) needs {_PRETTY[reg.framework]}: "
                                      f"pip install 'benchbase[{reg.framework}]'")
        if unsupported(reg.framework, self.s.device):  # the same line `run` refuses it with
            self.fail("device", f"'{self.s.device}': {unsupported(reg.framework, self.s.device)}")
        return PluginChoice(i, entry, reg)

    def _dataset_choice(self, i: int, entry: DatasetEntry) -> PluginChoice | None:
        reg = self.lookup("dataset", entry.name, f"datasets[{i}].name")
        if reg is None:
            return None
        metric_names = [m.name for m in self.s.metrics]
        for name in entry.metric_config:
            if name not in metric_names:
                self.fail(f"datasets[{i}].metric_config.{name}", f"'{name}' is not among the suite's metrics."
                                                                 f"{suggest(name, metric_names)}")
        model_keys = {m.label or m.name for m in self.s.models} | {m.name for m in self.s.models}
        for key in entry.model_config:
            if key not in model_keys:
                self.fail(f"datasets[{i}].model_config.{key}",
                          f"'{key}' is not a model label or name of this suite.{suggest(key, model_keys)} "
                          f"Valid: {list_choices(model_keys)}")
        return PluginChoice(i, entry, reg)

    def _check_unique_labels(self, choices: list, key: str) -> None:
        seen: dict = {}
        for c in choices:
            ident = (c.label, getattr(c.entry, "framework", None) or c.registered.framework)
            config = (c.entry.name, json.dumps(c.entry.config, sort_keys=True, default=str))
            if ident in seen and seen[ident] != config:
                self.fail(f"{key}[{c.index}].label", f"two {key} entries are labelled '{c.label}' with different "
                                                     "configs; give each a distinct `label:`")
            seen[ident] = config

    def _check_sweep_targets(self, models: list[PluginChoice], datasets: list[PluginChoice]) -> None:
        """A model./dataset. sweep key must exist in at least one of the suite's plugins."""
        for key in self.s.sweep:
            kind, _, name = key.partition(".")
            if kind in ("model", "dataset") and not any(
                    name in c.config_keys for c in (models if kind == "model" else datasets)):
                self.fail(f"sweep.{key}", f"no {kind} in this suite has a config key '{name}'")

    # ------------------------------------------------------------ models
    def _model_config(self, model: PluginChoice, dataset: PluginChoice, point: GridPoint) -> tuple[dict, str]:
        """The model entry's config, then this dataset's overrides (by label, else name),
        then the sweep; and the key path a problem in it is reported at."""
        overrides = dataset.entry.model_config
        key = model.label if model.label in overrides else model.entry.name
        cfg = {**model.entry.config, **overrides.get(key, {}),
               **{k: v for k, v in point.prefixed("model.").items() if k in model.config_keys}}
        path = (f"datasets[{dataset.index}].model_config.{key}" if key in overrides
                else f"models[{model.index}].config")
        return cfg, path

    @_cached
    def _resolve_model(self, model: PluginChoice, cfg: dict, path: str) -> ResolvedModel | None:
        reg = model.registered
        obj, plain = self.config(reg, cfg, path)
        if obj is None:
            return None
        try:
            instance = reg.cls(obj)
            replay = getattr(instance, "eval_steps", lambda: None)()
            origin = getattr(instance, "origin", lambda: None)()
        except ValueError as exc:  # the model rejects a value its Config type allowed
            self.fail(*located(path, str(exc), reg.cls.Config))
            return None
        trains = bool(getattr(reg.cls, "trains", True))
        if replay is not None and trains:
            self.fail(path, f"model '{reg.name}' has eval_steps() but trains: only a model that does not train "
                            "(trains = False) brings its own evaluation steps")
            return None
        ref = ModelRef(name=reg.name, config=without_unset(reg.cls.Config, plain), version=reg.version,
                       volatile=tuple(volatile_fields(reg.cls.Config)), framework=reg.framework,
                       family=getattr(instance, "family", reg.family), label=model.label,
                       lr=_float_or_none(instance.learning_rate()), origin=origin)
        return ResolvedModel(ref, int(instance.batches_per_step()), trains, reg, instance,
                             None if replay is None else tuple(sorted(int(s) for s in replay)))

    def _fits(self, m: ResolvedModel, model: PluginChoice, d: ResolvedData, dataset: PluginChoice) -> bool:
        """Whether the model can run on this data (a modality it takes; e.g. sample files of the
        data's shape), reported at the model's entry."""
        takes = getattr(m.registered.cls, "modalities", ("vector", "image"))
        if d.info.spec.modality not in takes:
            return self.fail(f"models[{model.index}]", f"model '{model.label}' takes {', '.join(takes)} data, but "
                                                       f"dataset '{dataset.label}' is {d.info.spec.modality}") or False
        found = getattr(m.instance, "problems", lambda *_: [])(d.info.spec, self.s.eval.n_samples)
        for problem in found:
            self.fail(f"models[{model.index}].config", f"model '{model.label}' on dataset '{dataset.label}': {problem}")
        return not found

    # ---------------------------------------------------------- datasets
    @_cached
    def _resolve_dataset(self, dataset: PluginChoice, cfg: dict, feature: FeatureRef | None) -> ResolvedData | None:
        from benchbase.data import DataCatalog

        reg, where = dataset.registered, f"datasets[{dataset.index}]"
        obj, plain = self.config(reg, cfg, f"{where}.config")
        if obj is None:
            return None
        info = None
        if self.check_data:
            try:
                info = DataCatalog.shared().describe(reg, obj, plain)
            except MissingDataError as exc:  # one clear error that says where to put which files
                raise exc.located(self.source, f"{where}.name") from None
            except (BenchbaseInputError, PluginFault) as exc:
                self.fail(where, str(exc))
                return None
            modalities = getattr(self._feature_registered.cls, "modalities", ("vector", "image")) if feature else ()
            if feature is not None and info.spec.modality not in modalities:
                self.fail("eval.features.name", f"feature space '{feature.name}' takes {', '.join(modalities)} "
                                                f"data, but dataset '{dataset.label}' is {info.spec.modality}")
        ref = DatasetRef(name=reg.name, config=plain, version=reg.version,
                         volatile=tuple(volatile_fields(reg.cls.Config)), label=dataset.label)
        return ResolvedData(ref, obj, info, reg)

    @_cached
    def _resolve_subset(self, dataset: PluginChoice, data: ResolvedData, n: Any, subset: dict,
                        n_path: str) -> SubsetPlan | None:
        from benchbase.data import subset_problems

        where = f"datasets[{dataset.index}]"
        split, holdout = (parse_split(subset[k]) if subset.get(k) is not None else None for k in ("split", "holdout"))
        n = whole_number(n) if n is not None else None
        if holdout and n is not None and holdout[1] > n:
            return self.fail(f"{where}.subset.holdout", f"{holdout[1]} folds of n={n} examples: K must be <= n")
        if holdout and holdout[1] < 2:  # '1 of 1'
            return self.fail(f"{where}.subset.holdout", "K must be at least 2: one fold holds out every example")
        plan = SubsetPlan(n=n, mode=subset["mode"], seed=subset["seed"] if subset["mode"] == "random" else 0,
                          split=split, dedup=subset.get("dedup"), holdout=holdout)
        if not self.check_data:
            return plan
        info = data.info
        problems = subset_problems(plan, info)
        for problem in problems:
            self.fail(f"{where}.subset", problem)
        pool = info.train_size // (split[1] if split else 1)
        if n is not None and n > pool:
            part = f" (one of {split[1]} disjoint parts of {info.train_size})" if split else ""
            self.fail(n_path, f"n={n} is larger than dataset '{dataset.label}', whose train split has "
                              f"{pool} examples{part}")
            return None
        if problems:
            return None
        plan = dataclasses.replace(plan, n=n if n is not None else pool)
        return self._with_content_hash(data, plan, where)

    def _with_content_hash(self, data: ResolvedData, plan: SubsetPlan, where: str) -> SubsetPlan | None:
        """The hash of the exact training examples: part of the run id, so results follow
        the data, not the folder it was read from; the runner checks it again."""
        from benchbase.data import DataCatalog, select_subset

        try:
            _, splits = DataCatalog.shared().load(data.registered, data.config, data.ref.config)
            return dataclasses.replace(plan, content_hash=select_subset(splits, plan).content_hash)
        except BenchbaseInputError as exc:
            self.fail(where, str(exc))
            return None

    # ------------------------------------------------------------ budget
    def _budget_request(self, point: GridPoint) -> dict:
        request = dataclasses.asdict(self.s.budget)
        swept = point.prefixed("budget.")
        if "examples" in swept:
            request["steps"] = None
        if "steps" in swept:
            request["examples"] = None
        return {**request, **swept}

    @_cached
    def _resolve_budget(self, request: dict, batches_per_step: int) -> Budget | None:
        if request.get("examples") is None and request.get("steps") is None:
            return None  # reported by the schema check
        try:
            return Budget.resolve(request["batch_size"], batches_per_step, request.get("examples"),
                                  request.get("steps"))
        except ValueError as exc:
            self.fail("budget", str(exc))
            return None

    # ----------------------------------------------------------- metrics
    @_cached
    def _metric_config(self, metric: PluginChoice, dataset: PluginChoice) -> tuple[dict | None, int]:
        """The metric's plain config for this dataset, and the fewest points it needs per set."""
        per_dataset = dataset.entry.metric_config
        cfg = {**metric.entry.config, **per_dataset.get(metric.entry.name, {})}
        path = (f"datasets[{dataset.index}].metric_config.{metric.entry.name}" if metric.entry.name in per_dataset
                else f"metrics[{metric.index}].config")
        obj, plain = self.config(metric.registered, cfg, path)
        try:  # a metric may reject a value its Config type allowed
            return plain, 1 if plain is None else int(getattr(metric.registered.cls(obj), "min_points", lambda: 1)())
        except ValueError as exc:
            return self.fail(path, str(exc)), 1

    def _metrics(self, metrics: list[PluginChoice], model: PluginChoice, dataset: PluginChoice, m: ResolvedModel,
                 d: ResolvedData, sizes: dict) -> tuple[MetricRef, ...] | None:
        out, complete, needs = [], True, []
        for metric in metrics:
            plain, need = self._metric_config(metric, dataset)
            cls = metric.registered.cls
            missing = unmet_requirements(cls, m.registered.cls, d.info.spec if d.info else None)
            if missing and not metric.entry.optional:
                self.fail(f"metrics[{metric.index}]",
                          f"metric '{metric.entry.name}' needs {', '.join(missing)}, which model "
                          f"'{model.label}' on dataset '{dataset.label}' lacks; set `optional: true` on the "
                          "metric to skip such runs")
            if plain is None or (missing and not metric.entry.optional):
                complete = False
            if plain is None or missing:
                continue
            needs.append(PointsNeeded(metric.entry.name, tuple(cls.references), need))
            out.append(MetricRef.of(metric.registered, plain))
        self.problems.extend(short := too_few(needs, sizes))
        return tuple(out) if complete and not short else None


def _float_or_none(v) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None
