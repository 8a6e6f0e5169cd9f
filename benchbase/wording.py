"""Counts in sentences: '1 run', '2 runs', '2 runs timed out', so that summaries read as
English whatever the numbers are instead of '1 runs' or '0 run(s)'."""
from __future__ import annotations

from collections import Counter
from typing import Iterable

# what a run with each stored status did, as the end of a sentence about it
STATUS_WORDS = {"done": "finished", "failed": "failed", "diverged": "diverged", "timeout": "timed out",
                "interrupted": "were interrupted", "pending": "never started", "running": "are still running"}
SINGULAR = {"were": "was", "are": "is"}


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """'1 run', '2 runs' (``plural`` where adding an 's' is wrong)."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def status_counts(statuses: Iterable[str]) -> str:
    """'2 runs timed out, 1 run failed' for the statuses of some runs, most common first."""
    parts = []
    for status, n in sorted(Counter(statuses).items(), key=lambda kv: (-kv[1], kv[0])):
        verb = STATUS_WORDS.get(status, f"are {status}")
        first, _, rest = verb.partition(" ")
        if n == 1 and first in SINGULAR:
            verb = f"{SINGULAR[first]} {rest}"
        parts.append(f"{counted(n, 'run')} {verb}")
    return ", ".join(parts)
