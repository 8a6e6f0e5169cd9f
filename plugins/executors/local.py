"""The default executor: runs one run after another in this process."""
from __future__ import annotations

from benchbase import Executor, hookimpl


class LocalExecutor(Executor):
    """In-process and sequential: no start-up cost, events go straight to the driver."""

    name = "local"

    def execute(self, tasks, work, sink) -> None:
        for task in tasks:
            work(task, sink)


@hookimpl
def benchbase_register_executors(register):
    register(LocalExecutor)
