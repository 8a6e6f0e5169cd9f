"""Fleets inside suites: the driver groups runs that can share a fleet, every executor
hands a fleet to one worker, the store gets each member's own rows, claims stay per
member, and a quickstart-like suite gives the leaderboard of its runs trained alone."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.executor_runs import kit_registry, leaderboard, run, same_numbers, stored_values, torch_threads
from support.suites import tiny_suite

from benchbase.config import build_suite, load_suite
from benchbase.errors import ConfigError
from benchbase.fleet import DEFAULT_FLEET_SIZE, fleet_key, fleet_size, plan_units
from benchbase.leases import Lease
from benchbase.store import Store

ROOT = Path(__file__).resolve().parents[1]
FLOW = {"name": "rectified_flow", "framework": "torch", "config": {"width": 32, "depth": 2, "sample_steps": 5}}
VAE = {"name": "vae", "framework": "torch", "config": {"width": 32, "depth": 2}}
TOLERANCE = dict(rel=1e-5, abs=3e-5)  # see tests/test_fleet.py


def _suite(**overrides) -> dict:
    suite = tiny_suite(name="fleets", seeds=[0, 1, 2], models=[FLOW, VAE, "copy_train"],
                       metrics=["fd", "mem_ratio"], sweep={"n": [32, 64]},
                       budget={"batch_size": 16, "steps": 30}, eval={"points": 2, "n_samples": 64})
    suite.update(overrides)
    return suite


def _executor(name: str = "local", **config) -> dict:
    return {"name": name, "config": config}


def test_plan_groups_what_may_share_a_fleet(registry):
    suite = build_suite(_suite(sweep={"n": [32, 64], "model.lr": [1e-3, 2e-3]}), "<test>", registry=registry)
    units = plan_units(suite.runs, registry, 16)
    fleets = [u for u in units if u.fleet]
    alone = [u for u in units if not u.fleet]
    assert sorted(len(u.specs) for u in fleets) == [12, 12]  # 3 seeds x 2 n x 2 lr per model
    assert all(len({s.model.name for s in u.specs}) == 1 for u in fleets)
    assert [u.specs[0].model.name for u in alone] == ["copy_train"] * 6  # an oracle trains nothing
    assert sorted(s.run_id for u in units for s in u.specs) == sorted(s.run_id for s in suite.runs)
    # even parts, at most the fleet size
    assert sorted(len(u.specs) for u in plan_units(suite.runs, registry, 5) if u.fleet) == [4, 4, 4, 4, 4, 4]
    assert all(not u.fleet for u in plan_units(suite.runs, registry, 1))
    lone = build_suite(_suite(seeds=[0], sweep={}), "<test>", registry=registry)
    assert all(not u.fleet for u in plan_units(lone.runs, registry, 16)), "a fleet of one trains alone"


def test_what_a_fleet_must_share(registry):
    import dataclasses

    base = build_suite(_suite(models=[FLOW], sweep={}), "<test>", registry=registry).runs[0]
    key = fleet_key(base, registry)
    replace = dataclasses.replace
    model, budget, data = base.model, base.budget, base.dataset
    same = [("seed", 5), ("subset", replace(base.subset, n=7)), ("budget", replace(budget, steps=9)),
            ("model", replace(model, config={**model.config, "lr": 0.5}))]
    other = [("model", replace(model, config={**model.config, "width": 64})),
             ("budget", replace(budget, batch_size=8)), ("eval", replace(base.eval, n_samples=10)),
             ("device", "cuda"), ("dataset", replace(data, config={"train_size": 600}))]
    for field, value in same:
        assert fleet_key(replace(base, **{field: value}), registry) == key, field
    for field, value in other:
        assert fleet_key(replace(base, **{field: value}), registry) != key, field


def test_fleet_size_defaults_per_device_and_is_validated(registry, monkeypatch):
    from benchbase_plugins.executors.local import LocalConfig

    monkeypatch.setattr("benchbase.devices.visible_gpus", lambda: 0)
    assert fleet_size(LocalConfig(), "cpu") == fleet_size(LocalConfig(), "auto") == DEFAULT_FLEET_SIZE["cpu"]
    assert fleet_size(LocalConfig(), "cuda") == DEFAULT_FLEET_SIZE["gpu"]
    monkeypatch.setattr("benchbase.devices.visible_gpus", lambda: 1)
    assert fleet_size(LocalConfig(), "auto") == DEFAULT_FLEET_SIZE["gpu"]
    assert fleet_size(LocalConfig(fleet=3), "cuda") == 3
    assert fleet_size(object(), "cpu") == 1  # an executor that knows no fleets gets single runs
    with pytest.raises(ConfigError, match="executor.config.fleet"):
        build_suite(_suite(executor=_executor(fleet=0)), "<test>", registry=registry)


def test_fleets_store_what_runs_alone_store(tmp_path):
    with torch_threads(1):
        suite, alone = run(_suite(), tmp_path / "alone", executor=_executor(fleet=1))
        _, together = run(_suite(), tmp_path / "fleets", executor=_executor(fleet=16))
    assert alone.ok and together.ok and len(alone.statuses) == 18
    a, b = stored_values(tmp_path / "alone", suite), stored_values(tmp_path / "fleets", suite)
    assert a.keys() == b.keys()
    for key in a:
        assert b[key] == pytest.approx(a[key], **TOLERANCE), key
    with Store(tmp_path / "fleets") as store:
        runs = {r.run_id: r for r in store.runs(suite="fleets")}
        assert store.counts()["checkpoints"] == 0 and not store.conn.execute("SELECT * FROM leases").fetchall()
    fleets = {json.dumps(r.provenance.get("fleet", {}).get("members")) for r in runs.values()}
    assert len(fleets) == 3  # flow's 6 runs, vae's 6, and no fleet for the oracle
    sizes = sorted(r.provenance["fleet"]["size"] for r in runs.values() if "fleet" in r.provenance)
    assert sizes == [6] * 12


def test_process_executor_trains_a_fleet_in_one_worker(tmp_path):
    suite = _suite(models=[FLOW], seeds=[0, 1])
    with torch_threads(1):
        built, local = run(suite, tmp_path / "local", executor=_executor(fleet=16))
    _, proc = run(suite, tmp_path / "proc", executor=_executor("process", workers=2, threads=1, fleet=16))
    assert local.ok and proc.ok
    assert same_numbers(stored_values(tmp_path / "local", built), stored_values(tmp_path / "proc", built))
    with Store(tmp_path / "proc") as store:
        pids = {r.provenance["pid"] for r in store.runs(suite="fleets")}
    assert len(pids) == 1  # the four runs of one fleet shared one worker process


def test_members_claimed_by_another_driver_stay_with_it(tmp_path):
    """A live driver's claim on one member keeps this driver's fleet from taking it."""
    built = build_suite(_suite(models=[FLOW], seeds=[0, 1]), "<test>", registry=kit_registry())
    held = built.runs[1].run_id
    other = Lease("other-driver", "another-host", 1, timeout=3600)
    with Store(tmp_path) as store:
        store.register_runs(built.name, built.runs, {})
        assert store.leases.claim(held, other) is None
        store.leases.heartbeat(other)
    from benchbase.driver import TaskQueue, Sink
    from benchbase.fleet import FleetTask
    from benchbase.progress import Reporter

    registry = kit_registry()
    with Store(tmp_path) as store:
        lease = Lease.new()
        sink = Sink(store, registry, Reporter(quiet=True), [], lease=lease)
        queue = TaskQueue(plan_units(built.runs, registry, 16), store, registry, lease, sink, None, 0, 4)
        tasks = list(queue)
        assert len(tasks) == 1 and isinstance(tasks[0], FleetTask)
        assert held not in {t.spec.run_id for t in tasks[0].runs} and len(tasks[0].runs) == 3
        assert set(queue.deferred) == {held}
        holders = {r: store.leases.holder(r, other) for r in (t.spec.run_id for t in tasks[0].runs)}
        assert all(h is not None and h.owner == lease.owner for h in holders.values())


@pytest.mark.slow
def test_quickstart_fleets_give_the_leaderboard_of_runs_trained_alone(tmp_path):
    """The quickstart's trainable models (rectified flow, VAE; 2 seeds each on 2 datasets)
    in fleets rank and score as when every run trains alone, within the tolerance."""
    overrides = ["budget.examples=16000", "eval.points=3", "eval.n_samples=300"]
    registry = kit_registry()
    tables = {}
    for fleet in (1, 16):
        suite = load_suite(ROOT / "suites" / "quickstart.yaml", overrides + [f"executor.config.fleet={fleet}"],
                           registry=registry, device="cpu")
        results = tmp_path / f"fleet-{fleet}"
        from benchbase.driver import run_suite
        from benchbase.progress import Reporter

        with torch_threads(1), Store(results) as store:
            assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
        boards = json.loads(leaderboard(results, "quickstart"))  # one list of rows per table
        tables[fleet] = [row for board in boards for row in (board if isinstance(board, list) else [board])]
    _assert_same_board(tables[1], tables[16])


def _assert_same_board(alone, together) -> None:
    assert len(alone) == len(together)
    for a, b in zip(alone, together):
        assert (a["dataset"], a["model"], a["rank"], a["runs"]) == (b["dataset"], b["model"], b["rank"], b["runs"])
        for key, cell in a["metrics"].items():
            other = b["metrics"][key]
            for stat in ("mean", "std"):
                if cell[stat] is None:
                    assert other[stat] is None
                else:
                    assert other[stat] == pytest.approx(cell[stat], **TOLERANCE), (a["model"], key, stat)


def test_validate_says_how_the_runs_will_train(tmp_path, capsys):
    """`benchbase validate` shows the fleets a suite will form before anything trains."""
    from benchbase.cli import main

    path = tmp_path / "fleets.yaml"
    path.write_text(json.dumps(_suite()))
    assert main(["validate", str(path), "executor.config.fleet=16"]) == 0
    out = capsys.readouterr().out
    assert "training: 12 run(s) in 2 fleet(s) of 6, 6 (at most 16 per fleet: executor.config.fleet), 6 alone" in out
    assert main(["validate", str(path), "executor.config.fleet=1"]) == 0
    assert "training: every run alone; fleets are off (executor.config.fleet: 1)" in capsys.readouterr().out
    assert main(["validate", str(path)]) == 0  # the default on a CPU
    assert "training: every run alone; fleets are off (executor.config.fleet: 1)" in capsys.readouterr().out
    path.write_text(json.dumps(_suite(models=["copy_train"])))
    assert main(["validate", str(path), "executor.config.fleet=16"]) == 0
    assert "no model here trains in fleets" in capsys.readouterr().out


@pytest.mark.slow
def test_a_killed_fleet_resumes_losing_and_duplicating_nothing(tmp_path):
    """`benchbase run` SIGKILLed while a fleet of four trains, some members one evaluation
    further than others, then run again: every member ends done with the rows of its run
    trained alone (within the tolerance), none missing, none twice."""
    suite = _suite(models=[FLOW], seeds=[0, 1], budget={"batch_size": 16, "steps": 600},
                   eval={"points": 4, "n_samples": 64})
    path = tmp_path / "fleets.yaml"
    path.write_text(json.dumps(suite))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

    def benchbase_run(results: Path, *overrides: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "benchbase.cli", "run", str(path), *overrides,
                                 "--results", str(results)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)

    killed = tmp_path / "killed"
    driver = benchbase_run(killed, "executor.config.fleet=16")
    evals = 0
    for line in driver.stdout:
        evals += "eval at step" in line
        if evals == 6:  # the four members' first evaluation and two of their second
            driver.kill()
            break
    driver.wait()
    assert evals == 6
    with Store(killed) as store:
        assert "done" not in {r.status for r in store.runs()}, "killed while every member trained"
        assert store.counts()["checkpoints"] == 4
    for results, overrides in ((killed, ("executor.config.fleet=16",)), (tmp_path / "alone", ("executor.config.fleet=1",))):
        done = benchbase_run(results, *overrides)
        out, _ = done.communicate(timeout=600)
        assert done.returncode == 0, out
    built = build_suite(suite, "<test>", registry=kit_registry())
    a, b = stored_values(tmp_path / "alone", built), stored_values(killed, built)
    assert a.keys() == b.keys()
    for key in a:
        assert b[key] == pytest.approx(a[key], **TOLERANCE), key
    with Store(killed) as resumed, Store(tmp_path / "alone") as alone:
        assert resumed.counts() == alone.counts(), "no duplicate or missing rows"
        assert {r.status for r in resumed.runs()} == {"done"}
        starts = {r.run_id: r.provenance["fleet"]["size"] for r in resumed.runs()}
    assert set(starts.values()) == {4}
