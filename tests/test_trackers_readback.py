"""What the TensorBoard, MLflow and W&B trackers write, read back with each tool's own
reader (tests/support/tracker_readers.py) and compared with the results store and the
leaderboard, value for value and step for step. A tracker whose library is not
installed skips its tests, saying which extra installs it (fails them in CI:
tests/support/extras.py)."""
from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from support.extras import need
from support.suites import tiny_suite
from support.tracker_readers import (mlflow_client, mlflow_metrics, mlflow_runs_by_benchbase_id, tensorboard_run,
                             tensorboard_scalars, tensorboard_texts, wandb_config, wandb_history)

from benchbase.config import build_suite
from benchbase.driver import run_suite
from benchbase.leaderboard import build_tables
from benchbase.plugins import PluginPolicy, build_registry
from benchbase.progress import Reporter
from benchbase.store import Store
from benchbase_plugins.trackers.common import metric_key, run_dir_name, samples_image, slug


def _leaderboard_at(store, suite, step: int) -> dict:
    """{(run id, tracker name): value} of the leaderboard at ``--at step=N`` (one seed:
    each cell is that run's value)."""
    out = {}
    for table in build_tables(store, suite=suite.name, at=f"step={step}"):
        for row in table.rows:
            for rid, at_step in row.at_steps.items():
                if at_step != step:
                    continue
                for column in table.columns:
                    cell = row.values.get(column.key)
                    if cell is not None and np.isfinite(cell.mean):
                        out[(rid, metric_key(column.metric, column.ref))] = cell.mean
    return out


@dataclasses.dataclass
class Tracked:
    """A suite run twice (the second time with --fresh) into TensorBoard and MLflow."""

    suite: object
    results: Path
    cwd: Path
    evals: dict  # run id -> [store rows]
    leaderboard: dict  # step -> {(run id, name): value}
    tensorboard: dict  # after run 1, then run 2: [{run id: series}]
    mlflow: list  # after run 1, then run 2: [{run id or None: Run}]
    mlflow_series: list  # [{run id: series}]


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    need("tensorboard", "tensorboard")
    need("mlflow", "mlflow")
    need("sqlalchemy", "mlflow")
    cwd = tmp_path_factory.mktemp("cwd")
    results = cwd / "results"
    registry = build_registry(PluginPolicy(entry_points=False, strict=True, extra=("support.faulty_plugins",)))
    suite = build_suite(tiny_suite(name="tracked", models=["numpy_gauss", "copy_train"],
                                   trackers=["tensorboard", "mlflow"]), "<test>", registry=registry)
    snapshots_tb, snapshots_ml, series_ml = [], [], []
    with contextlib.chdir(cwd):  # nothing may land in the working directory
        for fresh in (False, True):
            with Store(results) as store:
                assert run_suite(suite, store, registry, reporter=Reporter(quiet=True), fresh=fresh).ok
            tb_root = results / "tensorboard" / slug(suite.name)
            snapshots_tb.append({s.run_id: tensorboard_scalars(tb_root / run_dir_name(s, s.run_id))
                                 for s in suite.runs})
            client = mlflow_client(f"sqlite:///{results / 'mlflow.db'}")
            runs = mlflow_runs_by_benchbase_id(client, suite.name)
            snapshots_ml.append(runs)
            series_ml.append({s.run_id: mlflow_metrics(client, runs[s.run_id].info.run_id) for s in suite.runs})
    with Store(results) as store:
        evals = {s.run_id: store.evals(s.run_id) for s in suite.runs}
        steps = sorted({e["step"] for rows in evals.values() for e in rows})
        board = {step: _leaderboard_at(store, suite, step) for step in steps}
    return Tracked(suite, results, cwd, evals, board, snapshots_tb, snapshots_ml, series_ml)


# ------------------------------------------------------------------ the headline


def test_tensorboard_and_mlflow_read_back_equal_the_leaderboard_at_every_step(tracked):
    compared = 0
    for step, cells in tracked.leaderboard.items():
        assert cells, f"the leaderboard at step {step} is empty"
        for (rid, name), value in cells.items():
            assert tracked.mlflow_series[0][rid][name][step] == value, (rid, name, step)
            assert tracked.tensorboard[0][rid][name][step] == np.float32(value), (rid, name, step)  # TB: float32
            compared += 1
    assert compared >= 10


