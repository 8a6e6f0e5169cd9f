"""benchbase sensitivity: detection rates of the memorization metrics against swept
copying levels, the values detected with a given power, and the files it writes."""
from __future__ import annotations

import json

import pytest
from support.suites import tiny_suite

from benchbase.sensitivity import DetectionRate, detected_range, sensitivity, write_all


def curve(rates: list[float], values=(0.0, 0.1, 0.2, 0.5, 1.0), runs: int = 20) -> list[DetectionRate]:
    return [DetectionRate("d", "m", "model", "model.k", v, round(r * runs), runs) for v, r in zip(values, rates)]


def test_detected_range_reads_the_direction_of_the_curve():
    assert detected_range(curve([0.0, 0.1, 0.6, 1.0, 1.0]), 0.95) == "≥ 0.5"
    assert detected_range(curve([1.0, 1.0, 0.95, 0.3, 0.0]), 0.95) == "≤ 0.2"
    assert detected_range(curve([1.0] * 5), 0.95) == "all"
    assert detected_range(curve([0.0] * 5), 0.95) == "none"
    assert detected_range(curve([0.0, 1.0, 0.0, 1.0, 0.0]), 0.95) == "0.1, 0.5"


def test_wilson_interval():
    lo, hi = DetectionRate("d", "m", "x", None, None, 40, 40).interval()
    assert lo == pytest.approx(0.9124, abs=1e-3) and hi == 1.0
    lo, hi = DetectionRate("d", "m", "x", None, None, 0, 40).interval()
    assert lo == 0.0 and hi == pytest.approx(0.0876, abs=1e-3)


def test_a_small_calibration_suite_end_to_end(registry, tmp_path):
    from benchbase.config import build_suite
    from benchbase.driver import run_suite
    from benchbase.progress import Reporter
    from benchbase.store import Store

    data = tiny_suite(models=["partial_copy", "true_sampler"], metrics=["mem_ratio", "proximity_auc", "fd"],
                      sweep={"model.rho": [0.0, 0.5]}, seeds=[0, 1, 2], eval={"points": 1, "n_samples": 100})
    suite = build_suite(data, "<test>", registry=registry)
    with Store(tmp_path / "results") as store:
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
        s = sensitivity(store, "tiny")
    assert s.sample_sizes == [100] and s.seeds == 3
    assert set(s.metrics()) == {"mem_ratio", "proximity_auc"}  # fd has no chance level
    assert s.sweeps() == [("partial_copy", "model.rho")] and s.references() == ["true_sampler"]
    rho = {r.value: r for r in s.curve("gmm2d", "mem_ratio", "partial_copy", "model.rho")}
    assert rho[0.5].detected == 3 and rho[0.0].detected == 0  # half copies are seen, fresh samples not
    assert s.curve("gmm2d", "mem_ratio", "true_sampler", None)[0].detected == 0
    paths = write_all(s, tmp_path / "out", formats=("png",))
    names = {p.name for p in paths}
    assert {"tiny.md", "tiny.json", "tiny.detection_rho.png"} <= names
    text = (tmp_path / "out" / "tiny.md").read_text()
    assert "| mem_ratio | ≥ 0.5 | 0/3 |" in text and "alpha = 0.001" in text
    js = json.loads((tmp_path / "out" / "tiny.json").read_text())
    assert any(d["metric"] == "mem_ratio" and d["summary"] == "≥ 0.5" for d in js["detected_with_power"])


def test_the_command_refuses_a_suite_without_chance_levels(tmp_path, capsys):
    from benchbase.cli import main
    from benchbase.store import Store

    with Store(tmp_path):
        pass
    assert main(["sensitivity", "--results", str(tmp_path), "--suite", "nope", "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("argv,message", [
    (["--out", "{file}"], "error: --out {file}: {file} is a file, not a folder; name a folder"),
    (["--out", "{file}/s"], "error: --out {file}/s: {file} is a file, not a folder; name a folder"),
    (["--alpha", "2"], "error: --alpha 2: must lie in (0, 1)"),
    (["--alpha", "0.01", "--power", "1.5"], "error: --power 1.5: must lie in (0, 1]"),
])
def test_bad_options_exit_2_with_one_line_naming_the_option(tmp_path, capsys, argv, message):
    """An --out that is a file tracebacked (FileExistsError, NotADirectoryError), and the
    range error did not say whether --alpha or --power was wrong."""
    from benchbase.cli import main
    from benchbase.store import Store

    with Store(tmp_path / "results"):
        pass
    (tmp_path / "afile").write_text("x")
    argv = [a.replace("{file}", str(tmp_path / "afile")) for a in ["--out", str(tmp_path / "o"), *argv]]
    assert main(["sensitivity", "--results", str(tmp_path / "results"), "--suite", "tiny", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message.replace("{file}", str(tmp_path / "afile"))) and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_the_markdown_escapes_labels_as_the_leaderboard_does():
    from benchbase.sensitivity import Sensitivity, markdown

    evil, data = "<img src=x onerror=alert(1)>", "g<i>2d</i>|d"
    rates = [DetectionRate(data, "mem_ratio", evil, "model.rho", v, 1, 2) for v in (0.0, 0.5)]
    rates.append(DetectionRate(data, "mem_ratio", "true|sampler", None, None, 0, 2))
    text = markdown(Sensitivity("s", 0.001, 0.95, [100], 2, rates))
    assert "<img" not in text and "<i>" not in text
    assert "## g&lt;i&gt;2d&lt;/i&gt;\\|d" in text and "**g&lt;i&gt;2d&lt;/i&gt;\\|d**" in text
    assert "| &lt;img src=x onerror=alert(1)&gt;: rho detected | true\\|sampler: flagged |" in text
    assert "## Detection rate against rho (&lt;img src=x onerror=alert(1)&gt;)" in text
