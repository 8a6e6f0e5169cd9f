"""The ``wandb`` tracker: one Weights & Biases run per benchbase run, grouped by suite.

Offline by default: runs are written under ``<results>/wandb/`` and nothing is sent
(no account needed); upload them later with ``wandb sync <results>/wandb/offline-run-*``,
or set ``mode: online`` to log live. Each run gets its resolved config as the W&B
config, every stored value at its training step, the samples as an image, and its
provenance as ``provenance.json``; when the suite ends, one more run of the group
(job type ``leaderboard``) holds the leaderboard as tables and files. W&B's own error
reporting is switched off unless online (``WANDB_ERROR_REPORTING`` decides otherwise).

A run resumed from a checkpoint is a new offline run directory with the same W&B run
id; ``wandb sync`` merges them.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from benchbase import Tracker, hookimpl

from .common import LEADERBOARD_FORMATS, SAMPLES_TAG, samples_image, scalars, slug

MODES = ("offline", "online", "disabled")


@dataclass
class WandbConfig:
    mode: str = "offline"  # offline | online (sends to W&B: needs `wandb login`) | disabled
    project: Optional[str] = None  # None: the suite's name
    entity: Optional[str] = None  # team or user; None: W&B's default
    dir: Optional[str] = None  # None: the results directory (runs go to <dir>/wandb/)
    images: bool = True  # the kept samples as an image at every evaluation
    leaderboard_formats: List[str] = field(default_factory=lambda: list(LEADERBOARD_FORMATS))


class WandbTracker(Tracker):
    """Weights & Biases (offline by default): config, metrics per step, samples, leaderboard."""

    name = "wandb"
    Config = WandbConfig
    requires = ("wandb",)
    install = "'benchbase[wandb]'"

    def __init__(self, config=None):
        super().__init__(config)
        if self.config.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not '{self.config.mode}'")

    def open(self, suite, results_dir) -> None:
        if self.config.mode != "online":
            os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
        import wandb

        self.wandb = wandb
        self.dir = Path(self.config.dir) if self.config.dir else Path(results_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.suite = suite
        self._runs: dict = {}

    def _init(self, **kwargs):
        settings = self.wandb.Settings(console="off", x_disable_stats=True, save_code=False, silent=True)
        return self.wandb.init(project=self.config.project or slug(self.suite.name), entity=self.config.entity,
                               dir=str(self.dir), mode=self.config.mode, group=self.suite.name,
                               reinit="create_new", settings=settings, **kwargs)

    def run_started(self, spec, run_id, provenance, resumed_from) -> None:
        self._finish(run_id, exit_code=1)  # a retried attempt replaces the one that died
        run = self._init(id=run_id, name=spec.title, job_type="train", resume="allow",
                         config={**spec.to_dict(), "run_id": run_id},
                         tags=[spec.model.label, spec.dataset.label])
        self._runs[run_id] = run
        if self.config.mode != "disabled":
            self._save(run, "provenance.json", json.dumps(provenance, indent=2, sort_keys=True, default=str))

    def evaluated(self, spec, run_id, step, examples, results, samples) -> None:
        run = self._runs.get(run_id)
        if run is None:
            return
        data: dict = dict(scalars(results))
        image = samples_image(samples) if self.config.images else None
        if image is not None:
            from io import BytesIO

            from PIL import Image

            data[SAMPLES_TAG] = self.wandb.Image(Image.open(BytesIO(image.png)), caption=f"step {step}")
        run.log(data, step=int(step))

    def run_finished(self, spec, run_id, status, summary) -> None:
        run = self._runs.get(run_id)
        if run is None:
            return
        run.summary.update({"status": status, **{k: v for k, v in summary.items() if k != "error"}})
        self._finish(run_id, exit_code=0 if status == "done" else 1)

    def close(self, suite, outcome) -> None:
        for run_id in list(self._runs):  # runs the suite did not finish (an interrupt)
            self._finish(run_id, exit_code=1)
        if self.config.mode == "disabled":
            return
        run = self._init(name=f"{suite.name} leaderboard", job_type="leaderboard",
                         config={"suite": suite.resolved, "statuses": outcome.statuses})
        try:
            for fmt in self.config.leaderboard_formats:
                board = outcome.render(fmt)
                self._save(run, f"leaderboard/{slug(suite.name)}.{board.extension}", board.text)
            for i, table in enumerate(outcome.tables):
                columns = ["model"] + [c.key for c in table.columns]
                rows = [[row.label] + [row.values[c.key].mean if c.key in row.values else None
                                       for c in table.columns] for row in table.rows]
                run.log({f"leaderboard/{slug(table.dataset)}": self.wandb.Table(columns=columns, data=rows)})
        finally:
            run.finish()

    # ------------------------------------------------------------------ internals
    def _finish(self, run_id: str, exit_code: int) -> None:
        run = self._runs.pop(run_id, None)
        if run is not None:
            run.finish(exit_code=exit_code)

    @staticmethod
    def _save(run, name: str, text: str) -> None:
        """A file in the run's files (uploaded with it by `wandb sync` or online)."""
        path = Path(run.dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        run.save(str(path), base_path=run.dir, policy="now")


@hookimpl
def benchbase_register_trackers(register):
    register(WandbTracker)
