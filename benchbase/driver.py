"""Runs a validated suite: decides what is left to do, hands run tasks to an
executor, and turns the events that come back into store writes, observer hook
calls and progress output. The driver is the only writer of the results store.
"""
from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

from benchbase.config import Suite
from benchbase.errors import BenchbaseInputError
from benchbase.structured import plugin_config
from benchbase.derived import derive_after_run
from benchbase.plugins import Registry
from benchbase.progress import Reporter
from benchbase.contracts import FINAL_STATUSES
from benchbase.fleet import FleetTask, Unit, execute, fleet_size, plan_units
from benchbase.leases import Holder, Lease
from benchbase.events import Evaluated, Finished, Notice, Progress, Started, Status
from benchbase.runner import RunTask
from benchbase.store import Store
from benchbase.tracking import observing_suite


@dataclass
class SuiteResult:
    suite: str
    planned: int
    skipped: int
    statuses: dict[str, str] = field(default_factory=dict)  # run_id -> outcome (this driver or one it waited for)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (title, reason)

    @property
    def ok(self) -> bool:
        return all(s == "done" for s in self.statuses.values()) and not self.failures

    def counts(self) -> Counter:
        return Counter(self.statuses.values())


def git_commit() -> str | None:
    """The commit of the working directory's repository, '+dirty' if it has changes."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


class Sink:
    """Receives every event in the driver process, in order, from any executor."""

    def __init__(self, store: Store, registry: Registry, reporter: Reporter, tasks: list[RunTask],
                 lease: Lease | None = None):
        self.store, self.registry, self.reporter, self.lease = store, registry, reporter, lease
        self.tasks = {t.spec.run_id: t for t in tasks}
        self.finished: dict[str, str] = {}
        self.reasons: dict[str, str] = {}

    def __call__(self, event) -> None:
        task = self.tasks.get(event.run_id)
        if task is None:
            return
        spec = task.spec
        if isinstance(event, Started):
            self.store.mark_running(event.run_id, event.provenance)
            self.reporter.start(event.run_id, task.index, task.total, spec.title,
                                spec.budget.steps, event.resumed_from)
            self.registry.observers.run_started(spec, event.run_id, event.provenance, event.resumed_from)
        elif isinstance(event, Notice):
            self.reporter.warn(f"{spec.title}: {event.text}")
        elif isinstance(event, Status):
            self.reporter.write(f"{spec.title}: {event.text}")
        elif isinstance(event, Progress):
            self.reporter.progress(event.run_id, event.step, event.total, event.examples_per_s,
                                   event.steps_per_s)
        elif isinstance(event, Evaluated):
            self.store.write_eval(event.run_id, event.step, event.examples, event.rows,
                                  samples=event.samples, checkpoint=event.checkpoint,
                                  wall_time=event.wall_time)
            headline = ", ".join(f"{r.metric}[{r.ref}]={r.value:.4g}" for r in event.rows
                                 if "." not in r.metric and "/" not in r.metric)
            self.reporter.evaluated(event.run_id, event.step, headline)
            self.registry.observers.evaluated(spec, event.run_id, event.step, event.examples, event.rows,
                                              event.samples)
        elif isinstance(event, Finished):
            # the store may record "failed" instead of "done" (rows missing): report what it recorded
            status, summary = self.store.finish_run(event.run_id, event.status, event.summary, event.error,
                                                    require_all_evaluations=True)
            self.finished[event.run_id] = status
            if self.lease is not None:
                self.store.leases.release(self.lease, event.run_id)
            if status != "done":
                self.reasons[event.run_id] = summary.get("reason") or (event.error or "").strip()[-300:]
            self.reporter.finish(event.run_id, status, summary)
            self.registry.observers.run_finished(spec, event.run_id, status, summary)


class TaskQueue:
    """The runs an executor is to do, handed out lazily: each run is claimed in the
    store (and its checkpoint loaded) only when the executor takes it, so a second
    driver on the same results directory can take the runs this one has not started.
    Runs held by another live driver are deferred; ``deferred`` lists them. Runs that
    share a fleet (benchbase.fleet) are claimed together and handed out as one
    FleetTask of the members this driver could claim."""

    def __init__(self, units: list[Unit], store: Store, registry: Registry, lease: Lease, sink: "Sink",
                 commit: str | None, offset: int, total: int):
        self.units, self.store, self.registry, self.lease, self.sink = units, store, registry, lease, sink
        self.commit, self.offset, self.total = commit, offset, total
        self.claimed: list[RunTask] = []
        self.deferred: dict[str, Holder] = {}  # run_id -> holder
        self.finished_elsewhere: dict[str, str] = {}  # run_id -> final status set by another driver

    def __len__(self) -> int:
        return sum(len(u.specs) for u in self.units)

    def __iter__(self) -> Iterator[RunTask | FleetTask]:
        for unit in self.units:
            tasks = [task for task in map(self._claim, unit.specs) if task is not None]
            if tasks:
                yield FleetTask(tasks) if unit.fleet else tasks[0]

    def _claim(self, spec) -> RunTask | None:
        rid = spec.run_id
        outcome = self.store.leases.claim(rid, self.lease)
        if isinstance(outcome, Holder):
            self.deferred[rid] = outcome
            return None
        if isinstance(outcome, str):
            self.finished_elsewhere[rid] = outcome
            return None
        ckpt = self.store.checkpoint(rid)
        problem = ckpt.problem(spec.budget.steps) if ckpt is not None else None
        if problem:
            self.sink.reporter.warn(f"{spec.title}: {problem}; restarting this run from scratch")
            ckpt = None
        # Evaluations after the checkpoint belong to an attempt that died: redo them.
        self.store.drop_evals_after(rid, ckpt.step if ckpt else -1)
        task = RunTask(spec=spec, policy=self.registry.policy, results_dir=str(self.store.dir.resolve()),
                       checkpoint=ckpt, index=self.offset + len(self.claimed), total=self.total,
                       git_commit=self.commit, registry=self.registry)
        self.claimed.append(task)
        self.sink.tasks[rid] = task
        return task


class Heartbeat:
    """Keeps this driver's claims alive from a background thread with its own connection."""

    def __init__(self, store: Store, lease: Lease):
        self.path, self.lease = store.dir, lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="benchbase-heartbeat", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        interval = max(self.lease.timeout / 6, 0.05)
        store = None
        try:
            while not self._stop.wait(interval):
                try:
                    store = store or Store(self.path)
                    store.leases.heartbeat(self.lease)
                except Exception as exc:  # never kill the suite over a missed heartbeat
                    warnings.warn(f"could not refresh run claims: {exc}")
        finally:
            if store is not None:
                store.close()


