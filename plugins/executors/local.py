"""The default executor: runs one run after another in this process."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from benchbase import Executor, hookimpl


@dataclass
class LocalConfig:
    # CPU threads for PyTorch while the suite runs (0: PyTorch's default, one per core).
    # Small models on a machine busy with other work train much faster with 1: idle
    # OpenMP threads spin while they wait for a core.
    threads: int = 0
    # Runs per fleet (benchbase.fleet): runs of one model that differ only in seed, data
    # subset or learning rate train together as one vectorized program. None: 16 on a
    # CPU, 64 on a GPU; 1: every run alone.
    fleet: Optional[int] = None


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
