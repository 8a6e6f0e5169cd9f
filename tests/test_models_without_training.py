"""Models the core does not train: samples made elsewhere (sample_files), and a
parameter count read along the run rather than fixed at init."""
from __future__ import annotations

import numpy as np
import pytest

from benchbase import Model, hookimpl
from benchbase.config import build_suite
from benchbase.errors import ConfigError
from benchbase.scoring import SampleScorer
from benchbase.store import Store
from benchbase.testing import run_suite_quietly

GMM = {"train_size": 600, "test_size": 300}
STEPS = (100, 1000, 5000)


def write_trajectory(folder, count=150):
    """A model that sharpens along training: noisy training points, less noisy later."""
    from benchbase_plugins.datasets.synthetic import GMM2D

    train = GMM2D(GMM2D.Config(**GMM)).load().train[:128]
    rng = np.random.default_rng(0)
    folder.mkdir(exist_ok=True)
    for step, noise in zip(STEPS, (1.0, 0.3, 0.02)):
        x = train[rng.integers(0, len(train), count)] + noise * rng.standard_normal((count, 2))
        np.savez(folder / f"step_{step}.npz", samples=x.astype(np.float32))
    return folder


def suite(path, **eval_overrides) -> dict:
    return {
        "name": "external", "seeds": [0], "device": "cpu",
        "datasets": [{"name": "gmm2d", "n": 128, "config": GMM, "metric_config": {"mem_ratio": {"threshold": 0.2}}}],
        "models": [{"name": "sample_files", "label": "their_gan", "config": {"path": str(path), "family": "gan"}}],
        "metrics": ["mem_ratio", "fd"],
        "budget": {"batch_size": 64, "steps": 10},
        "eval": {"n_samples": 150, "keep_samples": 150, **eval_overrides},
    }


def test_samples_from_files_get_a_trajectory_and_a_leaderboard_row(registry, tmp_path):
    folder = write_trajectory(tmp_path / "samples")
    run = run_suite_quietly(suite(folder), tmp_path / "results", registry=registry)
    assert run.result.ok
    (row,) = run.rows
    assert row["model"] == "their_gan" and row["family"] == "gan" and list(row["at_steps"].values()) == [5000]
    with Store(tmp_path / "results") as store:
        (rec,) = store.runs()
        assert sorted({e["step"] for e in store.evals(rec.run_id)}) == list(STEPS)
        assert rec.summary["steps"] == STEPS[-1]  # the trajectory it covers, not a budget it spent
        origin = rec.provenance["model_origin"]
        assert origin["path"] == str(folder.resolve())
        assert [f["name"] for f in origin["files"]] == [f"step_{s}.npz" for s in STEPS]
        assert all(len(f["sha256"]) == 64 for f in origin["files"])
        # the copy metric rises as the samples sharpen onto the training points
        mem = {e["step"]: e["value"] for e in store.evals(rec.run_id) if e["metric"] == "mem_ratio"}
        assert mem[100] < mem[5000]
        # the stored values are those of scoring the file's samples directly
        scorer = SampleScorer.for_dataset("gmm2d", n=128, config=GMM, registry=registry,
                                          metrics=[{"name": "mem_ratio", "config": {"threshold": 0.2}}, "fd"])
        with np.load(folder / "step_1000.npz") as z:
            scores = scorer.score(z["samples"], step=1000, seed=0)
        stored = {(e["metric"], e["ref"]): e["value"] for e in store.evals(rec.run_id) if e["step"] == 1000}
        assert {(r.metric, r.ref): r.value for r in scores.rows} == stored


def test_changed_files_make_a_new_run_and_a_moved_folder_does_not(registry, tmp_path):
    folder = write_trajectory(tmp_path / "a")
    first = build_suite(suite(folder), registry=registry).runs[0].run_id
    moved = write_trajectory(tmp_path / "b")
    assert build_suite(suite(moved), registry=registry).runs[0].run_id == first
    np.savez(moved / "step_1000.npz", samples=np.zeros((150, 2), np.float32))
    assert build_suite(suite(moved), registry=registry).runs[0].run_id != first


def test_one_file_is_one_evaluation_at_step_zero(registry, tmp_path):
    folder = write_trajectory(tmp_path / "samples")
    spec = build_suite(suite(folder / "step_5000.npz"), registry=registry).runs[0]
    assert spec.eval.steps == (0,)


