"""``check_executor``: an executor runs a suite's tasks wherever it likes, but every run
must finish with the same numbers as in-process, a run that raises must come back
failed without stopping the others, and every event must reach the driver.

The check runs a tiny suite of the kit's own plugins (benchbase.testing.kit_plugins)
through the executor and through a plain in-process loop, and compares the stores.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

from benchbase.testing.common import check_declaration, label, make_config
from benchbase.testing.kit_plugins import KIT_PLUGINS
from benchbase.testing.violations import Checker, Report


def kit_suite(executor: str, executor_config: dict | None = None) -> dict:
    """Two models (the first broken) x two seeds on the kit's vectors, three evaluations each."""
    return {
        "name": "kit_executor_check", "seeds": [0, 1], "device": "cpu",
        "datasets": [{"name": "kit_vectors", "n": 64}],
        "models": [{"name": "kit_mean", "label": "broken", "config": {"fail": True}}, {"name": "kit_mean"}],
        "metrics": ["fd"],
        "budget": {"batch_size": 16, "steps": 20},
        "eval": {"points": 3, "n_samples": 32, "keep_samples": 4},
        "executor": {"name": executor, "config": executor_config or {}},
    }


def _run(registry, suite_dict: dict, directory: Path, executor: dict | None) -> tuple[Any, dict]:
    from benchbase.config import build_suite
    from benchbase.driver import run_suite
    from benchbase.progress import Reporter
    from benchbase.store import Store

    suite = build_suite(suite_dict, "<executor check>", registry=registry)
    with Store(directory) as store:
        result = run_suite(suite, store, registry, reporter=Reporter(quiet=True), executor=executor)
        evals = {s.run_id: sorted((e["step"], e["metric"], e["ref"], e["value"]) for e in store.evals(s.run_id))
                 for s in suite.runs}
        statuses = {s.run_id: (s.model.label, store.status(s.run_id)) for s in suite.runs}
    return result, {"evals": evals, "statuses": statuses}


def check_executor(executor_cls: Any, config: Any = None) -> Report:
    """Check an executor plugin class; raise ContractViolation."""
    from benchbase.plugins import PluginPolicy, Registered, build_registry

    c = Checker(label("executor", executor_cls))
    check_declaration(c, "executor", executor_cls)
    cfg = make_config(c, executor_cls, config)
    plain = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else {}
    registry = build_registry(PluginPolicy(entry_points=False, strict=True, extra=(KIT_PLUGINS,)))
    name = executor_cls.name
    known = registry.components["executor"].get((name,))
    if known is None or known.cls is not executor_cls:  # a class under test need not be installed
        registry.components["executor"][(name,)] = Registered("executor", name, executor_cls, "check", "check")
    with tempfile.TemporaryDirectory(prefix="benchbase-executor-check-") as tmp:
        with c.calling("execute", f"running a 4-run suite through executor '{name}'"):
            result, got = _run(registry, kit_suite(name, plain), Path(tmp) / "executor",
                               {"name": name, "config": plain})
        _, want = _run(registry, kit_suite("local"), Path(tmp) / "reference", {"name": "local", "config": {}})
    c.require(sorted(s for _, s in got["statuses"].values()) == ["done", "done", "failed", "failed"],
              "execute.statuses",
              f"run statuses after execute: {sorted(got['statuses'].values())}; expected the two "
              "'kit_mean' runs done and the two 'broken' runs failed",
              "call work(task, sink) for every task; work catches a plugin's exception and reports the "
              "run failed, so the executor must carry on with the other tasks and deliver every event")
    reasons = [reason for _, reason in result.failures]
    c.require(len(reasons) == 2 and all("told to fail" in r for r in reasons), "execute.failures",
              f"the failed runs report {reasons}; expected the error the broken model raised",
              "deliver the Finished event work() emits for a failed run (its traceback is the reason)")
    c.require(got["evals"] == want["evals"], "execute.same_numbers",
              "the stored evaluations differ from an in-process run of the same suite",
              "deliver every Evaluated event to the sink unchanged and in order; do not reseed, "
              "reorder or drop events in workers")
    return c.report
