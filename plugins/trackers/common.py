"""What every built-in tracker logs, named and rendered the same way, so a curve has
the same name in TensorBoard, MLflow and W&B.

- A stored value becomes one scalar named ``metric/ref`` (``mem_ratio/train``,
  ``fd/test``, ``fd.ci_low/test``); training logs, already named ``train/loss``, keep
  their name. Non-finite values are skipped, as the store keeps them as missing.
- The run's resolved config is flattened to ``model.config.width = 32`` parameters.
- The kept samples become one PNG: an image grid for image data, a scatter plot of
  the first two coordinates for vector data.
"""
from __future__ import annotations

import io
import json
import math
import re
from dataclasses import dataclass

import numpy as np

SAMPLES_TAG = "samples"
LEADERBOARD_FORMATS = ("markdown", "csv", "json")


def metric_key(metric: str, ref: str) -> str:
    """The tracker name of one stored value."""
    return f"{metric}/{ref}" if ref and "/" not in metric else metric


def scalars(results: list) -> dict[str, float]:
    """``{name: value}`` of an evaluation's rows (EvalRows), finite values only."""
    out = {}
    for row in results:
        value = float(row.value)
        if math.isfinite(value):
            out[metric_key(row.metric, row.ref)] = value
    return out


def flat_params(spec) -> dict[str, str]:
    """A run spec as flat ``dotted.key -> text`` parameters (what trackers call params):
    model, dataset, subset, budget, evaluation, features, metrics and seed."""
    d = spec.to_dict()
    out: dict[str, str] = {"run_id": spec.run_id, "seed": str(d["seed"]), "device": str(d["device"])}

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                if key != "volatile":
                    walk(f"{prefix}.{key}", sub)
        elif isinstance(value, list):
            out[prefix] = json.dumps(value)
        else:
            out[prefix] = str(value)

    for part in ("model", "dataset", "subset", "budget", "eval", "sweep"):
        walk(part, d.get(part) or {})
    out["metrics"] = ",".join(m["name"] for m in d["metrics"])
    for m in d["metrics"]:
        walk(f"metrics.{m['name']}", m.get("config") or {})
    return out


def slug(text: str, limit: int = 80) -> str:
    """A file-name-safe form of a run title or suite name."""
    return re.sub(r"[^A-Za-z0-9._=+-]+", "-", text).strip("-")[:limit] or "run"


def run_dir_name(spec, run_id: str) -> str:
    """One directory per run id, readable first: ``flow-gmm2d-n=64-seed-0_<run id>``."""
    return f"{slug(spec.title)}_{run_id}"


@dataclass(frozen=True)
class SampleImage:
    """The samples of one evaluation as a PNG."""

    png: bytes
    width: int
    height: int
    channels: int  # 1 (grey) or 3 (RGB)


SCATTER_PX = 240  # side of the scatter image of vector samples


def samples_image(samples: np.ndarray | None, max_images: int = 64) -> SampleImage | None:
    """A grid of image samples (in [-1, 1]) or a scatter plot of vector samples; None
    when there is nothing to show. Drawn with Pillow in a few milliseconds: trackers
    draw one at every evaluation, on threads that share the interpreter with training."""
    if samples is None or len(samples) == 0:
        return None
    from PIL import Image

    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 4 and samples.shape[1] in (1, 3):
        from benchbase.report_figures import mosaic

        shown = samples[:max_images]
        grid = mosaic(shown, None, per_row=min(8, len(shown)))
        pixels = (np.clip(grid, 0, 1) * 255).round().astype(np.uint8)
        img = Image.fromarray(pixels, mode="L" if pixels.ndim == 2 else "RGB")
        scale = max(1, 48 // samples.shape[-1])  # small images stay visible
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    else:
        img = _scatter(samples.reshape(len(samples), -1))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return SampleImage(buf.getvalue(), img.width, img.height, 1 if img.mode == "L" else 3)


def _nice_ceiling(x: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at or above ``x``: axis limits that stay put
    from one evaluation to the next unless the samples really spread."""
    if not math.isfinite(x) or x <= 0:
        return 1.0
    k = math.floor(math.log10(x))
    return next(m * 10.0 ** k for m in (1, 2, 5, 10) if m * 10.0 ** k >= x)


def _scatter(points: np.ndarray):
    """Vector samples in the plane (the first two coordinates), on a square axis of
    +-R with R a round number, and R written in the corner."""
    from PIL import Image, ImageDraw

    xy = points[:, :2] if points.shape[1] >= 2 else np.c_[points[:, 0], np.zeros(len(points))]
    finite = xy[np.isfinite(xy).all(1)]
    limit = _nice_ceiling(float(np.abs(finite).max()) if len(finite) else 1.0)
    size = SCATTER_PX
    img = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(img)
    mid = size // 2
    draw.line([(0, mid), (size, mid)], fill=(215, 215, 215))
    draw.line([(mid, 0), (mid, size)], fill=(215, 215, 215))
    pix = (finite / limit * (mid - 6) + mid).round()
    for x, y in pix:
        draw.ellipse([x - 2, size - y - 2, x + 2, size - y + 2], fill=(31, 119, 180))
    dims = "x1, x2" if points.shape[1] == 2 else f"x1, x2 of {points.shape[1]}"
    draw.text((4, 2), f"{dims}: +-{limit:g}", fill=(90, 90, 90))
    return img


def provenance_text(provenance: dict) -> str:
    return json.dumps(provenance, indent=2, sort_keys=True, default=str)


def config_text(spec) -> str:
    return json.dumps(spec.to_dict(), indent=2, sort_keys=True)
