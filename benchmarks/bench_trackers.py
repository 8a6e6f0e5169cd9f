"""What experiment trackers cost a suite (issue 17): the same one-run suite without a
tracker and with ``trackers: [tensorboard, mlflow]`` (add W&B with ``--wandb``), run
in this process with the ``local`` executor, interleaved ``--repeats`` times (ABBA
order) after one warm-up each (imports, MLflow creating its SQLite tables).

Trackers work on threads of their own, so the training loop pays only for putting an
event on a queue at each evaluation and for the CPU time the tracker threads take
from it (the GIL, and the machine's cores); the suite's end waits for them to catch
up. Printed per configuration: the median training throughput the runner measures
(examples/s while training), the median suite wall time and the median CPU time of
this process (every thread: training and the trackers'), each with its ratio to no
tracker, and the extra CPU time per evaluation. On a machine shared with other jobs
the first two move by tens of percent from one repeat to the next; CPU time moves
much less, so it is the figure that resolves what a tracker costs. W&B's own service
process (wandb-core) is not in it. The MLflow store is shared by all repeats (its
tables are made once).

    python benchmarks/bench_trackers.py [--steps 2000] [--points 16] [--repeats 4] [--wandb]

Measured on the 2-core development box under load from other jobs: see
docs/trackers.md, "What trackers cost".
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # support.suites.tiny_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--points", type=int, default=16, help="evaluation points per run")
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--wandb", action="store_true", help="also measure [tensorboard, mlflow, wandb]")
    args = parser.parse_args()

    import torch
    from support.suites import tiny_suite

    from benchbase.config import build_suite
    from benchbase.driver import run_suite
    from benchbase.plugins import PluginPolicy, build_registry
    from benchbase.progress import Reporter
    from benchbase.store import Store

    torch.set_num_threads(1)
    registry = build_registry(PluginPolicy(entry_points=False))
    with tempfile.TemporaryDirectory(prefix="bench-trackers-") as tmp:
        mlflow = {"name": "mlflow", "config": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db",
                                               "artifact_location": Path(tmp, "artifacts").as_uri()}}
        ways = {"none": [], "tensorboard+mlflow": ["tensorboard", mlflow]}
        if args.wandb:
            ways["tensorboard+mlflow+wandb"] = ["tensorboard", mlflow, "wandb"]
        suites = {way: build_suite(tiny_suite(
            name="bench_trackers", models=[{"name": "rectified_flow", "framework": "torch",
                                            "config": {"width": 64, "depth": 2, "sample_steps": 10}}],
            budget={"batch_size": 64, "steps": args.steps}, eval={"points": args.points, "n_samples": 200},
            trackers=trackers), "<bench>", registry=registry) for way, trackers in ways.items()}

        def once(way: str, label: str) -> tuple[float, float, float]:
            with Store(Path(tmp) / f"{way}-{label}") as store:
                t0, c0 = time.monotonic(), time.process_time()
                assert run_suite(suites[way], store, registry, reporter=Reporter(quiet=True)).ok
                wall, cpu = time.monotonic() - t0, time.process_time() - c0
                (run,) = store.runs(suite="bench_trackers")
            return run.summary["examples_per_s"], wall, cpu

        for way in ways:
            once(way, "warmup")
        speed: dict[str, list[float]] = {w: [] for w in ways}
        wall: dict[str, list[float]] = {w: [] for w in ways}
        cpu: dict[str, list[float]] = {w: [] for w in ways}
        for rep in range(args.repeats):
            for way in (list(ways) if rep % 2 == 0 else list(reversed(ways))):
                s, w, c = once(way, str(rep))
                speed[way].append(s)
                wall[way].append(w)
                cpu[way].append(c)
                print(f"  repeat {rep + 1} {way:26s} {s:9.0f} ex/s  suite {w:6.1f}s  cpu {c:6.1f}s", flush=True)
    base_s, base_w, base_c = (statistics.median(x["none"]) for x in (speed, wall, cpu))
    print(f"median of {args.repeats} ({args.steps} steps, {args.points} evaluations):")
    for way in ways:
        s, w, c = (statistics.median(x[way]) for x in (speed, wall, cpu))
        per_eval = (c - base_c) / args.points * 1000
        print(f"  {way:26s} {s:9.0f} ex/s ({s / base_s:.3f})  suite {w:6.1f}s ({w / base_w:.3f})  "
              f"cpu {c:6.1f}s ({c / base_c:.3f}, {per_eval:+.0f} ms per evaluation)")


if __name__ == "__main__":
    main()
