"""The ``ray`` executor: runs on a Ray cluster (an existing one, or a local one it starts).

Each run is one Ray generator task that streams its events back as it goes, so the
driver (the only writer of the store) records every evaluation and checkpoint the
moment it exists. Ray's own task retry is off: when a worker or node dies, this
executor resubmits the run itself from its last streamed checkpoint (up to
``max_retries`` times), which Ray could only do from the start. Ray is an optional
dependency (``pip install 'benchbase[ray]'``), imported only when this executor runs.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import queue as queue_module
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from benchbase import Executor, hookimpl
from benchbase.errors import BenchbaseInputError
from .common import RunWatch, prepare_worker

POLL_SECONDS = 0.5


@dataclass
class RayConfig:
    # None: RAY_ADDRESS or a cluster already running on this machine, else start a local
    # one; "auto": the cluster this machine belongs to; "host:6379"; "ray://host:10001".
    address: Optional[str] = None
    num_cpus: float = 1.0  # reserved per run
    num_gpus: float = 0.0  # reserved per run; fractions (0.25) put several runs on one GPU
    resources: Dict[str, float] = field(default_factory=dict)  # other per-run resources, e.g. {TPU: 4}
    max_retries: int = 2  # reruns, from the last checkpoint, of a run whose worker or node died
    threads: Optional[int] = None  # CPU threads per run; None: num_cpus rounded up
    local_cpus: Optional[int] = None  # CPUs of a Ray that benchbase starts itself (None: all)
    max_in_flight: Optional[int] = None  # runs submitted at once; None: as many as the cluster fits
    kill_grace: float = 10.0  # seconds past a run's time_limit before its stuck worker is killed
    worker_cache: Optional[str] = None  # feature cache on workers; None: the driver's results dir
    runtime_env: Dict[str, Any] = field(default_factory=dict)  # for ray.init, e.g. {working_dir: .}
    # Runs per fleet (benchbase.fleet), each fleet one Ray task with the resources above.
    # None: 1 on a CPU (off), 64 on a GPU; 1: every run alone.
    fleet: Optional[int] = None

    def __post_init__(self):
        for key in ("num_cpus", "num_gpus", "max_retries", "kill_grace"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0 (got {getattr(self, key)})")


def import_ray():
    try:
        import ray
    except ImportError:
        raise BenchbaseInputError("the 'ray' executor needs Ray: pip install 'benchbase[ray]'") from None
    return ray


class _Crash:
    """The work function itself raised (not a plugin: execute_task catches those)."""

    def __init__(self, text: str):
        self.text = text


_DONE = object()


def run_streaming(task, work, threads):
    """Ray generator task: run ``work`` and yield its events as they happen.

    ``work`` reports through a callback, so it runs in a thread feeding a small queue
    that this generator drains; the queue's bound keeps memory flat if the driver lags.
    """
    prepare_worker(threads)
    events: queue_module.Queue = queue_module.Queue(maxsize=16)

    def target() -> None:
        try:
            work(task, events.put)
        except BaseException:  # noqa: BLE001 - reported to the driver, which fails the run
            events.put(_Crash(traceback.format_exc()))
        finally:
            events.put(_DONE)

    threading.Thread(target=target, name="benchbase-run", daemon=True).start()
    while True:
        event = events.get()
        if event is _DONE:
            return
        if isinstance(event, _Crash):
            raise RuntimeError(f"benchbase worker error:\n{event.text}")
        yield event


@dataclass
class _Attempt:
    task: Any
    number: int  # 0 for the first try
    grace: float = 0.0
    cancelled: bool = False

    def __post_init__(self):
        self.watch = RunWatch(self.task, self.grace)


class RayExecutor(Executor):
    """Runs on a Ray cluster, per-run CPUs/GPUs; a run whose worker dies resumes from its checkpoint."""

    name = "ray"
    Config = RayConfig
    runs_here = False  # the cluster's machines have the devices, not necessarily this one

    def execute(self, tasks, work, sink) -> None:
        ray = import_ray()
        cfg = self.config
        queue = iter(tasks)
        first = next(queue, None)
        if first is None:  # every run is held by another driver: no need to start Ray
            return
        queue = itertools.chain([first], queue)
        started_ray = False
        if not ray.is_initialized():
            kwargs: dict = {"address": cfg.address, "include_dashboard": False, "log_to_driver": True}
            if cfg.runtime_env:
                kwargs["runtime_env"] = dict(cfg.runtime_env)
            if cfg.local_cpus is not None:
                kwargs["num_cpus"] = cfg.local_cpus
            ray.init(**kwargs)
            started_ray = True
        try:
            self._run(ray, queue, work, sink)
        finally:
            if started_ray:
                ray.shutdown()

    # ------------------------------------------------------------------ internals
    def _remote(self, ray):
        cfg = self.config
        threads = cfg.threads or max(1, math.ceil(cfg.num_cpus))
        options = {"num_cpus": cfg.num_cpus, "num_gpus": cfg.num_gpus, "max_retries": 0,
                   "retry_exceptions": False}
        if cfg.resources:
            options["resources"] = dict(cfg.resources)
        if cfg.num_gpus:
            options["max_calls"] = 1  # a fresh worker per GPU run: its GPU memory is freed after it
        fn = ray.remote(**options)(run_streaming)
        return lambda task: fn.remote(task, self._work, threads)

    def _slots(self, ray) -> int:
        cfg = self.config
        if cfg.max_in_flight:
            return max(1, cfg.max_in_flight)
        total = ray.cluster_resources()
        fits = [total.get("CPU", 0) / cfg.num_cpus if cfg.num_cpus else math.inf,
                total.get("GPU", 0) / cfg.num_gpus if cfg.num_gpus else math.inf]
        fits += [total.get(k, 0) / v for k, v in cfg.resources.items() if v]
        n = min(fits)
        return max(1, int(n)) if math.isfinite(n) else 1

    def _run(self, ray, tasks, work, sink) -> None:
        cfg = self.config
        self._work = work
        submit = self._remote(ray)
        queue = iter(tasks)  # taken lazily: the driver claims a run when it is taken
        running: dict = {}  # ObjectRefGenerator -> _Attempt
        exhausted = False

        def start(task, number: int) -> None:
            device = task.runs[0].spec.device
            if device.startswith("cuda") and not cfg.num_gpus:
                raise BenchbaseInputError(
                    f"device '{device}' needs executor.config.num_gpus > 0: Ray hides GPUs "
                    f"from runs that reserve none")
            if cfg.worker_cache is not None:
                task = task.with_runs([dataclasses.replace(t, results_dir=cfg.worker_cache) for t in task.runs])
            running[submit(task)] = _Attempt(task, number, cfg.kill_grace)

        try:
            while True:
                if not exhausted:
                    slots = self._slots(ray)
                    while len(running) < slots:
                        task = next(queue, None)  # lazily: the driver claims a run when it is taken
                        if task is None:
                            exhausted = True
                            break
                        start(task, 0)
                if not running:
                    return
                ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
                for gen in ready:
                    self._advance(ray, gen, running, sink, start)
                now = time.monotonic()
                for gen, attempt in running.items():
                    if not attempt.cancelled and attempt.watch.overdue(now):
                        attempt.cancelled = True
                        ray.cancel(gen, force=True)
        finally:
            for gen in running:
                try:
                    ray.cancel(gen, force=True)
                except Exception:  # noqa: BLE001 - best effort while going down
                    pass

    def _advance(self, ray, gen, running: dict, sink, start) -> None:
        """Take the next event of one task, or deal with its end."""
        attempt: _Attempt = running[gen]
        watch = attempt.watch
        try:
            ref = next(gen)
        except StopIteration:
            del running[gen]
            if not watch.done:
                watch.lose(sink, "failed", "its Ray task ended without reporting a result")
            return
        try:
            event = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            del running[gen]
            if not watch.done:
                watch.lose(sink, "failed", "the Ray worker raised outside the run", error=str(exc))
            return
        except ray.exceptions.RayError as exc:  # worker/node died, out of memory, cancelled
            del running[gen]
            if watch.done:
                return  # its results are in; the worker died on its way out
            if attempt.cancelled:
                late = watch.overdue(time.monotonic()) or [r for r in watch.runs if r not in watch.finished]
                limit = watch.runs[late[0]].spec.time_limit
                watch.lose(sink, "timeout",
                           f"exceeded time_limit={limit:g}s and was stuck inside a step; its Ray worker "
                           f"was killed {self.config.kill_grace:g}s past the limit", overdue=late)
            elif attempt.number < self.config.max_retries:
                task = watch.remaining()
                first = task.runs[0]
                where = f"step {first.checkpoint.step}" if first.checkpoint else "the start"
                what = first.spec.title
                if len(task.runs) > 1:
                    what = f"a fleet of {len(task.runs)} ({what}, ...)"
                print(f"benchbase: {what}: Ray worker lost ({type(exc).__name__}); retry "
                      f"{attempt.number + 1} of {self.config.max_retries} from {where}", file=sys.stderr)
                start(task, attempt.number + 1)
            else:
                watch.lose(sink, "failed", f"its Ray worker died ({type(exc).__name__}) on each of "
                                           f"{attempt.number + 1} attempt(s)", error=str(exc))
            return
        watch.see(event)
        sink(event)


@hookimpl
def benchbase_register_executors(register):
    register(RayExecutor)
