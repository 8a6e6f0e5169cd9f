"""When a run is evaluated: the training steps at which the Evaluator measures it.

Kept apart from the run planner: it is arithmetic on a step count, with its own reason to
change (a new spacing), and needs none of the planner's plugin resolution.
"""

from __future__ import annotations

import math

import numpy as np


def eval_schedule(total: int, schedule: str = "log", points: int = 8, first: int | None = None,
                  steps: list[int] = (), at_init: bool = False) -> list[int]:
    """Evaluation steps: log- or linearly spaced (or listed), always ending at ``total``."""
    if schedule == "list":
        out = {int(s) for s in steps if 0 < int(s) <= total}
    elif schedule == "linear":
        out = {int(round(x)) for x in np.linspace(total / points, total, points)}
    else:
        lo = max(1, first if first is not None else math.ceil(total / 200))
        lo = min(lo, total)
        out = {int(round(x)) for x in np.geomspace(lo, total, points)} if points > 1 else set()
    out.add(total)
    if at_init:
        out.add(0)
    return sorted(s for s in out if 0 <= s <= total)
