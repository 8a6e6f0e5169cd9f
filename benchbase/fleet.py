"""Fleet training: K runs of one model advanced by one vectorized call per step.

A sweep's runs are small models that leave most of a CPU's or GPU's arithmetic
idle. Runs that share a model class, framework and parameter shapes (a model with
the ``fleet`` capability; see benchbase.contracts.Fleet) are trained together here,
each still a run in every other respect: its own training subset, batches, seed,
budget, evaluation schedule, samples, checkpoints, run id and store rows, reported
through the same events as ``runner.execute_task``. A member that diverges, fails
or runs out of time stops alone; the fleet goes on with the others.

Members advance in lock step but may stand at different steps (a member resumed
from an older checkpoint): member k is at ``start_k + t`` after ``t`` fleet steps.
The hot loop is the single-run loop's: draw, step, an integer comparison; every
check (finiteness, evaluations, time limits, progress) waits for the next
iteration at which some member reaches an evaluation, a multiple of
``CHECK_EVERY`` or its budget. Evaluations due together are sampled together.
"""
from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from benchbase.config import RunSpec, plugin_config
from benchbase.contracts import EvalRow
from benchbase.errors import BenchbaseInputError
from benchbase.evaluation import Diverged
from benchbase.frameworks import SALT_SAMPLE
from benchbase.plugins import Registry
from benchbase.runner import (CHECK_EVERY, PROGRESS_SECONDS, Evaluated, Finished, PreparedRun, Progress,
                              RunTask, SinkError, Started, TimeLimitExceeded, _consumed, _per_step, execute_task,
                              outcome, prepare_run, reporting)


@dataclass
class FleetTask:
    """Runs to train as one fleet; picklable like RunTask (executors hand it to one worker)."""

    members: list[RunTask]

    @property
    def runs(self) -> list[RunTask]:
        return self.members

    def with_runs(self, runs: list[RunTask]) -> "FleetTask":
        """The same fleet with other run tasks (fewer members, newer checkpoints)."""
        return FleetTask(list(runs))


# ----------------------------------------------------------------------- planning

#: Runs per fleet when the executor's ``fleet`` is not set: on a CPU a fleet's
#: matrix products saturate one core at a few members; a GPU wants many more.
DEFAULT_FLEET_SIZE = {"cpu": 16, "gpu": 64}


def fleet_size(executor_config: Any, device: str) -> int:
    """Runs per fleet for this executor and device; 1 turns fleets off. An executor
    whose Config has no ``fleet`` field gets single runs only."""
    if not hasattr(executor_config, "fleet"):
        return 1
    size = executor_config.fleet
    if size is None:
        from benchbase.devices import visible_gpus

        gpu = device.startswith(("cuda", "tpu")) or (device == "auto" and bool(visible_gpus()))
        return DEFAULT_FLEET_SIZE["gpu" if gpu else "cpu"]
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise BenchbaseInputError(f"executor.config.fleet must be a whole number >= 1 (1: no fleets); got {size!r}")
    return size


def fleet_key(spec: RunSpec, registry: Registry) -> str | None:
    """What members of one fleet share (None: the run trains alone): the model and its
    config except ``fleet_varying``, the dataset, the batch, the samples per evaluation,
    the device. Seeds, subsets, budgets, schedules, metrics and the varying fields differ."""
    cls = registry.get("model", spec.model["name"], spec.model["framework"]).cls
    if "fleet" not in getattr(cls, "capabilities", ()) or not getattr(cls, "trains", True):
        return None
    varying = getattr(cls, "fleet_varying", frozenset())
    shared = {k: v for k, v in spec.model["config"].items() if k not in varying}
    dataset = {k: spec.dataset[k] for k in ("name", "config", "version")}
    budget = {k: spec.budget[k] for k in ("batch_size", "batches_per_step")}
    return json.dumps([spec.model["name"], spec.model["framework"], spec.model["version"], shared, dataset, budget,
                       spec.eval["n_samples"], spec.device], sort_keys=True, default=str)


@dataclass
class Unit:
    """What an executor takes as one task: one run, or the specs of one fleet."""

    specs: list
    fleet: bool = False


