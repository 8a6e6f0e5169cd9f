"""Every registered built-in plugin keeps its contract: the conformance kit over a fresh
registry, so plugins added to BUILTIN_PLUGINS later are covered without touching this
file (a metric that ranks pairs other than (true, noise) declares `conformance`)."""
from __future__ import annotations

import dataclasses

import pytest

from benchbase.errors import BenchbaseInputError, MissingDataError
from benchbase.plugins import PluginPolicy, build_registry
from benchbase.testing import (ContractViolation, check_dataset, check_executor, check_feature_extractor,
                               check_metric, check_model, check_publisher, check_tracker, small_config)

REGISTRY = build_registry(PluginPolicy(entry_points=False, strict=True))

# What built-in metrics must satisfy, from their definitions (shared/design/METRICS.md),
# for as long as their classes do not declare `conformance` themselves (the class
# attribute wins). Pairs are (better, worse) scenarios; the default pair, for
# fidelity metrics, is (true, noise). Names not registered yet are inert.
COPIES_ARE_WORSE = {"pairs": [("true", "copies")]}
METRIC_EXPECTATIONS = {
    "mem_ratio": {"pairs": [("true", "copies")], "identical": 1.0},  # a copy of every point
    "blend_ratio": {"pairs": [("true", "copies")], "identical": 1.0},  # a copy is the blend with t = 1
    "fd": {"identical": 0.0, "tolerance": 1e-9},
    "swd": {"identical": 0.0, "tolerance": 1e-9},
    "precision": {"identical": 1.0},
    "coverage": {"identical": 1.0},
    "recall": {"pairs": [("true", "collapsed")], "identical": 1.0},  # recall rewards spread, even noise
    "vendi": {"pairs": [("true", "collapsed")]},
    **{name: COPIES_ARE_WORSE for name in ("ct_test", "authenticity", "dcr_overfit", "novelty_ratio",
                                           "proximity_auc", "fls_overfit", "heldout_gap", "denoiser_gap",
                                           "memorization_score")},
    # Max cosine to the training set cannot tell fresh samples from copies in the kit's
    # low-dimensional clustered data (both read 1: cosine needs a feature space such as
    # SSCD); what it must do anywhere is flag copies more than data-blind noise.
    "copy_cosine": {"pairs": [("noise", "copies")], "identical": 1.0},
}

# Breaks the kit found in built-ins and that their owners have not fixed yet: the test
# is expected to fail with exactly this clause (strict: it fails again once fixed, so
# the entry gets removed).
KNOWN_BREAKS: dict = {}


def _known_break(kind: str, name: str) -> list:
    clause = KNOWN_BREAKS.get((kind, name))
    return [pytest.mark.xfail(raises=ContractViolation, strict=True,
                              reason=f"known break of clause '{clause}', reported to the owner")] if clause else []


def _entries(kind: str, slow=lambda entry: False) -> list:
    return [pytest.param(r, id=r.name + (f"-{r.framework}" if kind == "model" else ""),
                         marks=([pytest.mark.slow] if slow(r) else []) + _known_break(kind, r.name))
            for r in REGISTRY.all(kind)]


def _model_cases() -> list:
    """Every model on both toys (unless it declares `modalities`). A check builds a dozen
    instances and JAX models compile per instance and input shape (10-100 s per case on
    a 2-core CPU), so JAX cases run with the slow tests (CI runs both)."""
    cases = []
    for r in REGISTRY.all("model"):
        for modality in getattr(r.cls, "modalities", ("vector", "image")):
            slow = r.framework == "jax"
            cases.append(pytest.param(r, modality, id=f"{r.name}-{r.framework}-{modality}",
                                      marks=[pytest.mark.slow] if slow else []))
    return cases


def test_every_kind_has_builtins():
    for kind in ("model", "dataset", "metric", "feature", "publisher", "executor", "tracker"):
        assert REGISTRY.all(kind), f"no built-in {kind} registered"


