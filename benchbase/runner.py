"""The one training loop. It owns the budget and the evaluation schedule; a model
plugin only supplies ``init``, ``train_step`` and ``sample``.

``execute_task`` runs one run wherever an executor put it and reports through
``emit``: ``Started``, ``Progress``, ``Evaluated`` (rows + samples + checkpoint, to be
written atomically by the driver) and finally ``Finished``. It never writes the
store itself, so the same function serves in-process, subprocess and Ray workers.

It reads like NVlabs/edm's ``training_loop``, in three parts that a loop over several
runs at once can also call one run at a time:

- :func:`prepare`: model, data on the device, provenance (``Started``), initial or
  resumed state, the evaluator;
- :func:`train`: the hot loop, with :func:`evaluate` at the scheduled steps;
- :func:`finish`: the ``Finished`` event, its status looked up in :data:`OUTCOMES`
  from the exception that ended the run (none: ``done``).

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

from benchbase.blame import PluginFault, blame, describe, expect, fault_of
from benchbase.contracts import DataSplits, EvalRow, TrainData
from benchbase.data import DataCatalog, Subset, fresh_sampler, select_subset
from benchbase.evaluation import Diverged, Evaluator, FeatureCache
from benchbase.events import Emit, Evaluated, Finished, Notice, Progress, Started, Status
from benchbase.frameworks import SALT_INIT, get_framework, mix_seed
from benchbase.plugins import PluginPolicy, Registry, build_registry
from benchbase.specs import RunSpec
from benchbase.store import Checkpoint
from benchbase.structured import plugin_config

CHECK_EVERY = 256  # steps between finiteness / time-limit / progress checks
PROGRESS_SECONDS = 0.5

# ------------------------------------------------------------------ ways a run stops
# (the events it sends are in benchbase.events)


class TimeLimitExceeded(Exception):
    pass


class SinkError(Exception):
    """The driver failed to take an event (store write, disk full): abort, don't blame the run."""


# --------------------------------------------------------------------------- outcomes

#: not a run status: the driver failed, so the exception goes on up and the run is not recorded
DRIVER_FAULT = "driver fault"


@dataclass(frozen=True)
class Outcome:
    """What an exception that ends a run makes of it."""

    status: str  # done | failed | diverged | timeout, or DRIVER_FAULT
    describe: Callable[[BaseException, RunSpec], dict] = lambda exc, spec: {}  # summary fields, with "reason"
    traceback: bool = False  # the stored error is the traceback (a bug to read), else the reason


#: every way a run can end, by exception type (the most specific class wins)
OUTCOMES: dict[type, Outcome] = {
    SinkError: Outcome(DRIVER_FAULT),
    Diverged: Outcome("diverged", lambda exc, spec: {"diverged_at": exc.step, "reason": str(exc)}),
    TimeLimitExceeded: Outcome("timeout", lambda exc, spec: {"reason": f"time limit of {spec.time_limit}s exceeded"}),
    # a plugin that raises or breaks its contract fails its run, never the suite
    PluginFault: Outcome("failed", lambda exc, spec: {"reason": str(exc)}, traceback=True),
    Exception: Outcome("failed", lambda exc, spec: {"reason": f"{type(exc).__name__}: {exc}"}, traceback=True),
}


def outcome_of(exc: BaseException) -> Outcome | None:
    """The outcome of ``exc``; None for what no run should catch (KeyboardInterrupt, SystemExit)."""
    return next((OUTCOMES[cls] for cls in type(exc).__mro__ if cls in OUTCOMES), None)


# ------------------------------------------------------------------------------ tasks


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


def deliverer(emit: Emit, run_id: str) -> Emit:
    """``emit`` with its failures marked as the driver's (SinkError), not the run's."""
    def deliver(event) -> None:
        try:
            emit(event)
        except Exception as exc:
            raise SinkError(f"could not deliver {type(event).__name__} for run {run_id}: {exc}") from exc
    return deliver


# -------------------------------------------------------------------------------- run


