"""The default executor: runs one run after another in this process."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from benchbase import Executor, hookimpl


@dataclass
class LocalConfig:
    # CPU threads for PyTorch while the suite runs (0: its default); NumPy/SciPy's OpenBLAS runs
    # on one thread whenever this is set (two pools spinning on the same cores: common.cpu_threads).
    # 1 by default: on a machine busy with other work, one thread per core trained the
    # built-in models about 30x slower (OpenMP threads spin while they wait for a core),
    # and a fixed count keeps runs bit-identical across machines with different core
    # counts (benchmarks/bench_threads.py, docs/reproducibility.md).
    threads: int = 1
    # Runs per fleet (benchbase.fleet): runs of one model that differ only in seed, data
    # subset or learning rate train together as one vectorized program. None:
    # benchbase.fleet.DEFAULT_FLEET_SIZE (1 on a CPU, 64 on a GPU); 1: every run alone.
    fleet: Optional[int] = None

    def __post_init__(self):
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0: one per core), got {self.threads}")


class LocalExecutor(Executor):
    """In-process and sequential: no start-up cost, events go straight to the driver."""

    name = "local"
    Config = LocalConfig

    def execute(self, tasks, work, sink) -> None:
        from .common import cpu_threads  # imports the runner: not needed to register

        with cpu_threads(self.config.threads):
            for task in tasks:
                work(task, sink)


@hookimpl
def benchbase_register_executors(register):
    register(LocalExecutor)
