"""The suite YAML as dataclasses, each field with its default and its constraint.

A constraint is declared next to its field (``option(default, check=...)``) or, when
it ties several fields together, in the dataclass's ``problems`` method. One checker,
:func:`schema_problems`, walks a typed suite and applies them all; the run planner
applies the same field constraints to swept values (:func:`value_problems`), so a
value is judged the same whether it is written in an entry or in ``sweep:``.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional

from omegaconf import MISSING

from benchbase.chance import DEFAULT_ALPHA
from benchbase.errors import suggest
from benchbase.names import name_problem
from benchbase.specs import MAX_EXAMPLES, MAX_STEPS, parse_split

#: value -> None when fine, else what is wrong with it (one sentence)
Check = Callable[[Any], Optional[str]]


def option(default: Any = MISSING, *, check: Check | None = None, factory: Callable | None = None):
    """A schema field with its constraint."""
    meta = {"check": check} if check is not None else {}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


# ----------------------------------------------------------------- constraints


def one_of(*choices: str) -> Check:
    def check(v):
        if v not in choices:
            return f"unknown value '{v}'.{suggest(v, choices)} Valid: {', '.join(choices)}"
    return check


def at_least(lo: float) -> Check:
    def check(v):
        if v is not None and not v >= lo:
            return f"must be >= {lo:g} (got {v})"
    return check


def above(lo: float) -> Check:
    def check(v):
        if v is not None and not v > lo:
            return f"must be > {lo:g} (got {v})"
    return check


def whole_number(v) -> int | None:
    """32, 32.0 and 1e3 are whole numbers; True, 32.5 and "32" are not."""
    import numpy as np

    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return None
    return int(v) if float(v).is_integer() else None


def _subset_size(v):
    if v is not None and (whole_number(v) is None or whole_number(v) < 1):
        return f"n must be a whole number >= 1 (got {v!r})"


def _positive_examples(v):
    if v is not None and (whole_number(v) is None or v < 1):
        return f"must be a positive whole number (got {v})"
    if v is not None and v > MAX_EXAMPLES:
        return f"must be at most {MAX_EXAMPLES:.0e} examples (got {v:.3g}), a budget no run could finish"


def _step_count(v):
    if v is not None and not v >= 1:
        return f"must be >= 1 (got {v})"
    if v is not None and v > MAX_STEPS:
        return f"must be at most {MAX_STEPS:.0e} steps (got {v:.3g}), a budget no run could finish"


def _split(v):
    if v is not None:
        try:
            parse_split(v)
        except ValueError as exc:  # the key path already names the key
            return str(exc).removeprefix("split ")


def _dedup(v):
    if v is not None and not 0 < float(v) <= 1:
        return f"dedup is a correlation threshold in (0, 1] (e.g. 0.95), got {v}"


def _seeds(v):
    if not v:
        return "at least one seed is required"
    bad = [s for s in v if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < 2 ** 63]
    if bad:
        return f"seeds are whole numbers from 0 to 2^63-1 (got {bad[0]})"
    repeated = next((s for i, s in enumerate(v) if s in v[:i]), None)
    if repeated is not None:  # a seed is one run: a repeat was merged into it without a word
        return f"seed {repeated} is listed twice; each seed is one run, list it once"


def _time_limit(v):
    if v is not None and not (math.isfinite(v) and v > 0):
        return f"time_limit is seconds per run, a number > 0 (got {v}); omit it for no limit"


def _n_test(v):
    if v is not None and v < 1:
        return f"must be >= 1 (got {v}); omit it to use every test point"


def _device(v):
    if not re.fullmatch(r"auto|cpu|tpu|cuda(:\d+)?", str(v)):
        return f"unknown device '{v}'. Valid: auto, cpu, cuda, cuda:N, tpu"


def _probability(v):
    if not 0 < v < 1:
        return f"must lie in (0, 1) (got {v})"


def _non_negative_values(v):
    bad = {k: x for k, x in (v or {}).items() if not x >= 0}
    if bad:
        return f"must be >= 0 (got {', '.join(f'{k}: {x}' for k, x in bad.items())})"


def _required(what: str) -> Check:
    def check(v):
        if not v:
            return what
    return check


# ---------------------------------------------------------------------- schema

SUBSET_MODES = ("first", "random")
EVAL_SCHEDULES = ("log", "linear", "list")
DYNAMICS_CRITERIA = ("auto", "copy", "loss")


@dataclass
class PluginEntry:
    """A plugin reference: ``name``, an optional display ``label`` and its ``config``."""

    name: str = MISSING
    label: Optional[str] = None
    config: Dict[str, Any] = field(default_factory=dict)

    form = "a plugin name or a mapping {name: ..., config: ...}"  # what an entry is, for errors


@dataclass
class ModelEntry(PluginEntry):
    framework: Optional[str] = None  # torch | jax | numpy; needed when a name has several

    form = "a model name or a mapping {name: ..., framework: ..., config: ...}"


@dataclass
class SubsetEntry:
    mode: str = option("first", check=one_of(*SUBSET_MODES))  # first: the seed paper's protocol
    seed: int = 0  # for mode=random
    split: Optional[str] = option(None, check=_split)  # "k of K": the k-th of K disjoint parts
    holdout: Optional[str] = option(None, check=_split)  # "k of K": train on the n chosen without their k-th fold
    dedup: Optional[float] = option(None, check=_dedup)  # drop near-duplicates above this correlation

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.mode != "random" and self.seed != 0:  # it would be ignored: the first n are taken
            yield "seed", (f"a seed only applies to mode: random; mode '{self.mode}' takes the first n examples. "
                           "Set mode: random, or remove the seed")


@dataclass
class DatasetEntry(PluginEntry):
    n: Optional[int] = option(None, check=_subset_size)  # training subset size; None: the whole split
    subset: SubsetEntry = field(default_factory=SubsetEntry)
    # per-dataset metric parameters, e.g. {mem_ratio: {threshold: 0.2}}
    metric_config: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    # per-dataset model hyperparameters by model label (or name), e.g. {wae_gan: {latent_dim: 2}}
    model_config: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    form = "a dataset name or a mapping {name: ..., n: ..., config: ...}"


@dataclass
class MetricEntry(PluginEntry):
    optional: bool = False  # skip models/datasets that lack what the metric requires

    form = "a metric name or a mapping {name: ..., config: ...}"


@dataclass
class FeatureEntry(PluginEntry):
    name: str = "pixels"

    form = "a feature-space name or a mapping {name: ..., config: ...}"


@dataclass
class ExecutorEntry(PluginEntry):
    name: str = "local"

    form = "an executor name or a mapping {name: ..., config: ...}"

    def problems(self) -> Iterator[tuple[str, str]]:
        fleet = self.config.get("fleet") if hasattr(self.config, "get") else None
        if fleet is not None and (whole_number(fleet) is None or fleet < 1):
            yield "config.fleet", f"must be a whole number >= 1 (1: no fleets); got {fleet}"


@dataclass
class TrackerEntry(PluginEntry):
    """An experiment tracker the suite's runs are mirrored to (not part of run ids)."""

    form = "a tracker name or a mapping {name: ..., config: ...}"