@dataclass
class Run:
    """One run in progress: made by :func:`start`, filled in by :func:`prepare`,
    advanced by :func:`train`, reported by :func:`finish`."""

    task: RunTask
    spec: RunSpec
    t_start: float  # time.monotonic() when this attempt started
    prior_wall: float  # wall time of earlier attempts (from the checkpoint)
    step: int  # steps done (the checkpoint's, until training moves it)
    deadline: float  # time.monotonic() past which the run times out
    seg_start: int  # the step this attempt started training from
    summary: dict = field(default_factory=lambda: {"examples": 0, "steps": 0, "param_count": None})
    timers: dict = field(default_factory=lambda: {"train": 0.0, "eval": 0.0})
    placement: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    # set by prepare
    model: Any = None
    trains: bool = True
    fw: Any = None
    device: Any = None
    data: TrainData | None = None
    splits: DataSplits | None = None  # the dataset's splits (a fleet pools its members' subsets from them)
    subset: Subset | None = None
    evaluator: Evaluator | None = None
    state: Any = None
    total: int = 0  # the last step: the budget's, or 0 for a model that does not train
    eval_steps: list[int] = field(default_factory=list)  # evaluations still to do

    @property
    def run_id(self) -> str:
        return self.spec.run_id

    def wall_time(self) -> float:
        return self.prior_wall + time.monotonic() - self.t_start

    def close(self) -> None:
        self.placement.close()


def start(task: RunTask) -> Run:
    """The clock and the resume point of a run; cannot fail."""
    spec, ckpt, now = task.spec, task.checkpoint, time.monotonic()
    prior = ckpt.wall_time if ckpt else 0.0
    step = ckpt.step if ckpt else 0
    deadline = (now + spec.time_limit - prior) if spec.time_limit else math.inf
    return Run(task, spec, now, prior, step, deadline, step)


def restart(run: Run) -> None:
    """Forget the checkpoint: train from step 0 with the time limit of a first attempt."""
    spec = run.spec
    run.step = run.seg_start = 0
    run.prior_wall = 0.0
    run.deadline = (run.t_start + spec.time_limit) if spec.time_limit else math.inf


def prepare(run: Run, emit: Emit) -> None:
    """Everything before the first step: the model, the data on its device, provenance
    (``Started``), the initial or resumed state and the evaluator."""
    spec, task = run.spec, run.task
    registry = _registry(task)
    model_reg = registry.get("model", spec.model.name, spec.model.framework)
    model_cfg, _ = plugin_config(model_reg, spec.model.config, "<run spec>", "model.config")
    with blame("model", spec.model.name, "__init__"):
        run.model, run.trains = model_reg.cls(model_cfg), bool(model_reg.cls.trains)
    if _content(getattr(run.model, "origin", lambda: None)()) != _content(spec.model.origin):  # the run id names the validated inputs
        raise ValueError(f"model '{spec.model.label}': its input files changed since the suite was validated; "
                         "run the suite again to score the new files as a new run")
    data_reg = registry.get("dataset", spec.dataset.name)
    data_cfg, _ = plugin_config(data_reg, spec.dataset.config, "<run spec>", "dataset.config")
    dataset, splits = DataCatalog.shared().load(data_reg, data_cfg, spec.dataset.config)
    run.splits = splits
    run.subset = subset = select_subset(splits, spec.subset)
    expected = spec.subset.content_hash
    if expected and subset.content_hash != expected:
        raise ValueError(f"dataset '{spec.dataset.label}' changed since the suite was validated "
                         f"(content hash {subset.content_hash}, expected {expected})")

    run.fw = fw = get_framework(model_reg.framework)
    run.device = device = fw.device(spec.device)
    run.placement.enter_context(fw.placement(device))
    sample_fresh, fresh_source = fresh_sampler(dataset, splits, spec.eval.n_test)
    run.data = TrainData(x=fw.put(subset.x, device), y=fw.put(subset.y, device), spec=splits.spec, device=device,
                         x_numpy=subset.x, sample_fresh=sample_fresh, fresh_source=fresh_source)
    emit(Started(run.run_id, _provenance(spec, task, fw, device, subset, registry, fresh_source),
                 resumed_from=run.step))

    fw.seed_everything(spec.seed)
    name = spec.model.name
    with blame("model", name, "init"):
        run.state = run.model.init(run.data, mix_seed(spec.seed, SALT_INIT))
    expect(run.state is not None, "model", name, "init", "returned None; expected the model's state")
    if task.checkpoint is not None:
        try:
            with blame("model", name, "load"):
                state = run.model.load(task.checkpoint.blob, run.data)
            expect(state is not None, "model", name, "load", "returned None; expected the model's state")
            run.state = state
        except PluginFault as exc:  # an unreadable checkpoint costs a restart, not the run
            emit(Notice(run.run_id, f"the checkpoint at step {run.step} cannot be loaded ({exc}); "
                                    "restarting this run from scratch"))
            restart(run)
            fw.seed_everything(spec.seed)
            with blame("model", name, "init"):
                run.state = run.model.init(run.data, mix_seed(spec.seed, SALT_INIT))
    run.summary["param_count"] = _param_count(run, run.state)
    cache = FeatureCache(os.path.join(task.results_dir, "cache") if task.results_dir else None)
    run.evaluator = Evaluator(spec, subset, splits, registry, fw, device, cache,
                              exact_sampler=sample_fresh if fresh_source == "true_sampler" else None,
                              report=lambda text: emit(Status(run.run_id, text)))
    run.total = spec.budget.steps if run.trains else 0
    run.eval_steps = [s for s in spec.eval.steps if s > run.step or (s == 0 and run.step == 0)]


