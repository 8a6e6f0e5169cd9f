"""Run specs: one training run, fully resolved, as typed frozen data.

The run planner (benchbase.planner) makes them from a suite; the runner, the store,
observers and every reader use them. A spec is picklable (executors send it to
workers) and JSON-able: :meth:`RunSpec.to_dict` is the form the store keeps, and
:meth:`RunSpec.from_dict` reads that form back, from any version of the store.

A run's id hashes :meth:`RunSpec.identity`: everything that changes its numbers, and
not the suite name, the device, display labels or where the data lives (a plugin
config's ``location`` fields, listed in ``volatile``).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchbase.contracts import volatile_fields


def json_default(o):
    """JSON for the numpy scalars and tuples that plugin configs and sweeps may hold."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, (tuple, set, frozenset)):
        return list(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def _plain(d: dict) -> dict:
    return json.loads(json.dumps(d, default=json_default))


def _pick(cls, d: dict) -> dict:
    """The keys of ``d`` that are fields of ``cls``: stored specs may lack newer fields
    (their defaults apply) and carry none this code does not know."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass(frozen=True)
class PluginRef:
    """A plugin with its resolved config, as a run uses it."""

    name: str
    config: dict
    version: str
    volatile: tuple[str, ...] = ()  # config keys that say where, not what: kept out of the run id

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["volatile"] = list(self.volatile)
        return out

    def identity(self) -> dict:
        out = {k: v for k, v in self.to_dict().items() if k not in ("label", "volatile")}
        out["config"] = {k: v for k, v in self.config.items() if k not in set(self.volatile)}
        return out

    @classmethod
    def from_dict(cls, d: dict):
        d = _pick(cls, d)
        if "volatile" in d:
            d["volatile"] = tuple(d["volatile"] or ())
        return cls(**d)


@dataclass(frozen=True)
class ModelRef(PluginRef):
    framework: str = ""
    family: str | None = None
    label: str = ""
    lr: float | None = None  # the model's step size, for normalized steps (None: it has none)
    #: where a model that replays samples made elsewhere reads them (``Model.origin``):
    #: ``path`` and what identifies the content (sha256s); None for every other model
    origin: dict | None = None

    def to_dict(self) -> dict:
        out = super().to_dict()
        if self.origin is None:  # the stored form (and run id) of every other model is unchanged
            del out["origin"]
        return out

    def identity(self) -> dict:
        out = super().identity()
        if self.origin is not None:  # what the inputs are, not where they live
            out["origin"] = {k: v for k, v in self.origin.items() if k != "path"}
        return out


@dataclass(frozen=True)
class DatasetRef(PluginRef):
    label: str = ""


@dataclass(frozen=True)
class FeatureRef(PluginRef):
    """The feature space metrics are computed in."""

    @classmethod
    def of(cls, registered, config: dict) -> "FeatureRef":
        """A registered feature space (benchbase.plugins.Registered) with its validated, plain config."""
        return cls(name=registered.name, config=config, version=registered.version,
                   volatile=tuple(volatile_fields(registered.cls.Config)))


def parse_split(text: str) -> tuple[int, int]:
    """'2 of 3' -> (2, 3): the second of three disjoint parts."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:of|/)\s*(\d+)\s*", str(text))
    if not m:
        raise ValueError(f"split must look like 'k of K' (e.g. '1 of 2'), got '{text}'")
    k, total = int(m.group(1)), int(m.group(2))
    if not 1 <= k <= total:
        raise ValueError(f"split '{text}': k must be between 1 and K")
    return k, total


@dataclass(frozen=True)
class SubsetPlan:
    """Which training examples a run uses (benchbase.data.select_subset picks them)."""

    n: int | None = None  # None: the whole pool
    mode: str = "first"  # first | random
    seed: int = 0  # for mode=random
    split: tuple[int, int] | None = None  # (k, K): the k-th of K disjoint parts
    dedup: float | None = None  # drop near-duplicates above this correlation first
    content_hash: str | None = None  # of the chosen examples, when the data was read at planning
    holdout: tuple[int, int] | None = None  # (k, K): train on the n chosen examples without their k-th fold

    def to_dict(self) -> dict:
        out = {"n": self.n, "mode": self.mode, "seed": self.seed,
               "split": None if self.split is None else list(self.split), "dedup": self.dedup}
        if self.holdout is not None:  # only when set, so the ids of runs without it do not change
            out["holdout"] = list(self.holdout)
        if self.content_hash is not None:
            out["content_hash"] = self.content_hash
        return out

    @classmethod
    def from_dict(cls, d: "dict | SubsetPlan") -> "SubsetPlan":
        if isinstance(d, SubsetPlan):
            return d
        d = _pick(cls, d)
        split = d.get("split")
        if isinstance(split, str):
            split = parse_split(split)
        d["split"] = None if split is None else tuple(int(v) for v in split)
        holdout = d.get("holdout")
        if isinstance(holdout, str):
            holdout = parse_split(holdout)
        d["holdout"] = None if holdout is None else tuple(int(v) for v in holdout)
        return cls(**d)


#: the largest budget a suite may ask for: a trillion steps, a quadrillion examples (years of
#: training at a million examples a second; far beyond, step counts overflow the store's
#: 64-bit integers and the schedule's arithmetic)
MAX_STEPS, MAX_EXAMPLES = 10 ** 12, 10 ** 15


