"""The default executor: runs one run after another in this process."""
from __future__ import annotations

from dataclasses import dataclass

from benchbase import Executor, hookimpl


@dataclass
class LocalConfig:
    # CPU threads for PyTorch while the suite runs (0: PyTorch's default, one per core).
    # 1 by default: on a machine busy with other work, one thread per core trained the
    # built-in models about 30x slower (OpenMP threads spin while they wait for a core),
    # and a fixed count keeps runs bit-identical across machines with different core
    # counts (benchmarks/bench_threads.py, docs/reproducibility.md).
    threads: int = 1

    def __post_init__(self):
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0 (0: one per core), got {self.threads}")


class LocalExecutor(Executor):
    """In-process and sequential: no start-up cost, events go straight to the driver."""

    name = "local"
    Config = LocalConfig

    def execute(self, tasks, work, sink) -> None:
        import torch

        before = torch.get_num_threads()
        if self.config.threads > 0:
            torch.set_num_threads(self.config.threads)
        try:
            for task in tasks:
                work(task, sink)
        finally:
            torch.set_num_threads(before)


@hookimpl
def benchbase_register_executors(register):
    register(LocalExecutor)
