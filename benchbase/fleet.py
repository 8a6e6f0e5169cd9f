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

from benchbase.errors import BenchbaseInputError
from benchbase.evaluation import Diverged
from benchbase.frameworks import SALT_SAMPLE
from benchbase.plugins import Registry
from benchbase.events import Emit, Finished, Progress, Started, Status
from benchbase.runner import (CHECK_EVERY, PROGRESS_SECONDS, Run, RunTask, SinkError, TimeLimitExceeded, deliverer,
                              evaluate, execute_task, finish, prepare, start)
from benchbase.specs import RunSpec
from benchbase.structured import plugin_config


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

#: Runs per fleet when the executor's ``fleet`` is not set. Off on a CPU: measured there
#: (benchmarks/bench_fleet.py, docs/performance.md) a sweep in fleets of 16 was about 2x
#: faster in PyTorch and 1.4x in JAX, and a suite resumed under another executor forms other
#: fleets, so its numbers differ from an uninterrupted run's by float reordering. A GPU,
#: which small models leave idle, gets fleets of 64 (not yet measured on one).
DEFAULT_FLEET_SIZE = {"cpu": 1, "gpu": 64}


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
    model = spec.model
    cls = registry.get("model", model.name, model.framework).cls
    if "fleet" not in getattr(cls, "capabilities", ()) or not getattr(cls, "trains", True):
        return None
    varying = getattr(cls, "fleet_varying", frozenset())
    shared = {k: v for k, v in model.config.items() if k not in varying}
    data = spec.dataset
    return json.dumps([model.name, model.framework, model.version, shared, [data.name, data.config, data.version],
                       [spec.budget.batch_size, spec.budget.batches_per_step], spec.eval.n_samples, spec.device],
                      sort_keys=True, default=str)


@dataclass
class Unit:
    """What an executor takes as one task: one run, or the specs of one fleet."""

    specs: list
    fleet: bool = False


def plan_units(specs: list[RunSpec], registry: Registry, size: int) -> list[Unit]:
    """The runs in suite order, those that can share a fleet grouped into fleets of at
    most ``size`` (as even as possible: 20 runs and size 16 give two fleets of 10); a
    run with no partner trains alone."""
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
        # a fleet of one would only add the fleet's bookkeeping: such a run trains alone
        units[slots[key]:slots[key] + 1] = [Unit(members[a:b], fleet=b - a > 1) for a, b in zip(bounds, bounds[1:])]
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


class _Fleet:
    """The running fleet: members (runner.Run objects) in stack order, the stacked state
    and the batch drawer. Each member's step, timers and summary live in its Run, so
    runner.finish reports it exactly as it reports a run trained alone."""

    def __init__(self, members: list[Run], program: Any, state: Any, emit: Emit):
        self.members, self.program, self.state, self.emit = members, program, state, emit
        lead = members[0]
        self.fw, self.device = lead.fw, lead.device
        self.n_samples = lead.spec.eval.n_samples
        self.per_step = lead.spec.budget.examples_per_step
        self.pool_x, self.pool_y, self.rows = self._pool()
        self.logs: dict = {}
        self.starts: list[int] = []
        self.draw: Callable | None = None

    def _pool(self):
        """The members' training examples once on the device, and each member's rows in it."""
        splits = self.members[0].splits
        if all(m.splits is splits for m in self.members):
            used = np.unique(np.concatenate([m.subset.indices for m in self.members]))
            x = splits.train[used]
            y = None if splits.train_labels is None else splits.train_labels[used]
            rows = [np.searchsorted(used, m.subset.indices) for m in self.members]
        else:
            x = np.concatenate([m.subset.x for m in self.members])
            y = None if self.members[0].subset.y is None else np.concatenate([m.subset.y for m in self.members])
            ends = np.cumsum([len(m.subset.x) for m in self.members])
            rows = [np.arange(end - len(m.subset.x), end) for end, m in zip(ends, self.members)]
        return (self.fw.put(np.ascontiguousarray(x), self.device), self.fw.put(y, self.device),
                {m.run_id: r for m, r in zip(self.members, rows)})

    def restart(self) -> None:
        """A drawer from every member's current step (at the start, and after members left)."""
        self.starts = [m.step for m in self.members]
        self.draw = self.fw.fleet_drawer(self.pool_x, self.pool_y, [self.rows[m.run_id] for m in self.members],
                                         self.per_step, [m.spec.seed for m in self.members], self.starts,
                                         self.device)

    def leave(self, gone: dict[int, BaseException | None]) -> bool:
        """Finish the members in ``gone`` (position in the stack -> exception or None), drop
        them from the stack and restart the drawer; True when the fleet changed."""
        if not gone:
            return False
        for pos, exc in gone.items():
            finish(self.members[pos], self.emit, exc)
        keep = [i for i in range(len(self.members)) if i not in gone]
        self.members = [self.members[i] for i in keep]
        if self.members:
            self.state = self.program.select(self.state, keep)
            self.restart()
        return True

    # --------------------------------------------------------------- evaluation
    def evaluate(self, due: list[int], gone: dict) -> None:
        """Sample the members at positions ``due`` in one call, then score each as
        runner.evaluate does; members that break go to ``gone``."""
        t0 = time.monotonic()
        try:
            keys = self.fw.fleet_keys([self.members[i].spec.seed for i in due], SALT_SAMPLE, self.device)
            raw = self.fw.to_numpy(self.program.sample(self.state, self.n_samples, keys, due))
        except Exception as exc:
            gone.update((i, exc) for i in due)
            return
        share = (time.monotonic() - t0) / len(due)
        logs = {k: self.fw.to_numpy(v) for k, v in self.logs.items()}
        for pos, samples in zip(due, raw):
            m = self.members[pos]
            m.timers["eval"] += share
            try:
                evaluate(m, self.program.unstack(self.state, pos), {k: float(v[pos]) for k, v in logs.items()},
                         m.step, self.emit, samples=samples)
            except SinkError:  # the driver failed, not this member: stop the fleet now
                raise
            except Exception as exc:
                gone[pos] = exc

    def attend(self) -> bool:
        """At an iteration where some member reached a check point: finiteness, evaluations,
        budgets, time limits. True when members left (the drawer restarted)."""
        gone: dict[int, BaseException | None] = {}
        checking = [i for i, m in enumerate(self.members)
                    if m.step == (m.eval_steps[0] if m.eval_steps else m.total) or m.step % CHECK_EVERY == 0]
        if checking and self.logs:
            host = {k: self.fw.to_numpy(v) for k, v in self.logs.items()}
            for i in checking:
                if not all(math.isfinite(float(v[i])) for v in host.values()):
                    gone[i] = Diverged(self.members[i].step, "training loss")
        due = [i for i in checking if i not in gone and self._eval_due(self.members[i])]
        if due:
            self.evaluate(due, gone)
        now = time.monotonic()
        for i, m in enumerate(self.members):
            if i in gone:
                continue
            if m.step >= m.total:
                gone[i] = None
            elif now > m.deadline:
                gone[i] = TimeLimitExceeded()
        return self.leave(gone)

    @staticmethod
    def _eval_due(m: Run) -> bool:
        """Whether ``m`` is at its next evaluation (taken off its schedule if so)."""
        if m.eval_steps and m.step == m.eval_steps[0]:
            m.eval_steps.pop(0)
            return True
        return False

    def progress(self) -> None:
        for m in self.members:
            rate = (m.step - m.seg_start) / max(m.timers["train"], 1e-9)
            self.emit(Progress(m.run_id, m.step, m.total, rate * self.per_step, rate))

    # --------------------------------------------------------------------- loop
    def train(self) -> None:
        due = [i for i, m in enumerate(self.members) if m.step == 0 and self._eval_due(m)]
        gone: dict[int, BaseException | None] = {}
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
                for m, begun in zip(self.members, self.starts):
                    m.step = begun + t
                    m.timers["train"] += now - t_seg
                if self.attend():
                    t = 0
                t_seg = time.monotonic()
                if t_seg >= next_progress:
                    self.progress()
                    next_progress = t_seg + PROGRESS_SECONDS
                next_t = self.next_t(t)

    def next_t(self, t: int) -> int:
        """The next iteration at which some member needs attention."""
        return t + min((_next_event(m) - m.step for m in self.members), default=1)