def test_every_stored_value_is_in_both_trackers_at_its_step(tracked):
    for rid, rows in tracked.evals.items():
        want = {}
        for e in rows:
            if e["value"] is not None:
                want.setdefault(metric_key(e["metric"], e["ref"]), {})[e["step"]] = e["value"]
        assert tracked.mlflow_series[0][rid] == want
        assert tracked.tensorboard[0][rid] == {k: {s: np.float32(v) for s, v in series.items()}
                                               for k, series in want.items()}
        assert any(k.startswith("train/") for k in want) or len({e["step"] for e in rows}) == 1


def test_running_the_suite_again_reuses_the_mlflow_runs_and_tensorboard_hides_the_old_values(tracked):
    first, second = tracked.mlflow
    assert len(first[None]) == len(second[None]) == 1  # one parent run per suite
    assert {k: r.info.run_id for k, r in first.items() if k} == {k: r.info.run_id for k, r in second.items() if k}
    # fresh runs on CPU recompute the same values: no step holds two values in either tool
    assert tracked.mlflow_series[1] == tracked.mlflow_series[0]
    assert tracked.tensorboard[1] == tracked.tensorboard[0]


# ------------------------------------------------------------------- the layout


def test_mlflow_nests_one_run_per_benchbase_run_under_the_suite_with_params_and_artifacts(tracked):
    client = mlflow_client(f"sqlite:///{tracked.results / 'mlflow.db'}")
    runs = tracked.mlflow[1]
    parent = runs[None][0]
    assert parent.data.tags["benchbase.role"] == "suite" and parent.info.status == "FINISHED"
    top = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert top == {"suite.json", "leaderboard"}
    boards = {a.path for a in client.list_artifacts(parent.info.run_id, "leaderboard")}
    assert boards == {"leaderboard/tracked.md", "leaderboard/tracked.csv", "leaderboard/tracked.json"}
    experiment = client.get_experiment_by_name(tracked.suite.name)
    assert experiment.artifact_location == (tracked.results / "mlflow-artifacts").resolve().as_uri()
    for spec in tracked.suite.runs:
        run = runs[spec.run_id]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED" and run.data.tags["benchbase.status"] == "done"
        params = run.data.params
        assert params["run_id"] == spec.run_id and params["seed"] == "0"
        assert params["model.name"] == spec.model.name and params["budget.steps"] == str(spec.budget.steps)
        if spec.model.name == "numpy_gauss":
            assert params["model.config.lr"] == "0.05"
        files = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"config.json", "provenance.json", "summary.json", "samples"} <= files
        pngs = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
        assert pngs == {f"samples/step_{s:08d}.png" for s in list(spec.eval.steps)}


def test_tensorboard_keeps_one_directory_per_run_with_images_and_text(tracked):
    root = tracked.results / "tensorboard" / "tracked"
    assert sorted(p.name for p in root.iterdir()) == sorted(run_dir_name(s, s.run_id) for s in tracked.suite.runs)
    for spec in tracked.suite.runs:
        acc = tensorboard_run(root / run_dir_name(spec, spec.run_id))
        assert [e.step for e in acc.Images("samples")] == list(spec.eval.steps)
        assert acc.Images("samples")[0].encoded_image_string.startswith(b"\x89PNG")
        texts = tensorboard_texts(root / run_dir_name(spec, spec.run_id))
        assert [step for step, _ in texts["config"]] == [0]  # the first attempt's copy is purged
        assert f'"name": "{spec.model.name}"' in texts["config"][0][1]
        assert [step for step, _ in texts["provenance"]] == [0]
        assert texts["outcome"][0][1].startswith("**done**")


def test_nothing_is_written_outside_the_results_directory(tracked):
    assert [p.name for p in tracked.cwd.iterdir()] == ["results"]


# --------------------------------------------------------------- single pieces