def plan_units(specs: list[RunSpec], registry: Registry, size: int) -> list[Unit]:
    """The runs in suite order, those that can share a fleet grouped into fleets of at
    most ``size`` (as even as possible: 20 runs and size 16 give two fleets of 10)."""
    if size <= 1:
        return [Unit([s]) for s in specs]
    units: list[Unit] = []
    groups: dict[str, list] = {}
    slots: dict[str, int] = {}
    for spec in specs:
        key = fleet_key(spec, registry)
        if key is None:
            units.append(Unit([spec]))
            continue
        if key not in groups:
            groups[key], slots[key] = [], len(units)
            units.append(Unit([], fleet=True))  # placeholder: the group's fleets go here
        groups[key].append(spec)
    for key in sorted(groups, key=lambda k: -slots[k]):  # from the back, so earlier slots keep their index
        members = groups[key]
        count = math.ceil(len(members) / size)
        small, extra = divmod(len(members), count)
        bounds = np.cumsum([0] + [small + (i < extra) for i in range(count)])
        units[slots[key]:slots[key] + 1] = [Unit(members[a:b], fleet=True) for a, b in zip(bounds, bounds[1:])]
    return units


def describe_plan(runs: list[RunSpec], executor: dict, device: str, registry: Registry) -> str:
    """One line on how a suite's runs will train: in how many fleets of which sizes."""
    reg = registry.get("executor", executor.get("name", "local"))
    cfg, _ = plugin_config(reg, executor.get("config") or {}, "<executor>", "executor.config")
    size = fleet_size(cfg, device)
    units = plan_units(runs, registry, size)
    sizes = sorted((len(u.specs) for u in units if u.fleet), reverse=True)
    alone = sum(len(u.specs) for u in units if not u.fleet)
    if not sizes:
        why = "fleets are off (executor.config.fleet: 1)" if size == 1 else "no model here trains in fleets"
        return f"training: every run alone; {why}"
    shown = ", ".join(map(str, sizes[:8])) + (", ..." if len(sizes) > 8 else "")
    return (f"training: {sum(sizes)} run(s) in {len(sizes)} fleet(s) of {shown} (at most {size} per fleet: "
            f"executor.config.fleet), {alone} alone")


def execute(task: RunTask | FleetTask, emit: Callable[[Any], None]) -> None:
    """The work function executors call: a fleet or a single run."""
    if isinstance(task, FleetTask):
        execute_fleet(task, emit)
    else:
        execute_task(task, emit)