@dataclass(frozen=True)
class Budget:
    """Identical for every model: ``steps`` calls of ``train_step``, each on
    ``batches_per_step`` batches of ``batch_size`` examples."""

    examples: int
    batch_size: int
    batches_per_step: int
    steps: int

    @property
    def examples_per_step(self) -> int:
        return self.batch_size * self.batches_per_step

    @classmethod
    def resolve(cls, batch_size: int, batches_per_step: int, examples: float | None = None,
                steps: int | None = None) -> "Budget":
        """From ``examples`` (or ``steps`` x batch size, the shorthand); ValueError when it
        is less than one step."""
        B, k = int(batch_size), int(batches_per_step)
        total = int(examples) if examples is not None else int(steps) * B
        if total // (B * k) < 1:
            raise ValueError(f"budget of {total} examples is less than one step ({B} x {k} batches per step)")
        if total > MAX_EXAMPLES:  # steps x batch_size within bounds each, too many together
            raise ValueError(f"budget of {total:.3g} examples is more than the most, {MAX_EXAMPLES:.0e}: no run "
                             "could finish it")
        return cls(examples=total, batch_size=B, batches_per_step=k, steps=total // (B * k))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Budget":
        return cls(**_pick(cls, d))


@dataclass(frozen=True)
class EvalPlan:
    """Where and how a run is evaluated."""

    steps: tuple[int, ...]  # evaluation steps, ascending; (0,) for a model that does not train
    n_samples: int
    n_test: int | None
    keep_samples: int
    features: FeatureRef

    def to_dict(self) -> dict:
        return {"steps": list(self.steps), "n_samples": self.n_samples, "n_test": self.n_test,
                "keep_samples": self.keep_samples, "features": self.features.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "EvalPlan":
        d = _pick(cls, d)
        d["steps"] = tuple(int(s) for s in d["steps"])
        d["features"] = FeatureRef.from_dict(d["features"])
        d.setdefault("keep_samples", 0)
        d.setdefault("n_test", None)
        return cls(**d)


@dataclass(frozen=True)
class MetricRef:
    """A metric as a run computes it: its config and what its class declares."""

    name: str
    config: dict
    version: str
    direction: str  # higher | lower | target
    target: float | None = None
    references: tuple[str, ...] = ("train",)  # the splits it is computed against
    requires: tuple[str, ...] = ()

    @classmethod
    def of(cls, registered, config: dict) -> "MetricRef":
        """A registered metric (benchbase.plugins.Registered) with its validated, plain
        config: what the planner and the scoring API hand the evaluation's Scorer."""
        c = registered.cls
        return cls(name=registered.name, config=config, version=registered.version, direction=c.direction,
                   target=getattr(c, "target", None), references=tuple(getattr(c, "references", ("train",))),
                   requires=tuple(sorted(getattr(c, "requires", ()))))

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["references"], out["requires"] = list(self.references), list(self.requires)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "MetricRef":
        d = _pick(cls, d)
        d["references"] = tuple(d.get("references") or ("train",))
        d["requires"] = tuple(d.get("requires") or ())
        return cls(**d)


@dataclass(frozen=True)
class RunSpec:
    """One training run, fully resolved."""

    suite: str
    model: ModelRef
    dataset: DatasetRef
    subset: SubsetPlan
    budget: Budget
    eval: EvalPlan
    metrics: tuple[MetricRef, ...]
    seed: int
    sweep: dict = field(default_factory=dict)  # the grid values that made this run
    device: str = "auto"
    time_limit: float | None = None

    def identity(self) -> dict:
        """What the run id hashes: everything that changes the numbers (and not where
        the data lives, display labels, the suite name or the device)."""
        return {
            "model": self.model.identity(), "dataset": self.dataset.identity(),
            "subset": self.subset.to_dict(), "budget": self.budget.to_dict(),
            "eval": {**self.eval.to_dict(), "features": self.eval.features.identity()},
            "metrics": [m.to_dict() for m in self.metrics],
            "seed": self.seed,
        }

    @property
    def run_id(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=json_default)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        """The JSON form the store keeps (read back by :meth:`from_dict`)."""
        return _plain({
            "suite": self.suite, "model": self.model.to_dict(), "dataset": self.dataset.to_dict(),
            "subset": self.subset.to_dict(), "budget": self.budget.to_dict(), "eval": self.eval.to_dict(),
            "metrics": [m.to_dict() for m in self.metrics], "seed": self.seed, "sweep": self.sweep,
            "device": self.device, "time_limit": self.time_limit,
        })

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunSpec":
        return cls(
            suite=d["suite"], model=ModelRef.from_dict(d["model"]), dataset=DatasetRef.from_dict(d["dataset"]),
            subset=SubsetPlan.from_dict(d["subset"]), budget=Budget.from_dict(d["budget"]),
            eval=EvalPlan.from_dict(d["eval"]), metrics=tuple(MetricRef.from_dict(m) for m in d["metrics"]),
            seed=int(d["seed"]), sweep=dict(d.get("sweep") or {}), device=d.get("device", "auto"),
            time_limit=d.get("time_limit"))

    @property
    def title(self) -> str:
        extras = "".join(f" {k}={v}" for k, v in self.sweep.items() if k not in ("n",))
        return f"{self.model.label} · {self.dataset.label} · n={self.subset.n}{extras} · seed {self.seed}"

    @property
    def trains(self) -> bool:
        """False for a model evaluated once, untrained (its only evaluation is at step 0)."""
        return tuple(self.eval.steps) != (0,)
