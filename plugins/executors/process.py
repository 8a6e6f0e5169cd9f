"""The ``process`` executor: every run in its own spawned subprocess, N at a time.

A run that crashes its process (segfault, ``os._exit``, ``kill -9``, out of memory)
fails alone, with the cause as its reason; the other workers carry on. Each worker
sends its events to the driver through its own one-way pipe rather than a shared
``multiprocessing.Queue``: a worker killed half-way through a message then only
breaks its own pipe (the driver reads EOF), never the channel of the others, and it
cannot die holding a lock the others need.
"""
from __future__ import annotations

import multiprocessing
import pickle
import signal
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import List, Optional

from benchbase import Executor, hookimpl
from benchbase.errors import BenchbaseInputError
from .common import RunWatch, default_threads, exit_with_parent, prepare_worker

POLL_SECONDS = 0.5  # how often deadlines are checked when no event arrives
EXIT_GRACE = 30.0  # seconds a worker may take to exit after its run finished


@dataclass
class ProcessConfig:
    workers: int = 2  # runs at the same time, each in its own process
    threads: Optional[int] = None  # CPU threads per run; None: CPU cores // workers
    kill_grace: float = 10.0  # seconds past a run's time_limit before a stuck worker is killed
    # GPUs to spread runs over: each worker sees one of them (as cuda:0) through
    # CUDA_VISIBLE_DEVICES, the least busy first. None: every worker sees every GPU.
    gpus: Optional[List[int]] = None
    # Runs per fleet (benchbase.fleet): runs of one model that differ only in seed, data
    # subset or learning rate train together in one worker. None: 1 on a CPU (off), 64 on a
    # GPU; 1: every run alone.
    fleet: Optional[int] = None

    def __post_init__(self):
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1 (got {self.workers})")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 (got {self.threads})")
        if self.kill_grace < 0:
            raise ValueError(f"kill_grace must be >= 0 (got {self.kill_grace})")


def _worker_main(payload: bytes, conn, threads: int | None, env: dict) -> None:
    """Entry point of a worker process: environment first, then the run."""
    prepare_worker(threads, env)
    exit_with_parent()
    # Ctrl-C reaches the whole process group: let the driver alone handle it (it stops
    # the workers), instead of every worker printing a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    task, work = pickle.loads(payload)
    try:
        work(task, conn.send)
    finally:
        conn.close()


def describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        try:
            return f"was killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class _Worker:
    """One task (a run, or a fleet of runs) in one process, seen from the driver."""

    def __init__(self, ctx, task, work, threads: int | None, kill_grace: float, gpu: int | None = None):
        self.task = task
        self.watch = RunWatch(task, kill_grace)
        self.gpu = gpu
        env = {} if gpu is None else {"CUDA_VISIBLE_DEVICES": str(gpu)}
        receive, send = ctx.Pipe(duplex=False)
        self.conn = receive
        self.process = ctx.Process(target=_worker_main, args=(pickle.dumps((task, work)), send, threads, env),
                                   name=f"benchbase-{self.watch.label}", daemon=True)
        self.process.start()
        send.close()  # only the worker may hold the sending end, so its death reads as EOF
        self.finished_at: float | None = None
        self.closed = False

    @property
    def finished(self) -> bool:
        return self.watch.done

    def pump(self, sink) -> None:
        """Deliver every event that has arrived; notice EOF (the worker is gone)."""
        while not self.closed and self.conn.poll():
            try:
                event = self.conn.recv()
            except (EOFError, OSError, pickle.UnpicklingError):
                self.closed = True
                break
            self.watch.see(event)
            if self.watch.done and self.finished_at is None:
                self.finished_at = time.monotonic()
            sink(event)

    def overdue(self, now: float) -> list[str]:
        return self.watch.overdue(now)

    def lingering(self, now: float) -> bool:
        """Its runs are over but the process does not exit (a plugin's non-daemon thread)."""
        return self.finished_at is not None and now - self.finished_at > EXIT_GRACE

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)

    def report_loss(self, sink, status: str, reason: str, overdue: list[str] = ()) -> None:
        """The worker ended without a Finished event for some runs: say why, in each run's record."""
        self.watch.lose(sink, status, reason, overdue=overdue)

    def close(self) -> None:
        self.conn.close()
        self.process.join(timeout=10)


class ProcessExecutor(Executor):
    """Runs each run in its own spawned process, `workers` at a time; a crash fails only that run."""

    name = "process"
    Config = ProcessConfig

    def execute(self, tasks, work, sink) -> None:
        cfg = self.config
        threads = cfg.threads or default_threads(cfg.workers)
        ctx = multiprocessing.get_context("spawn")
        queue = iter(tasks)
        active: list[_Worker] = []
        exhausted = False
        try:
            while True:
                while not exhausted and len(active) < cfg.workers:
                    task = next(queue, None)  # lazily: the driver claims a run when it is taken
                    if task is None:
                        exhausted = True
                    else:
                        gpu = min(cfg.gpus, key=lambda g: sum(w.gpu == g for w in active)) if cfg.gpus else None
                        active.append(_Worker(ctx, task, work, threads, cfg.kill_grace, gpu))
                if not active:
                    return
                wait([w.conn for w in active] + [w.process.sentinel for w in active], timeout=POLL_SECONDS)
                now = time.monotonic()
                for w in list(active):
                    w.pump(sink)
                    late = w.overdue(now)
                    if late:
                        w.kill()
                        w.pump(sink)  # whatever it sent before it was killed
                        late = [rid for rid in late if rid not in w.watch.finished]
                        if late:
                            limit = w.watch.runs[late[0]].spec.time_limit
                            w.report_loss(sink, "timeout",
                                          f"exceeded time_limit={limit:g}s and was stuck inside a step; "
                                          f"its worker was killed {cfg.kill_grace:g}s past the limit", late)
                    if w.lingering(now):
                        w.kill()  # its result is in: free the slot
                    if w.closed or not w.process.is_alive():
                        w.process.join(timeout=10)
                        w.pump(sink)  # the pipe holds everything sent before exit
                        if not w.finished:
                            w.report_loss(sink, "failed", f"its worker process {describe_exit(w.process.exitcode)} "
                                                          f"at step {w.watch.step()} (pid {w.process.pid})")
                        w.close()
                        active.remove(w)
        finally:
            for w in active:  # the driver is going down (error, Ctrl-C): take the workers with it
                w.kill()
                w.close()


@hookimpl
def benchbase_register_executors(register):
    register(ProcessExecutor)