@pytest.mark.parametrize("change,match", [
    (lambda f: np.savez(f / "step_7.npz", samples=np.zeros((150, 3), np.float32)),
     r"step 7: step_7.npz holds samples of shape \(3,\) but the data's examples are \(2,\)"),
    (lambda f: np.save(f / "step_7.npy", np.zeros((20, 2), np.float32)),
     "step_7.npy holds 20 samples but eval.n_samples is 150; lower eval.n_samples to at most 20"),
    (lambda f: np.save(f / "step_7.npy", np.array([[object()], [object()]], dtype=object)),
     "holds Python objects .dtype object., which are never unpickled"),
    (lambda f: np.savez(f / "step_7.npz", a=np.zeros((150, 2)), b=np.zeros((150, 2))),
     "2 arrays and none is called 'samples'"),
    (lambda f: (np.save(f / "step_7.npy", np.zeros((150, 2), np.float32)),
                (f / "step_7.npy").write_bytes((f / "step_7.npy").read_bytes()[:-8])),
     r"step_7.npy: is truncated or damaged: its header promises an array of shape \(150, 2\)"),
    (lambda f: np.savez(f / "step_7.npz", samples=np.random.default_rng(0).uniform(0, 255, (150, 2))),
     r"step 7: step_7.npz: its values span \[0.\d+, 25\d.\d*\], far outside the data's value range "
     r"\[-1.25, 1.25\] \(samples may overshoot it by its width, to \[-3.75, 3.75\]\); they look like 0..255 "
     r"pixels: map x to -1.25 \+ x \* 2.5 / 255"),
])
def test_bad_sample_files_fail_validation_with_the_file_named(registry, tmp_path, change, match):
    folder = write_trajectory(tmp_path / "samples")
    change(folder)
    with pytest.raises(ConfigError, match=match) as info:
        build_suite(suite(folder), registry=registry)
    assert "models[0].config" in str(info.value)


def test_a_missing_folder_is_a_validation_error(registry, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_suite(suite(tmp_path / "nowhere"), registry=registry)


class Hoarder(Model):
    """Keeps every batch it is shown: its parameter count grows with training."""

    name = "hoarder"
    family = "nonparametric"
    framework = "numpy"

    def init(self, data, seed):
        return {"x": np.zeros((0, *data.spec.shape), np.float32), "seed": seed}

    def train_step(self, state, batch, key):
        return {**state, "x": np.concatenate([state["x"], batch.x])}, {}

    def sample(self, state, n, key):
        pool = state["x"] if len(state["x"]) else np.zeros((1, 2), np.float32)
        return pool[key.integers(0, len(pool), n)] + 0.01 * key.standard_normal((n, *pool.shape[1:]), np.float32)

    def save(self, state):
        return state["x"].tobytes()

    def load(self, blob, data):
        return {"x": np.frombuffer(blob, np.float32).reshape(-1, *data.spec.shape).copy()}

    def param_count(self, state):
        return int(state["x"].size)


class _HoarderPlugin:
    @hookimpl
    def benchbase_register_models(self, register):
        register(Hoarder)


def test_the_parameter_count_is_read_as_the_model_grows(registry, tmp_path):
    registry.add_plugin(_HoarderPlugin(), "hoarder", source="test")
    registry.collect()
    spec = suite(tmp_path)
    spec.update(models=["hoarder"], metrics=["mem_ratio"], budget={"batch_size": 8, "steps": 12})
    run = run_suite_quietly(spec, tmp_path / "results", registry=registry)
    assert run.result.ok
    with Store(tmp_path / "results") as store:
        assert store.runs()[0].summary["param_count"] == 12 * 8 * 2


def test_files_changed_after_validation_fail_the_run_not_the_suite(registry, tmp_path):
    from benchbase.driver import run_suite
    from benchbase.progress import Reporter

    folder = write_trajectory(tmp_path / "samples")
    spec = build_suite(suite(folder), registry=registry)
    np.savez(folder / "step_1000.npz", samples=np.zeros((150, 2), np.float32))
    with Store(tmp_path / "results") as store:
        result = run_suite(spec, store, registry, reporter=Reporter(quiet=True))
    assert not result.ok and "changed since the suite was validated" in result.failures[0][1]