def check_devices(suite: Suite, registry: Registry) -> None:
    """Refuse, before anything is written, a device that this machine lacks when the runs
    train here: a missing GPU is bad input, not a failure of every run."""
    from benchbase.frameworks import get_framework

    executor = suite.executor or {"name": "local"}
    if not registry.get("executor", executor["name"]).cls.runs_here:
        return
    for framework, device in sorted({(s.model.framework, s.device) for s in suite.runs}):
        try:
            get_framework(framework).device(device)
        except BenchbaseInputError as exc:
            raise BenchbaseInputError(f"{suite.source}: device: '{device}': {exc}") from None


def run_suite(suite: Suite, store: Store, registry: Registry, reporter: Reporter | None = None,
              fresh: bool = False, executor: dict | None = None, lease: Lease | None = None,
              poll_seconds: float = 1.0) -> SuiteResult:
    """Run what is left of ``suite``; done (and diverged) runs are skipped.

    Runs that another live driver holds are left to it; this call waits until they are
    final (and takes them over if that driver dies), so its summary is complete. The
    suite's trackers (and any observer plugin) hear of it through the observer hooks.
    """
    reporter = reporter or Reporter()
    with observing_suite(suite, store, registry, say=reporter.write):
        return _run_suite(suite, store, registry, reporter, fresh, executor, lease, poll_seconds)


