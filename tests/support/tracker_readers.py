"""Read back what the trackers wrote, with each tool's own reader, as
``{name: {step: value}}``: TensorBoard's event accumulator, MLflow's client on the
store, and W&B's offline transaction log (``run-<id>.wandb``) decoded with W&B's own
record protobufs."""
from __future__ import annotations

import json
import struct
from pathlib import Path

Series = dict[str, dict[int, float]]


# --------------------------------------------------------------------- TensorBoard


def tensorboard_run(run_dir: Path):
    """TensorBoard's EventAccumulator over one run directory, loaded (every event kept)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def tensorboard_scalars(run_dir: Path) -> Series:
    acc = tensorboard_run(run_dir)
    out: Series = {}
    for tag in acc.Tags()["scalars"]:
        for event in acc.Scalars(tag):
            assert event.step not in out.get(tag, {}), f"{tag} logged twice at step {event.step}"
            out.setdefault(tag, {})[event.step] = event.value
    return out


def tensorboard_texts(run_dir: Path) -> dict[str, list[tuple[int, str]]]:
    """Text summaries as TensorBoard's own backend sees them (its plugin accumulator,
    which also drops the text of purged attempts): ``{tag: [(step, text)]}``."""
    from tensorboard.backend.event_processing.plugin_event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    out: dict[str, list[tuple[int, str]]] = {}
    for tag in acc.Tags()["tensors"]:
        if acc.SummaryMetadata(tag).plugin_data.plugin_name == "text":
            out[tag] = [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(tag)]
    return out


# -------------------------------------------------------------------------- MLflow


def mlflow_client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def mlflow_metrics(client, mlflow_run_id: str) -> Series:
    run = client.get_run(mlflow_run_id)
    out: Series = {}
    for key in run.data.metrics:
        for metric in client.get_metric_history(mlflow_run_id, key):
            previous = out.setdefault(key, {}).get(metric.step)
            assert previous is None or previous == metric.value, f"{key} has two values at step {metric.step}"
            out[key][metric.step] = metric.value
    return out


def mlflow_runs_by_benchbase_id(client, experiment: str) -> dict:
    """benchbase run id -> MLflow Run, and the parent runs under key None (a list)."""
    exp = client.get_experiment_by_name(experiment)
    out: dict = {None: []}
    for run in client.search_runs([exp.experiment_id], max_results=1000):
        rid = run.data.tags.get("benchbase.run_id")
        if rid is None:
            out[None].append(run)
        else:
            assert rid not in out, f"two MLflow runs for benchbase run {rid}"
            out[rid] = run
    return out


# ---------------------------------------------------------------------------- W&B

_BLOCK = 32768  # LevelDB log format, which W&B's transaction log uses
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def wandb_records(path: Path) -> list:
    """Every record of a W&B transaction log, as ``wandb_internal_pb2.Record``."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, pending, chunks = 7, b"", []
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # block trailer
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pos += 7
        if kind == 0 and length == 0:
            break
        piece, pos = data[pos:pos + length], pos + length
        if kind == _FULL:
            chunks.append(piece)
        elif kind == _FIRST:
            pending = piece
        elif kind == _MIDDLE:
            pending += piece
        elif kind == _LAST:
            chunks.append(pending + piece)
    records = []
    for chunk in chunks:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(chunk)
        records.append(record)
    return records


def wandb_history(path: Path) -> Series:
    """The logged values of one offline run, keyed by W&B's ``_step``."""
    out: Series = {}
    for record in wandb_records(path):
        if record.WhichOneof("record_type") != "history":
            continue
        items = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
        step = int(items.pop("_step"))
        media = tuple(key[:-len("_type")] for key in items if key.endswith("/_type"))  # an image's fields
        for key, value in items.items():
            if not key.startswith(("_", *media)) and isinstance(value, (int, float)):
                out.setdefault(key, {})[step] = float(value)
    return out


def wandb_config(path: Path) -> dict:
    config: dict = {}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        updates = record.run.config.update if kind == "run" else record.config.update if kind == "config" else ()
        for item in updates:
            config["/".join(item.nested_key) or item.key] = json.loads(item.value_json)
    return config
