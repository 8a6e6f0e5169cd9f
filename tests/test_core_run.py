"""End to end through the core: validate, run, store, resume, leaderboard."""
from __future__ import annotations

import json

import numpy as np
import pytest
from support.suites import tiny_suite

from benchbase.config import build_suite
from benchbase.driver import run_suite
from benchbase.leaderboard import build_tables, table_to_records
from benchbase.progress import Reporter
from benchbase.store import Store


def _run(registry, results_dir, suite_dict, **kw):
    suite = build_suite(suite_dict, "<test>", registry=registry)
    with Store(results_dir) as store:
        result = run_suite(suite, store, registry, reporter=Reporter(quiet=True), **kw)
    return suite, result


def test_tiny_suite_runs_and_ranks(registry, results_dir):
    suite, result = _run(registry, results_dir, tiny_suite())
    assert result.ok and len(result.statuses) == 2
    with Store(results_dir) as store:
        tables = build_tables(store, suite="tiny")
        runs = store.runs(suite="tiny")
        assert {r.status for r in runs} == {"done"}
        flow = next(r for r in runs if r.spec.model.name == "rectified_flow")
        steps = sorted({e["step"] for e in store.evals(flow.run_id)})
        assert steps == list(suite.runs[0].eval.steps) and steps[-1] == 60
        assert flow.summary["examples"] == 60 * 32 and flow.summary["param_count"] > 0
        assert flow.provenance["dataset_content_hash"]
    records = {r["model"]: r for r in table_to_records(tables[0])}
    assert records["copy_train"]["metrics"]["mem_ratio[train]"]["mean"] == 1.0
    assert np.isfinite(records["rectified_flow"]["metrics"]["fd[test]"]["mean"])


def test_rerun_skips_done_runs_and_writes_no_duplicates(registry, results_dir):
    _run(registry, results_dir, tiny_suite())
    with Store(results_dir) as store:
        before = store.counts()
    _, again = _run(registry, results_dir, tiny_suite())
    assert again.planned == 0 and again.skipped == 2
    with Store(results_dir) as store:
        assert store.counts() == before


def test_same_seed_same_numbers(registry, tmp_path):
    a, _ = _run(registry, tmp_path / "a", tiny_suite())
    b, _ = _run(registry, tmp_path / "b", tiny_suite())
    with Store(tmp_path / "a") as sa, Store(tmp_path / "b") as sb:
        for spec in a.runs:
            ea = [(e["step"], e["metric"], e["ref"], e["value"]) for e in sa.evals(spec.run_id)]
            eb = [(e["step"], e["metric"], e["ref"], e["value"]) for e in sb.evals(spec.run_id)]
            assert ea == eb and ea


def test_resume_from_checkpoint_equals_uninterrupted_run(registry, tmp_path):
    """Stop after the first evaluation (as a kill would), resume, compare every value."""
    suite = build_suite(tiny_suite(models=[{"name": "rectified_flow", "framework": "torch",
                                            "config": {"width": 32, "depth": 2, "sample_steps": 10}}]),
                        "<test>", registry=registry)
    with Store(tmp_path / "full") as store:
        run_suite(suite, store, registry, reporter=Reporter(quiet=True))
        full = store.evals(suite.runs[0].run_id)

    class StopAfterFirstEval(BaseException):  # like a kill: nothing in the run may catch it
        pass

    from benchbase import driver

    real_write = Store.write_eval
    calls = {"n": 0}

    def write_then_die(self, *a, **k):
        real_write(self, *a, **k)
        calls["n"] += 1
        if calls["n"] == 1:
            raise StopAfterFirstEval()

    with Store(tmp_path / "cut") as store:
        Store.write_eval = write_then_die
        try:
            with pytest.raises(StopAfterFirstEval):
                driver.run_suite(suite, store, registry, reporter=Reporter(quiet=True))
        finally:
            Store.write_eval = real_write
        ckpt = store.checkpoint(suite.runs[0].run_id)
        assert ckpt is not None and 0 < ckpt.step < 60
        result = driver.run_suite(suite, store, registry, reporter=Reporter(quiet=True))
        assert result.ok
        resumed = store.evals(suite.runs[0].run_id)
    key = lambda e: (e["step"], e["metric"], e["ref"])  # noqa: E731
    assert sorted(map(key, full)) == sorted(map(key, resumed))
    assert {key(e): e["value"] for e in full} == {key(e): e["value"] for e in resumed}


def test_failing_plugin_marks_run_failed_and_suite_continues(registry, results_dir, monkeypatch):
    from benchbase_plugins.models.torch_vae import TorchVAE

    def boom(self, state, batch, key):
        raise RuntimeError("boom in train_step")

    monkeypatch.setattr(TorchVAE, "train_step", boom)
    _, result = _run(registry, results_dir, tiny_suite(models=[{"name": "vae", "framework": "torch"}, "copy_train"]))
    assert sorted(result.statuses.values()) == ["done", "failed"]
    with Store(results_dir) as store:
        failed = store.runs(status="failed")[0]
        assert "boom in train_step" in failed.error and "Traceback" in failed.error


def test_nan_loss_marks_run_diverged(registry, results_dir, monkeypatch):
    import torch

    from benchbase_plugins.models.torch_flow import TorchRectifiedFlow

    real = TorchRectifiedFlow.train_step

    def nan_after_20(self, state, batch, key):
        state, logs = real(self, state, batch, key)
        state.extra = (state.extra or 0) + 1 if isinstance(state.extra, int) or state.extra is None else 1
        if state.extra > 20:
            logs = {"loss": torch.tensor(float("nan"))}
        return state, logs

    monkeypatch.setattr(TorchRectifiedFlow, "train_step", nan_after_20)
    _, result = _run(registry, results_dir, tiny_suite(models=[{"name": "rectified_flow", "framework": "torch"}]))
    assert list(result.statuses.values()) == ["diverged"]
    with Store(results_dir) as store:
        run = store.runs()[0]
        assert run.summary["diverged_at"] >= 21


def test_json_leaderboard_is_a_list_of_rows(registry, results_dir):
    _run(registry, results_dir, tiny_suite())
    from benchbase.plugins import build_registry

    with Store(results_dir) as store:
        tables = build_tables(store)
    text = registry.get("publisher", "json").cls().render(tables)
    rows = json.loads(text)
    assert isinstance(rows, list) and {r["model"] for r in rows} == {"rectified_flow", "copy_train"}
    del build_registry
