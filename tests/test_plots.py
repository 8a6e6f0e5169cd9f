"""`benchbase plot`: every figure is written as PNG and SVG, the tau_mem fit is printed,
and the twin analysis pairs runs that share seed and noise."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from support.suites import tiny_suite
from PIL import Image
from support.dynamics_stores import fake_store

from benchbase.cli import main
from benchbase.config import build_suite
from benchbase.driver import run_suite
from benchbase.derived import load_suite_data
from benchbase.dynamics_report import dynamics_table
from benchbase.plots import write_all
from benchbase.progress import Reporter
from benchbase.store import Store
from benchbase.twins import nearest_cosine, paired_cosine, twin_groups


def _check_figure(path_png, path_svg):
    with Image.open(path_png) as im:
        assert im.size[0] > 300 and im.size[1] > 200
        pixels = np.asarray(im.convert("L"))
    assert pixels.std() > 5  # not a blank canvas
    root = ET.parse(path_svg).getroot()
    assert root.tag.endswith("svg")


def test_plot_command_writes_figures_and_prints_the_fit(registry, tmp_path, capsys):
    suite = fake_store(registry, tmp_path / "res", extra_sweep={"model.width": [16, 32]})
    out = tmp_path / "plots"
    assert main(["plot", "--results", str(tmp_path / "res"), "--suite", suite.name, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("tau_mem vs n") >= 2 and "width=16" in printed and "width=32" in printed
    assert "slope 1.0" in printed or "slope 0.9" in printed
    names = {p.name for p in out.iterdir()}
    for axis in ("step", "normalized"):
        for width in (16, 32):  # one figure per group of runs that differ only in n and seed
            stem = f"{suite.name}.curves_{axis}.rectified_flow_on_gmm2d_width_{width}"
            assert {f"{stem}.png", f"{stem}.svg"} <= names, names
            _check_figure(out / f"{stem}.png", out / f"{stem}.svg")
    _check_figure(out / f"{suite.name}.tau_vs_n.png", out / f"{suite.name}.tau_vs_n.svg")
    _check_figure(out / f"{suite.name}.phase.png", out / f"{suite.name}.phase.svg")
    table = (out / f"{suite.name}.dynamics.md").read_text()
    assert "| rectified_flow (width=16)" in table and "Fits of log tau_mem" in table
    # a 2-D dataset has no images: no sample grids, and no error either
    assert not any(n.startswith(f"{suite.name}.samples") for n in names)


def test_plot_rejects_unknown_suite_and_missing_store(registry, tmp_path, capsys):
    assert main(["plot", "--results", str(tmp_path / "none"), "--suite", "x", "--out", str(tmp_path / "o")]) == 2
    fake_store(registry, tmp_path / "res")
    assert main(["plot", "--results", str(tmp_path / "res"), "--suite", "fkae", "--out", str(tmp_path / "o")]) == 2
    assert "fake" in capsys.readouterr().err


def test_normalized_axis_collapses_curves_that_scale_with_n(registry, tmp_path):
    """In the fake store the onset is at 40 n steps: normalized onsets coincide."""
    suite = fake_store(registry, tmp_path)
    with Store(tmp_path) as store:
        data = load_suite_data(store, suite.name)
    onsets = [r.derived["tau_mem"] * r.derived["norm_factor"] for r in data.runs]
    raw = [r.derived["tau_mem"] for r in data.runs]
    assert np.ptp(np.log(onsets)) < 0.5 < np.ptp(np.log(raw))
    assert "rectified_flow" in dynamics_table(data)


def test_the_dynamics_table_escapes_labels_as_the_leaderboard_does(registry, tmp_path):
    evil = "<img src=x onerror=alert(1)>|x"
    suite = fake_store(registry, tmp_path, ns=(16, 32), points=6, label=evil)
    with Store(tmp_path) as store:
        table = dynamics_table(load_suite_data(store, suite.name))
    assert "<img" not in table and table.count("|x") == table.count("\\|x")  # no bar splits a row
    assert "| &lt;img src=x onerror=alert(1)&gt;\\|x " in table  # the table cell
    assert "- tau_mem vs n, &lt;img src=x onerror=alert(1)&gt;\\|x on gmm2d" in table  # a fit line


def test_paired_and_nearest_cosine_match_a_direct_computation():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 1, 4, 4)), rng.normal(size=(5, 1, 4, 4))
    direct = [np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b)]
    np.testing.assert_allclose(paired_cosine(a, b), direct, atol=1e-12)
    train = rng.normal(size=(50, 1, 4, 4))
    train[7] = a[2] * 3 + 1  # same image up to contrast and offset: similarity 1
    sim, idx = nearest_cosine(a, train, block=16)
    brute = np.array([[np.corrcoef(x.ravel(), t.ravel())[0, 1] for t in train] for x in a])
    np.testing.assert_allclose(sim, brute.max(axis=1), atol=1e-12)
    assert idx[2] == 7 and sim[2] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        paired_cosine(a, b[:3])


def _twin_suite(registry, lr=1e-3, seeds=(0,)):
    return build_suite(tiny_suite(
        name="twins", seeds=list(seeds),
        datasets=[{"name": "digits"}],
        models=[{"name": "rectified_flow", "framework": "torch", "config": {"backbone": "mlp", "width": 32, "depth": 1, "sample_steps": 4, "lr": lr}}],
        metrics=["mem_ratio"], sweep={"n": [8, 16], "subset.split": ["1 of 2", "2 of 2"]},
        budget={"batch_size": 8, "steps": 30}, eval={"points": 2, "n_samples": 12, "keep_samples": 12}),
        "<t>", registry=registry)


def test_twins_share_initialisation_and_sampling_noise(registry, tmp_path):
    """With lr = 0 nothing is learned: twins on disjoint data then sample the very same
    images, which holds only if init and sampling noise depend on the seed alone."""
    suite = _twin_suite(registry, lr=0.0, seeds=(0, 1))
    with Store(tmp_path) as store:
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
        runs = store.runs(suite="twins")
        groups = twin_groups(runs)
        assert len(groups) == 4  # 2 n x 2 seeds, each a pair
        for group in groups:
            a, b = group
            assert a.spec.subset.split == (1, 2) and b.spec.subset.split == (2, 2)
            assert a.seed == b.seed and a.n == b.n
            np.testing.assert_array_equal(store.samples(a.run_id)[1], store.samples(b.run_id)[1])
        derived = store.derived("twins")
        other_seed = {r.seed: r for r in runs if r.n == 8 and r.spec.subset.split == (1, 2)}
        assert not np.array_equal(store.samples(other_seed[0].run_id)[1], store.samples(other_seed[1].run_id)[1])
    for r in runs:
        twin = derived[r.run_id]["twin"]
        assert twin["twin_similarity"] == pytest.approx(1.0)
        assert len(twin["partners"]) == 1 and twin["samples"] == 12
        assert -1 <= twin["nearest_train_similarity"] <= 1


def test_sample_and_twin_figures_for_image_data(registry, tmp_path, capsys):
    suite = _twin_suite(registry)
    with Store(tmp_path / "res") as store:
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
        paths, data = write_all(store, suite.name, tmp_path / "plots", registry=registry)
    names = {p.name for p in paths}
    for stem in ("samples", "twins", "twin_similarity", "curves_step", "curves_normalized", "phase"):
        assert f"twins.{stem}.png" in names and f"twins.{stem}.svg" in names, stem
        _check_figure(tmp_path / "plots" / f"twins.{stem}.png", tmp_path / "plots" / f"twins.{stem}.svg")
    assert all(r.derived["twin"]["twin_similarity"] < 1.0 for r in data.runs)  # trained on different data


@pytest.mark.filterwarnings("error::UserWarning")
def test_oracles_evaluated_once_do_not_break_the_figures(registry, tmp_path):
    """copy_train is evaluated at step 0 only and 'memorizes' there: no curve, no fit point."""
    suite = build_suite(tiny_suite(sweep={"n": [16, 32]}, budget={"batch_size": 16, "steps": 20},
                                   eval={"points": 2, "n_samples": 40}), "<t>", registry=registry)
    with Store(tmp_path / "res") as store:
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
        paths, data = write_all(store, suite.name, tmp_path / "plots", registry=registry)
    oracle = [r for r in data.runs if r.spec.model.name == "copy_train"]
    assert oracle and all(r.derived["censored"] == "left" for r in oracle)
    assert all(f["left_censored"] in ([], [16, 32]) for f in data.fits)
    assert any(p.name.startswith("tiny.curves_step.rectified_flow") for p in paths)
    assert not any("copy_train" in p.name for p in paths)


def test_sample_grids_for_every_group_with_images_even_after_a_vector_group(registry, tmp_path):
    suite = build_suite(tiny_suite(datasets=[{"name": "gmm2d", "n": 64, "config": {"train_size": 500, "test_size": 200}},
                                             {"name": "digits", "n": 64}],
                                   models=["copy_train", {"name": "kde", "config": {"bandwidth": 0.2}}],
                                   metrics=["fd"], eval={"n_samples": 20, "keep_samples": 20}),
                        "<t>", registry=registry)
    with Store(tmp_path / "res") as store:
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
        paths, _ = write_all(store, suite.name, tmp_path / "plots", registry=registry)
    grids = sorted(p.name for p in paths if ".samples" in p.name and p.suffix == ".png")
    assert grids == ["tiny.samples.copy_train_on_digits.png", "tiny.samples.kde_on_digits.png"]
    _check_figure(tmp_path / "plots" / grids[1], tmp_path / "plots" / grids[1].replace(".png", ".svg"))


def test_tau_against_every_swept_axis_and_the_normalizations(registry, tmp_path):
    """Onsets that grow as n x width: each axis gets a panel with one line per value of
    the other axis, the fit through it has both exponents near 1, and the measured
    normalization collapses the curves while the paper's (which ignores width) does not."""
    from benchbase.axis_figures import axis_panels

    fake_store(registry, tmp_path / "res", ns=(16, 32, 64), seeds=(0, 1), extra_sweep={"model.width": [16, 32, 64]},
               budget=40000, points=24)
    out = tmp_path / "plots"
    with Store(tmp_path / "res") as store:
        paths, data = write_all(store, "fake", out)
    panels = axis_panels(data)
    assert [p.axis for p in panels] == ["n", "width"]
    width = panels[1]
    assert [line.fixed for line in width.lines] == [{"n": 16.0}, {"n": 32.0}, {"n": 64.0}]
    for line in width.lines:
        assert line.x == [16.0, 32.0, 64.0] and len(line.seeds) == 6 and not line.censored
        ratios = np.diff(np.log(line.tau)) / np.diff(np.log(line.x))
        assert np.allclose(ratios, 1.0, atol=0.15)  # onset proportional to width, as generated
        fitted = width.fitted(line.fixed, np.array(line.x))
        assert np.allclose(np.log(fitted), np.log(line.tau), atol=0.15)
    assert abs(width.fit.fit.exponent("width").estimate - 1.0) < 0.1
    (comparison,) = [c for c in data.normalizations if c.metric == "relative_gap"]
    assert comparison.spread_measured < comparison.spread_paper
    for stem in ("tau_vs_axes", "normalizations"):
        _check_figure(out / f"fake.{stem}.png", out / f"fake.{stem}.svg")
        assert out / f"fake.{stem}.png" in paths


def test_a_suite_that_sweeps_only_n_gets_no_axis_figures(registry, tmp_path):
    fake_store(registry, tmp_path / "res", ns=(16, 32, 64))
    with Store(tmp_path / "res") as store:
        paths, _ = write_all(store, "fake", tmp_path / "plots")
    assert not any(p.name.startswith(("fake.tau_vs_axes", "fake.normalizations")) for p in paths)
