"""A run stopped by Ctrl-C (SIGINT) is recorded ``interrupted``, not ``running`` forever:
the leaderboard says so, its claim is gone, the next run resumes it from its checkpoint,
and --fresh may redo it (only a live driver's runs are protected)."""
from __future__ import annotations

import pytest
from support.suites import tiny_suite

from benchbase import driver
from benchbase.config import build_suite
from benchbase.leaderboard import build_tables
from benchbase.leases import Lease, RunsHeldError
from benchbase.progress import Reporter
from benchbase.store import Store

FLOW = tiny_suite(models=[{"name": "rectified_flow", "framework": "torch",
                           "config": {"width": 16, "depth": 1, "sample_steps": 2}}])


def interrupted_after_first_eval(suite, store, registry, monkeypatch) -> str:
    """Run ``suite`` until its first evaluation is stored, then Ctrl-C; returns the run id."""
    real_write = Store.write_eval

    def write_then_ctrl_c(self, *a, **k):
        real_write(self, *a, **k)
        raise KeyboardInterrupt

    monkeypatch.setattr(Store, "write_eval", write_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        driver.run_suite(suite, store, registry, reporter=Reporter(quiet=True))
    monkeypatch.setattr(Store, "write_eval", real_write)
    return suite.runs[0].run_id


def test_an_interrupted_run_reads_interrupted_and_resumes(registry, tmp_path, monkeypatch):
    suite = build_suite(FLOW, "<test>", registry=registry)
    with Store(tmp_path) as store:
        rid = interrupted_after_first_eval(suite, store, registry, monkeypatch)
        assert store.status(rid) == "interrupted"
        assert store.conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0
        (row,) = build_tables(store)[0].rows
        assert row.runs_text == "0 (1 interrupted)" and row.statuses == {"interrupted": 1}
        ckpt = store.checkpoint(rid)
        assert ckpt is not None and ckpt.step > 0  # resumable
        result = driver.run_suite(suite, store, registry, reporter=Reporter(quiet=True))
        assert result.ok and store.status(rid) == "done" and result.skipped == 0


def test_fresh_redoes_an_interrupted_run_but_never_a_live_ones(registry, tmp_path, monkeypatch):
    suite = build_suite(FLOW, "<test>", registry=registry)
    with Store(tmp_path) as store:
        rid = interrupted_after_first_eval(suite, store, registry, monkeypatch)
        live = Lease.new()
        assert store.leases.claim(rid, live) is None  # another driver took it up and is alive
        with pytest.raises(RunsHeldError):
            store.reset_runs([rid], Lease.new())
        assert store.status(rid) == "interrupted" and store.evals(rid)  # nothing deleted
        store.leases.release(live)
        result = driver.run_suite(suite, store, registry, reporter=Reporter(quiet=True), fresh=True)
        assert result.ok and store.status(rid) == "done"


def test_only_running_runs_become_interrupted(tmp_path, registry):
    suite = build_suite(tiny_suite(), "<test>", registry=registry)
    with Store(tmp_path) as store:
        store.register_runs(suite.name, suite.runs)
        first, second = (s.run_id for s in suite.runs)
        store.mark_running(first, {})
        store.finish_run(second, "done", {})
        store.mark_interrupted([first, second])
        assert store.statuses([first, second]) == {first: "interrupted", second: "done"}
