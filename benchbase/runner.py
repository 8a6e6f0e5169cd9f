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


def execute_task(task: RunTask, emit: Callable[[Any], None]) -> str:
    """Train and evaluate one run; report everything through ``emit``. Returns status."""
    spec = task.spec
    run_id = spec.run_id
    t_start = time.monotonic()
    report = emit

    def emit(event) -> None:  # noqa: F811 - wraps the executor's emit
        try:
            report(event)
        except Exception as exc:
            raise SinkError(f"could not deliver {type(event).__name__} for run {run_id}: {exc}") from exc

    prior_wall = task.checkpoint.wall_time if task.checkpoint else 0.0
    summary: dict = {"examples": 0, "steps": 0, "param_count": None}
    step = task.checkpoint.step if task.checkpoint else 0
    placed = contextlib.ExitStack()
    try:
        registry = _registry(task)
        model_reg = registry.get("model", spec.model["name"], spec.model["framework"])
        model_cfg, _ = plugin_config(model_reg, spec.model["config"], "<run spec>", "model.config")
        model = model_reg.cls(model_cfg)
        if _content(getattr(model, "origin", lambda: None)()) != _content(spec.model.get("origin")):
            # the run id names the inputs the suite was validated with
            raise ValueError(f"model '{spec.model['label']}': its input files changed since the suite was "
                             "validated; run the suite again to score the new files as a new run")
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
        placed.enter_context(fw.placement(device))
        sample_fresh, fresh_source = fresh_sampler(dataset, splits)
        train = TrainData(x=fw.put(subset.x, device), y=fw.put(subset.y, device), spec=splits.spec,
                          device=device, x_numpy=subset.x, sample_fresh=sample_fresh,
                          fresh_source=fresh_source)
        provenance = _provenance(spec, task, fw, device, subset, registry, fresh_source)
        emit(Started(run_id, provenance, resumed_from=step))

        fw.seed_everything(spec.seed)
        state = model.init(train, mix_seed(spec.seed, SALT_INIT))
        if task.checkpoint is not None:
            state = model.load(task.checkpoint.blob, train)
        summary["param_count"] = int(model.param_count(state))

        evaluator = Evaluator(spec, subset, splits, registry, fw, device,
                              FeatureCache(os.path.join(task.results_dir, "cache") if task.results_dir else None))
        b = spec.budget
        per_step = b["batch_size"] * b["batches_per_step"]
        total = b["steps"] if model_reg.cls.trains else 0
        eval_steps = [s for s in spec.eval["steps"] if s > step or (s == 0 and step == 0)]
        deadline = (t_start + spec.time_limit - prior_wall) if spec.time_limit else math.inf
        timers = {"train": 0.0, "eval": 0.0}

        def evaluate(at: int) -> None:
            t0 = time.monotonic()
            rows, keep = evaluator.evaluate(model, state, at, at * per_step)
            summary["param_count"] = int(model.param_count(state))  # may change as the model grows
            if logs:
                rows.extend(EvalRow(metric=f"train/{k}", value=v, ref="train")
                            for k, v in fw.scalars(logs).items())
            ckpt = model.save(state) if (model_reg.cls.trains and at < total) else None
            timers["eval"] += time.monotonic() - t0
            emit(Evaluated(run_id, at, at * per_step, rows, keep, ckpt,
                           wall_time=prior_wall + time.monotonic() - t_start))

        logs: dict = {}
        if not model_reg.cls.trains:  # fitted at init, or replaying samples made elsewhere
            for at in eval_steps:
                state = model.seek(state, at) if hasattr(model, "seek") else state
                evaluate(at)
                step = at  # a replayed trajectory reports the steps it covers
            eval_steps = []
        if eval_steps and eval_steps[0] == 0:
            evaluate(0)
            eval_steps = eval_steps[1:]
        draw = fw.drawer(train.x, train.y, per_step, spec.seed, device)
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
    except Diverged as exc:
        summary.update(_consumed(step, _per_step(spec), None, t_start, prior_wall, step),
                       diverged_at=exc.step, reason=str(exc))
        emit(Finished(run_id, "diverged", summary, error=str(exc)))
        return "diverged"
    except TimeLimitExceeded:
        summary.update(_consumed(step, _per_step(spec), None, t_start, prior_wall, step),
                       reason=f"time limit of {spec.time_limit}s exceeded")
        emit(Finished(run_id, "timeout", summary, error=summary["reason"]))
        return "timeout"
    except Exception as exc:  # a plugin that raises fails its run, never the suite
        summary.update(_consumed(step, _per_step(spec), None, t_start, prior_wall, step))
        summary["reason"] = f"{type(exc).__name__}: {exc}"
        emit(Finished(run_id, "failed", summary, error=traceback.format_exc()))
        return "failed"
    finally:
        placed.close()


def _content(origin: dict | None) -> dict | None:
    """What identifies a model's input files: its origin without where they live."""
    return None if origin is None else {k: v for k, v in origin.items() if k != "path"}


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
        "model_origin": spec.model.get("origin"),
        "plugins": {
            "model": src("model", spec.model["name"], spec.model["framework"]),
            "dataset": src("dataset", spec.dataset["name"]),
            "features": src("feature", spec.eval["features"]["name"]),
            "metrics": {m["name"]: src("metric", m["name"]) for m in spec.metrics},
        },
    }