@dataclass(eq=False)  # members are told apart by identity (dict keys)
class _Member:
    """One run of the fleet: its preparation, evaluator, schedule and accounts."""

    run: PreparedRun
    evaluator: Any = None
    step: int = 0
    eval_steps: list = field(default_factory=list)  # still to do, ascending
    summary: dict = field(default_factory=dict)
    train_time: float = 0.0
    eval_time: float = 0.0
    deadline: float = math.inf

    @property
    def run_id(self) -> str:
        return self.run.spec.run_id

    @property
    def total(self) -> int:
        return self.run.total

    def next_event(self) -> int:
        """The next step at which this member needs the loop's attention."""
        check = (self.step // CHECK_EVERY + 1) * CHECK_EVERY
        return min(check, self.eval_steps[0] if self.eval_steps else self.total, self.total)

    def consumed(self, t_start: float, timed: bool = True) -> dict:
        timers = {"train": self.train_time, "eval": self.eval_time} if timed else None
        return _consumed(self.step, self.run.per_step, timers, t_start, self.run.prior_wall, self.run.start)


class _Fleet:
    """The running fleet: members in stack order, the stacked state and the batch drawer."""

    def __init__(self, members: list[_Member], program: Any, state: Any, emit: Callable[[Any], None],
                 t_start: float):
        self.members, self.program, self.state = members, program, state
        self.emit, self.t_start = emit, t_start
        lead = members[0].run
        self.fw, self.device = lead.fw, lead.device
        self.n_samples = lead.spec.eval["n_samples"]
        self.pool_x, self.pool_y, self.rows = self._pool()
        self.logs: dict = {}
        self.starts: list[int] = []
        self.draw: Callable | None = None

    def _pool(self):
        """The members' training examples once on the device, and each member's rows in it."""
        runs = [m.run for m in self.members]
        splits = runs[0].splits
        if all(r.splits is splits for r in runs):
            used = np.unique(np.concatenate([r.subset.indices for r in runs]))
            x = splits.train[used]
            y = None if splits.train_labels is None else splits.train_labels[used]
            rows = [np.searchsorted(used, r.subset.indices) for r in runs]
        else:
            x = np.concatenate([r.subset.x for r in runs])
            y = None if runs[0].subset.y is None else np.concatenate([r.subset.y for r in runs])
            ends = np.cumsum([len(r.subset.x) for r in runs])
            rows = [np.arange(end - len(r.subset.x), end) for end, r in zip(ends, runs)]
        return (self.fw.put(np.ascontiguousarray(x), self.device), self.fw.put(y, self.device),
                {m.run_id: r for m, r in zip(self.members, rows)})

    def restart(self) -> None:
        """A drawer from every member's current step (at the start, and after members left)."""
        self.starts = [m.step for m in self.members]
        self.draw = self.fw.fleet_drawer(self.pool_x, self.pool_y, [self.rows[m.run_id] for m in self.members],
                                         self.members[0].run.per_step, [m.run.spec.seed for m in self.members],
                                         self.starts, self.device)

    def finish(self, m: _Member, exc: BaseException | None) -> None:
        if exc is None:
            m.summary.update(m.consumed(self.t_start))
            self.emit(Finished(m.run_id, "done", m.summary))
        else:
            m.summary.update(m.consumed(self.t_start, timed=False))
            self.emit(outcome(exc, m.run_id, m.run.spec, m.summary))

    def leave(self, gone: dict) -> bool:
        """Finish the members in ``gone`` (member -> exception or None), drop them from the
        stack and restart the drawer; True when the fleet changed."""
        if not gone:
            return False
        for m, exc in gone.items():
            self.finish(m, exc)
        keep = [i for i, m in enumerate(self.members) if m not in gone]
        self.members = [self.members[i] for i in keep]
        if self.members:
            self.state = self.program.select(self.state, keep)
            self.restart()
        return True

    # --------------------------------------------------------------- evaluation
    def evaluate(self, due: list[_Member], gone: dict) -> None:
        """Sample every due member in one call, then score each; members that break go to ``gone``."""
        t0 = time.monotonic()
        positions = [self.members.index(m) for m in due]
        try:
            keys = self.fw.fleet_keys([m.run.spec.seed for m in due], SALT_SAMPLE, self.device)
            raw = self.fw.to_numpy(self.program.sample(self.state, self.n_samples, keys, positions))
        except SinkError:
            raise
        except Exception as exc:
            gone.update((m, exc) for m in due)
            return
        share = (time.monotonic() - t0) / len(due)
        logs = {k: self.fw.to_numpy(v) for k, v in self.logs.items()}
        for m, pos, samples in zip(due, positions, raw):
            t1 = time.monotonic()
            try:
                checkpoint = m.step < m.total
                single = self.program.unstack(self.state, pos) if (m.evaluator.needs_model or checkpoint) else None
                rows, keep = m.evaluator.score(samples, m.run.model, single, m.step)
                rows.extend(EvalRow(metric=f"train/{k}", value=float(v[pos]), ref="train") for k, v in logs.items())
                blob = m.run.model.save(single) if checkpoint else None
            except SinkError:
                raise
            except Exception as exc:
                gone[m] = exc
                continue
            m.eval_time += share + time.monotonic() - t1
            self.emit(Evaluated(m.run_id, m.step, m.step * m.run.per_step, rows, keep, blob,
                                wall_time=m.run.prior_wall + time.monotonic() - self.t_start))

    def attend(self) -> bool:
        """At an iteration where some member reached a check point: finiteness, evaluations,
        budgets, time limits. True when members left (the drawer restarted)."""
        gone: dict = {}
        target = {m: m.eval_steps[0] if m.eval_steps else m.total for m in self.members}
        checking = [m for m in self.members if m.step == target[m] or m.step % CHECK_EVERY == 0]
        if checking and self.logs:
            host = {k: self.fw.to_numpy(v) for k, v in self.logs.items()}
            for m in checking:
                pos = self.members.index(m)
                if not all(math.isfinite(float(v[pos])) for v in host.values()):
                    gone[m] = Diverged(m.step, "training loss")
        due = [m for m in checking if m not in gone and m.eval_steps and m.step == m.eval_steps[0]]
        for m in due:
            m.eval_steps.pop(0)
        if due:
            self.evaluate(due, gone)
        now = time.monotonic()
        for m in self.members:
            if m in gone:
                continue
            if m.step >= m.total:
                gone[m] = None
            elif now > m.deadline:
                gone[m] = TimeLimitExceeded()
        return self.leave(gone)

    def progress(self) -> None:
        for m in self.members:
            rate = (m.step - m.run.start) / max(m.train_time, 1e-9)
            self.emit(Progress(m.run_id, m.step, m.total, rate * m.run.per_step, rate))

    # --------------------------------------------------------------------- loop
    def train(self) -> None:
        due = [m for m in self.members if m.step == 0 and m.eval_steps and m.eval_steps[0] == 0]
        gone: dict = {}
        for m in due:
            m.eval_steps.pop(0)
        if due:
            self.evaluate(due, gone)
        if self.leave(gone) and not self.members:
            return
        self.restart()
        step = self.program.step
        t, next_t = 0, self.next_t(0)
        t_seg = time.monotonic()
        next_progress = t_seg + PROGRESS_SECONDS
        while self.members:
            batch, keys = self.draw(t)
            self.state, self.logs = step(self.state, batch, keys)
            t += 1
            if t == next_t:
                now = time.monotonic()
                for m, start in zip(self.members, self.starts):
                    m.step = start + t
                    m.train_time += now - t_seg
                if self.attend():
                    t = 0
                t_seg = time.monotonic()
                if t_seg >= next_progress:
                    self.progress()
                    next_progress = t_seg + PROGRESS_SECONDS
                next_t = self.next_t(t)

    def next_t(self, t: int) -> int:
        """The next iteration at which some member needs attention."""
        return t + min((m.next_event() - m.step for m in self.members), default=1)


def execute_fleet(task: FleetTask, emit: Callable[[Any], None]) -> dict[str, str]:
    """Train the members of ``task`` as one fleet; report each through ``emit`` as its own
    run. Returns run id -> status. A model that cannot form this fleet (its ``fleet``
    or ``stack`` raises) trains its members one after another instead."""
    emit = reporting(emit)
    statuses: dict[str, str] = {}

    def record(event) -> None:
        if isinstance(event, Finished):
            statuses[event.run_id] = event.status
        emit(event)

    t_start = time.monotonic()
    members: list[_Member] = []
    placed = contextlib.ExitStack()
    try:
        for rt in task.members:
            start = rt.checkpoint.step if rt.checkpoint else 0
            m = _Member(run=None, step=start, summary={"examples": 0, "steps": 0, "param_count": None})
            try:
                m.run = prepare_run(rt)
            except Exception as exc:
                prior = rt.checkpoint.wall_time if rt.checkpoint else 0.0
                m.summary.update(_consumed(start, _per_step(rt.spec), None, t_start, prior, start))
                record(outcome(exc, rt.spec.run_id, rt.spec, m.summary))
                continue
            members.append(m)
        if not members:
            return statuses
        lead = members[0].run
        placed.enter_context(lead.fw.placement(lead.device))
        states, ready = [], []
        for m in members:
            try:
                states.append(m.run.init_state())
                ready.append(m)
            except Exception as exc:
                _fail_before_start(m, exc, record, t_start)
        if not ready:
            return statuses
        try:
            program = ready[0].run.model.fleet([m.run.model for m in ready])
            state = program.stack(states)
        except Exception:  # this model cannot form this fleet: its runs train one by one
            for m in ready:
                execute_task(m.run.task, record)
            return statuses
        del states
        ids = [m.run_id for m in ready]
        members = []
        for i, m in enumerate(ready):
            m.run.provenance["fleet"] = {"size": len(ready), "index": i, "members": ids}
            record(Started(m.run_id, m.run.provenance, resumed_from=m.step))
            try:
                m.summary["param_count"] = int(m.run.model.param_count(program.unstack(state, i)))
                m.evaluator = m.run.evaluator()
            except Exception as exc:
                m.summary.update(m.consumed(t_start, timed=False))
                record(outcome(exc, m.run_id, m.run.spec, m.summary))
                continue
            m.eval_steps = m.run.eval_steps()
            limit = m.run.spec.time_limit
            m.deadline = t_start + limit - m.run.prior_wall if limit else math.inf
            m.run.train = None  # the fleet's pool holds the data from here on
            members.append(m)
        if len(members) < len(ready):
            state = program.select(state, [ready.index(m) for m in members])
        if not members:
            return statuses
        fleet = _Fleet(members, program, state, record, t_start)
        try:
            fleet.train()
        except SinkError:
            raise
        except Exception as exc:  # the vectorized step itself raised: every member still training fails
            for m in fleet.members:
                fleet.finish(m, exc)
        return statuses
    finally:
        placed.close()


def _fail_before_start(m: _Member, exc: BaseException, record: Callable, t_start: float) -> None:
    record(Started(m.run_id, m.run.provenance, resumed_from=m.step))
    m.summary.update(m.consumed(t_start, timed=False))
    record(outcome(exc, m.run_id, m.run.spec, m.summary))
