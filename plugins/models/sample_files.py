"""``sample_files``: a model trained elsewhere, present through the samples it wrote
along its training run, so it gets benchbase's metrics, trajectory analyses and a
leaderboard row beside the models trained here.

``path`` is a folder with one samples file per training step: ``step_<N>.npz`` or
``step_<N>.npy`` arrays ``(count, *shape)`` (an .npz holds them under ``key``, by
default ``samples`` or its only array), or ``step_<N>/`` folders of images. The steps
found are the run's evaluation schedule. A single file or image folder is one
evaluation, at step 0. Files are read without unpickling; their sha256 hashes are in
the run's provenance and its run id, so changed files make a new run.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from benchbase import Model, hookimpl, pack_arrays, unpack_arrays
from benchbase.contracts import FAMILY_PATTERN, location
from benchbase.errors import BenchbaseInputError
from benchbase.sample_files import SampleSource, open_source, read_samples, shape_problems, step_sources


@dataclass
class SampleFilesConfig:
    path: Optional[str] = location(None)  # folder of step_<N>.npz|.npy files or step_<N>/ image folders
    key: Optional[str] = None  # the .npz array holding the samples (default: "samples", or the only one)
    family: str = "external"  # the family of the model that made them, shown on leaderboards


class SampleFiles(Model):
    """Samples written by a model trained elsewhere, one file per training step, scored at those steps."""

    name = "sample_files"
    family = "external"
    framework = "numpy"
    Config = SampleFilesConfig
    trains = False
    opt_outs = {"sample.uses_key": "the samples are the files' contents: the key only chooses which ones "
                                   "when a file holds more than asked for"}

    def __init__(self, config: SampleFilesConfig | None = None):
        super().__init__(config)
        c = self.config
        if not c.path:
            raise ValueError("sample_files: set config.path to a folder of step_<N>.npz / step_<N>.npy files or "
                             "step_<N>/ image folders (or to one samples file)")
        if not re.fullmatch(FAMILY_PATTERN, c.family):
            raise ValueError(f"sample_files: family must be a lowercase name such as gan or diffusion "
                             f"(got {c.family!r})")
        self.family = c.family
        path = Path(c.path).expanduser()
        if not path.exists():
            raise ValueError(f"sample_files: '{c.path}' does not exist")
        try:
            self.sources: dict[int, SampleSource] = (step_sources(path, c.key) if path.is_dir() else {}) \
                or {0: open_source(path, c.key)}
        except BenchbaseInputError as exc:
            raise ValueError(f"sample_files: {exc}") from None
        self.root = path.resolve()
        self._loaded: tuple[int, np.ndarray] | None = None

    def learning_rate(self) -> float | None:
        return None

    def eval_steps(self) -> list[int]:
        return sorted(self.sources)

    def origin(self) -> dict:
        return {"path": str(self.root),
                "files": [{"step": step, "name": _relative(src.path, self.root), "kind": src.kind,
                           "count": src.count, "sha256": src.sha256} for step, src in self.sources.items()]}

    def problems(self, spec, n_samples: int) -> list[str]:
        return [f"step {step}: {p}" for step, src in self.sources.items() for p in shape_problems(src, spec, n_samples)]

    def init(self, data, seed):
        return {"step": self.eval_steps()[0], "spec": data.spec}

    def seek(self, state, step: int):
        if step not in self.sources:
            raise ValueError(f"sample_files: no samples for step {step} in {self.root} "
                             f"(steps: {', '.join(map(str, self.eval_steps()))})")
        return {**state, "step": int(step)}

    def train_step(self, state, batch, key):
        return state, {}

    def sample(self, state, n, key: np.random.Generator):
        step = state["step"]
        if self._loaded is None or self._loaded[0] != step:
            self._loaded = (step, read_samples(self.sources[step], state["spec"]))
        samples = self._loaded[1]
        if len(samples) < n:
            raise ValueError(f"sample_files: {self.sources[step].path} holds {len(samples)} samples, {n} asked "
                             f"for; lower eval.n_samples to at most {len(samples)}")
        if len(samples) == n:
            return samples.copy()
        return samples[np.sort(key.choice(len(samples), size=n, replace=False))]

    @classmethod
    def conformance_config(cls, splits, folder: Path) -> dict:
        """For the conformance kit: two steps of noisy training points, one as an .npz
        array and, for image data, one as a folder of PNG files."""
        rng = np.random.default_rng(0)
        lo, hi = splits.spec.value_range
        for step, scale in ((1, 0.5), (5, 0.1)):
            x = np.clip(splits.train[:20] + scale * rng.standard_normal(splits.train[:20].shape), lo, hi)
            if splits.spec.modality == "image" and step == 1:
                _write_pngs(x, folder / f"step_{step}")
            else:
                np.savez(folder / f"step_{step}.npz", samples=x.astype(np.float32))
        return {"path": str(folder)}

    def save(self, state) -> bytes:
        return pack_arrays(step=np.int64(state["step"]))

    def load(self, blob: bytes, data):
        return {"step": int(unpack_arrays(blob)["step"]), "spec": data.spec}


def _write_pngs(x: np.ndarray, folder: Path) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    pixels = np.rint((x + 1) * 127.5).clip(0, 255).astype(np.uint8)
    for i, img in enumerate(pixels):
        Image.fromarray(img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)).save(folder / f"{i:04d}.png")


def _relative(path: Path, root: Path) -> str:
    return path.name if path == root else path.relative_to(root).as_posix()


@hookimpl
def benchbase_register_models(register):
    register(SampleFiles)