# small_config shrinks integer knobs; a U-Net's width defaults to "auto" (32 base channels)
# over three levels, so the kit's 8x8 images would meet 128 channels and, for log_prob's
# exact divergence, 64 JVPs of that net per solver call. The contract runs the same code
# on the 2-level U-Net with attention at 4x4 that tests/test_diffusion.py trains.
TINY_UNET = {"width": 8, "channel_mult": [1, 2], "attn_resolutions": [4]}


def _kit_config(cls, modality: str) -> dict:
    config = small_config(cls)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    if modality == "image" and set(TINY_UNET) <= fields:
        config.update(TINY_UNET)
    return config


@pytest.mark.parametrize("entry,modality", _model_cases())
def test_builtin_model_keeps_the_contract(entry, modality):
    report = check_model(entry.cls, dataset=modality, config=_kit_config(entry.cls, modality))
    assert report.checked


def _unless_missing(check, cls, unavailable=MissingDataError, **kwargs):
    """Datasets and weights that live on disk skip on machines without them (executors:
    without their optional dependency)."""
    try:
        check(cls, **kwargs)
    except unavailable as exc:
        pytest.skip(f"not available on this machine: {str(exc).splitlines()[0]}")


def _on_disk_fixture(name: str, folder) -> dict | None:
    """Tiny files in the published formats (tests/support/dataset_files.py), so the real
    parsers of the on-disk datasets meet the contract too; None for other datasets."""
    from support.dataset_files import write_celeba, write_cifar, write_image_folder, write_mnist

    if name in ("mnist", "fashion_mnist"):
        write_mnist(folder / "idx", gz=True)
        return {"root": str(folder / "idx")}
    if name == "cifar10":
        write_cifar(folder / "cifar-10-batches-py")
        return {"root": str(folder)}
    if name == "celeba":
        write_celeba(folder / "celeba")
        return {"root": str(folder), "size": 16}
    if name == "image_folder":
        write_image_folder(folder / "images", size=8)
        return {"root": str(folder / "images"), "size": 8, "test_fraction": 0.25}
    return None


def _smaller(cls) -> dict:
    """Synthetic datasets load three times in a check: cap their split sizes."""
    fields = {f.name: f.default for f in dataclasses.fields(cls.Config)}
    caps = {"train_size": 1000, "test_size": 300}
    return {k: cap for k, cap in caps.items() if isinstance(fields.get(k), int) and fields[k] > cap}


@pytest.mark.parametrize("entry", _entries("dataset"))
def test_builtin_dataset_keeps_the_contract(entry, tmp_path):
    config = _on_disk_fixture(entry.name, tmp_path)
    _unless_missing(check_dataset, entry.cls, config=config if config is not None else _smaller(entry.cls))


@pytest.mark.parametrize("entry", _entries("metric"))
def test_builtin_metric_keeps_the_contract(entry):
    expect = {} if getattr(entry.cls, "conformance", None) else METRIC_EXPECTATIONS.get(entry.name, {})
    try:
        check_metric(entry.cls, **expect)
    except ContractViolation as exc:
        known = KNOWN_BREAKS.get(("metric", entry.name))
        assert known is None or exc.clause == known, f"{exc}\n(the known break is '{known}')"
        raise


@pytest.mark.parametrize("entry", _entries("feature"))
def test_builtin_feature_extractor_keeps_the_contract(entry):
    _unless_missing(check_feature_extractor, entry.cls, config=small_config(entry.cls))


@pytest.mark.parametrize("entry", _entries("publisher"))
def test_builtin_publisher_keeps_the_contract(entry):
    check_publisher(entry.cls)


# Executors other than `local` start processes or clusters: seconds each.
@pytest.mark.parametrize("entry", _entries("executor", slow=lambda r: r.name != "local"))
def test_builtin_executor_keeps_the_contract(entry):
    _unless_missing(check_executor, entry.cls, unavailable=BenchbaseInputError)


# MLflow creates its SQLite store's tables and W&B starts its service: tens of seconds.
@pytest.mark.parametrize("entry", _entries("tracker", slow=lambda r: r.name != "tensorboard"))
def test_builtin_tracker_keeps_the_contract(entry):
    _unless_missing(check_tracker, entry.cls, unavailable=BenchbaseInputError)
