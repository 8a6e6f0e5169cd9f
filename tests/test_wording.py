"""Counts in sentences read as English for one and for many."""
from __future__ import annotations

from benchbase.wording import counted, status_counts


def test_counts_are_singular_for_one_and_plural_otherwise():
    assert [counted(n, "run") for n in (0, 1, 2)] == ["0 runs", "1 run", "2 runs"]
    assert counted(2, "entry", "entries") == "2 entries"


def test_status_counts_name_what_the_runs_did_most_common_first():
    assert status_counts(["timeout", "failed", "timeout"]) == "2 runs timed out, 1 run failed"
    assert status_counts(["interrupted"]) == "1 run was interrupted"
    assert status_counts([]) == ""
