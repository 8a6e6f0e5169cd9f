"""The one training loop. It owns the budget and the evaluation schedule; a model
plugin only supplies ``init``, ``train_step`` and ``sample``.

``execute_task`` runs one run wherever an executor put it and reports through
``emit``: ``Started``, ``Progress``, ``Evaluated`` (rows + samples + checkpoint, to be
written atomically by the driver) and finally ``Finished``. It never writes the
store itself, so the same function serves in-process, subprocess and Ray workers.

Per step the loop does what a bare hand-written loop does (draw indices on the
device, index, call the step) plus an integer comparison; anything that forces a
host sync (finiteness checks, progress) happens every ``CHECK_EVERY`` steps only.
"""
from __future__ import annotations

import contextlib
import math
import os
import platform
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from benchbase.config import RunSpec, plugin_config
from benchbase.contracts import EvalRow, TrainData
from benchbase.data import DataCatalog, fresh_sampler, select_subset
from benchbase.evaluation import Diverged, Evaluator, FeatureCache
from benchbase.frameworks import SALT_INIT, get_framework, mix_seed
from benchbase.plugins import PluginPolicy, Registry, build_registry
from benchbase.store import Checkpoint

CHECK_EVERY = 256  # steps between finiteness / time-limit / progress checks
PROGRESS_SECONDS = 0.5


# ----------------------------------------------------------------------------- events


@dataclass
class Started:
    run_id: str
    provenance: dict
    resumed_from: int = 0


@dataclass
class Progress:
    run_id: str
    step: int
    total: int
    examples_per_s: float
    steps_per_s: float = 0.0


@dataclass
class Evaluated:
    run_id: str
    step: int
    examples: int
    rows: list[EvalRow]
    samples: np.ndarray | None = None
    checkpoint: bytes | None = None
    wall_time: float = 0.0


@dataclass
class Finished:
    run_id: str
    status: str  # done | failed | diverged | timeout
    summary: dict
    error: str | None = None


class TimeLimitExceeded(Exception):
    pass


class SinkError(Exception):
    """The driver failed to take an event (store write, disk full): abort, don't blame the run."""


@dataclass
class RunTask:
    """Everything a worker needs to run one spec; picklable (the registry is not sent)."""

    spec: RunSpec
    policy: PluginPolicy
    results_dir: str | None = None
    checkpoint: Checkpoint | None = None
    index: int = 0
    total: int = 1
    git_commit: str | None = None
    registry: Registry | None = field(default=None, repr=False, compare=False)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["registry"] = None
        return state

    @property
    def runs(self) -> list["RunTask"]:
        """The runs of this task (executors also receive fleets, whose runs are several)."""
        return [self]

    def with_runs(self, runs: list["RunTask"]) -> "RunTask":
        (run,) = runs
        return run


_REGISTRIES: dict[str, Registry] = {}


def _registry(task: RunTask) -> Registry:
    """The driver's registry in-process; elsewhere one built per worker process."""
    if task.registry is not None:
        return task.registry
    key = repr(task.policy)
    if key not in _REGISTRIES:
        _REGISTRIES[key] = build_registry(task.policy)
    return _REGISTRIES[key]


# ------------------------------------------------------------------------------- run


@dataclass
class PreparedRun:
    """A run with its model, data on the device and provenance, before its first step.

    Shared by ``execute_task`` and the fleet loop (benchbase.fleet), which prepares
    every member like this and then trains them together.
    """

    task: RunTask
    registry: Registry
    model_reg: Any
    model: Any
    splits: Any
    subset: Any
    fw: Any
    device: Any
    train: TrainData
    provenance: dict

    @property
    def spec(self) -> RunSpec:
        return self.task.spec

    @property
    def start(self) -> int:
        """The step training resumes from (0 for a fresh run)."""
        return self.task.checkpoint.step if self.task.checkpoint else 0

    @property
    def prior_wall(self) -> float:
        return self.task.checkpoint.wall_time if self.task.checkpoint else 0.0

    @property
    def per_step(self) -> int:
        return _per_step(self.spec)

    @property
    def total(self) -> int:
        return self.spec.budget["steps"] if self.model_reg.cls.trains else 0

    def eval_steps(self) -> list[int]:
        """The evaluation steps still to do."""
        step = self.start
        return [s for s in self.spec.eval["steps"] if s > step or (s == 0 and step == 0)]

    def init_state(self) -> Any:
        """The model's state at ``start``: ``init`` with the run's seed, then the checkpoint."""
        self.fw.seed_everything(self.spec.seed)
        state = self.model.init(self.train, mix_seed(self.spec.seed, SALT_INIT))
        if self.task.checkpoint is not None:
            state = self.model.load(self.task.checkpoint.blob, self.train)
        return state

    def evaluator(self) -> Evaluator:
        results = self.task.results_dir
        return Evaluator(self.spec, self.subset, self.splits, self.registry, self.fw, self.device,
                         FeatureCache(os.path.join(results, "cache") if results else None))


