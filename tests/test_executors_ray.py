"""The Ray executor on one local Ray cluster (2 CPUs) shared by the whole module:
same numbers as the local executor, a lost worker resumes from its checkpoint, a
run that keeps losing workers fails, a stuck run is stopped at its time limit."""
from __future__ import annotations

import io
import os
import re

import pytest
from support.executor_runs import flow, leaderboard, run, same_numbers, stored_values, suite_of, torch_threads

from benchbase.progress import Reporter
from benchbase.store import Store

ray = pytest.importorskip("ray")

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
SUITE = suite_of(flow(), "vae", "copy_train")
RAY = {"name": "ray", "config": {"num_cpus": 1}}


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    """One local cluster for the module; workers import the test plugins from here."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": TESTS_DIR}})
    yield
    ray.shutdown()


def test_ray_executor_matches_local(tmp_path):
    with torch_threads(1):
        suite, local = run(SUITE, tmp_path / "local")
    _, result = run(SUITE, tmp_path / "ray", executor=RAY)
    assert local.ok and result.ok and len(result.statuses) == 3
    assert same_numbers(stored_values(tmp_path / "ray", suite), stored_values(tmp_path / "local", suite))
    assert leaderboard(tmp_path / "ray", suite.name) == leaderboard(tmp_path / "local", suite.name)
    with Store(tmp_path / "ray") as store:
        assert os.getpid() not in {r.provenance["pid"] for r in store.runs()}


@pytest.mark.slow
def test_lost_worker_is_retried_from_its_last_checkpoint(tmp_path):
    """The worker SIGKILLs itself once at step 30; the retry resumes from the last
    checkpoint that reached the driver and ends with exactly the numbers of a run that
    never died."""
    marker = tmp_path / "fired"
    model = flow(fault="sigkill", at_step=30, once=str(marker), step_sleep=0.05)
    evals = {"schedule": "list", "steps": [10, 20, 40, 60]}
    log = io.StringIO()
    suite, result = run(suite_of(model, eval=evals), tmp_path / "ray", reporter=Reporter(stream=log, tty=False),
                        executor={"name": "ray", "config": {"num_cpus": 1, "max_retries": 1}})
    assert marker.exists(), "the fault fired"
    assert list(result.statuses.values()) == ["done"], log.getvalue()
    # Usually 20; 10 if the step-20 event was still in flight when the worker died.
    assert re.search(r"resuming at step (10|20)\b", log.getvalue()), log.getvalue()
    with torch_threads(1):  # the same spec (marker present: no fault), never interrupted
        run(suite_of(model, eval=evals), tmp_path / "local")
    assert same_numbers(stored_values(tmp_path / "ray", suite), stored_values(tmp_path / "local", suite))


@pytest.mark.slow
def test_run_that_keeps_losing_its_worker_fails_and_the_suite_goes_on(tmp_path):
    models = [flow("dies", fault="sigkill", at_step=5), "copy_train"]
    suite, result = run(suite_of(*models), tmp_path,
                        executor={"name": "ray", "config": {"num_cpus": 1, "max_retries": 1}})
    by_label = {s.model.label: result.statuses[s.run_id] for s in suite.runs}
    assert by_label == {"dies": "failed", "copy_train": "done"}
    with Store(tmp_path) as store:
        failed = store.runs(status="failed")[0]
    assert "on each of 2 attempt(s)" in failed.summary["reason"]


@pytest.mark.slow
def test_time_limit_stops_a_run_stuck_inside_a_step(tmp_path):
    suite, result = run(suite_of(flow("stuck", fault="hang", at_step=1), time_limit=2),
                        tmp_path, executor={"name": "ray", "config": {"num_cpus": 1, "kill_grace": 0.5}})
    assert list(result.statuses.values()) == ["timeout"]
    with Store(tmp_path) as store:
        assert "stuck inside a step" in store.runs()[0].summary["reason"]


class _Cluster:
    """What `_slots` asks of Ray: the cluster's total resources."""

    def __init__(self, **resources):
        self.resources = resources

    def cluster_resources(self):
        return dict(self.resources)


@pytest.mark.parametrize("config,cluster,slots", [
    ({"num_cpus": 1}, {"CPU": 4}, 4),
    ({"num_cpus": 0.5, "num_gpus": 0.25}, {"CPU": 8, "GPU": 2}, 8),  # four runs share each GPU
    ({"num_cpus": 0.5, "num_gpus": 0.5}, {"CPU": 2, "GPU": 2}, 4),
    ({"num_cpus": 1, "num_gpus": 1}, {"CPU": 16, "GPU": 3}, 3),
    ({"num_cpus": 1, "num_gpus": 0.5}, {"CPU": 4}, 1),  # no GPU at all: one run waits for one
    ({"num_cpus": 0.5, "resources": {"TPU": 4}}, {"CPU": 8, "TPU": 8}, 2),
    ({"num_cpus": 1, "max_in_flight": 2}, {"CPU": 64}, 2),
    ({"num_cpus": 0}, {"CPU": 4}, 1),  # nothing reserved: nothing bounds it, one at a time
])
def test_runs_submitted_at_once_follow_the_scarcest_reserved_resource(config, cluster, slots):
    from benchbase_plugins.executors.ray import RayConfig, RayExecutor

    assert RayExecutor(RayConfig(**config))._slots(_Cluster(**cluster)) == slots
