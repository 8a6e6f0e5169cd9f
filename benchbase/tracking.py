"""A suite's experiment trackers, fed by the observer hooks in the driver process.

:func:`observing_suite` wraps one run of a suite: it builds the tracker plugins the
suite chose, registers each as an observer plugin (:class:`TrackerObserver`),
announces the suite's start and end through the hooks, and at the end waits, for a
bounded time, until every tracker has caught up.

Each tracker works through its events on a thread of its own, so a tracker that is
slow (a database migration, a remote server) never delays training, and one that
fails only warns: a tracker that cannot open is off for the suite, a run it could
not start is not tracked, any other failure skips that one event. The results store
never depends on a tracker: every event reaches the hooks after it is stored.
"""
from __future__ import annotations

import contextlib
import queue
import sqlite3
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from benchbase.contracts import RenderedLeaderboard, SuiteOutcome
from benchbase.hookspecs import hookimpl

DRAIN_SECONDS = 300.0  # how long the end of a suite waits for a tracker to catch up
DRAIN_SECONDS_INTERRUPTED = 10.0  # the same when the suite was interrupted
MAX_PENDING = 10_000  # events queued for one tracker before new ones are dropped
SAY_AFTER_SECONDS = 2.0  # a wait longer than this is announced


class TrackerWarning(UserWarning):
    """A tracker failed; the suite and its results are unaffected."""


@dataclass
class _Job:
    method: str  # a Tracker method
    run_id: str | None
    kwargs: dict = field(default_factory=dict)


