"""Where results live by default (no imports: read by ``benchbase --help``)."""
from __future__ import annotations

import os

DB_NAME = "benchbase.sqlite"


def default_results_dir() -> str:
    """$BENCHBASE_RESULTS, or ``results``; an empty (or blank) variable counts as unset,
    since as a path it would put the store and its cache in the current directory."""
    value = os.environ.get("BENCHBASE_RESULTS", "")
    return value if value.strip() else "results"
