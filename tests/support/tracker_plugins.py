"""Test-only tracker (register with ``PluginPolicy(extra=("support.tracker_plugins",))``):
``recording`` appends every call it gets to a JSON-lines file, and can fail in one
method or wait for a gate, to test how the driver isolates trackers."""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from benchbase import Tracker, hookimpl

GATES: dict[str, threading.Event] = {}  # name -> event the tracker's `evaluated` waits for


@dataclass
class RecordingConfig:
    log: str = ""  # JSON-lines file every call is appended to
    fail_in: str = ""  # the method that raises: open, run_started, evaluated, run_finished, close
    gate: str = ""  # `evaluated` waits until GATES[gate] is set
    needs: str = ""  # a module it claims to need (for the missing-library error)


class RecordingTracker(Tracker):
    """Records every call (tests only)."""

    name = "recording"
    Config = RecordingConfig

    def requirements(self):
        return (self.config.needs,) if self.config.needs else ()

    def _record(self, method: str, **fields) -> None:
        if self.config.gate and method == "evaluated":
            GATES[self.config.gate].wait()
        if self.config.log:
            with open(self.config.log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"method": method, **fields}) + "\n")
        if method == self.config.fail_in:
            raise RuntimeError(f"tracker told to fail in {method}")

    def open(self, suite, results_dir):
        self._record("open", suite=suite.name, results_dir=str(results_dir))

    def run_started(self, spec, run_id, provenance, resumed_from):
        self._record("run_started", run_id=run_id, resumed_from=resumed_from)

    def evaluated(self, spec, run_id, step, examples, results, samples):
        self._record("evaluated", run_id=run_id, step=step, rows=len(results),
                     samples=None if samples is None else list(samples.shape))

    def run_finished(self, spec, run_id, status, summary):
        self._record("run_finished", run_id=run_id, status=status)

    def close(self, suite, outcome):
        self._record("close", statuses=outcome.statuses, tables=len(outcome.tables),
                     markdown=outcome.render("markdown").text)


def read_log(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@hookimpl
def benchbase_register_trackers(register):
    register(RecordingTracker)