def evaluate(run: Run, state: Any, logs: dict, at: int, emit: Emit, samples: np.ndarray | None = None) -> None:
    """Evaluate ``state`` at step ``at`` (with the last training logs) and emit the rows,
    the kept samples and, while training goes on, a checkpoint to resume from.
    ``samples``: drawn already (a fleet samples its members in one call)."""
    t0 = time.monotonic()
    per_step = run.spec.budget.examples_per_step
    rows, keep = run.evaluator.evaluate(run.model, state, at, at * per_step, samples=samples)
    run.summary["param_count"] = _param_count(run, state)  # a non-parametric model may grow
    if logs:
        rows.extend(EvalRow(metric=f"train/{k}", value=v, ref="train") for k, v in run.fw.scalars(logs).items())
    ckpt = None
    if run.trains and at < run.total:
        with blame("model", run.spec.model.name, "save"):
            ckpt = run.model.save(state)
        expect(isinstance(ckpt, (bytes, bytearray, memoryview)), "model", run.spec.model.name, "save",
               f"returned {describe(ckpt)}; expected bytes")
        ckpt = bytes(ckpt)
    run.timers["eval"] += time.monotonic() - t0
    emit(Evaluated(run.run_id, at, at * per_step, rows, keep, ckpt, wall_time=run.wall_time()))


def train(run: Run, emit: Emit) -> None:
    """From ``run.step`` to ``run.total``, evaluating at ``run.eval_steps``. Leaves the
    step reached and the state in ``run``, also when it raises."""
    fw, spec, timers, deadline = run.fw, run.spec, run.timers, run.deadline
    per_step, total = spec.budget.examples_per_step, run.total
    eval_steps = list(run.eval_steps)
    state, logs, step = run.state, {}, run.step
    if not run.trains:  # fitted at init, or replaying samples made elsewhere at their steps
        try:
            for at in eval_steps:
                with blame("model", spec.model.name, "seek"):
                    state = run.model.seek(state, at) if hasattr(run.model, "seek") else state
                evaluate(run, state, logs, at, emit)
                step = at  # a replayed trajectory reports the steps it covers
        finally:
            run.step, run.state = step, state
        return
    if eval_steps and eval_steps[0] == 0:
        evaluate(run, state, logs, 0, emit)
        eval_steps = eval_steps[1:]
    draw = fw.drawer(run.data.x, run.data.y, per_step, spec.seed, run.device)
    train_step = run.model.train_step
    name = spec.model.name
    next_eval = eval_steps.pop(0) if eval_steps else total
    t_seg = time.monotonic()
    next_progress = t_seg + PROGRESS_SECONDS
    try:
        while step < total:
            batch, key = draw(step)
            try:  # free in the loop (Python 3.11+ exceptions cost only when raised)
                state, logs = train_step(state, batch, key)
            except Exception as exc:
                raise fault_of(exc, "model", name, "train_step") from exc
            step += 1
            if step == next_eval or step % CHECK_EVERY == 0:
                if logs and not all(math.isfinite(v) for v in _train_logs(fw, logs, name).values()):
                    raise Diverged(step, "training loss")
                now = time.monotonic()
                if step == next_eval:
                    timers["train"] += now - t_seg
                    evaluate(run, state, logs, step, emit)
                    next_eval = eval_steps.pop(0) if eval_steps else total
                    t_seg = time.monotonic()
                    now = t_seg
                if now > deadline and step < total:  # a finished run is not late
                    raise TimeLimitExceeded()
                if now >= next_progress:
                    rate = (step - run.seg_start) / max(timers["train"] + (now - t_seg), 1e-9)
                    emit(Progress(run.run_id, step, total, rate * per_step, rate))
                    next_progress = now + PROGRESS_SECONDS
    finally:
        run.step, run.state = step, state


