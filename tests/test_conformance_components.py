"""The kit on feature extractors, publishers and executors, the `check` dispatcher, and
the pytest plugin's fixtures (loaded through the pytest11 entry point)."""
from __future__ import annotations

import importlib.metadata
import time

import numpy as np
import pytest

from benchbase import FeatureExtractor, Publisher
from benchbase.testing import ContractViolation, check, check_executor, check_feature_extractor, check_publisher
from benchbase_plugins.executors.local import LocalExecutor
from benchbase_plugins.publishers.tables import Markdown


def broken(clause: str, fn, cls, **kwargs) -> ContractViolation:
    with pytest.raises(ContractViolation) as info:
        fn(cls, **kwargs)
    assert info.value.clause == clause, str(info.value)
    return info.value


class Scaled(FeatureExtractor):
    """Flattened values times two."""

    name = "scaled"

    def embed(self, x):
        return (2 * np.asarray(x, np.float32)).reshape(len(x), -1)


class BatchStandardised(Scaled):
    """Standardises by the statistics of the batch it is given."""

    def embed(self, x):
        f = super().embed(x)
        return ((f - f.mean(0)) / (f.std(0) + 1.0)).astype(np.float32)


class Float64Features(Scaled):
    """float64 out: allowed, the core converts it (as in a run)."""

    def embed(self, x):
        return super().embed(x).astype(np.float64)


class IntegerFeatures(Scaled):
    """Rounded to integers."""

    def embed(self, x):
        return np.rint(super().embed(x)).astype(np.int64)


class UnseededProjection(Scaled):
    """A random projection drawn afresh by every instance."""

    def prepare(self, train, spec, device):
        self.w = np.random.default_rng().normal(size=(spec.dim, 4)).astype(np.float32)

    def embed(self, x):
        return x.reshape(len(x), -1) @ self.w


def test_a_good_feature_extractor_passes():
    assert "embed.per_example" in check_feature_extractor(Scaled).checked
    assert "embed.dtype" in check_feature_extractor(Float64Features).checked


@pytest.mark.parametrize("cls,clause", [(BatchStandardised, "embed.per_example"),
                                        (IntegerFeatures, "embed.dtype"),
                                        (UnseededProjection, "prepare.deterministic")])
def test_broken_feature_extractors_are_caught(cls, clause):
    broken(clause, check_feature_extractor, cls)


class RawMarkdown(Markdown):
    """Markdown that pastes labels as they are."""

    def render(self, tables):
        return "\n".join(f"| {r.label} |" for t in tables for r in t.rows) + "\n"


class SortsInPlace(Markdown):
    """Sorts the rows of the tables it was handed."""

    def render(self, tables):
        for t in tables:
            t.rows.sort(key=lambda r: r.model)
        return super().render(tables)


class Stamped(Markdown):
    """Adds the time of rendering."""

    def render(self, tables):
        return super().render(tables) + f"\n_rendered {time.perf_counter_ns()}_\n"


class Listing(Publisher):
    """Returns a list of lines."""

    name = "listing"

    def render(self, tables):
        return ["a"]


@pytest.mark.parametrize("cls,clause", [(RawMarkdown, "escaping"), (SortsInPlace, "render.read_only"),
                                        (Stamped, "render.deterministic"), (Listing, "render.str")])
def test_broken_publishers_are_caught(cls, clause):
    broken(clause, check_publisher, cls)


class StopsAtFirstFailure(LocalExecutor):
    """Gives up on the suite when one run fails."""

    name = "stops"

    def execute(self, tasks, work, sink):
        for task in tasks:
            if work(task, sink) != "done":
                return


class DropsEvaluations(LocalExecutor):
    """Forwards every event but the first evaluation of each run."""

    name = "drops"

    def execute(self, tasks, work, sink):
        from benchbase.runner import Evaluated

        seen = set()

        def forward(event):
            if isinstance(event, Evaluated) and event.run_id not in seen:
                seen.add(event.run_id)
                return
            sink(event)

        for task in tasks:
            work(task, forward)


# A run whose evaluations never reached the store is recorded failed, not done with holes:
# dropped evaluations show as wrong statuses.
@pytest.mark.parametrize("cls,clause", [(StopsAtFirstFailure, "execute.statuses"),
                                        (DropsEvaluations, "execute.statuses")])
def test_broken_executors_are_caught(cls, clause):
    broken(clause, check_executor, cls)


def test_check_dispatches_by_kind():
    assert check("publisher", Markdown).checked
    with pytest.raises(ValueError, match="kinds: model"):
        check("widget", Markdown)


def test_the_pytest_plugin_is_installed_as_an_entry_point():
    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    assert eps.get("benchbase") == "benchbase.testing.pytest_plugin", (
        "benchbase's pytest11 entry point is missing: reinstall with `pip install -e .`")


def test_registry_fixture_is_fresh_and_strict(benchbase_registry, registry):
    assert benchbase_registry is not registry and benchbase_registry.policy.strict
    assert set(registry.names("model")) <= set(benchbase_registry.names("model"))


def test_run_fixture_runs_a_suite_and_returns_leaderboard_rows(benchbase_run):
    from support.suites import tiny_suite

    outcome = benchbase_run(tiny_suite(models=["copy_train"], metrics=["mem_ratio"]))
    assert outcome.result.ok
    assert [r["model"] for r in outcome.rows] == ["copy_train"]
    assert outcome.rows[0]["metrics"]["mem_ratio[train]"]["mean"] == 1.0


def test_make_train_data_is_what_init_receives():
    from benchbase.testing import make_train_data

    data = make_train_data("numpy", "image", n=10)
    assert data.x.shape == (10, 1, 8, 8) and data.y.shape == (10,) and data.spec.num_classes == 2
    assert data.fresh_source == "test_split"
