"""What a real two-node Ray cluster costs a benchbase suite (issue 17): the time to
start the cluster on this machine, and the overhead per run over the in-process
``local`` executor.

Starts ``ray start --head`` and a second node (tests/support/ray_cluster.py: one CPU and one
declared GPU each), connects this process as the driver, and runs the same suite of
``--runs`` tiny rectified-flow runs (seeds 0..N-1) three ways, one run at a time
(``max_in_flight: 1``), so that a suite's wall time is the sum of its runs' own time
and their overhead:

  local      in this process;
  ray cpu    Ray tasks reserving 1 CPU: Ray reuses warm worker processes;
  ray gpu    Ray tasks reserving half a (declared) GPU: a fresh worker process per
             run, as benchbase does on GPUs so that a run's GPU memory is freed.

Overhead per run = (suite wall time - the runs' own wall times) / runs, where a run's
own wall time is what the runner records (set-up, training and evaluation inside
``execute_task``); what is left is starting or reusing a worker, shipping the task,
and streaming the events back to the driver's store. The set-up part of a run's own
time (before training: plugins, PyTorch and data loaded in the worker) is shown too:
a fresh worker pays it in full. The three ways alternate
``--repeats`` times (median shown). Stops the cluster by its own process ids.

    python benchmarks/bench_ray_cluster.py [--runs 4] [--steps 200] [--repeats 2]

Measured on the 2-core development box under load from other jobs (load average
about 20): see docs/scaling.md, "What was measured".
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the cluster helper the tests use


def suite_dict(runs: int, steps: int) -> dict:
    from support.suites import tiny_suite

    return tiny_suite(name="bench_ray", seeds=list(range(runs)), budget={"batch_size": 32, "steps": steps})


def run_once(suite, registry, results: Path, executor: dict | None) -> tuple[float, float, float]:
    """Seconds: the suite's wall time, the sum of the runs' own wall times, and the part
    of those spent before training (loading plugins and data in the worker)."""
    from benchbase.driver import run_suite
    from benchbase.progress import Reporter
    from benchbase.store import Store

    with Store(results) as store:
        t0 = time.monotonic()
        result = run_suite(suite, store, registry, reporter=Reporter(quiet=True), executor=executor)
        wall = time.monotonic() - t0
        assert result.ok, result.failures
        summaries = [r.summary for r in store.runs(suite=suite.name)]
    own = sum(s["wall_time"] for s in summaries)
    return wall, own, own - sum(s["train_time"] + s["eval_time"] for s in summaries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import ray
    import torch
    from support.ray_cluster import LocalCluster

    from benchbase.config import build_suite
    from benchbase.plugins import PluginPolicy, build_registry

    torch.set_num_threads(1)  # as the Ray workers (1 CPU each)
    os.environ["RAY_AUTH_MODE"] = "disabled"
    registry = build_registry(PluginPolicy(entry_points=False))
    suite = build_suite(suite_dict(args.runs, args.steps), "<bench>", registry=registry)
    cluster = LocalCluster(env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    try:
        t0 = time.monotonic()
        head = cluster.start_head(num_cpus=1, num_gpus=1, resources={})
        worker = cluster.add_node("worker", num_cpus=1, num_gpus=1, resources={})
        up = time.monotonic() - t0
        t1 = time.monotonic()
        ray.init(address=cluster.address, log_to_driver=False)
        connect = time.monotonic() - t1
        print(f"cluster: head up in {head.started_s:.1f}s ({head.attempts} start(s)), second node in "
              f"{worker.started_s:.1f}s ({worker.attempts}); both {up:.1f}s; driver connects in {connect:.1f}s")
        ways = {
            "local": None,
            "ray cpu": {"name": "ray", "config": {"num_cpus": 1, "max_in_flight": 1}},
            "ray gpu": {"name": "ray", "config": {"num_cpus": 1, "num_gpus": 0.5, "max_in_flight": 1}},
        }
        overhead: dict[str, list[float]] = {w: [] for w in ways}
        own: dict[str, list[float]] = {w: [] for w in ways}
        setup: dict[str, list[float]] = {w: [] for w in ways}
        with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
            for rep in range(args.repeats):
                order = list(ways) if rep % 2 == 0 else list(reversed(ways))
                for way in order:
                    wall, runs_own, runs_setup = run_once(suite, registry, Path(tmp) / f"{way}-{rep}", ways[way])
                    overhead[way].append((wall - runs_own) / args.runs)
                    own[way].append(runs_own / args.runs)
                    setup[way].append(runs_setup / args.runs)
                    print(f"  repeat {rep + 1} {way:8s} suite {wall:6.1f}s  per run: own {runs_own / args.runs:5.1f}s "
                          f"(set-up {runs_setup / args.runs:4.1f}s), overhead {(wall - runs_own) / args.runs:5.2f}s",
                          flush=True)
        print(f"per run (median of {args.repeats}), {args.runs} runs of {args.steps} steps:")
        for way in ways:
            print(f"  {way:8s} own {statistics.median(own[way]):5.1f}s (set-up {statistics.median(setup[way]):4.1f}s)"
                  f"  overhead {statistics.median(overhead[way]):5.2f}s")
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.stop()


if __name__ == "__main__":
    main()
