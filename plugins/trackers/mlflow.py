"""The ``mlflow`` tracker: one MLflow run per benchbase run, nested under one parent
run per suite, in one experiment (the suite's name unless configured).

Each run gets its resolved config as params (and as ``config.json``), every stored
value as a metric at its training step, the samples as ``samples/step_N.png``, its
provenance and outcome as ``provenance.json`` and ``summary.json``; the parent run
gets the suite's resolved settings and, when the suite ends, its leaderboard files
(``leaderboard/<suite>.md``, ``.csv``, ``.json``).

Where it logs: ``tracking_uri`` in the suite, else ``MLFLOW_TRACKING_URI``, else a
local SQLite store ``<results>/mlflow.db`` with artifacts in ``<results>/mlflow-artifacts``:
nothing leaves the machine unless configured. MLflow's usage telemetry is switched
off unless the environment already decides (``MLFLOW_DISABLE_TELEMETRY``).

Running the same suite again reuses its parent run and, for a resumed benchbase run,
its MLflow run: the evaluations redone after the checkpoint are logged again at
their steps (on CPU with the same values, see docs/scaling.md).

    mlflow ui --backend-store-uri sqlite:///results/mlflow.db   # needs the full `pip install mlflow`
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional
from urllib.parse import urlparse

from benchbase import Tracker, hookimpl

from .common import LEADERBOARD_FORMATS, flat_params, samples_image, scalars, slug

SUITE_TAG = "benchbase.suite"
ROLE_TAG = "benchbase.role"  # "suite" (the parent) or "run"
RUN_TAG = "benchbase.run_id"
STATUS_TAG = "benchbase.status"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own nesting tag
TERMINAL = {"done": "FINISHED"}  # every other benchbase outcome is FAILED


@dataclass
class MLflowConfig:
    tracking_uri: Optional[str] = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///<results>/mlflow.db
    experiment: Optional[str] = None  # None: the suite's name
    artifact_location: Optional[str] = None  # for a new experiment; None: <results>/mlflow-artifacts
    # on a local store, the server's default otherwise
    images: bool = True  # the kept samples as samples/step_N.png at every evaluation
    leaderboard_formats: List[str] = field(default_factory=lambda: list(LEADERBOARD_FORMATS))


def _is_local(uri: str) -> bool:
    scheme = urlparse(uri).scheme
    return scheme in ("", "file", "sqlite") or len(scheme) == 1  # a Windows drive letter


class MLflowTracker(Tracker):
    """MLflow: one run per benchbase run under a parent run per suite; params, metrics, artifacts."""

    name = "mlflow"
    Config = MLflowConfig
    requires = ("mlflow",)
    install = "'benchbase[mlflow]'"

    def tracking_uri(self, results_dir: Path) -> str:
        return (self.config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
                or f"sqlite:///{Path(results_dir).resolve() / 'mlflow.db'}")

    def requirements(self) -> tuple[str, ...]:
        uri = self.config.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:"
        # MLflow's SQL stores need SQLAlchemy and Alembic, which mlflow-skinny leaves out
        sql = urlparse(uri).scheme.split("+")[0] in ("sqlite", "postgresql", "mysql", "mssql")
        return self.requires + (("sqlalchemy", "alembic") if sql else ())

    def open(self, suite, results_dir) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow.tracking import MlflowClient

        for noisy in ("mlflow.store.db.utils", "alembic.runtime.migration"):  # one-off schema set-up notes
            logger = logging.getLogger(noisy)
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.WARNING)

        results_dir = Path(results_dir)
        self.uri = self.tracking_uri(results_dir)
        self.client = MlflowClient(tracking_uri=self.uri)
        name = self.config.experiment or suite.name
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            location = self.config.artifact_location
            if location is None and _is_local(self.uri):
                location = (results_dir.resolve() / "mlflow-artifacts").as_uri()
            self.experiment_id = self.client.create_experiment(name, artifact_location=location)
        else:
            self.experiment_id = experiment.experiment_id
        self.suite_name = suite.name
        self.parent_id = self._find_or_create(
            {SUITE_TAG: suite.name, ROLE_TAG: "suite"}, run_name=suite.name,
            tags={"mlflow.note.content": suite.description or f"benchbase suite {suite.name}",
                  "benchbase.source": suite.source})
        self.client.log_dict(self.parent_id, suite.resolved, "suite.json")
        self._runs: dict[str, str] = {}  # benchbase run id -> MLflow run id

    def run_started(self, spec, run_id, provenance, resumed_from) -> None:
        from mlflow.entities import Param

        tags = {SUITE_TAG: self.suite_name, ROLE_TAG: "run", RUN_TAG: run_id, PARENT_TAG: self.parent_id,
                "benchbase.model": spec.model.label, "benchbase.dataset": spec.dataset.label,
                STATUS_TAG: "running"}
        mlflow_id, created = self._find_or_create(
            {RUN_TAG: run_id, PARENT_TAG: self.parent_id}, run_name=spec.title, tags=tags, report_new=True)
        self._runs[run_id] = mlflow_id
        if created:
            limit = _param_value_limit()
            params = [Param(k, v if len(v) <= limit else v[:limit - 3] + "...")
                      for k, v in sorted(flat_params(spec).items())]
            self.client.log_batch(mlflow_id, params=params)
            self.client.log_dict(mlflow_id, spec.to_dict(), "config.json")
        name = "provenance.json" if not resumed_from else f"provenance.resumed_at_{resumed_from}.json"
        self.client.log_dict(mlflow_id, provenance, name)

    def evaluated(self, spec, run_id, step, examples, results, samples) -> None:
        from mlflow.entities import Metric

        mlflow_id = self._runs.get(run_id)
        if mlflow_id is None:
            return
        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, int(step)) for key, value in scalars(results).items()]
        self.client.log_batch(mlflow_id, metrics=metrics)
        image = samples_image(samples) if self.config.images else None
        if image is not None:
            self._log_bytes(mlflow_id, image.png, "samples", f"step_{int(step):08d}.png")

    def run_finished(self, spec, run_id, status, summary) -> None:
        mlflow_id = self._runs.pop(run_id, None)
        if mlflow_id is None:
            return
        self.client.log_dict(mlflow_id, summary, "summary.json")
        self.client.set_tag(mlflow_id, STATUS_TAG, status)
        self.client.set_terminated(mlflow_id, TERMINAL.get(status, "FAILED"))

    def close(self, suite, outcome) -> None:
        for mlflow_id in self._runs.values():  # runs the suite did not finish (an interrupt)
            self.client.set_terminated(mlflow_id, "KILLED")
        self._runs.clear()
        for fmt in self.config.leaderboard_formats:
            board = outcome.render(fmt)
            self._log_bytes(self.parent_id, board.text.encode("utf-8"), "leaderboard",
                            f"{slug(suite.name)}.{board.extension}")
        counts: dict[str, int] = {}
        for status in outcome.statuses.values():
            counts[status] = counts.get(status, 0) + 1
        for status, n in counts.items():
            self.client.set_tag(self.parent_id, f"benchbase.runs.{status}", str(n))
        unfinished = any(s not in ("done", "failed", "diverged", "timeout") for s in outcome.statuses.values())
        self.client.set_terminated(self.parent_id, "KILLED" if unfinished else "FINISHED")

    # ------------------------------------------------------------------ internals
    def _find_or_create(self, match: dict, run_name: str, tags: dict, report_new: bool = False):
        """The run carrying ``match`` tags in this experiment (set running again), or a new one.

        The search names only the role and hex ids; the suite name, which may hold
        any character, is compared here rather than quoted into a filter string."""
        safe = {k: v for k, v in match.items() if k != SUITE_TAG}
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in safe.items())
        found = [r for r in self.client.search_runs([self.experiment_id], filter_string=query, max_results=1000)
                 if all(r.data.tags.get(k) == v for k, v in match.items())]
        if found:
            mlflow_id = found[0].info.run_id
            self.client.update_run(mlflow_id, status="RUNNING")
            created = False
        else:
            mlflow_id = self.client.create_run(self.experiment_id, run_name=run_name,
                                               tags={**tags, **match}).info.run_id
            created = True
        return (mlflow_id, created) if report_new else mlflow_id

    def _log_bytes(self, mlflow_id: str, data: bytes, folder: str, filename: str) -> None:
        with tempfile.TemporaryDirectory(prefix="benchbase-mlflow-") as tmp:
            path = Path(tmp) / filename
            path.write_bytes(data)
            self.client.log_artifact(mlflow_id, str(path), artifact_path=folder)


def _param_value_limit() -> int:
    try:
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH
    except ImportError:
        return 500  # MLflow before 2.x
    return int(MAX_PARAM_VAL_LENGTH)


@hookimpl
def benchbase_register_trackers(register):
    register(MLflowTracker)
