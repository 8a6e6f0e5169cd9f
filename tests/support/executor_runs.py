"""Shared pieces of the executor and fault tests: a registry that includes the test
plugins, running a suite dict, and the numbers two runs of a suite must agree on."""
from __future__ import annotations

import contextlib
import json


from benchbase.config import build_suite
from benchbase.driver import run_suite
from benchbase.leaderboard import build_tables, table_to_records
from benchbase.plugins import PluginPolicy, build_registry
from benchbase.progress import Reporter
from benchbase.store import Store
from support.suites import tiny_suite

TEST_POLICY = PluginPolicy(entry_points=False, strict=True, extra=("support.faulty_plugins",))


def kit_registry():
    return build_registry(TEST_POLICY)


def flow(label: str = "flow", **config) -> dict:
    """The tiny suite's rectified flow as ``faulty_flow`` (no fault unless configured)."""
    return {"name": "faulty_flow", "label": label,
            "config": {"width": 32, "depth": 2, "sample_steps": 10, **config}}


def suite_of(*models, **overrides) -> dict:
    return tiny_suite(models=list(models), **overrides)


def run(suite_dict: dict, results_dir, executor: dict | None = None, registry=None, reporter=None):
    registry = registry or kit_registry()
    suite = build_suite(suite_dict, "<test>", registry=registry)
    with Store(results_dir) as store:
        result = run_suite(suite, store, registry, reporter=reporter or Reporter(quiet=True),
                           executor=executor)
    return suite, result


def stored_values(results_dir, suite) -> dict:
    """Every stored value of the suite's runs, keyed by (model label, seed, step, metric, ref)."""
    with Store(results_dir) as store:
        return {(s.model.label, s.seed, e["step"], e["metric"], e["ref"]): e["value"]
                for s in suite.runs for e in store.evals(s.run_id)}


def leaderboard(results_dir, suite_name: str) -> str:
    with Store(results_dir) as store:
        tables = build_tables(store, suite=suite_name)
    return json.dumps([table_to_records(t) for t in tables], sort_keys=True, default=str)


def same_numbers(a: dict, b: dict) -> bool:
    """Equal keys and bit-for-bit equal values (NaN equals NaN)."""
    return a.keys() == b.keys() and all(a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in a)


@contextlib.contextmanager
def torch_threads(n: int):
    """Run the in-process (local) reference with the thread count the workers use."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
