"""`benchbase run` as a real subprocess: SIGKILLed at random points and re-run until
done, it ends with the leaderboard of one uninterrupted run and no duplicate rows;
two drivers on one results directory train each run once and corrupt nothing."""
from __future__ import annotations

import json
import os
import queue
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from support.executor_runs import leaderboard, same_numbers, stored_values
from support.suites import tiny_suite

from benchbase.config import build_suite
from benchbase.plugins import PluginPolicy, build_registry
from benchbase.store import Store

pytestmark = pytest.mark.slow

BENCHBASE = shutil.which("benchbase", path=os.path.dirname(sys.executable)) or "benchbase"
FLOW = {"name": "rectified_flow", "config": {"width": 32, "depth": 2, "sample_steps": 10}}
VAE = {"name": "vae", "config": {"width": 32}}


def _suite(name: str, models: list, **overrides) -> dict:
    return tiny_suite(name=name, models=models, seeds=[0, 1], budget={"batch_size": 32, "steps": 200},
                      eval={"points": 4, "n_samples": 100}, **overrides)


def _write(tmp_path: Path, suite: dict) -> Path:
    path = tmp_path / f"{suite['name']}.yaml"
    path.write_text(json.dumps(suite))  # YAML is a superset of JSON
    return path


def _env() -> dict:
    # One thread everywhere: cheap on a shared machine, and the same arithmetic in the
    # reference run, the killed runs and the process executor's workers.
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# `benchbase` with the test plugins (tests/support/faulty_plugins.py) registered.
_WITH_TEST_PLUGINS = (
    "import sys\n"
    "from benchbase.plugins import PluginPolicy\n"
    "real = PluginPolicy.from_env.__func__\n"
    "PluginPolicy.from_env = classmethod(lambda cls, **kw: real(cls, **{'extra': ('support.faulty_plugins',), **kw}))\n"
    "from benchbase.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


class _Driver:
    """A `benchbase run` subprocess whose output lines can be awaited one by one."""

    def __init__(self, suite_path: Path, results: Path, *extra: str, test_plugins: bool = False):
        # overrides (key=value) must come before the options: argparse takes no positionals after them
        launcher = [sys.executable, "-c", _WITH_TEST_PLUGINS] if test_plugins else [BENCHBASE]
        env = _env()
        if test_plugins:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent),
                                                              os.environ.get("PYTHONPATH")]))
        self.proc = subprocess.Popen([*launcher, "run", str(suite_path), *extra, "--results", str(results)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        self.ended = False
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def next_line(self) -> str | None:
        """The next output line; None once the output has ended."""
        if self.ended:
            return None
        line = self.lines.get(timeout=600)
        if line is None:
            self.ended = True
        else:
            self.seen.append(line)
        return line

    def finish(self) -> tuple[int, str]:
        """Wait for the end: (exit code, all output)."""
        while self.next_line() is not None:
            pass
        return self.proc.wait(), "".join(self.seen)


def _children(pid: int) -> set[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    found: set[int] = set()
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.update(int(p) for p in path.read_text().split())
        except OSError:
            pass
    return found


def _gone(pids: set[int], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = {p for p in pids if Path(f"/proc/{p}").exists()
                 and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()}
        if not alive:
            return True
        time.sleep(0.2)
    return False


def _eval_keys(results: Path) -> dict:
    """(run, step) -> set of (metric, ref) stored there."""
    if not (results / "benchbase.sqlite").exists():
        return {}  # killed before it created the store
    conn = sqlite3.connect(results / "benchbase.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    keys: dict = {}
    for run_id, step, metric, ref in conn.execute("SELECT run_id, step, metric, ref FROM evals"):
        keys.setdefault((run_id, step), set()).add((metric, ref))
    sample_steps = set(conn.execute("SELECT run_id, step FROM samples").fetchall())
    conn.close()
    assert sample_steps == set(keys), "samples stored with, and only with, their evaluation"
    return keys


def _built(suite: dict):
    return build_suite(suite, "<test>", registry=build_registry(PluginPolicy(entry_points=False)))


def test_killing_the_driver_five_times_then_resuming_equals_one_run(tmp_path):
    suite = _suite("killed", [FLOW, VAE, "copy_train"])
    path = _write(tmp_path, suite)
    reference = tmp_path / "reference"
    t0 = time.monotonic()
    code, out = _Driver(path, reference, "--quiet").finish()
    assert code == 0, out
    uninterrupted = time.monotonic() - t0
    ref_keys = _eval_keys(reference)

    results = tmp_path / "results"
    rng = np.random.default_rng(2024)
    trials = []
    for trial in range(5):
        # alternate executors: a resumed suite may switch between them
        extra = ("executor.config.workers=2", "--executor", "process") if trial % 2 else ()
        driver = _Driver(path, results, *extra)
        evals_before_kill = int(rng.integers(0, 4))  # 0: kill during start-up or the first run
        seen, t_start = 0, time.monotonic()
        while seen < evals_before_kill and (line := driver.next_line()) is not None:
            seen += "eval at step" in line
        time.sleep(float(rng.uniform(0.0, 0.6 if evals_before_kill else min(uninterrupted, 8.0))))
        children = _children(driver.proc.pid)
        killed = driver.proc.poll() is None
        if killed:
            driver.proc.kill()
        code, out = driver.finish()
        assert killed or code == 0, out
        assert _gone(children), "worker processes end with their driver"
        keys = _eval_keys(results)  # the store is consistent after every kill
        assert all(keys[k] == ref_keys[k] for k in keys), "no evaluation is half-written"
        with Store(results) as store:
            done = len(store.runs(status="done"))
        trials.append({"trial": trial, "executor": "process" if extra else "local", "killed": killed,
                       "exit": code, "evals_seen": seen, "after_s": round(time.monotonic() - t_start, 2),
                       "evals_stored": len(keys), "runs_done": done})
    code, out = _Driver(path, results).finish()
    assert code == 0, out
    print(json.dumps({"uninterrupted_s": round(uninterrupted, 2), "trials": trials}, indent=1))
    assert sum(t["killed"] for t in trials) >= 3, trials

    built = _built(suite)
    assert leaderboard(results, "killed") == leaderboard(reference, "killed")
    assert same_numbers(stored_values(results, built), stored_values(reference, built))
    with Store(results) as a, Store(reference) as b:
        assert a.counts() == b.counts(), "no duplicate or missing rows"
        assert {r.status for r in a.runs()} == {"done"}


def test_two_drivers_on_one_results_directory(tmp_path):
    first = _suite("first", [FLOW, "copy_train"])
    second = _suite("second", [FLOW, VAE])  # shares the flow runs (same run ids) with "first"
    paths = [_write(tmp_path, first), _write(tmp_path, second)]
    shared = tmp_path / "shared"
    drivers = [_Driver(p, shared) for p in paths]
    outputs = []
    for driver in drivers:
        code, out = driver.finish()
        assert code == 0, out
        outputs.append(out)
    flow_starts = [line for out in outputs for line in out.splitlines()
                   if "rectified_flow" in line and line.endswith(": started")]
    assert len(flow_starts) == 2, "each flow run (2 seeds) is trained by one driver only:\n" + "\n".join(outputs)
    print([line for out in outputs for line in out.splitlines() if "another benchbase process" in line])

    sequential = tmp_path / "sequential"
    for p in paths:
        code, out = _Driver(p, sequential, "--quiet").finish()
        assert code == 0, out
    _eval_keys(shared)
    for suite in (first, second):
        assert leaderboard(shared, suite["name"]) == leaderboard(sequential, suite["name"])
        built = _built(suite)
        assert same_numbers(stored_values(shared, built), stored_values(sequential, built))
    with Store(shared) as a, Store(sequential) as b:
        assert a.counts() == b.counts()


def test_fresh_while_another_driver_runs_refuses_and_loses_nothing(tmp_path):
    # faulty_flow's step_sleep makes the runs slow without using CPU, so that the second
    # driver surely starts while the first one holds a run
    slow = {"name": "faulty_flow", "label": "slow_flow",
            "config": {"width": 32, "depth": 2, "sample_steps": 10, "step_sleep": 0.03}}
    suite = _suite("live", [slow, "copy_train"])
    path = _write(tmp_path, suite)
    live, reference = tmp_path / "live", tmp_path / "reference"
    first = _Driver(path, live, test_plugins=True)
    uninterrupted = _Driver(path, reference, "--quiet", test_plugins=True)
    while (line := first.next_line()) is not None and not line.rstrip().endswith(": started"):
        pass  # the first driver now trains, and so holds, a run
    code2, out2 = _Driver(path, live, "--fresh", test_plugins=True).finish()
    still_running = first.proc.poll() is None
    code1, out1 = first.finish()
    assert uninterrupted.finish()[0] == 0
    assert code1 == 0, out1
    assert still_running, "the first driver ended before the second started: nothing was tested"
    assert code2 == 2, out2
    assert len(out2.strip().splitlines()) == 1 and "another benchbase process" in out2, out2
    assert "--fresh" in out2 and f"pid {first.proc.pid}" in out2, out2

    _eval_keys(live)
    assert leaderboard(live, "live") == leaderboard(reference, "live")
    built = build_suite(suite, "<test>", registry=build_registry(PluginPolicy(entry_points=False,
                                                                             extra=("support.faulty_plugins",))))
    assert same_numbers(stored_values(live, built), stored_values(reference, built))
    with Store(live) as a, Store(reference) as b:
        assert a.counts() == b.counts(), "no lost row"