def _param_count(run: Run, state: Any) -> int:
    name = run.spec.model.name
    with blame("model", name, "param_count"):
        count = run.model.param_count(state)
    expect(_is_count(count), "model", name, "param_count", f"returned {describe(count)}; expected a whole number")
    return int(count)


def _is_count(value: Any) -> bool:
    try:
        return float(value).is_integer() and not isinstance(value, (bool, str))
    except (TypeError, ValueError):
        return False


def _train_logs(fw, logs: Any, name: str) -> dict:
    """``train_step``'s logs as scalars; anything but a mapping of numbers is the model's fault."""
    with blame("model", name, "train_step"):
        expect(isinstance(logs, dict), "model", name, "train_step",
               f"returned logs {describe(logs)}; expected a dict of scalars")
        return fw.scalars(logs)


def finish(run: Run, emit: Emit, exc: BaseException | None = None) -> str:
    """Emit ``Finished`` for a run that ended (with ``exc``, or normally); returns its status.
    An exception that is the driver's fault, or no run's business, is raised again."""
    spec, step = run.spec, run.step
    wall = round(run.wall_time(), 3)
    run.summary.update(examples=step * spec.budget.examples_per_step, steps=step, wall_time=wall)
    if exc is None:
        timers, trained = run.timers, step - run.seg_start
        run.summary.update(train_time=round(timers["train"], 3), eval_time=round(timers["eval"], 3))
        if timers["train"] > 0:
            run.summary["examples_per_s"] = round(trained * spec.budget.examples_per_step / timers["train"], 1)
        emit(Finished(run.run_id, "done", run.summary))
        return "done"
    outcome = outcome_of(exc)
    if outcome is None or outcome.status == DRIVER_FAULT:
        raise exc
    run.summary.update(outcome.describe(exc, spec))
    error = "".join(traceback.format_exception(exc)) if outcome.traceback else run.summary["reason"]
    emit(Finished(run.run_id, outcome.status, run.summary, error=error))
    return outcome.status


def execute_task(task: RunTask, emit: Emit) -> str:
    """Train and evaluate one run; report everything through ``emit``. Returns its status."""
    deliver = deliverer(emit, task.spec.run_id)
    run = start(task)
    try:
        prepare(run, deliver)
        train(run, deliver)
        return finish(run, deliver)
    except Exception as exc:  # OUTCOMES says what becomes of the run (a SinkError goes on up)
        return finish(run, deliver, exc)
    finally:
        run.close()


# ------------------------------------------------------------------------- provenance


def _content(origin: dict | None) -> dict | None:
    """What identifies a model's input files: its origin without where they live."""
    return None if origin is None else {k: v for k, v in origin.items() if k != "path"}


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
        "versions": _versions(spec.model.framework),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "argv": sys.argv[:],
        "device": fw.device_name(device),
        "numerics": fw.numerics(),
        "git_commit": task.git_commit,
        "dataset_content_hash": subset.content_hash,
        "subset": subset.provenance,
        "fresh_source": fresh_source,
        "model_origin": spec.model.origin,
        "plugins": {
            "model": src("model", spec.model.name, spec.model.framework),
            "dataset": src("dataset", spec.dataset.name),
            "features": src("feature", spec.eval.features.name),
            "metrics": {m.name: src("metric", m.name) for m in spec.metrics},
        },
    }
