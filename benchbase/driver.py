"""Runs a validated suite: decides what is left to do, hands run tasks to an
executor, and turns the events that come back into store writes, observer hook
calls and progress output. The driver is the only writer of the results store.
"""
from __future__ import annotations

import subprocess
from collections import Counter
from dataclasses import dataclass, field

from benchbase.config import Suite, plugin_config
from benchbase.dynamics import derive_after_run
from benchbase.plugins import Registry
from benchbase.progress import Reporter
from benchbase.runner import Evaluated, Finished, Progress, RunTask, Started, execute_task
from benchbase.store import FINAL_STATUSES, Store


@dataclass
class SuiteResult:
    suite: str
    planned: int
    skipped: int
    statuses: dict[str, str] = field(default_factory=dict)  # run_id -> status of this invocation
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

    def __init__(self, store: Store, registry: Registry, reporter: Reporter, tasks: list[RunTask]):
        self.store, self.registry, self.reporter = store, registry, reporter
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
                                spec.budget["steps"], event.resumed_from)
            self.registry.notify("benchbase_run_started", spec=spec, run_id=event.run_id,
                                 provenance=event.provenance)
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
            self.registry.notify("benchbase_evaluated", spec=spec, run_id=event.run_id, step=event.step,
                                 examples=event.examples, results=event.rows)
        elif isinstance(event, Finished):
            self.store.finish_run(event.run_id, event.status, event.summary, event.error)
            self.finished[event.run_id] = event.status
            if event.status != "done":
                self.reasons[event.run_id] = event.summary.get("reason") or (event.error or "").strip()[-300:]
            self.reporter.finish(event.run_id, event.status, event.summary)
            self.registry.notify("benchbase_run_finished", spec=spec, run_id=event.run_id,
                                 status=event.status, summary=event.summary)


def run_suite(suite: Suite, store: Store, registry: Registry, reporter: Reporter | None = None,
              fresh: bool = False, executor: dict | None = None) -> SuiteResult:
    """Run what is left of ``suite``; done (and diverged) runs are skipped."""
    reporter = reporter or Reporter()
    specs = suite.runs
    ids = [s.run_id for s in specs]
    store.register_runs(suite.name, specs, {"source": suite.source, "resolved": suite.resolved,
                                            "leaderboard": suite.leaderboard})
    if fresh:
        store.reset_runs(ids)
    statuses = store.statuses(ids)
    todo = [s for s in specs if statuses.get(s.run_id) not in FINAL_STATUSES]
    result = SuiteResult(suite.name, planned=len(todo), skipped=len(specs) - len(todo))
    reporter.plan(len(todo), result.skipped, suite.name)
    if not todo:
        derive_after_run(store, suite, registry)
        return result

    commit = git_commit()
    tasks = []
    for i, spec in enumerate(todo):
        ckpt = store.checkpoint(spec.run_id)
        store.drop_evals_after(spec.run_id, ckpt.step if ckpt else -1)
        tasks.append(RunTask(spec=spec, policy=registry.policy, results_dir=str(store.dir), checkpoint=ckpt,
                             index=i, total=len(todo), git_commit=commit, registry=registry))

    executor = executor or suite.executor or {"name": "local", "config": {}}
    reg = registry.get("executor", executor["name"])
    cfg, _ = plugin_config(reg, executor.get("config") or {}, "<executor>", "executor.config")
    sink = Sink(store, registry, reporter, tasks)
    try:
        reg.cls(cfg).execute(tasks, execute_task, sink)
    finally:
        reporter.close_bar()
    # A run the executor lost without a Finished event is failed, never silently missing.
    for task in tasks:
        rid = task.spec.run_id
        if rid not in sink.finished and store.status(rid) not in FINAL_STATUSES:
            reason = "the executor returned without finishing this run (worker lost)"
            store.finish_run(rid, "failed", {"reason": reason}, error=reason)
            sink.finished[rid] = "failed"
            sink.reasons[rid] = reason
    derive_after_run(store, suite, registry)  # tau_mem & co. (benchbase.dynamics)
    result.statuses = dict(sink.finished)
    titles = {t.spec.run_id: t.spec.title for t in tasks}
    result.failures = [(titles[rid], sink.reasons.get(rid, status))
                       for rid, status in sink.finished.items() if status != "done"]
    return result
