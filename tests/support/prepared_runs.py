"""Runs as the runner prepares them, and their batch drawers, for tests that drive the
training steps themselves (tests/test_gpu.py, tests/test_host_transfers.py)."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable

from benchbase.runner import Run, RunTask, Started, prepare, start


def prepared(task: RunTask) -> tuple[Run, Started]:
    """A run as runner.prepare leaves it (its placement entered; close it), and its Started."""
    events: list = []
    run_ = start(task)
    prepare(run_, events.append)
    return run_, events[0]


def prepared_runs(tasks: list[RunTask]) -> tuple[contextlib.ExitStack, list[Run]]:
    """The runs of ``tasks`` prepared, and the stack that closes them (in reverse)."""
    stack = contextlib.ExitStack()
    runs = []
    for task in tasks:
        run_ = prepared(task)[0]
        stack.callback(run_.close)
        runs.append(run_)
    return stack, runs


def drawer(run_: Run) -> Callable:
    """The run's own batch draw, ``draw(step) -> (batch, key)``."""
    return run_.fw.drawer(run_.data.x, run_.data.y, run_.spec.budget.examples_per_step, run_.spec.seed,
                          run_.device)


def train_steps(run_: Run, state: Any, draw: Callable, steps: range) -> tuple[Any, dict]:
    """``run_``'s model advanced from ``state`` over ``steps`` with batches from ``draw``
    (one drawer across calls: a JAX drawer keeps the next step on the device): the new
    state and the last step's logs. Tests warm up, then guard the later steps."""
    logs: dict = {}
    for step in steps:
        state, logs = run_.model.train_step(state, *draw(step))
    return state, logs


@dataclass
class FleetSteps:
    """The fleet program of prepared runs, their stacked state and the fleet's batch draw."""

    program: Any
    state: Any
    draw: Callable


def fleet_steps(runs: list[Run], configure: Callable[[Any], None] = lambda program: None,
                start: int = 0) -> FleetSteps:
    """``runs`` as one fleet from their own states, drawing from step ``start``;
    ``configure`` sees the program before it stacks them."""
    fw, device = runs[0].fw, runs[0].device
    program = runs[0].model.fleet([r.model for r in runs])
    configure(program)
    pool = fw.put(runs[0].splits.train, device)
    draw = fw.fleet_drawer(pool, None, [r.subset.indices for r in runs], runs[0].spec.budget.examples_per_step,
                           [r.spec.seed for r in runs], [start] * len(runs), device)
    return FleetSteps(program, program.stack([r.state for r in runs]), draw)
