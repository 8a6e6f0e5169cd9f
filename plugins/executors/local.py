"""The default executor: runs one run after another in this process."""
from __future__ import annotations

from dataclasses import dataclass

from benchbase import Executor, hookimpl


@dataclass
class LocalConfig:
    # CPU threads for PyTorch while the suite runs (0: PyTorch's default, one per core).
    # Small models on a machine busy with other work train much faster with 1: idle
    # OpenMP threads spin while they wait for a core.
    threads: int = 0


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
