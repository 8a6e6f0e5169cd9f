"""The ``tensorboard`` tracker: TensorBoard event files, one run directory per run id.

Written with TensorBoard's own event-file writer and protobufs (no TensorFlow, no
PyTorch needed): every stored value as a scalar at its training step, the kept
samples as an image, the resolved run config and the provenance as text. Every start
of a run writes a restart marker, so TensorBoard hides what an earlier attempt logged
after the checkpoint it resumes from (those evaluations are logged again), and all
of it when the run starts over.

    tensorboard --logdir results/tensorboard
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from benchbase import Tracker, hookimpl

from .common import SAMPLES_TAG, config_text, provenance_text, run_dir_name, samples_image, scalars, slug


@dataclass
class TensorBoardConfig:
    logdir: Optional[str] = None  # None: <results>/tensorboard; runs go to <logdir>/<suite>/<run>
    images: bool = True  # the kept samples as an image at every evaluation
    flush_every_eval: bool = True  # so a running TensorBoard shows each point at once


class TensorBoardTracker(Tracker):
    """TensorBoard event files: every metric at every evaluation, sample grids, the config as text."""

    name = "tensorboard"
    Config = TensorBoardConfig
    requires = ("tensorboard",)
    install = "'benchbase[tensorboard]'"

    def open(self, suite, results_dir) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
        from tensorboard.plugins.text import metadata as text_metadata
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._pb = event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, text_metadata
        self._writer_cls = EventFileWriter
        root = Path(self.config.logdir) if self.config.logdir else Path(results_dir) / "tensorboard"
        self.suite_dir = root / slug(suite.name)
        self.suite_dir.mkdir(parents=True, exist_ok=True)
        self._writers: dict = {}

    def run_dir(self, spec, run_id: str) -> Path:
        return self.suite_dir / run_dir_name(spec, run_id)

    def run_started(self, spec, run_id, provenance, resumed_from) -> None:
        event_pb2 = self._pb[0]
        self._close_run(run_id)  # a retried attempt replaces the one that died
        writer = self._writer_cls(str(self.run_dir(spec, run_id)))
        self._writers[run_id] = writer
        # TensorBoard drops what earlier files of the run logged at or after a START
        # marker's step: the values of an attempt that died after this checkpoint, or
        # everything when the run starts over (--fresh).
        start = resumed_from + 1 if resumed_from else 0
        writer.add_event(event_pb2.Event(wall_time=time.time(), step=start,
                                         session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))
        if not resumed_from:
            self._text(writer, "config", f"```json\n{config_text(spec)}\n```", 0)
        self._text(writer, "provenance", f"```json\n{provenance_text(provenance)}\n```", resumed_from)
        writer.flush()

    def evaluated(self, spec, run_id, step, examples, results, samples) -> None:
        writer = self._writers.get(run_id)
        if writer is None:
            return
        _, summary_pb2, *_ = self._pb
        values = [summary_pb2.Summary.Value(tag=tag, simple_value=value) for tag, value in scalars(results).items()]
        image = samples_image(samples) if self.config.images else None
        if image is not None:
            values.append(summary_pb2.Summary.Value(tag=SAMPLES_TAG, image=summary_pb2.Summary.Image(
                height=image.height, width=image.width, colorspace=image.channels,
                encoded_image_string=image.png)))
        self._emit(writer, summary_pb2.Summary(value=values), step)
        if self.config.flush_every_eval:
            writer.flush()

    def run_finished(self, spec, run_id, status, summary) -> None:
        writer = self._writers.get(run_id)
        if writer is None:
            return
        lines = [f"**{status}**"] + [f"- {k}: {v}" for k, v in sorted(summary.items()) if k != "error"]
        self._text(writer, "outcome", "\n".join(lines), int(summary.get("steps") or 0))
        self._close_run(run_id)

    def close(self, suite, outcome) -> None:
        for run_id in list(self._writers):
            self._close_run(run_id)

    # ------------------------------------------------------------------ internals
    def _close_run(self, run_id: str) -> None:
        writer = self._writers.pop(run_id, None)
        if writer is not None:
            writer.close()

    def _emit(self, writer, summary, step: int) -> None:
        event_pb2 = self._pb[0]
        writer.add_event(event_pb2.Event(wall_time=time.time(), step=int(step), summary=summary))

    def _text(self, writer, tag: str, text: str, step: int) -> None:
        _, summary_pb2, tensor_pb2, tensor_shape_pb2, text_metadata = self._pb
        tensor = tensor_pb2.TensorProto(dtype="DT_STRING", string_val=[text.encode("utf-8")],
                                        tensor_shape=tensor_shape_pb2.TensorShapeProto(
                                            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=1)]))
        value = summary_pb2.Summary.Value(tag=tag, tensor=tensor,
                                          metadata=text_metadata.create_summary_metadata(tag, ""))
        self._emit(writer, summary_pb2.Summary(value=[value]), step)


@hookimpl
def benchbase_register_trackers(register):
    register(TensorBoardTracker)
