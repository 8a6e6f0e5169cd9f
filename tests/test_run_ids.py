"""Run ids are the hash of everything that changes a run's numbers: the committed
leaderboards name their runs by them, and results stores key everything on them. A
change to how suites are parsed, planned or serialised must leave both the ids and the
stored spec JSON of the committed suites exactly as they are.

tests/fixtures/run_ids.json maps each committed suite's run ids, in planning order, to
a fingerprint of the spec JSON the store keeps for the run.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from benchbase.config import load_suite

REPO = Path(__file__).resolve().parents[1]
PINNED = json.loads((REPO / "tests" / "fixtures" / "run_ids.json").read_text())


def spec_fingerprint(spec) -> str:
    return hashlib.sha256(json.dumps(spec.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


@pytest.mark.parametrize("suite", sorted(PINNED))
def test_committed_suites_plan_the_pinned_run_ids(suite, registry):
    runs = load_suite(REPO / "suites" / f"{suite}.yaml", registry=registry).runs
    assert [r.run_id for r in runs] == list(PINNED[suite])
    assert {r.run_id: spec_fingerprint(r) for r in runs} == PINNED[suite]


@pytest.mark.parametrize("suite", sorted(PINNED))
def test_committed_leaderboards_name_pinned_runs(suite):
    rows = json.loads((REPO / "leaderboards" / f"{suite}.json").read_text())
    assert sorted({rid for row in rows for rid in row["run_ids"]}) == sorted(PINNED[suite])
