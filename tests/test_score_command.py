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
    assert "fd (test) ↓" in table and "mem_ratio (train) vs chance" in table and "feature space pixels" in table
    assert f"{api.value('fd', ref='test'):.4g}" in table
    # a memorization value is printed beside the chance level it is judged against (it was printed alone)
    mean, sd = api.chance("mem_ratio")
    assert f"{api.value('mem_ratio'):.4g} (chance {mean:.3g} ± {sd:.2g})" in table
    assert "chance: what held-out data scores" in table


def test_every_memorization_value_has_its_chance_level_and_the_copies_a_dagger(tmp_path, capsys):
    from benchbase.scoring import dataset_references

    train = dataset_references("gmm2d", n=64, config={"train_size": 500, "test_size": 200}).references.train
    np.save(tmp_path / "step_1.npy", train[:50])
    np.save(tmp_path / "step_2.npy", np.random.default_rng(0).uniform(-1, 1, (50, 2)).astype(np.float32))
    assert main(["score", str(tmp_path), "--dataset", "gmm2d", "--n", "64", "--dataset-config", "train_size=500",
                 "--dataset-config", "test_size=200", "--metric", "mem_ratio", "--metric", "proximity_auc",
                 "--metric", "fd"]) == 0
    out = capsys.readouterr().out
    assert "mem_ratio (train) vs chance" in out and "proximity_auc (train) vs chance" in out
    assert "fd (test) ↓" in out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip()[:1].isdigit()}
    assert rows["1"].count("(chance ") == 2 and rows["1"].count(" †") == 2  # copies memorize by both
    assert rows["2"].count("(chance ") == 2 and "†" not in rows["2"]
    assert "† = memorizing" in out


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
    assert err == f"error: {tmp_path / 's.npy'}: NaN or Inf in samples: 128 value(s) in 2 of 20 examples, the first example 3\n"
    assert not results.exists() or not any(results.rglob("*"))