@dataclass
class BudgetEntry:
    """Identical for every model: counted in examples drawn from the training subset."""

    examples: Optional[float] = option(None, check=_positive_examples)
    steps: Optional[int] = option(None, check=_step_count)  # shorthand: examples = steps * batch_size
    batch_size: int = option(128, check=at_least(1))

    def problems(self) -> Iterator[tuple[str, str]]:
        if (self.examples is None) == (self.steps is None):
            yield "", "give exactly one of budget.examples or budget.steps"


@dataclass
class EvalEntry:
    schedule: str = option("log", check=one_of(*EVAL_SCHEDULES))
    points: int = option(8, check=at_least(1))  # evaluation points (log/linear), the final step included
    first: Optional[int] = option(None, check=at_least(1))  # first log-spaced step; default total/200
    steps: List[int] = field(default_factory=list)  # for schedule=list (the planner checks the budget)
    at_init: bool = False  # also evaluate the untrained model (step 0)
    n_samples: int = option(1000, check=at_least(2))  # generated samples per evaluation
    n_test: Optional[int] = option(None, check=_n_test)  # cap on test points used by metrics (None: all)
    keep_samples: int = option(64, check=at_least(0))  # generated samples stored per evaluation (plots, reports)
    features: FeatureEntry = field(default_factory=FeatureEntry)

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.schedule == "list" and not self.steps:
            yield "steps", "schedule 'list' needs eval.steps"
        negative = [s for s in self.steps if s < 0]
        if negative:
            yield "steps", f"evaluation steps are >= 0 (got {negative[0]})"