def _next_event(m: Run) -> int:
    """The next step at which member ``m`` needs the loop's attention."""
    check = (m.step // CHECK_EVERY + 1) * CHECK_EVERY
    return min(check, m.eval_steps[0] if m.eval_steps else m.total, m.total)


def _holding(held: list, deliver: Emit) -> Emit:
    """A member's emit while its fleet forms: its events wait in ``held`` (its Started
    gets the fleet's provenance first), except status lines, which the user should see
    while the long work they describe happens."""
    def emit(event) -> None:
        if isinstance(event, Status):
            deliver(event)
        else:
            held.append(event)
    return emit


def execute_fleet(task: FleetTask, emit: Emit) -> dict[str, str]:
    """Train the members of ``task`` as one fleet; report each through ``emit`` as its own
    run (runner.start, prepare and finish per member). Returns run id -> status. A model
    that cannot form this fleet (its ``fleet`` or ``stack`` raises) trains its members one
    after another instead."""
    statuses: dict[str, str] = {}

    def record(event) -> None:
        if isinstance(event, Finished):
            statuses[event.run_id] = event.status
        emit(event)

    def deliver(event) -> None:  # a failure to take it is the driver's (SinkError), as for one run
        deliverer(record, event.run_id)(event)

    runs: list[Run] = []
    held: dict[str, list] = {}  # each member's Started, sent once its fleet is known
    try:
        for task_ in task.members:
            run = start(task_)
            held[run.run_id] = []
            try:
                prepare(run, _holding(held[run.run_id], deliver))
            except Exception as exc:
                run.close()
                for event in held.pop(run.run_id):
                    deliver(event)
                finish(run, deliver, exc)
                continue
            runs.append(run)
        if not runs:
            return statuses
        try:
            program = runs[0].model.fleet([r.model for r in runs])
            state = program.stack([r.state for r in runs])
        except Exception:  # this model cannot form this fleet: its runs train one by one
            for run in reversed(runs):
                run.close()
            runs = []
            for task_ in task.members:
                if task_.spec.run_id in held:
                    execute_task(task_, record)
            return statuses
        ids = [r.run_id for r in runs]
        for i, run in enumerate(runs):
            run.state = run.data = None  # the stacked state and the fleet's pool hold them from here on
            for event in held.pop(run.run_id):  # its Started (and any Notice prepare gave)
                if isinstance(event, Started):
                    event.provenance["fleet"] = {"size": len(runs), "index": i, "members": ids}
                deliver(event)
        fleet = _Fleet(runs, program, state, deliver)
        try:
            fleet.train()
        except Exception as exc:  # the vectorized step itself raised: every member still training ends
            for run in fleet.members:
                finish(run, deliver, exc)
        return statuses
    finally:
        for run in reversed(runs):  # placements were entered in this order: leave them in reverse
            run.close()
