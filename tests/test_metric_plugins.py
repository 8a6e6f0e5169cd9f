"""Every built-in metric is registered with its direction (and target), documents
its formula and source, and has its parameters and feature space stored with every
value it produces."""
from __future__ import annotations

import json
import subprocess
import sys

from support.suites import tiny_suite

from benchbase.config import build_suite
from benchbase.driver import run_suite
from benchbase.progress import Reporter
from benchbase.store import Store

EXPECTED = {
    "mem_ratio": ("lower", None), "copy_cosine": ("lower", None), "ct_test": ("target", 0.0),
    "authenticity": ("higher", None), "dcr_overfit": ("target", 0.5), "novelty_ratio": ("target", 1.0),
    "fd": ("lower", None), "kid": ("lower", None), "swd": ("lower", None), "w2_exact": ("lower", None),
    "precision": ("higher", None), "recall": ("higher", None), "density": ("target", 1.0),
    "coverage": ("higher", None), "vendi": ("higher", None), "heldout_gap": ("lower", None),
    "denoiser_gap": ("higher", None), "blend_ratio": ("lower", None),
}


def test_cli_lists_every_metric_with_its_direction():
    out = subprocess.run([sys.executable, "-m", "benchbase.cli", "plugins", "--kind", "metric", "--json"],
                         capture_output=True, text=True, check=True).stdout
    listed = {m["name"]: (m["direction"], m["target"]) for m in json.loads(out)}
    for name, expected in EXPECTED.items():
        assert listed.get(name) == expected, name
    requires = {m["name"]: m["requires"] for m in json.loads(out)}
    assert requires["heldout_gap"] == ["capability:heldout_loss"]
    assert requires["denoiser_gap"] == ["capability:denoise"]


def test_every_metric_documents_formula_and_source(registry):
    for name in EXPECTED:
        doc = registry.get("metric", name).cls.__doc__ or ""
        summary, _, body = doc.strip().partition("\n")
        assert summary and len(body) > 150, name
        assert "=" in body or "~" in body, f"{name}: no formula in the docstring"
        assert any(ch.isdigit() for ch in doc), f"{name}: no source (author year) in the docstring"


def test_params_and_feature_space_are_stored_with_every_value(registry, results_dir):
    metrics = [{"name": "mem_ratio", "config": {"threshold": 0.25, "bootstrap": 10}},
               {"name": "copy_cosine", "config": {"tau": 0.75}}, "precision", "kid"]
    suite = build_suite(tiny_suite(models=["copy_train"], metrics=metrics, eval={"points": 1, "n_samples": 60}),
                        "<test>", registry=registry)
    with Store(results_dir) as store:
        assert run_suite(suite, store, registry, reporter=Reporter(quiet=True)).ok
        rows = store.evals(store.runs()[0].run_id)
    by_metric = {}
    for r in rows:
        by_metric.setdefault(r["metric"].split(".")[0], []).append(r)
    assert {r["params"]["threshold"] for r in by_metric["mem_ratio"]} == {0.25}
    assert {r["params"]["tau"] for r in by_metric["copy_cosine"]} == {0.75}
    assert {r["params"]["k"] for r in by_metric["precision"]} == {3}
    assert {r["params"]["subsets"] for r in by_metric["kid"]} == {100}
    assert {r["feature_space"] for r in rows if not r["metric"].startswith("train/")} == {"pixels"}
    assert {r["ref"] for r in by_metric["precision"]} == {"test", "train"}
