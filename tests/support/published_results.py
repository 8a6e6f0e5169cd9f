"""A small run of the quickstart suite, shared by the publishing tests (leaderboard
formats, report site, browser check): built once per test session."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from benchbase import Metric, hookimpl

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "suites" / "quickstart.yaml"
INJECTED = "<script>alert(1)</script>"  # a model label that must show as text everywhere

_built: dict[str, Path] = {}


def small_quickstart() -> dict:
    """suites/quickstart.yaml with its models, datasets, metrics and seeds, shrunk to seconds;
    the copy_train oracle is labelled with markup to prove escaping."""
    suite = OmegaConf.to_container(OmegaConf.load(QUICKSTART))
    for d in suite["datasets"]:
        d["n"] = 64
    models = []
    for m in suite["models"]:
        m = {"name": m} if isinstance(m, str) else m
        if m["name"] == "rectified_flow":
            m["config"].update(width=32, depth=2, sample_steps=4)
        elif m["name"] == "vae":
            m["config"].update(width=32)
        elif m["name"] == "copy_train":
            m["label"] = INJECTED
        models.append(m)
    suite["models"] = models
    suite["budget"] = {"batch_size": 32, "steps": 8}
    suite["eval"].update(points=2, n_samples=64, keep_samples=16)
    suite["device"] = "cpu"
    return suite


def quickstart_results(tmp_path_factory) -> Path:
    """The results directory of the small quickstart run (run once per session)."""
    if "dir" not in _built:
        from benchbase.config import build_suite
        from benchbase.driver import run_suite
        from benchbase.plugins import PluginPolicy, build_registry
        from benchbase.progress import Reporter
        from benchbase.store import Store

        registry = build_registry(PluginPolicy(entry_points=False, strict=True))
        suite = build_suite(small_quickstart(), str(QUICKSTART), registry=registry)
        path = tmp_path_factory.mktemp("quickstart") / "results"
        with Store(path) as store:
            result = run_suite(suite, store, registry, reporter=Reporter(quiet=True))
        assert result.ok, result.failures
        _built["dir"] = path
    return _built["dir"]


def fake_results(path: Path, registry, suite_dict: dict, value, status=None, samples: bool = True,
                 provenance: dict | None = None, chance=None) -> list:
    """Write a store without training: runs of ``suite_dict`` with made-up values.

    ``value(spec, step, metric, ref) -> float | None`` (None: not stored) gives every
    stored number, so tests know the right answer. ``chance(spec, step, metric, ref) ->
    (mean, sd) | None`` adds the chance rows the core stores beside memorization metrics.
    ``status(spec) -> str`` (default done). Samples are drawn near the real training
    subset, whose content hash goes into the provenance as a real run would record it.
    Returns the RunSpecs.
    """
    import numpy as np

    from support.chance_levels import chance_rows

    from benchbase.config import build_suite, plugin_config
    from benchbase.contracts import EvalRow
    from benchbase.data import DataCatalog, select_subset
    from benchbase.store import Store

    suite = build_suite(suite_dict, "<fake>", registry=registry)
    with Store(path) as store:
        store.register_runs(suite.name, suite.runs, {"source": "<fake>", "resolved": suite.resolved,
                                                     "leaderboard": suite.leaderboard})
        for spec in suite.runs:
            reg = registry.get("dataset", spec.dataset.name)
            cfg, _ = plugin_config(reg, spec.dataset.config, "<fake>", "dataset.config")
            _, splits = DataCatalog.shared().load(reg, cfg, spec.dataset.config)
            subset = select_subset(splits, spec.subset)
            store.mark_running(spec.run_id, {
                "run_id": spec.run_id, "versions": {"benchbase": "0.1.0", "numpy": np.__version__},
                "device": "cpu", "git_commit": "0123abc", "dataset_content_hash": subset.content_hash,
                "subset": subset.provenance, "host": "testhost", "platform": "test-platform",
                "plugins": {"model": f"built-in:{spec.model.name}"}, **(provenance or {})})
            rng = np.random.default_rng(spec.seed)
            per_step = spec.budget.examples_per_step
            for step in spec.eval.steps:
                rows = []
                for m in spec.metrics:
                    for ref in m.references:
                        v = value(spec, step, m.name, ref)
                        if v is not None:
                            rows.append(EvalRow(metric=m.name, value=v, ref=ref,
                                                feature_space=spec.eval.features.name))
                        level = chance(spec, step, m.name, ref) if chance else None
                        if v is not None and level is not None:
                            mem = registry.get("metric", m.name).cls
                            rows += chance_rows(m.name, *level, memorizes=mem.memorizes,
                                                min_excess=mem.min_excess, ref=ref)
                keep = None
                if samples:
                    pick = subset.x[rng.integers(0, len(subset.x), 12)]
                    keep = (pick + 0.05 * rng.standard_normal(pick.shape)).astype(np.float32)
                store.write_eval(spec.run_id, step, step * per_step, rows, samples=keep)
            final = status(spec) if status else "done"
            steps = spec.budget.steps if spec.trains else 0
            store.finish_run(spec.run_id, final, {"steps": steps, "examples": steps * per_step,
                                                  "wall_time": 1.5, "param_count": 1234},
                             error="RuntimeError: boom" if final == "failed" else None)
    return suite.runs


class Coverage(Metric):
    """Test metric where higher is better (values come from fake_results)."""

    name = "coverage_test"
    direction = "higher"
    references = ("test",)

    def compute(self, ctx):
        return {self.name: 0.0}


class Calibration(Metric):
    """Test metric with a target value of 0.5."""

    name = "calibration_test"
    direction = "target"
    target = 0.5

    def compute(self, ctx):
        return {self.name: 0.5}


@hookimpl
def benchbase_register_metrics(register):
    register(Coverage)
    register(Calibration)