class TrackerObserver:
    """One tracker of a suite as an observer plugin: hook calls become jobs that a
    thread of its own hands to the tracker in order."""

    def __init__(self, name: str, tracker: Any, registry: Any):
        self.name, self.tracker, self.registry = name, tracker, registry
        self._jobs: queue.Queue = queue.Queue(maxsize=MAX_PENDING)
        self._off = False  # open() failed: ignore the rest
        self._untracked: set[str] = set()  # runs whose run_started failed
        self._failures: Counter = Counter()  # method -> failures after the first
        self._dropped = 0
        self._thread = threading.Thread(target=self._work, name=f"benchbase-tracker-{name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ hooks
    @hookimpl
    def benchbase_suite_started(self, suite, results_dir):
        self._submit(_Job("open", None, {"suite": suite, "results_dir": Path(results_dir)}))

    @hookimpl
    def benchbase_run_started(self, spec, run_id, provenance, resumed_from):
        self._submit(_Job("run_started", run_id, {"spec": spec, "run_id": run_id, "provenance": provenance,
                                                  "resumed_from": resumed_from}))

    @hookimpl
    def benchbase_evaluated(self, spec, run_id, step, examples, results, samples):
        self._submit(_Job("evaluated", run_id, {"spec": spec, "run_id": run_id, "step": step,
                                                "examples": examples, "results": results, "samples": samples}))

    @hookimpl
    def benchbase_run_finished(self, spec, run_id, status, summary):
        self._submit(_Job("run_finished", run_id, {"spec": spec, "run_id": run_id, "status": status,
                                                   "summary": summary}))

    @hookimpl
    def benchbase_suite_finished(self, suite, results_dir, statuses):
        self._submit(_Job("close", None, {"suite": suite, "results_dir": Path(results_dir),
                                          "statuses": dict(statuses)}))

    # ------------------------------------------------------------------ thread
    @property
    def pending(self) -> int:
        return self._jobs.qsize()

    def _submit(self, job: _Job | None) -> None:
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            self._dropped += 1
            if self._dropped == 1:
                self._warn(f"is {MAX_PENDING} events behind; dropping new ones until it catches up")

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if self._off or job.run_id in self._untracked:
                continue
            try:
                if job.method == "close":
                    self.tracker.close(suite=job.kwargs["suite"], outcome=self._outcome(**job.kwargs))
                else:
                    getattr(self.tracker, job.method)(**job.kwargs)
            except Exception as exc:  # noqa: BLE001 - a tracker never stops a suite
                self._failed(job, exc)

    def _failed(self, job: _Job, exc: Exception) -> None:
        what = f"failed in {job.method}: {type(exc).__name__}: {exc}"
        if job.method == "open":
            self._off = True
            self._warn(f"{what}; it is off for this suite (results are stored as usual)")
        elif job.method == "run_started":
            self._untracked.add(job.run_id)
            self._warn(f"{what}; run {job.run_id} is not tracked")
        elif self._failures[job.method] == 0 or job.method in ("run_finished", "close"):
            self._failures[job.method] += 1
            self._warn(what)
        else:
            self._failures[job.method] += 1

    def _warn(self, message: str) -> None:
        warnings.warn(f"tracker '{self.name}' {message}", TrackerWarning, stacklevel=2)

    def _outcome(self, suite, results_dir: Path, statuses: dict) -> SuiteOutcome:
        """The suite's final leaderboard, read from the store in this thread."""
        from benchbase.leaderboard import build_tables
        from benchbase.store import Store

        with Store(results_dir, create=False) as store:
            tables = build_tables(store, suite=suite.name, registry=self.registry)

        def render(fmt: str) -> RenderedLeaderboard:
            publisher = self.registry.get("publisher", fmt).cls
            return RenderedLeaderboard(fmt, publisher.extension, publisher().render(tables))

        return SuiteOutcome(statuses=statuses, tables=tables, render=render)

    def drain(self, timeout: float, say: Callable[[str], None]) -> None:
        """Wait until the tracker has handled every event (at most ``timeout`` seconds)."""
        self._submit(None)
        self._thread.join(SAY_AFTER_SECONDS)
        if self._thread.is_alive():
            say(f"waiting for tracker '{self.name}' to finish logging ({self.pending} event(s) left)")
            self._thread.join(max(timeout - SAY_AFTER_SECONDS, 0.0))
        if self._thread.is_alive():
            self._warn(f"is still busy after {timeout:.0f}s; {self.pending} event(s) were not logged")
        extra = sum(n - 1 for m, n in self._failures.items() if m == "evaluated" and n > 1)
        if extra:
            self._warn(f"failed {extra} more time(s) in evaluated (first failure shown above)")
        if self._dropped:
            self._warn(f"dropped {self._dropped} event(s) it could not keep up with")


def _build(registry: Any, entry: dict) -> Any:
    from benchbase.structured import plugin_config

    reg = registry.get("tracker", entry["name"])
    config, _ = plugin_config(reg, entry.get("config") or {}, "<suite>", f"trackers.{entry['name']}.config")
    return reg.cls(config)


@contextlib.contextmanager
def observing_suite(suite: Any, store: Any, registry: Any,
                    say: Callable[[str], None] = print) -> Iterator[list[TrackerObserver]]:
    """Attach the suite's trackers and announce its start; on the way out (also on
    errors and interrupts) announce its end, wait for the trackers and detach them."""
    results_dir = Path(store.dir).resolve()
    observers: list[TrackerObserver] = []
    for entry in suite.trackers:
        try:
            tracker = _build(registry, entry)
        except Exception as exc:  # noqa: BLE001 - validated already; a constructor that raises only warns
            warnings.warn(f"tracker '{entry['name']}' could not be created: {type(exc).__name__}: {exc}",
                          TrackerWarning, stacklevel=3)
            continue
        observer = TrackerObserver(entry["name"], tracker, registry)
        registry.add_plugin(observer, f"tracker:{entry['name']}", source="suite")
        observers.append(observer)
    interrupted = False
    registry.observers.suite_started(suite, results_dir)
    try:
        yield observers
    except BaseException:
        interrupted = True
        raise
    finally:
        try:
            statuses = {rid: status or "pending"
                        for rid, status in store.statuses([s.run_id for s in suite.runs]).items()}
        except sqlite3.Error:
            statuses = {}
        registry.observers.suite_finished(suite, results_dir, statuses)
        started = time.monotonic()
        for observer in observers:
            budget = DRAIN_SECONDS_INTERRUPTED if interrupted else DRAIN_SECONDS
            observer.drain(max(budget - (time.monotonic() - started), 1.0), say)
            registry.remove_plugin(observer)