def test_every_step_file_is_checked_before_scoring(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "step_10.npy", rng.uniform(-1, 1, (50, 2)).astype(np.float32))
    np.save(tmp_path / "step_200.npy", rng.uniform(-1, 1, (1, 2)).astype(np.float32))
    assert main(["score", str(tmp_path), "--dataset", "gmm2d", "--metric", "fd"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no table for step 10 printed before step 200 failed
    assert captured.err == (f"error: {tmp_path / 'step_200.npy'}: step_200.npy holds 1 sample(s); metrics need at "
                            "least 2\n")


def test_samples_far_outside_the_datas_range_are_refused_with_the_fix(tmp_path, capsys):
    """0..255 floats against [-1, 1] data scored fd 1.4e6 and exit 0; the file, the values
    seen, the range and the fix are named, and nothing is written."""
    np.save(tmp_path / "digits_0255.npy", np.random.default_rng(0).uniform(0, 255, (100, 1, 8, 8)).astype("float32"))
    results = tmp_path / "results"
    assert main(["score", str(tmp_path / "digits_0255.npy"), "--dataset", "digits", "--n", "64",
                 "--results", str(results)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert re.match(rf"error: {re.escape(str(tmp_path / 'digits_0255.npy'))}: the samples' values span "
                    r"\[0.02\d*, 255\], far outside the data's value range \[-1, 1\] .*to \[-3, 3\]\); they look "
                    r"like 0..255 pixels: divide by 127.5 and subtract 1", captured.err), captured.err
    assert not results.exists() or not any(results.rglob("*"))


def test_samples_that_overshoot_the_range_a_little_are_scored(tmp_path, capsys):
    samples = np.random.default_rng(0).uniform(-2.9, 2.9, (50, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "s.npy", samples)
    assert main(["score", str(tmp_path / "s.npy"), "--dataset", "digits", "--n", "64", "--metric", "fd"]) == 0
    np.save(tmp_path / "s.npy", samples * 10)  # vectors or images in another scale: rescale them
    assert main(["score", str(tmp_path / "s.npy"), "--dataset", "digits", "--n", "64", "--metric", "fd"]) == 2
    assert "far outside the data's value range [-1, 1]" in capsys.readouterr().err


@pytest.mark.parametrize("save", [
    lambda path, x: np.save(path.with_suffix(".npy"), x),
    lambda path, x: np.save(path.with_suffix(".npy"), x.astype(">f4")),
    lambda path, x: np.save(path.with_suffix(".npy"), np.asfortranarray(x)),
    lambda path, x: np.savez_compressed(path.with_suffix(".npz"), samples=x),
])
def test_a_files_range_is_read_in_chunks_without_nan_or_inf(tmp_path, save):
    from benchbase.sample_files import _finite_bounds, open_source

    x = np.random.default_rng(0).normal(size=(37, 3, 5)).astype(np.float32)
    x[4, 1, 2], x[30, 0, 0] = np.inf, np.nan
    save(tmp_path / "s", x)
    source = open_source(next(tmp_path.glob("s.*")))
    finite = x[np.isfinite(x)]
    for chunk in (6, 4096, 1 << 22):  # 6: items split across reads
        assert _finite_bounds(source, chunk) == (float(finite.min()), float(finite.max()))


def _truncated_npy(folder):
    np.save(folder / "s.npy", np.zeros((200, 2), np.float32))
    data = (folder / "s.npy").read_bytes()
    (folder / "s.npy").write_bytes(data[: len(data) // 2])
    return folder / "s.npy"


def _header_promising_too_much(folder):
    with open(folder / "s.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**11, 2)})
        f.write(b"\0" * 64)
    return folder / "s.npy"


def _truncated_npz_member(folder):
    import zipfile

    with zipfile.ZipFile(folder / "s.npz", "w") as z:
        with z.open("samples.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (200, 2)})
            f.write(b"\0" * 100)
    return folder / "s.npz"


def _structured(folder):
    np.save(folder / "s.npy", np.zeros(200, dtype=[("a", "f4"), ("b", "f4")]))
    return folder / "s.npy"


def _junk_image_in_a_folder(folder):
    images = folder / "images"
    images.mkdir()
    for i in range(4):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(images / f"img_{i}.png")
    (images / "bad.png").write_bytes(b"this is not a png")
    return images


@pytest.mark.parametrize("make,message", [
    (_truncated_npy, r"s.npy: is truncated or damaged: its header promises an array of shape \(200, 2\)"),
    (_header_promising_too_much, r"promises an array of shape \(100000000000, 2\) \(800,000,000,000 bytes\)"),
    (_truncated_npz_member, r"s.npz: is truncated or damaged: .* but it holds 100 bytes of data"),
    (_structured, r"s.npy: holds a structured array"),
    (_junk_image_in_a_folder, r"images/bad.png: not a readable image"),
])
def test_damaged_or_odd_files_exit_2_with_the_file_named(tmp_path, capsys, make, message):
    path = make(tmp_path)
    assert main(["score", str(path), "--dataset", "digits" if path.name == "images" else "gmm2d"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and re.search(message, err) and err.count("\n") == 1, err


def test_big_endian_floats_score_as_little_endian_ones(tmp_path, capsys):
    samples = np.random.default_rng(0).uniform(-1, 1, (60, 2)).astype(np.float32)
    np.save(tmp_path / "little.npy", samples)
    np.save(tmp_path / "big.npy", samples.astype(">f4"))
    scores = []
    for name in ("little", "big"):
        assert main(["score", str(tmp_path / f"{name}.npy"), "--dataset", "gmm2d", "--n", "64", "--metric", "fd",
                     "--json"]) == 0
        scores.append([row["value"] for row in json.loads(capsys.readouterr().out)[0]["rows"]])
    assert scores[0] == scores[1]


@pytest.mark.parametrize("argv,message", [
    (["--n", "-5"], "argument --n: must be at least 1, got -5"),  # would slice from the end
    (["--n", "0"], "argument --n: must be at least 1, got 0"),
    (["--n-test", "-4"], "argument --n-test: must be at least 1"),
    (["--n-samples", "-3"], "argument --n-samples: must be at least 2"),
    (["--n-samples", "500"], "holds 50 samples but --n-samples is 500; lower --n-samples to at most 50"),
    (["--seed", "-1"], "argument --seed: must be at least 0"),
    (["--seed", str(2 ** 64 + 1)], "argument --seed: seeds are whole numbers from 0 to 2^63-1 (got "
                                   "18446744073709551617)"),  # as a suite's seeds
    (["--seed", str(2 ** 63)], "seeds are whole numbers from 0 to 2^63-1"),
    (["--step", "x"], "argument --step: expected a whole number, got 'x'"),
    (["--device", "gpu"], "unknown device 'gpu'; valid: cpu, cuda, cuda:N, auto"),
    (["--subset", "split=5"], "split must look like 'k of K'"),
    (["--results", "{file}"], "is a file; name a results directory"),
    (["--n", "1"], "the train set holds 1 point(s), too few for metric(s) 'mem_ratio' (2), 'fd' (2)"),
    (["--n-test", "1"], "the test set holds 1 point(s), too few for metric(s) 'fd' (2)"),
    (["--metric", "precision", "--n-samples", "3"], "the samples set holds 3 point(s), too few for metric(s) "
                                                    "'precision' (4)"),
    (["--metric", "swd", "--metric-config", "swd.n_projections=-2"], "metrics.swd.config.n_projections: "),
])
def test_bad_options_exit_2_with_one_line(tmp_path, capsys, argv, message):
    np.save(tmp_path / "s.npy", np.zeros((50, 2), np.float32))
    (tmp_path / "a_file").write_text("x")
    argv = [a.replace("{file}", str(tmp_path / "a_file")) for a in argv]
    try:
        code = main(["score", str(tmp_path / "s.npy"), "--dataset", "gmm2d", *argv])
    except SystemExit as exc:  # argparse refuses an option's value itself
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and err.count("\n") == 1, err


def test_seed_and_step_move_what_the_help_says_and_not_swds_directions(tmp_path, capsys):
    """--help said --seed seeds swd, but swd's directions are fixed by swd.seed (so values
    compare across runs); only its subsample of a set over max_points follows --seed."""
    np.save(tmp_path / "s.npy", np.random.default_rng(1).uniform(-1, 1, (120, 2)).astype(np.float32))

    def values(*argv):
        assert main(["score", str(tmp_path / "s.npy"), "--dataset", "gmm2d", "--n", "200", "--metric", "swd",
                     "--metric", "kid", "--json", *argv]) == 0
        return {(r["metric"], r["ref"]): r["value"] for r in json.loads(capsys.readouterr().out)[0]["rows"]
                if r["metric"] in ("swd", "kid")}

    base = values()
    for argv in (["--seed", "1"], ["--step", "5"]):
        moved = values(*argv)
        assert moved[("swd", "test")] == base[("swd", "test")] and moved[("kid", "test")] != base[("kid", "test")]
    assert values("--metric-config", "swd.seed=1")[("swd", "test")] != base[("swd", "test")]
    small = ["--metric-config", "swd.max_points=50"]  # sets over max_points are subsampled from --seed
    assert values(*small)[("swd", "test")] != values(*small, "--seed", "1")[("swd", "test")]
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    assert "fixed by swd.seed" in " ".join(capsys.readouterr().out.split())
