"""Tracker plugins: chosen in a suite or with --tracker, validated like any plugin,
fed by the observer hooks on their own threads, never able to stop a suite or lose a
result, and their libraries imported only when a suite uses them."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import warnings

import pytest
from support.suites import tiny_suite
from support.tracker_plugins import GATES, read_log

from benchbase import hookimpl
from benchbase.cli import main
from benchbase.config import build_suite, load_suite
from benchbase.driver import run_suite
from benchbase.errors import ConfigError
from benchbase.plugins import PluginPolicy, build_registry
from benchbase.progress import Reporter
from benchbase.store import Store
from benchbase.tracking import TrackerWarning

POLICY = PluginPolicy(entry_points=False, strict=True, extra=("support.tracker_plugins", "support.faulty_plugins"))
MODELS = ["numpy_gauss", "copy_train"]  # a trained model (several evaluations) and a reference, both quick


@pytest.fixture
def reg():
    return build_registry(POLICY)


def _suite(reg, trackers, **overrides):
    return build_suite(tiny_suite(trackers=trackers, **{"models": MODELS, **overrides}), "<test>", registry=reg)


def _run(reg, suite, results_dir):
    with Store(results_dir) as store:
        result = run_suite(suite, store, reg, reporter=Reporter(quiet=True))
        values = {(e["step"], e["metric"], e["ref"]): e["value"] for s in suite.runs for e in store.evals(s.run_id)}
    return result, values


# ------------------------------------------------------------------ registration


def test_builtin_trackers_are_listed_with_what_they_need(capsys):
    assert main(["plugins", "--kind", "tracker", "--json"]) == 0
    items = {i["name"]: i for i in json.loads(capsys.readouterr().out)}
    assert {"tensorboard", "mlflow", "wandb"} <= set(items)
    assert items["tensorboard"]["requires"] == ["tensorboard"]
    assert items["mlflow"]["requires"] == ["mlflow"] and items["wandb"]["requires"] == ["wandb"]
    assert all(i["kind"] == "tracker" and i["source"] == "built-in" for i in items.values())


# -------------------------------------------------------------------- validation


@pytest.mark.parametrize("trackers,where,message", [
    (["tensorbord"], "trackers[0].name", "unknown tracker 'tensorbord'. Did you mean 'tensorboard'?"),
    ([{"name": "tensorboard", "config": {"logdirr": "x"}}], "trackers[0].config.logdirr", "unknown key"),
    ([{"name": "wandb", "config": {"mode": "onlin"}}], "trackers[0].config", "mode must be one of"),
    (["recording", {"name": "recording"}], "trackers[1].name", "listed twice"),
    ([{"name": "recording", "config": {"needs": "benchbase_no_such_module"}}], "trackers[0].name",
     "needs benchbase_no_such_module, which is not installed"),
])
def test_a_bad_tracker_entry_is_one_located_problem(reg, trackers, where, message):
    with pytest.raises(ConfigError) as err:
        _suite(reg, trackers)
    assert len(err.value.problems) == 1, err.value.problems
    path, text = err.value.problems[0]
    assert path == where and message in text


def test_unknown_tracker_on_the_command_line_exits_2(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(tiny_suite()))
    assert main(["validate", str(path), "--tracker", "tensorbord"]) == 2
    err = capsys.readouterr().err
    assert "trackers[0].name: unknown tracker 'tensorbord'" in err and not (tmp_path / "results").exists()


def test_tracker_flag_adds_to_the_suite_trackers_once(tmp_path, reg):
    listed = tmp_path / "listed.yaml"
    listed.write_text(json.dumps(tiny_suite(trackers=[{"name": "recording", "config": {"log": "x.jsonl"}}])))
    bare = tmp_path / "bare.yaml"
    bare.write_text(json.dumps(tiny_suite()))
    assert load_suite(listed, registry=reg, trackers=["recording"]).trackers == [
        {"name": "recording", "config": {"log": "x.jsonl", "fail_in": "", "gate": "", "needs": ""}}]
    assert [t["name"] for t in load_suite(bare, registry=reg, trackers=["recording"]).trackers] == ["recording"]
    assert load_suite(listed, ["trackers=[]"], registry=reg).trackers == []  # switched off by an override
    assert [t["name"] for t in load_suite(bare, ["trackers=recording"], registry=reg).trackers] == ["recording"]


def test_trackers_are_not_part_of_run_ids(reg):
    plain = _suite(reg, [])
    tracked = _suite(reg, ["recording"])
    assert [s.run_id for s in plain.runs] == [s.run_id for s in tracked.runs]


def test_validation_and_listing_import_no_tracker_library():
    code = (
        "import json, sys\n"
        "from benchbase.cli import main\n"
        f"open('s.json', 'w').write(json.dumps({tiny_suite(trackers=['tensorboard', 'mlflow', 'wandb'])!r}))\n"
        "from benchbase.config import load_suite\n"
        "from benchbase.plugins import build_registry\n"
        "try:\n"
        "    load_suite('s.json', registry=build_registry())\n"
        "except Exception as exc:\n"
        "    print('invalid:', exc)\n"
        "main(['plugins', '--kind', 'tracker'])\n"
        "print(sorted(m for m in ('tensorboard', 'mlflow', 'wandb', 'sqlalchemy') if m in sys.modules))\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


# ------------------------------------------------------------------- the driver


def test_a_tracker_sees_every_event_in_order_with_samples_and_the_leaderboard(reg, tmp_path):
    log = tmp_path / "calls.jsonl"
    suite = _suite(reg, [{"name": "recording", "config": {"log": str(log)}}])
    result, _ = _run(reg, suite, tmp_path / "results")
    assert result.ok
    calls = read_log(log)
    assert calls[0] == {"method": "open", "suite": "tiny", "results_dir": str((tmp_path / "results").resolve())}
    assert calls[-1]["method"] == "close"
    assert calls[-1]["statuses"] == {s.run_id: "done" for s in suite.runs}
    assert calls[-1]["tables"] == 1 and "copy_train" in calls[-1]["markdown"]
    for spec in suite.runs:
        mine = [c for c in calls if c.get("run_id") == spec.run_id]
        assert [c["method"] for c in mine] == (["run_started"] + ["evaluated"] * len(list(spec.eval.steps))
                                               + ["run_finished"])
        assert [c["step"] for c in mine if c["method"] == "evaluated"] == list(spec.eval.steps)
        assert all(c["samples"][1:] == [2] for c in mine if c["method"] == "evaluated")
        assert mine[-1]["status"] == "done"


@pytest.mark.parametrize("fail_in,expect", [
    ("open", "off for this suite"),
    ("run_started", "is not tracked"),
    ("evaluated", "failed in evaluated"),
    ("run_finished", "failed in run_finished"),
    ("close", "failed in close"),
])
def test_a_failing_tracker_only_warns_and_every_result_is_stored(reg, tmp_path, fail_in, expect):
    _, reference = _run(reg, _suite(reg, []), tmp_path / "plain")
    suite = _suite(reg, [{"name": "recording", "config": {"fail_in": fail_in}}])
    with pytest.warns(TrackerWarning) as caught:
        result, values = _run(reg, suite, tmp_path / "tracked")
    assert result.ok and values == reference
    messages = [str(w.message) for w in caught if issubclass(w.category, TrackerWarning)]
    assert any(expect in m for m in messages), messages
    assert all(m.startswith("tracker 'recording' ") for m in messages)
    if fail_in == "evaluated":  # the first failure is shown, the rest counted
        evals = sum(len(s.eval.steps) for s in suite.runs)
        assert sum("failed in evaluated" in m for m in messages) == 1
        assert any(f"failed {evals - 1} more time(s)" in m for m in messages), messages


def test_a_slow_tracker_does_not_hold_training_back(reg, tmp_path):
    """The tracker blocks in its first `evaluated` until every run has finished."""
    gate = GATES["slow"] = threading.Event()
    finished = []

    class Watcher:
        @hookimpl
        def benchbase_run_finished(self, run_id, status):
            finished.append(run_id)

        @hookimpl
        def benchbase_suite_finished(self, statuses):
            assert len(finished) == len(statuses)  # every run is over, the tracker still waits
            gate.set()

    log = tmp_path / "calls.jsonl"
    reg.add_plugin(Watcher(), "watcher", source="test")
    suite = _suite(reg, [{"name": "recording", "config": {"log": str(log), "gate": "slow"}}])
    result, _ = _run(reg, suite, tmp_path / "results")
    assert result.ok and gate.is_set()
    assert sum(c["method"] == "evaluated" for c in read_log(log)) == sum(len(s.eval.steps) for s in suite.runs)


def test_a_stuck_tracker_is_left_behind_with_a_warning(reg, tmp_path, monkeypatch):
    import benchbase.tracking as tracking

    monkeypatch.setattr(tracking, "DRAIN_SECONDS", 0.5)
    GATES["stuck"] = threading.Event()
    suite = _suite(reg, [{"name": "recording", "config": {"gate": "stuck"}}], models=["copy_train"])
    try:
        with pytest.warns(TrackerWarning, match=r"still busy after \d+s; \d+ event\(s\) were not logged"):
            result, _ = _run(reg, suite, tmp_path / "results")
    finally:
        GATES["stuck"].set()  # let its thread end
    assert result.ok


def test_trackers_are_detached_after_the_suite(reg, tmp_path):
    suite = _suite(reg, ["recording"], models=["copy_train"])
    _run(reg, suite, tmp_path / "results")
    assert not [name for name, _ in reg.pm.list_name_plugin() if name.startswith("tracker:")]


def test_warnings_from_other_observers_still_show(reg, tmp_path):
    """The suite hooks reach plain observer plugins too."""
    seen = []

    class Observer:
        @hookimpl
        def benchbase_suite_started(self, suite, results_dir):
            seen.append(("started", suite.name))

        @hookimpl
        def benchbase_suite_finished(self, suite, statuses):
            seen.append(("finished", sorted(set(statuses.values()))))

    reg.add_plugin(Observer(), "observer", source="test")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackerWarning)
        _run(reg, _suite(reg, [], models=["copy_train"]), tmp_path / "results")
    assert seen == [("started", "tiny"), ("finished", ["done"])]


def test_a_missing_extra_skips_its_tests_except_where_ci_requires_them(monkeypatch):
    from support.extras import REQUIRE_ENV, need

    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"pip install 'benchbase\[nothing\]'"):
        need("benchbase_no_such_module", "nothing")
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match="must run here"):
        need("benchbase_no_such_module", "nothing")
    assert need("json", "nothing").dumps([]) == "[]"