def _run_suite(suite: Suite, store: Store, registry: Registry, reporter: Reporter, fresh: bool,
               executor: dict | None, lease: Lease | None, poll_seconds: float) -> SuiteResult:
    specs = suite.runs
    ids = [s.run_id for s in specs]
    lease = lease or Lease.new()
    if fresh:  # first: refused (RunsHeldError) while another live driver holds any run, nothing written
        store.reset_runs(ids, lease)
    dropped = store.register_runs(suite.name, specs, {"source": suite.source, "resolved": suite.resolved,
                                                      "leaderboard": suite.leaderboard}, only=fresh)
    if dropped:  # --fresh makes the suite exactly this plan: say which earlier runs left it
        shown = ", ".join(dropped[:3]) + (f" and {len(dropped) - 3} more" if len(dropped) > 3 else "")
        reporter.warn(f"--fresh: dropped {len(dropped)} run(s) of suite '{suite.name}' not in this plan "
                      f"(their rows stay in the store, off this suite's leaderboard): {shown}")
    statuses = store.statuses(ids)
    todo = [s for s in specs if statuses.get(s.run_id) not in FINAL_STATUSES]
    result = SuiteResult(suite.name, planned=len(todo), skipped=len(specs) - len(todo))
    reporter.plan(len(todo), result.skipped, suite.name)
    if not todo:
        derive_after_run(store, suite, registry)
        return result

    executor = executor or suite.executor or {"name": "local", "config": {}}
    reg = registry.get("executor", executor["name"])
    cfg, _ = plugin_config(reg, executor.get("config") or {}, "<executor>", "executor.config")
    size = fleet_size(cfg, todo[0].device)
    commit = git_commit()
    sink = Sink(store, registry, reporter, [], lease=lease)
    titles = {s.run_id: s.title for s in todo}
    outcome: dict[str, str] = {}  # run_id -> final status, whoever produced it
    started = 0
    try:
        with Heartbeat(store, lease):
            pending = todo
            announced: set[str] = set()
            while pending:
                units = plan_units(pending, registry, size)
                queue = TaskQueue(units, store, registry, lease, sink, commit, started, len(todo))
                try:
                    reg.cls(cfg).execute(queue, execute, sink)
                finally:
                    reporter.close_bar()
                started += len(queue.claimed)
                _fail_lost_runs(queue.claimed, sink, store, lease)
                outcome.update(queue.finished_elsewhere)
                pending = [s for s in pending if s.run_id in queue.deferred]
                while pending:  # held elsewhere: wait for them to finish or free up
                    fresh_holders = {rid: h for rid, h in queue.deferred.items() if rid not in announced}
                    if fresh_holders:
                        holders = ", ".join(sorted({h.describe() for h in fresh_holders.values()}))
                        reporter.write(f"{len(fresh_holders)} run(s) are being run by another benchbase "
                                       f"process ({holders}); waiting for them")
                        announced.update(fresh_holders)
                    statuses = store.statuses([s.run_id for s in pending])
                    for s in pending:
                        if statuses.get(s.run_id) in FINAL_STATUSES:
                            outcome[s.run_id] = statuses[s.run_id]
                    pending = [s for s in pending if s.run_id not in outcome]
                    if any(store.leases.holder(s.run_id, lease) is None for s in pending):
                        break  # free to claim (its holder finished badly or died): next round
                    time.sleep(poll_seconds)
    except KeyboardInterrupt:  # before the claims go: no other driver has taken these runs yet
        try:
            store.mark_interrupted([rid for rid in sink.tasks if rid not in sink.finished])
        except sqlite3.Error:
            pass
        raise
    finally:
        try:
            store.leases.release(lease)
        except sqlite3.Error:  # never hide the error that brought us here; the claims go stale
            pass
    outcome.update(sink.finished)
    result.statuses = {rid: outcome[rid] for rid in ids if rid in outcome}
    result.failures = [(titles[rid], sink.reasons.get(rid, status))
                       for rid, status in result.statuses.items() if status != "done"]
    derive_after_run(store, suite, registry)  # tau_mem & co. (benchbase.dynamics)
    return result


def _fail_lost_runs(claimed: list[RunTask], sink: "Sink", store: Store, lease: Lease) -> None:
    """A run the executor lost without a Finished event is failed, never silently missing."""
    for task in claimed:
        rid = task.spec.run_id
        if rid not in sink.finished and store.status(rid) not in FINAL_STATUSES:
            reason = "the executor returned without finishing this run (worker lost)"
            store.finish_run(rid, "failed", {"reason": reason}, error=reason)
            sink.finished[rid] = "failed"
            sink.reasons[rid] = reason
        store.leases.release(lease, rid)
