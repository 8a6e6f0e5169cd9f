"""Faults: crashed, killed, stuck, raising and diverging runs; runs claimed by two
drivers; a store killed mid-write; resumed runs equal to uninterrupted ones (torch,
numpy, JAX); and the CLI's summary and exit code."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest
from support.executor_runs import flow, run, same_numbers, stored_values, suite_of, torch_threads

from benchbase.config import build_suite
from benchbase.driver import run_suite
from benchbase.progress import Reporter
from benchbase.leases import Holder, Lease
from benchbase.store import Store

# ----------------------------------------------------------------------- leases


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_claimed_run_is_held_until_released(results_dir):
    a, b = Lease.new(), Lease.new()
    with Store(results_dir) as store:
        assert store.leases.claim("r1", a) is None
        assert store.leases.claim("r1", a) is None, "claiming again is idempotent"
        held = store.leases.claim("r1", b)
        assert isinstance(held, Holder) and held.owner == a.owner
        assert store.leases.heartbeat(a) == 1
        store.leases.release(a, "r1")
        assert store.leases.claim("r1", b) is None


def test_claims_of_a_silent_or_dead_driver_are_taken_over(results_dir):
    quiet = Lease(uuid.uuid4().hex, "elsewhere", 12345, timeout=60)
    dead_here = Lease(uuid.uuid4().hex, Lease.new().host, _dead_pid())
    with Store(results_dir) as store:
        store.leases.claim("r1", quiet)
        store.leases.claim("r2", dead_here)
        assert isinstance(store.leases.claim("r1", Lease.new(timeout=60)), Holder), "fresh heartbeat: held"
        time.sleep(0.05)
        assert store.leases.claim("r1", Lease.new(timeout=0.01)) is None, "no heartbeat within the timeout"
        assert store.leases.claim("r2", Lease.new(timeout=3600)) is None, "its process is gone: at once"


def test_runs_held_by_another_driver_are_waited_for_then_taken_over(registry, results_dir):
    """A fake live driver holds both runs of a suite. It finishes one and dies with the
    other: this driver records the first as done without training it, runs the second."""
    suite = build_suite(suite_of("copy_train", "true_sampler"), "<test>", registry=registry)
    finished_elsewhere, orphaned = suite.runs
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # the other driver's pid
    other = Lease(uuid.uuid4().hex, Lease.new().host, stand_in.pid)
    with Store(results_dir) as store:
        store.register_runs(suite.name, suite.runs)
        for spec in suite.runs:
            assert store.leases.claim(spec.run_id, other) is None

    def other_driver():
        time.sleep(0.5)
        with Store(results_dir) as store:
            store.finish_run(finished_elsewhere.run_id, "done", {"by": "other"})
            store.leases.release(other, finished_elsewhere.run_id)
        time.sleep(0.5)
        stand_in.kill()  # dies holding the other claim
        stand_in.wait()

    thread = threading.Thread(target=other_driver)
    thread.start()
    try:
        with Store(results_dir) as store:
            result = run_suite(suite, store, registry, reporter=Reporter(quiet=True), poll_seconds=0.1)
            summaries = {r.run_id: r.summary for r in store.runs()}
            assert store.conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0
    finally:
        thread.join()
        stand_in.kill()
    assert result.statuses == {finished_elsewhere.run_id: "done", orphaned.run_id: "done"}
    assert summaries[finished_elsewhere.run_id] == {"by": "other"}, "not trained twice"
    assert "examples" in summaries[orphaned.run_id]


# --------------------------------------------------------- failures in workers


def test_process_pool_survives_every_kind_of_run_failure(tmp_path):
    models = [flow("killed", fault="sigkill", at_step=5), flow("exits", fault="exit", at_step=5),
              flow("raises", fault="raise", at_step=5), flow("nan", fault="nan", at_step=5), "copy_train"]
    suite, result = run(suite_of(*models), tmp_path,
                        executor={"name": "process", "config": {"workers": 2, "threads": 1}})
    status = {s.model.label: result.statuses[s.run_id] for s in suite.runs}
    assert status == {"killed": "failed", "exits": "failed", "raises": "failed", "nan": "diverged",
                      "copy_train": "done"}
    with Store(tmp_path) as store:
        runs = {r.model_label: r for r in store.runs()}
    assert "killed by signal SIGKILL" in runs["killed"].summary["reason"]
    assert "exited with code 3" in runs["exits"].summary["reason"]
    assert "Traceback" in runs["raises"].error and "injected failure" in runs["raises"].error
    assert runs["nan"].summary["diverged_at"] >= 5
    assert not result.ok


def test_a_message_cut_short_by_a_killed_worker_is_dropped():
    """A worker killed half-way through sending an event leaves a partial message in
    its pipe: the driver reads EOF, delivers nothing of it, and sees the worker gone."""
    import multiprocessing
    import os
    import struct
    import types

    from benchbase_plugins.executors.process import _Worker

    receive, send = multiprocessing.Pipe(duplex=False)
    os.write(send.fileno(), struct.pack("!i", 1_000_000) + b"only the start of a pickled event")
    send.close()
    worker = object.__new__(_Worker)  # the pipe end of a worker, without a process
    worker.conn, worker.closed, worker.finished_at = receive, False, None
    worker.watch = types.SimpleNamespace(done=False, see=lambda event: None)  # no run has reported yet
    delivered: list = []
    worker.pump(delivered.append)
    assert worker.closed and not delivered and not worker.finished


def test_process_executor_kills_a_run_stuck_inside_a_step(tmp_path):
    suite, result = run(suite_of(flow("stuck", fault="hang", at_step=1), time_limit=1),
                        tmp_path, executor={"name": "process", "config": {"workers": 2, "kill_grace": 0.5}})
    status = {s.model.label: result.statuses[s.run_id] for s in suite.runs}
    assert status == {"stuck": "timeout"}
    with Store(tmp_path) as store:
        reason = store.runs(status="timeout")[0].summary["reason"]
    assert "stuck inside a step" in reason


def test_time_limit_in_the_loop_and_a_finished_run_is_never_late(tmp_path):
    slow = {"step_sleep": 0.02}
    evals = {"schedule": "list", "steps": [10, 20, 60]}
    _, late = run(suite_of(flow(**slow), eval=evals, time_limit=0.1), tmp_path / "a")
    assert list(late.statuses.values()) == ["timeout"]
    with Store(tmp_path / "a") as store:
        assert store.runs()[0].summary["steps"] == 10
    # Over the limit only at the last step: the budget was spent, the run is done.
    _, on_time = run(suite_of(flow(**slow), eval={"schedule": "list", "steps": [60]}, time_limit=0.5),
                     tmp_path / "b")
    assert list(on_time.statuses.values()) == ["done"]


@pytest.mark.slow  # a spawned worker importing JAX and compiling: ~20 s of CPU
def test_jax_worker_starts_without_gpu_preallocation(tmp_path, monkeypatch):
    pytest.importorskip("jax")
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    model = {"name": "jax_flow", "config": {"require_no_prealloc": True}}
    _, result = run(suite_of(model, budget={"batch_size": 32, "steps": 5}), tmp_path,
                    executor={"name": "process", "config": {"workers": 1, "threads": 1}})
    assert list(result.statuses.values()) == ["done"]


# ------------------------------------------------------------------ resume


class _Killed(BaseException):
    """Like a kill: nothing in the run may catch it."""


@pytest.mark.parametrize("model", [
    pytest.param("vae", id="torch-vae"),
    pytest.param({"name": "numpy_gauss"}, id="numpy"),
    pytest.param({"name": "jax_flow"}, id="jax", marks=pytest.mark.skipif(
        __import__("importlib").util.find_spec("jax") is None, reason="needs benchbase[jax]")),
])
def test_resumed_run_equals_uninterrupted_run(tmp_path, model, monkeypatch):
    suite_dict = suite_of(model, eval={"schedule": "list", "steps": [10, 30, 60]})
    with torch_threads(1):
        suite, _ = run(suite_dict, tmp_path / "full")
        real_write = Store.write_eval
        writes = {"n": 0}

        def write_then_die(self, *a, **k):
            real_write(self, *a, **k)
            writes["n"] += 1
            if writes["n"] == 2:
                raise _Killed()

        monkeypatch.setattr(Store, "write_eval", write_then_die)
        with pytest.raises(_Killed):
            run(suite_dict, tmp_path / "cut")
        monkeypatch.setattr(Store, "write_eval", real_write)
        with Store(tmp_path / "cut") as store:
            assert store.checkpoint(suite.runs[0].run_id).step == 30
        _, result = run(suite_dict, tmp_path / "cut")
    assert result.ok
    assert same_numbers(stored_values(tmp_path / "cut", suite), stored_values(tmp_path / "full", suite))


# -------------------------------------------------------------- the store itself

_WRITER = """
import sys, numpy as np
from benchbase.contracts import EvalRow
from benchbase.store import Store
store = Store(sys.argv[1])
blob = bytes(2_000_000)
for step in range(1, 100000):
    rows = [EvalRow(metric=f"m{i}", value=float(step), ref="train") for i in range(50)]
    store.write_eval("r", step, step * 10, rows, samples=np.zeros((64, 2), np.float32), checkpoint=blob)
    if step == 1:
        print("writing", flush=True)