@dataclass
class LeaderboardEntry:
    primary: Optional[str] = None  # metric used for the rank column (default: first metric)
    metrics: List[str] = field(default_factory=list)  # columns (default: every metric)


@dataclass
class DynamicsEntry:
    """How the derived training-dynamics quantities of each run are computed
    (definitions in docs/training-dynamics.md; computed by benchbase.dynamics)."""

    criterion: str = option("auto", check=one_of(*DYNAMICS_CRITERIA))  # headline tau_mem
    # copy criterion (benchbase.verdicts): a memorization metric significantly above its chance
    # level and by at least its minimum excess; auto: every stored memorization metric
    copy_metric: str = "auto"
    # one-sided level of the excess-over-chance test (split over the metrics judged)
    alpha: float = option(DEFAULT_ALPHA, check=_probability)
    # per metric: the smallest excess that counts (default: the metric's own min_excess)
    min_excess: Dict[str, float] = option(check=_non_negative_values, factory=dict)
    rate_metric: str = "mem_ratio"  # mem_rate: its slope per decade of steps after the copy onset
    loss_metric: str = "heldout_gap"  # loss criterion reads <loss_metric>.train / <loss_metric>.test
    loss_threshold: float = option(0.05, check=above(0))  # relative gap above its first value by this
    confirm: int = option(1, check=at_least(0))  # later evals that must meet the criterion too
    fidelity: List[str] = field(default_factory=lambda: ["swd", "fd"])  # best before tau_mem


SWEEP_PREFIXES = ("budget.", "model.", "dataset.", "subset.")
#: the schema of the values each sweep prefix sets
SWEPT = {"budget.": BudgetEntry, "subset.": SubsetEntry}


@dataclass
class SuiteSchema:
    name: str = option(check=name_problem)  # names files (figures, tables): no path separators
    description: str = ""
    device: str = option("auto", check=_device)  # auto | cpu | cuda | cuda:N | tpu
    seeds: List[int] = option(check=_seeds, factory=lambda: [0])
    datasets: List[DatasetEntry] = option(check=_required("at least one entry is required under 'datasets'"),
                                          factory=list)
    models: List[ModelEntry] = option(check=_required("at least one entry is required under 'models'"),
                                      factory=list)
    metrics: List[MetricEntry] = option(check=_required("at least one entry is required under 'metrics'"),
                                        factory=list)
    budget: BudgetEntry = field(default_factory=BudgetEntry)
    eval: EvalEntry = field(default_factory=EvalEntry)
    # grid over n, budget.*, model.<key>, dataset.<key>, subset.<key>: every combination
    sweep: Dict[str, List[Any]] = field(default_factory=dict)
    executor: ExecutorEntry = field(default_factory=ExecutorEntry)
    trackers: List[TrackerEntry] = field(default_factory=list)  # tensorboard, mlflow, wandb, ...
    time_limit: Optional[float] = option(None, check=_time_limit)  # seconds per run; exceeded: status timeout
    leaderboard: LeaderboardEntry = field(default_factory=LeaderboardEntry)
    dynamics: DynamicsEntry = field(default_factory=DynamicsEntry)

    def problems(self) -> Iterator[tuple[str, str]]:
        for key, values in self.sweep.items():
            yield from (_prefixed(f"sweep.{key}", p) for p in sweep_key_problems(key, values))
        yield from _repeated_entries("models", self.models)
        yield from _repeated_entries("datasets", self.datasets)
        yield from _repeated_metrics(self.metrics)
        fixed = [f"datasets[{i}]" for i, d in enumerate(self.datasets) if d.subset.mode != "random"]
        if "subset.seed" in self.sweep and "subset.mode" not in self.sweep and fixed:
            # every value would plan the same runs: mode first takes the first n examples
            takes = "takes" if len(fixed) == 1 else "take"
            yield "sweep.subset.seed", (f"a seed only applies to mode: random, and {', '.join(fixed)} {takes} the "
                                        "first n examples, so every value gives the same runs. Set subset.mode: "
                                        "random there, or remove the axis")


