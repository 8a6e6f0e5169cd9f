"""A test-only observer plugin whose hooks raise (``PluginPolicy(extra=("support.faulty_observer",))``):
an observer's failure must cost a warning, never a run."""
from __future__ import annotations

from benchbase import hookimpl


@hookimpl
def benchbase_run_started(spec, run_id, provenance):
    raise RuntimeError("injected failure in benchbase_run_started")


@hookimpl
def benchbase_evaluated(spec, run_id, step, examples, results):
    raise RuntimeError("injected failure in benchbase_evaluated")
