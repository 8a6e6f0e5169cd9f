"""Shared by the out-of-process executors: worker set-up, and the record of a run
whose worker is gone.

Worker processes must not inherit choices that only make sense for one process per
machine: JAX would grab most of a GPU's memory (several runs share one GPU here),
and every framework would start as many threads as the machine has cores (several
runs share the cores). ``prepare_worker`` fixes both before a plugin imports JAX or
PyTorch; it runs first in the worker, before the task is even unpickled.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from typing import Iterator

from benchbase.events import Evaluated, Finished, Progress, Started
from benchbase.store import Checkpoint

#: The frameworks' thread pools (PyTorch's OpenMP and MKL), set to a run's thread count.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: NumPy's and SciPy's OpenBLAS, which only the metrics use (covariances, eigensolvers of
#: feature-sized matrices): one thread whatever the run's count. With two, an OpenBLAS
#: call leaves its second thread spinning for about 0.1 s (OpenBLAS's thread timeout,
#: 2^28 cycles) against the framework's threads on the same cores: on an idle 2-core
#: machine at two threads, every second held-out loss of a fleet's evaluation took 90
#: ms instead of 12, and the fleet's metrics phase 5.6 s instead of 1.8
#: (benchmarks/bench_fleet.py, docs/performance.md).
BLAS_VARIABLE, BLAS_THREADS = "OPENBLAS_NUM_THREADS", 1


def thread_variables(threads: int) -> dict[str, str]:
    """The environment a run's libraries read when they load: the frameworks' pools at
    ``threads``, OpenBLAS at ``BLAS_THREADS``."""
    return {**{var: str(threads) for var in THREAD_VARIABLES}, BLAS_VARIABLE: str(BLAS_THREADS)}


def limit_loaded_openblas():
    """OpenBLAS libraries loaded already (NumPy's, SciPy's) at ``BLAS_THREADS``; the
    returned limiter, used as a context manager, restores them on exit."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(internal_api="openblas").limit(limits=BLAS_THREADS)


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
        os.environ.update(thread_variables(threads))
        if "numpy" in sys.modules:  # a reused worker: its OpenBLAS read the variable long ago
            limit_loaded_openblas()
        # PyTorch reads OMP_NUM_THREADS when it is imported; if it already is (a reused
        # Ray worker), tell it directly.
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)


@contextlib.contextmanager
def cpu_threads(threads: int) -> Iterator[None]:
    """PyTorch's threads at ``threads`` and the OpenBLAS of NumPy/SciPy (the metrics'
    covariances and eigensolvers) at ``BLAS_THREADS`` while the block runs (0: leave both
    as they are).

    Both, because either one spinning on a busy machine costs the other: with two
    OpenBLAS threads on a loaded 2-core machine a 250 x 64 covariance took 5 ms instead
    of 0.8 and a 64 x 64 eigensolver 26 ms instead of 2; with PyTorch at two threads on
    an idle one, OpenBLAS's spinning second thread made the next PyTorch ops 8x slower
    (benchmarks/bench_fleet.py). Only OpenBLAS is limited: a PyTorch built with MKL
    keeps its MKL threads.

    threadpoolctl limits only the libraries loaded already; SciPy brings its own OpenBLAS,
    loaded when a metric first imports ``scipy.linalg``, which reads the thread variables
    when it loads. So they are set for the block too: without them that library ran two
    threads inside a one-thread block and a fleet's metrics took twice their wall time in
    process time."""
    if threads <= 0:
        yield
        return
    import torch

    before = torch.get_num_threads()
    variables = thread_variables(threads)
    saved = {var: os.environ.get(var) for var in variables}
    torch.set_num_threads(threads)
    os.environ.update(variables)
    try:
        with limit_loaded_openblas():
            yield
    finally:
        torch.set_num_threads(before)
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


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


class RunWatch:
    """The driver's view of one task a worker runs (a run, or a fleet of runs): the
    step each run reached, its last checkpoint, when it must end, whether it finished.
    Fed every event the worker sends; says what to report when the worker is lost."""

    def __init__(self, task, grace: float):
        self.task, self.grace = task, grace
        self.runs = {t.spec.run_id: t for t in task.runs}
        self.steps = {rid: t.checkpoint.step if t.checkpoint else 0 for rid, t in self.runs.items()}
        self.checkpoints = {rid: t.checkpoint for rid, t in self.runs.items()}
        self.deadlines: dict[str, float | None] = {}
        self.finished: set[str] = set()

    @property
    def label(self) -> str:
        first = next(iter(self.runs))
        return first if len(self.runs) == 1 else f"{first}+{len(self.runs) - 1}"

    @property
    def done(self) -> bool:
        return len(self.finished) == len(self.runs)

    def see(self, event) -> None:
        rid = event.run_id
        if rid not in self.runs:
            return
        if isinstance(event, Started):
            self.steps[rid] = event.resumed_from
            self.deadlines[rid] = run_deadline(self.runs[rid], self.grace)
        elif isinstance(event, Progress):
            self.steps[rid] = event.step
        elif isinstance(event, Evaluated):
            self.steps[rid] = event.step
            if event.checkpoint is not None:
                self.checkpoints[rid] = Checkpoint(event.step, event.examples, event.wall_time, event.checkpoint)
        elif isinstance(event, Finished):
            self.finished.add(rid)

    def overdue(self, now: float) -> list[str]:
        """Unfinished runs past their deadline (time limit plus grace)."""
        return [rid for rid, d in self.deadlines.items() if d is not None and now > d and rid not in self.finished]

    def step(self) -> int:
        return max(self.steps.values(), default=0)

    def lose(self, sink, status: str, reason: str, error: str | None = None, overdue: list[str] = ()) -> None:
        """Report every unfinished run of a worker that is gone. With ``overdue``, those
        runs get ``status`` and the rest of their fleet is failed along with them."""
        for rid, task in self.runs.items():
            if rid in self.finished:
                continue
            if overdue and rid not in overdue:
                late = self.runs[overdue[0]].spec.title
                sink(lost_run(task, self.steps[rid], "failed",
                              f"its fleet's worker was killed: {late} was stuck inside a step past its time limit"))
            else:
                sink(lost_run(task, self.steps[rid], status, reason, error))
            self.finished.add(rid)

    def remaining(self):
        """The task again with its unfinished runs only, each from its last checkpoint."""
        import dataclasses

        runs = [dataclasses.replace(t, checkpoint=self.checkpoints[rid]) for rid, t in self.runs.items()
                if rid not in self.finished]
        return self.task.with_runs(runs)
