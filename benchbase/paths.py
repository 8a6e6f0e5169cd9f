"""Where results live by default (no imports: read by ``benchbase --help``)."""
from __future__ import annotations

import os

DB_NAME = "benchbase.sqlite"


def default_results_dir() -> str:
    return os.environ.get("BENCHBASE_RESULTS", "results")
