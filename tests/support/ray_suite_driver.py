"""Runs a suite on an existing Ray cluster, as ``benchbase run --executor ray`` does,
in a process of its own (the test process never connects to that cluster):

    python tests/support/ray_suite_driver.py JOB.json

``JOB.json``: ``{"suite": {...}, "results": DIR, "executor": {"name": "ray", "config": {...}},
"slot_variants": {label: {config overrides}}}``. Prints ``slots {label: n}`` (how many
runs the executor submits at once on this cluster for each variant of the config),
then the suite's progress lines, then ``result {run id: status}``.
"""
from __future__ import annotations

import json
import sys

import ray
from support.executor_runs import run

from benchbase.progress import Reporter
from benchbase_plugins.executors.ray import RayConfig, RayExecutor


def main(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        job = json.load(f)
    config = job["executor"]["config"]
    ray.init(address=config["address"], log_to_driver=False)  # the executor reuses this connection
    slots = {label: RayExecutor(RayConfig(**{**config, **variant}))._slots(ray)
             for label, variant in job.get("slot_variants", {}).items()}
    print("slots", json.dumps(slots), flush=True)
    _, result = run(job["suite"], job["results"], executor=job["executor"],
                    reporter=Reporter(stream=sys.stdout, tty=False))
    print("result", json.dumps(result.statuses), flush=True)
    ray.shutdown()
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
