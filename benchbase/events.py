"""What a run reports while it runs, from wherever an executor runs it: the events
``runner.execute_task`` (and a fleet, per member) sends through ``emit`` and the driver
alone turns into store writes and lines for the user. Plain picklable dataclasses, so
the same events cross process and Ray boundaries."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from benchbase.contracts import EvalRow

Emit = Callable[[Any], None]

@dataclass
class Started:
    run_id: str
    provenance: dict
    resumed_from: int = 0


@dataclass
class Progress:
    run_id: str
    step: int
    total: int
    examples_per_s: float
    steps_per_s: float = 0.0


@dataclass
class Evaluated:
    run_id: str
    step: int
    examples: int
    rows: list[EvalRow]
    samples: np.ndarray | None = None
    checkpoint: bytes | None = None
    wall_time: float = 0.0


@dataclass
class Status:
    """What a run is doing between steps when that takes long (a learned feature space
    fitting before the first evaluation): a line for the user, silenced by --quiet."""

    run_id: str
    text: str


@dataclass
class Notice:
    """Something about the run the user must hear, even with --quiet (it restarted, say)."""

    run_id: str
    text: str


@dataclass
class Finished:
    run_id: str
    status: str  # done | failed | diverged | timeout
    summary: dict
    error: str | None = None
