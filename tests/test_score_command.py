"""`benchbase score`: samples from an .npz file, a folder of images or a folder of
step files, against a dataset of the registry; a table or --json; exit 2 on bad input."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from benchbase.cli import main
from benchbase.scoring import score_samples


@pytest.fixture
def digits_test(registry):
    from benchbase.data import DataCatalog

    reg = registry.get("dataset", "digits")
    return DataCatalog.shared().load(reg, reg.cls.Config(), {})[1].test


def test_an_npz_file_scores_as_the_api_does(registry, tmp_path, capsys, digits_test):
    samples = np.clip(digits_test[:200] + 0.05, -1, 1).astype(np.float32)
    np.savez(tmp_path / "samples.npz", samples=samples, labels=np.arange(200))
    argv = ["score", str(tmp_path / "samples.npz"), "--dataset", "digits", "--n", "256", "--metric", "fd",
            "--metric", "mem_ratio", "--seed", "3", "--step", "7"]
    assert main(argv + ["--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    api = score_samples(samples, "digits", n=256, metrics=["fd", "mem_ratio"], seed=3, step=7, registry=registry)
    assert {(r["metric"], r["ref"]): r["value"] for r in record["rows"]} == \
        {(r.metric, r.ref): r.value for r in api.rows}
    assert record["source"]["key"] == "samples" and len(record["source"]["sha256"]) == 64
    assert record["n_samples"] == 200 and record["n_train"] == 256
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "fd (test) ↓" in table and "mem_ratio (train) ↓" in table and "feature space pixels" in table
    assert f"{api.value('fd', ref='test'):.4g}" in table


def test_a_folder_of_images_is_decoded_to_the_datasets_shape(tmp_path, capsys, digits_test):
    folder = tmp_path / "images"
    folder.mkdir()
    pixels = np.rint((digits_test[:40, 0] + 1) * 127.5).astype(np.uint8)
    for i, img in enumerate(pixels):
        Image.fromarray(img).convert("RGB").save(folder / f"{i:03d}.png")  # RGB files, grayscale data
    assert main(["score", str(folder), "--dataset", "digits", "--n", "128", "--metric", "mem_ratio",
                 "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["source"]["kind"] == "images" and record["n_samples"] == 40
    assert record["rows"][0]["value"] == 0.0  # test digits are no copies of training digits


def test_a_folder_of_step_files_gives_one_row_per_step(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for step in (10, 200):
        np.save(tmp_path / f"step_{step}.npy", rng.uniform(-1, 1, (50, 2)).astype(np.float32))
    assert main(["score", str(tmp_path), "--dataset", "gmm2d", "--n", "64", "--dataset-config",
                 "train_size=500", "--dataset-config", "test_size=200", "--metric", "fd", "--metric", "mem_ratio",
                 "--metric-config", "mem_ratio.threshold=0.2"]) == 0
    out = capsys.readouterr().out
    assert "(2 steps)" in out
    lines = [line.split() for line in out.splitlines()]
    assert [row[0] for row in lines if row and row[0].isdigit()] == ["10", "200"]


@pytest.mark.parametrize("argv,message", [
    (["--dataset", "digitz"], "Did you mean 'digits'"),
    (["--dataset", "gmm2d"], r"s.npy holds samples of shape \(1, 8, 8\) but the data's examples are \(2,\)"),
    (["--dataset", "digits", "--metric-config", "precision.k=3"], "not among the metrics"),
    (["--dataset", "digits", "--metric-config", "fd.x=1"], "metrics.fd.config.x: unknown key 'x'"),
    (["--dataset", "digits", "--metric-config", "threshold=0.2"], "METRIC.KEY=VALUE"),
    (["--dataset", "digits", "--metric", "heldout_gap"], "cannot score samples alone"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    np.save(tmp_path / "s.npy", np.zeros((10, 1, 8, 8), np.float32))
    assert main(["score", str(tmp_path / "s.npy"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and re.search(message, err) and err.count("\n") == 1, err


def test_a_pickled_array_is_refused(tmp_path, capsys):
    np.save(tmp_path / "evil.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    assert main(["score", str(tmp_path / "evil.npy"), "--dataset", "digits"]) == 2
    assert "object" in capsys.readouterr().err


def test_bad_samples_are_refused_before_a_learned_space_is_fitted(tmp_path, capsys):
    """A copy_descriptor fit takes minutes: a file of NaN must not cost them, nor leave a
    cache behind."""
    samples = np.zeros((20, 1, 8, 8), np.float32)
    samples[[3, 7]] = np.nan
    np.save(tmp_path / "s.npy", samples)
    results = tmp_path / "results"
    assert main(["score", str(tmp_path / "s.npy"), "--dataset", "digits", "--features", "copy_descriptor",
                 "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 's.npy'}: samples hold NaN or Inf: 2 of 20 samples, the first sample 3\n"
    assert not results.exists() or not any(results.rglob("*"))


def test_every_step_file_is_checked_before_scoring(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "step_10.npy", rng.uniform(-1, 1, (50, 2)).astype(np.float32))
    np.save(tmp_path / "step_200.npy", rng.uniform(-1, 1, (1, 2)).astype(np.float32))
    assert main(["score", str(tmp_path), "--dataset", "gmm2d", "--metric", "fd"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no table for step 10 printed before step 200 failed
    assert captured.err == f"error: {tmp_path / 'step_200.npy'}: 1 sample(s): metrics need at least 2\n"
