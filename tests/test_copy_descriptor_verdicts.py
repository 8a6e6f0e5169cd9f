"""Disguised memorizers through the whole core on digits (suites/disguised_copies.yaml):
in the copy_descriptor space, fresh data (true_sampler: unseen test-split images) reads
copy_cosine at about the calibrated 1%, and the proportion metrics (copy_cosine,
mem_ratio, authenticity) flag shifted, mirrored, recoloured and combined copies, both
beyond true_sampler's values and by the core's calibrated verdict (each metric against
its measured chance level); cropped, rotated, sheared and blended copies pass them
(strict xfail: they flip when the space sees them). The suite's fourth metric,
fls_overfit, brings cropped and sheared copies into the verdict there, and its fifth,
blend_ratio (which reads data space in every space), 50/50 blends. The descriptor is the two-block trunk fitted for 1500 steps
(tests/support/learned_spaces.py); with the default (three blocks, 3000 steps) the
verdict also flags rotated copies, at 5 of 5 seeds (docs/metrics.md, "Disguised copies").
In pixel space the verdict sees exact copies, recolouring and blends and no geometric
disguise; no metric but blend_ratio sees a blend in the descriptor's space.

Slow: the descriptor fits once per session (tests/conftest.py, learned_space_results).
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchbase.config import load_suite
from benchbase.driver import run_suite
from benchbase.progress import Reporter
from benchbase.store import Store
from support.learned_spaces import TEST_DESCRIPTOR_CONFIG

pytestmark = pytest.mark.slow

SUITE = Path(__file__).resolve().parents[1] / "suites" / "disguised_copies.yaml"
N_SAMPLES = 400  # the suite's eval.n_samples


def run(registry, results_dir: Path, features: str) -> dict:
    """{model label: {metric: value}}, plus under "verdict" {model label: flagged?}: the
    core's calibrated verdict (benchbase.verdicts, the rule leaderboards apply) at step 0."""
    from benchbase.verdicts import CopyRule, copy_onset

    config = TEST_DESCRIPTOR_CONFIG if features == "copy_descriptor" else {}
    entry = "{name: %s, config: {%s}}" % (features, ", ".join(f"{k}: {v}" for k, v in config.items()))
    suite = load_suite(SUITE, ["seeds=[0]", f"eval.features={entry}"], registry=registry)
    assert suite.runs[0].eval.n_samples == N_SAMPLES
    with Store(results_dir) as store:
        result = run_suite(suite, store, registry, reporter=Reporter(quiet=True))
        assert result.ok, result.statuses
        out, verdict = {}, {}
        for run in store.runs(suite=suite.name):
            evals = store.evals(run.run_id)
            out[run.model_label] = {e["metric"]: e["value"] for e in evals}
            onset = copy_onset(evals, CopyRule())
            assert onset is not None, f"{run.model_label}: no memorization metric with a chance level stored"
            verdict[run.model_label] = onset.eval_step == 0
        return {**out, "verdict": verdict}


@pytest.fixture(scope="module")
def values(learned_space_results, tmp_path_factory):
    from benchbase.plugins import PluginPolicy, build_registry

    registry = build_registry(PluginPolicy(entry_points=False, strict=True))
    return {"copy_descriptor": run(registry, learned_space_results, "copy_descriptor"),
            "pixels": run(registry, tmp_path_factory.mktemp("pixels"), "pixels")}


def one_sided_z(p_model: float, p_fresh: float, n: int) -> float:
    """Two-proportion z statistic of model > fresh at equal sample sizes."""
    pooled = (p_model + p_fresh) / 2
    se = math.sqrt(max(pooled * (1 - pooled), 1e-12) * 2 / n)
    return (p_model - p_fresh) / se


def flagged_by(values: dict, label: str) -> list[str]:
    """The metrics that call ``label`` a copier: beyond fresh data (true_sampler, the
    stand-in of each metric's chance level) at one-sided alpha 0.001 split over the
    three metrics (z > 3.4) and by at least 0.01."""
    fresh, seen, out = values["true_sampler"], values[label], []
    for metric, lower in (("copy_cosine", False), ("mem_ratio", False), ("authenticity", True)):
        a, b = seen[metric], fresh[metric]
        if lower:  # the fraction of samples that are not authentic rises
            a, b = 1 - a, 1 - b
        if a - b >= 0.01 and one_sided_z(a, b, N_SAMPLES) > 3.4:
            out.append(metric)
    return out