def prepare_run(task: RunTask) -> PreparedRun:
    """Resolve the run's plugins, select and check its training subset, put it on the device."""
    spec = task.spec
    registry = _registry(task)
    model_reg = registry.get("model", spec.model["name"], spec.model["framework"])
    model_cfg, _ = plugin_config(model_reg, spec.model["config"], "<run spec>", "model.config")
    model = model_reg.cls(model_cfg)
    data_reg = registry.get("dataset", spec.dataset["name"])
    data_cfg, _ = plugin_config(data_reg, spec.dataset["config"], "<run spec>", "dataset.config")
    dataset, splits = DataCatalog.shared().load(data_reg, data_cfg, spec.dataset["config"])
    subset = select_subset(splits, spec.subset)
    expected = spec.subset.get("content_hash")
    if expected and subset.content_hash != expected:
        raise ValueError(f"dataset '{spec.dataset['label']}' changed since the suite was validated "
                         f"(content hash {subset.content_hash}, expected {expected})")
    fw = get_framework(model_reg.framework)
    device = fw.device(spec.device)
    sample_fresh, fresh_source = fresh_sampler(dataset, splits)
    train = TrainData(x=fw.put(subset.x, device), y=fw.put(subset.y, device), spec=splits.spec,
                      device=device, x_numpy=subset.x, sample_fresh=sample_fresh, fresh_source=fresh_source)
    provenance = _provenance(spec, task, fw, device, subset, registry, fresh_source)
    return PreparedRun(task, registry, model_reg, model, splits, subset, fw, device, train, provenance)


def reporting(emit: Callable[[Any], None]) -> Callable[[Any], None]:
    """``emit`` with its failures turned into SinkError (the driver, not the run, failed)."""
    def deliver(event) -> None:
        try:
            emit(event)
        except Exception as exc:
            raise SinkError(f"could not deliver {type(event).__name__} for run {event.run_id}: {exc}") from exc

    return deliver


def outcome(exc: BaseException, run_id: str, spec: RunSpec, summary: dict) -> Finished:
    """The Finished event of a run that ``exc`` ended: diverged, timeout or failed."""
    if isinstance(exc, Diverged):
        summary.update(diverged_at=exc.step, reason=str(exc))
        return Finished(run_id, "diverged", summary, error=str(exc))
    if isinstance(exc, TimeLimitExceeded):
        summary["reason"] = f"time limit of {spec.time_limit}s exceeded"
        return Finished(run_id, "timeout", summary, error=summary["reason"])
    summary["reason"] = f"{type(exc).__name__}: {exc}"  # a plugin that raises fails its run, never the suite
    return Finished(run_id, "failed", summary,
                    error="".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))