def _repeated_entries(key: str, entries: list) -> Iterator[tuple[str, str]]:
    """An entry listed twice, identical to the last field, plans the same runs, which were
    merged into one without a word. (Identical plugins under different labels are the
    planner's to refuse: they differ here.)"""
    first: dict[str, int] = {}
    for i, entry in enumerate(entries):
        ident = repr(dataclasses.asdict(entry))
        if ident in first:
            yield (f"{key}[{i}]", f"repeats {key}[{first[ident]}] ('{entry.label or entry.name}'): the same entry "
                                  "plans the same runs once; remove one")
        first.setdefault(ident, i)


def _repeated_metrics(metrics: list) -> Iterator[tuple[str, str]]:
    """A metric listed twice: its values are stored under its name, so ``[fd, fd]`` computed
    it once and two configs of one metric (swd with 20 and 30 projections) kept only the
    last one's values; both were merged without a word."""
    first: dict[str, int] = {}
    for i, entry in enumerate(metrics):
        j = first.setdefault(entry.name, i)
        if j == i:
            continue
        if dataclasses.asdict(entry) == dataclasses.asdict(metrics[j]):
            yield f"metrics[{i}]", f"repeats metrics[{j}] ('{entry.name}'): it is computed once; remove one"
        else:
            yield (f"metrics[{i}]", f"repeats metrics[{j}] ('{entry.name}') with other settings: a metric's values "
                                    "are stored under its name, so a suite computes it with one config; remove "
                                    "one (or compute the other config in a second suite)")


def _prefixed(path: str, problem: tuple[str, str]) -> tuple[str, str]:
    sub, msg = problem
    return (f"{path}.{sub}" if path and sub else sub or path), msg


# --------------------------------------------------------------------- checker


def value_problems(schema: type, name: str, value: Any) -> list[str]:
    """What the constraint of field ``name`` of ``schema`` says about ``value``."""
    f = next((f for f in dataclasses.fields(schema) if f.name == name), None)
    check = f.metadata.get("check") if f is not None else None
    msg = check(value) if check is not None else None
    return [msg] if msg else []


def schema_problems(obj: Any, path: str = "") -> list[tuple[str, str]]:
    """Every field constraint and cross-field rule of a typed schema object, recursively."""
    out: list[tuple[str, str]] = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        here = f"{path}.{f.name}" if path else f.name
        out += [(here, msg) for msg in value_problems(type(obj), f.name, value)]
        if dataclasses.is_dataclass(value):
            out += schema_problems(value, here)
        elif isinstance(value, list):
            out += [p for i, item in enumerate(value) if dataclasses.is_dataclass(item)
                    for p in schema_problems(item, f"{here}[{i}]")]
    rules = getattr(obj, "problems", None)
    if rules is not None:
        out += [_prefixed(path, p) for p in rules()]
    return out


def sweep_key_problems(key: str, values: Any) -> Iterator[tuple[str, str]]:
    """A sweep key must name something sweepable and take a non-empty list of values
    that the swept field's own constraint accepts."""
    if not (key == "n" or key.startswith(SWEEP_PREFIXES)):
        yield "", "sweep keys are n, budget.<key>, model.<key>, dataset.<key> or subset.<key>"
        return
    if not isinstance(values, list) or not values:
        yield "", "a sweep key takes a non-empty list of values"
        return
    if key == "n":
        schema, name = DatasetEntry, "n"
    else:
        prefix, name = key.split(".", 1)
        schema = SWEPT.get(prefix + ".")
        if schema is None:
            return  # model./dataset. keys are checked against the suite's plugins
        names = [f.name for f in dataclasses.fields(schema)]
        if name not in names:
            yield "", f"unknown {prefix} key '{name}'.{suggest(name, names)}"
            return
    for value in values:
        yield from (("", msg) for msg in value_problems(schema, name, value))