def test_fresh_data_reads_the_calibrated_false_positive_rate(values):
    v = values["copy_descriptor"]["true_sampler"]
    assert v["copy_cosine"] <= 0.01 + 3 * math.sqrt(0.01 * 0.99 / N_SAMPLES)  # calibrated at 1% on held-back images
    assert 0.5 < v["copy_cosine.tau"] < 1.0
    assert values["copy_descriptor"]["copy_train"]["copy_cosine"] == 1.0


# measured (docs/metrics.md, "Disguised copies"): what the copy_descriptor space catches today
# with the two-block trunk the tests fit (support/learned_spaces.py). CAUGHT and MISSED: by the
# proportion metrics; VERDICT_ALSO: by the verdict through fls_overfit. Rotated copies are left
# out of both: the two-block fit's verdict flags them at 1 of 5 seeds, the default fit's at 5 of 5.
CAUGHT = ["shifted", "mirrored", "recoloured", "combined"]
MISSED = ["cropped", "rotated", "sheared", "blended"]
VERDICT_ALSO = ["cropped", "sheared"]


@pytest.mark.parametrize("label", CAUGHT)
def test_disguises_flagged_in_the_copy_descriptor_space(values, label):
    assert flagged_by(values["copy_descriptor"], label), values["copy_descriptor"][label]


@pytest.mark.parametrize("label", CAUGHT + VERDICT_ALSO + ["copy_train"])
def test_the_calibrated_verdict_flags_the_disguises_it_catches(values, label):
    """Issue 20: judged as the core judges every run (each metric against its measured
    chance level, benchbase.verdicts), not only against true_sampler's values."""
    assert values["copy_descriptor"]["verdict"][label], values["copy_descriptor"][label]


def test_the_calibrated_verdict_passes_fresh_data_in_both_spaces(values):
    assert not values["copy_descriptor"]["verdict"]["true_sampler"], values["copy_descriptor"]["true_sampler"]
    assert not values["pixels"]["verdict"]["true_sampler"], values["pixels"]["true_sampler"]


@pytest.mark.xfail(strict=True, reason="copy_cosine, mem_ratio and authenticity in the descriptor's space do not "
                                       "yet see these disguises at 400 samples (fls_overfit's verdict sees cropped "
                                       "and sheared ones; docs/metrics.md, Disguised copies)")
@pytest.mark.parametrize("label", MISSED)
def test_disguises_the_copy_descriptor_space_misses(values, label):
    assert flagged_by(values["copy_descriptor"], label), values["copy_descriptor"][label]


def test_the_calibrated_verdict_flags_blends_in_the_copy_descriptor_space(values):
    """Through blend_ratio alone: the descriptor places a blend near neither source."""
    blended = values["copy_descriptor"]["blended"]
    assert values["copy_descriptor"]["verdict"]["blended"], blended
    assert not flagged_by(values["copy_descriptor"], "blended"), blended
    assert blended["blend_ratio"] - blended["blend_ratio.chance"] > 0.9, blended
    assert values["copy_descriptor"]["true_sampler"]["blend_ratio"] == 0.0


def test_fls_overfit_is_what_brings_cropped_and_sheared_copies_into_the_verdict(values):
    """Without fls_overfit the verdict would miss them: the proportion metrics do."""
    for label in VERDICT_ALSO:
        assert not flagged_by(values["copy_descriptor"], label), (label, values["copy_descriptor"][label])
        v = values["copy_descriptor"][label]
        assert v["fls_overfit"] - v["fls_overfit.chance"] >= 5, (label, v)


def test_pixel_space_reads_the_geometric_disguises_as_novel(values):
    px = values["pixels"]
    assert flagged_by(px, "copy_train") and not flagged_by(px, "true_sampler")
    assert px["verdict"]["copy_train"]
    for label in ("shifted", "mirrored", "cropped", "rotated", "combined", "sheared", "blended"):
        assert not flagged_by(px, label), (label, px[label])
        if label != "blended":
            assert not px["verdict"][label], (label, px[label])  # the calibrated verdict agrees
    assert px["true_sampler"]["copy_cosine"] > 0.9  # cosine in pixel space: everything is a "copy"


def test_pixel_space_verdict_sees_blends_through_blend_ratio_and_fls_overfit(values):
    """A 50/50 blend is a point between two training images: the proportion metrics pass
    it, blend_ratio finds it on a segment, and fls_overfit's kernels, fitted to the
    training set, favour it."""
    blended = values["pixels"]["blended"]
    assert values["pixels"]["verdict"]["blended"], blended
    assert blended["blend_ratio"] - blended["blend_ratio.chance"] > 0.9, blended
    assert blended["fls_overfit"] - blended["fls_overfit.chance"] >= 5, blended