"""


def test_kill_during_writes_leaves_whole_evaluations_only(tmp_path):
    rng = np.random.default_rng(0)
    for trial in range(3):
        where = tmp_path / f"trial{trial}"
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(where)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "writing"
        time.sleep(float(rng.uniform(0.05, 0.5)))
        proc.kill()
        proc.wait()
        conn = sqlite3.connect(where / "benchbase.sqlite")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        per_step = dict(conn.execute("SELECT step, COUNT(*) FROM evals GROUP BY step").fetchall())
        samples = {s for (s,) in conn.execute("SELECT step FROM samples")}
        ckpt_step = conn.execute("SELECT step FROM checkpoints WHERE run_id='r'").fetchone()[0]
        conn.close()
        assert set(per_step.values()) == {50}, "an evaluation is all of its rows or none"
        assert samples == set(per_step) and ckpt_step == max(per_step), "rows, samples, checkpoint together"


# -------------------------------------------------------------------- the CLI


def test_cli_prints_a_summary_and_exits_1_when_a_run_does_not_finish(tmp_path, capsys):
    from benchbase.cli import main

    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps(suite_of(
        {"name": "rectified_flow", "config": {"width": 16, "depth": 1, "sample_steps": 5}}, "copy_train",
        eval={"schedule": "list", "steps": [10, 60]}, time_limit=1e-6)))
    code = main(["run", str(path), "--results", str(tmp_path / "results"), "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    assert "1 done, 1 timeout" in out and "not finished: rectified_flow" in out and "time limit" in out
