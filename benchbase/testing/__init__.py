"""The conformance kit: checks that a plugin keeps its contract, for plugin authors'
tests and for every built-in plugin in CI.

    from benchbase.testing import check_model

    def test_my_model_keeps_the_contract():
        check_model(MyModel, dataset="vector", config={"width": 32})

Each ``check_*`` raises :class:`ContractViolation` (an ``AssertionError``) naming the
broken clause and how to fix it, and returns a :class:`Report` of the clauses that
hold. Installed as a pytest plugin (entry point ``pytest11``), it also provides the
fixtures in :mod:`benchbase.testing.pytest_plugin`. Guide: docs/writing-plugins.md.
"""
from __future__ import annotations

from typing import Any

from benchbase.testing.common import small_config
from benchbase.testing.datasets import check_dataset
from benchbase.testing.executors import check_executor
from benchbase.testing.features import check_feature_extractor
from benchbase.testing.metrics import check_metric
from benchbase.testing.models import check_model
from benchbase.testing.publishers import check_publisher
from benchbase.testing.runs import SuiteRun, run_suite_quietly
from benchbase.testing.scenarios import SCENARIOS
from benchbase.testing.trackers import check_tracker
from benchbase.testing.toydata import ToyImages, ToyVectors, make_train_data, resolve_dataset
from benchbase.testing.violations import ContractViolation, Report

CHECKS = {"model": check_model, "dataset": check_dataset, "metric": check_metric,
          "feature": check_feature_extractor, "publisher": check_publisher, "executor": check_executor,
          "tracker": check_tracker}


def check(kind: str, cls: Any, **kwargs) -> Report:
    """The check for a plugin of ``kind`` (model, dataset, metric, feature, publisher, executor, tracker)."""
    if kind not in CHECKS:
        raise ValueError(f"no check for kind '{kind}'; kinds: {', '.join(CHECKS)}")
    return CHECKS[kind](cls, **kwargs)


__all__ = ["CHECKS", "SCENARIOS", "ContractViolation", "Report", "SuiteRun", "ToyImages", "ToyVectors",
           "check", "check_dataset", "check_executor", "check_feature_extractor", "check_metric",
           "check_model", "check_publisher", "check_tracker", "make_train_data", "resolve_dataset",
           "run_suite_quietly", "small_config"]