def execute_task(task: RunTask, emit: Callable[[Any], None]) -> str:
    """Train and evaluate one run; report everything through ``emit``. Returns status."""
    spec = task.spec
    run_id = spec.run_id
    t_start = time.monotonic()
    emit = reporting(emit)
    prior_wall = task.checkpoint.wall_time if task.checkpoint else 0.0
    summary: dict = {"examples": 0, "steps": 0, "param_count": None}
    step = task.checkpoint.step if task.checkpoint else 0
    placed = contextlib.ExitStack()
    try:
        run = prepare_run(task)
        fw, model = run.fw, run.model
        placed.enter_context(fw.placement(run.device))
        emit(Started(run_id, run.provenance, resumed_from=step))
        state = run.init_state()
        summary["param_count"] = int(model.param_count(state))

        evaluator = run.evaluator()
        per_step, total = run.per_step, run.total
        eval_steps = run.eval_steps()
        deadline = (t_start + spec.time_limit - prior_wall) if spec.time_limit else math.inf
        timers = {"train": 0.0, "eval": 0.0}

        def evaluate(at: int) -> None:
            t0 = time.monotonic()
            rows, keep = evaluator.evaluate(model, state, at, at * per_step)
            if logs:
                rows.extend(EvalRow(metric=f"train/{k}", value=v, ref="train")
                            for k, v in fw.scalars(logs).items())
            ckpt = model.save(state) if (run.model_reg.cls.trains and at < total) else None
            timers["eval"] += time.monotonic() - t0
            emit(Evaluated(run_id, at, at * per_step, rows, keep, ckpt,
                           wall_time=prior_wall + time.monotonic() - t_start))

        logs: dict = {}
        if eval_steps and eval_steps[0] == 0:
            evaluate(0)
            eval_steps = eval_steps[1:]
        draw = fw.drawer(run.train.x, run.train.y, per_step, spec.seed, run.device)
        train_step = model.train_step
        next_eval = eval_steps.pop(0) if eval_steps else total
        t_seg = time.monotonic()
        next_progress = t_seg + PROGRESS_SECONDS
        seg_start = step
        while step < total:
            batch, key = draw(step)
            state, logs = train_step(state, batch, key)
            step += 1
            if step == next_eval or step % CHECK_EVERY == 0:
                if logs and not all(math.isfinite(v) for v in fw.scalars(logs).values()):
                    raise Diverged(step, "training loss")
                now = time.monotonic()
                if step == next_eval:
                    timers["train"] += now - t_seg
                    evaluate(step)
                    next_eval = eval_steps.pop(0) if eval_steps else total
                    t_seg = time.monotonic()
                    now = t_seg
                if now > deadline and step < total:  # a finished run is not late
                    raise TimeLimitExceeded()
                if now >= next_progress:
                    rate = (step - seg_start) / max(timers["train"] + (now - t_seg), 1e-9)
                    emit(Progress(run_id, step, total, rate * per_step, rate))
                    next_progress = now + PROGRESS_SECONDS
        summary.update(_consumed(step, per_step, timers, t_start, prior_wall, seg_start))
        emit(Finished(run_id, "done", summary))
        return "done"
    except SinkError:
        raise
    except Exception as exc:
        summary.update(_consumed(step, _per_step(spec), None, t_start, prior_wall, step))
        finished = outcome(exc, run_id, spec, summary)
        emit(finished)
        return finished.status
    finally:
        placed.close()


def _per_step(spec: RunSpec) -> int:
    return spec.budget["batch_size"] * spec.budget["batches_per_step"]


def _consumed(step: int, per_step: int, timers: dict | None, t_start: float, prior_wall: float,
              seg_start: int) -> dict:
    wall = prior_wall + time.monotonic() - t_start
    out = {"examples": step * per_step, "steps": step, "wall_time": round(wall, 3)}
    if timers is not None:
        out["train_time"] = round(timers["train"], 3)
        out["eval_time"] = round(timers["eval"], 3)
        if timers["train"] > 0:
            out["examples_per_s"] = round((step - seg_start) * per_step / timers["train"], 1)
    return out


def _versions(framework: str) -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("benchbase", "numpy", "torch", "pot", "pluggy", "omegaconf"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    if framework == "jax":
        for dist in ("jax", "jaxlib", "flax", "optax"):
            try:
                out[dist] = md.version(dist)
            except md.PackageNotFoundError:
                pass
    return out


def _provenance(spec: RunSpec, task: RunTask, fw, device, subset, registry: Registry,
                fresh_source: str) -> dict:
    def src(kind: str, name: str, framework: str | None = None) -> str:
        r = registry.get(kind, name, framework)
        return f"{r.source}:{r.plugin}"

    return {
        "run_id": spec.run_id,
        "versions": _versions(spec.model["framework"]),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "argv": sys.argv[:],
        "device": fw.device_name(device),
        "git_commit": task.git_commit,
        "dataset_content_hash": subset.content_hash,
        "subset": subset.provenance,
        "fresh_source": fresh_source,
        "plugins": {
            "model": src("model", spec.model["name"], spec.model["framework"]),
            "dataset": src("dataset", spec.dataset["name"]),
            "features": src("feature", spec.eval["features"]["name"]),
            "metrics": {m["name"]: src("metric", m["name"]) for m in spec.metrics},
        },
    }

