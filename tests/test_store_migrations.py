"""A results file written before schema migrations existed still opens, and reads
back exactly what was stored (tests/fixtures/store_v1: see make.py there)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchbase.store import Store

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "store_v1"


@pytest.fixture
def v1_store(tmp_path):
    """A copy of the old results file (opening it may upgrade it in place)."""
    shutil.copy(FIXTURE / "store_v1.db", tmp_path / "benchbase.sqlite")
    with Store(tmp_path, create=False) as store:
        yield store


@pytest.fixture(scope="module")
def want() -> dict:
    return json.loads((FIXTURE / "expected.json").read_text())


def test_old_results_file_reads_the_same_runs_and_evaluations(v1_store, want):
    store = v1_store
    runs = {r["run_id"]: r for r in store.runs()}
    assert sorted(runs) == sorted(want["runs"])
    for rid, old in want["runs"].items():
        r = runs[rid]
        assert (r["status"], r["summary"], r["error"]) == (old["status"], old["summary"], old["error"])
        assert r["spec"] == old["spec"]
        assert sorted(r["provenance"]) == old["provenance_keys"]
        assert json.loads(json.dumps(store.evals(rid))) == old["evals"]
        assert {str(s): store.samples(rid, s)[1].tolist() for s in store.sample_steps(rid)} == old["samples"]
        ckpt = store.checkpoint(rid)
        assert (None if ckpt is None else {"step": ckpt.step, "examples": ckpt.examples,
                                           "bytes": len(ckpt.blob)}) == old["checkpoint"]
    assert store.suites() == sorted(want["suites"])
    for suite, old in want["suites"].items():
        assert [r["run_id"] for r in store.runs(suite=suite)] == old["runs"]
        assert store.suite_settings(suite) == old["settings"]
        assert store.suite_resolved(suite) == old["resolved"]
        assert json.loads(json.dumps(store.derived(suite), default=str)) == old["derived"]
    leases = [list(row) for row in store.conn.execute("SELECT run_id, owner, host, pid FROM leases")]
    assert leases == want["leases"]