def test_tensorboard_hides_what_a_dead_attempt_logged_after_its_checkpoint(tmp_path, registry):
    need("tensorboard", "tensorboard")
    from benchbase.contracts import EvalRow
    from benchbase_plugins.trackers.tensorboard import TensorBoardTracker

    suite = build_suite(tiny_suite(models=["copy_train"]), "<test>", registry=registry)
    spec = suite.runs[0]
    tracker = TensorBoardTracker()
    tracker.open(suite, tmp_path)

    def attempt(resumed_from: int, steps: list[int], value: float, finish: bool) -> None:
        tracker.run_started(spec, spec.run_id, {"host": "x"}, resumed_from)
        for step in steps:
            tracker.evaluated(spec, spec.run_id, step, step * 32, [EvalRow("fd", value + step, "test")], None)
        if finish:
            tracker.run_finished(spec, spec.run_id, "done", {"steps": steps[-1]})

    attempt(0, [10, 20, 30, 40], 0.0, finish=False)  # dies after step 40; checkpoint at 20
    attempt(20, [30, 40, 50], 100.0, finish=True)
    tracker.close(suite, None)
    got = tensorboard_scalars(tracker.run_dir(spec, spec.run_id))
    assert got == {"fd/test": {10: 10.0, 20: 20.0, 30: 130.0, 40: 140.0, 50: 150.0}}


def test_mlflow_store_comes_from_the_suite_then_the_environment_then_the_results_dir(monkeypatch, tmp_path):
    from benchbase_plugins.trackers.mlflow import MLflowConfig, MLflowTracker

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert MLflowTracker().tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    assert set(MLflowTracker().requirements()) == {"mlflow", "sqlalchemy", "alembic"}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert MLflowTracker().tracking_uri(tmp_path) == "http://mlflow.example:5000"
    assert MLflowTracker().requirements() == ("mlflow",)  # a server needs no SQL driver here
    chosen = MLflowTracker(MLflowConfig(tracking_uri="sqlite:////data/m.db"))
    assert chosen.tracking_uri(tmp_path) == "sqlite:////data/m.db"


def test_samples_become_an_image_grid_or_a_scatter_plot():
    from io import BytesIO

    from PIL import Image

    rng = np.random.default_rng(0)
    grey = samples_image(rng.uniform(-1, 1, (20, 1, 8, 8)).astype(np.float32))
    rgb = samples_image(rng.uniform(-1, 1, (3, 3, 4, 4)).astype(np.float32))
    points = samples_image(rng.normal(size=(50, 2)).astype(np.float32))
    assert samples_image(None) is None and samples_image(np.zeros((0, 2), np.float32)) is None
    for image, channels in ((grey, 1), (rgb, 3), (points, None)):
        with Image.open(BytesIO(image.png)) as img:
            assert (img.width, img.height) == (image.width, image.height)
            assert channels is None or len(img.getbands()) == channels
    assert grey.width > grey.height  # 8 per row, 3 rows


# ----------------------------------------------------------------------- W&B


@pytest.mark.slow
def test_wandb_offline_run_files_hold_every_value_at_its_step(tmp_path, monkeypatch):
    need("wandb", "wandb")
    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    for var in ("WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "home" / var.lower()))
    monkeypatch.chdir(tmp_path)
    registry = build_registry(PluginPolicy(entry_points=False, strict=True, extra=("support.faulty_plugins",)))
    suite = build_suite(tiny_suite(name="wb", models=["numpy_gauss", "copy_train"], trackers=["wandb"]),
                        "<test>", registry=registry)
    results = tmp_path / "results"
    with Store(results) as store:
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
        evals = {s.run_id: store.evals(s.run_id) for s in suite.runs}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "results"]
    runs = {p.name.rsplit("-", 1)[1]: p for p in (results / "wandb").glob("offline-run-*")}
    for spec in suite.runs:
        log = runs[spec.run_id] / f"run-{spec.run_id}.wandb"
        want = {}
        for e in evals[spec.run_id]:
            if e["value"] is not None:
                want.setdefault(metric_key(e["metric"], e["ref"]), {})[e["step"]] = e["value"]
        assert wandb_history(log) == want
        config = wandb_config(log)
        assert config["run_id"] == spec.run_id and config["model"]["name"] == spec.model.name
        assert (runs[spec.run_id] / "files" / "provenance.json").exists()
        images = sorted((runs[spec.run_id] / "files" / "media" / "images").glob("samples_*.png"))
        assert len(images) == len(list(spec.eval.steps))
    (board,) = [p for k, p in runs.items() if k not in {s.run_id for s in suite.runs}]
    assert (board / "files" / "leaderboard" / "wb.md").read_text().count("numpy_gauss") == 1
