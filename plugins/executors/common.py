"""Shared by the out-of-process executors: worker set-up, and the record of a run
whose worker is gone.

Worker processes must not inherit choices that only make sense for one process per
machine: JAX would grab most of a GPU's memory (several runs share one GPU here),
and every framework would start as many threads as the machine has cores (several
runs share the cores). ``prepare_worker`` fixes both before a plugin imports JAX or
PyTorch; it runs first in the worker, before the task is even unpickled.
"""
from __future__ import annotations

import os
import sys
import threading
import time

from benchbase.runner import Finished

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def default_threads(workers: int) -> int:
    """CPU threads per run when ``workers`` runs share this machine's cores."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def prepare_worker(threads: int | None, env: dict | None = None) -> None:
    """Set up a worker process for one run (idempotent: Ray reuses workers)."""
    os.environ.update(env or {})
    # Read by XLA when the first JAX backend is created, i.e. after this line even if
    # some module imported jax already; an explicit user setting is kept.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if threads:
        for var in THREAD_VARIABLES:
            os.environ[var] = str(threads)
        # PyTorch reads OMP_NUM_THREADS when it is imported; if it already is (a reused
        # Ray worker), tell it directly.
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)


def exit_with_parent() -> None:
    """End this (spawned) worker as soon as its parent dies, even with ``kill -9``: an
    orphaned worker would go on training a run nobody records."""
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # returns when the parent's sentinel closes
        os._exit(70)

    threading.Thread(target=watch, name="benchbase-parent-watch", daemon=True).start()


def lost_run(task, step: int, status: str, reason: str, error: str | None = None) -> Finished:
    """The Finished event for a run whose worker ended without sending one."""
    summary = {"reason": reason, "steps": step, "examples": step * task.spec.budget.examples_per_step}
    return Finished(task.spec.run_id, status, summary, error=error or reason)


def run_deadline(task, grace: float) -> float | None:
    """When a run that starts now must be killed from outside (monotonic clock): its
    time limit, less the time spent before its checkpoint, plus ``grace`` for the
    in-loop check to stop it cleanly first. None without a time limit."""
    limit = task.spec.time_limit
    if not limit:
        return None
    prior = task.checkpoint.wall_time if task.checkpoint else 0.0
    return time.monotonic() + max(limit - prior, 0.0) + grace
