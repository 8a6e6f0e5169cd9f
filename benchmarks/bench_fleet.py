"""What fleet training buys a sweep: 16 runs one after another versus as fleets (issue 16).

The ``memorization_transition`` model (rectified flow, 3 x 256 SiLU MLP, Adam 1e-3,
batch 32, 50 Euler steps per sample) on digits, 4 values of n x 4 seeds = 16 runs of
``--steps`` steps each, evaluations included (the suite's metrics: mem_ratio,
heldout_gap, swd, fd; ``--points`` log-spaced evaluations of ``--samples`` samples).
Two ways, side by side in one process, through benchbase's own code:

  sequential  ``runner.execute_task`` for each run, one after another (the ``local``
              executor, one thread as the suite asks);
  fleets      ``fleet.execute_fleet`` on groups of ``--fleet`` runs (16: one fleet).

A warm-up of each way on a short budget comes first (imports, JAX compilation of
both the single and the vectorized step). Then ``--repeats`` rounds alternate the
two ways (ABBA); the ratio of median wall times is the speed-up. Both ways must
store the same numbers up to floating-point reordering: the largest difference
between them is printed as well.

    python benchmarks/bench_fleet.py [torch jax] [--steps 3000] [--fleet 16] [--repeats 1]

``--throughput K`` measures something else, for GPUs: the training throughput
(examples per second of training time, the runner's own ``train_time``: evaluation
excluded) of one K-member fleet against one run of the same model, both on
``--device``; the issue's target on a GPU is >= 20 for K = 64.

    python benchmarks/bench_fleet.py torch jax --throughput 64 --device cuda --steps 2000

Measured figures: docs/performance.md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "suites" / "memorization_transition.yaml"


def make_tasks(framework: str, steps: int, points: int, samples: int, seeds: int, device: str):
    from benchbase.config import load_suite
    from benchbase.plugins import PluginPolicy, build_registry
    from benchbase.runner import RunTask

    policy = PluginPolicy(entry_points=False)
    registry = build_registry(policy)
    overrides = [f"models.0.framework={framework}", f"budget.steps={steps}", f"eval.points={points}",
                 f"eval.n_samples={samples}", f"seeds=[{','.join(str(s) for s in range(seeds))}]"]
    suite = load_suite(SUITE, overrides, registry=registry, device=device)
    return [RunTask(spec=s, policy=policy, registry=registry) for s in suite.runs]


class Recorder:
    """Collects what the driver would store: every value, and each run's outcome."""

    def __init__(self):
        self.values: dict = {}
        self.status: dict = {}
        self.summaries: dict = {}

    def __call__(self, event) -> None:
        from benchbase.runner import Evaluated, Finished

        if isinstance(event, Evaluated):
            for r in event.rows:
                self.values[(event.run_id, event.step, r.metric, r.ref)] = r.value
        elif isinstance(event, Finished):
            self.status[event.run_id] = event.status
            self.summaries[event.run_id] = event.summary
            if event.status != "done":
                print(f"  run {event.run_id} {event.status}: {event.summary.get('reason')}", file=sys.stderr)


def sequential(tasks) -> Recorder:
    from benchbase.runner import execute_task

    rec = Recorder()
    for task in tasks:
        execute_task(task, rec)
    return rec


def fleets(tasks, size: int) -> Recorder:
    from benchbase.fleet import FleetTask, execute_fleet

    rec = Recorder()
    for i in range(0, len(tasks), size):
        execute_fleet(FleetTask(tasks[i:i + size]), rec)
    return rec


def largest_difference(a: Recorder, b: Recorder) -> tuple[float, float, str]:
    """(largest |a - b|, largest |a - b| / |a|, metric of the latter) over every stored value."""
    if a.values.keys() != b.values.keys():
        raise AssertionError(f"the two ways stored different rows: {len(a.values.keys() ^ b.values.keys())} differ")
    worst_abs, worst_rel, where = 0.0, 0.0, ""
    for key, va in a.values.items():
        d = abs(va - b.values[key])
        worst_abs = max(worst_abs, d)
        rel = d / max(abs(va), 1e-12)
        if rel > worst_rel and abs(va) > 1e-3:
            worst_rel, where = rel, key[2]
    return worst_abs, worst_rel, where


def bench(framework: str, args) -> float:
    warm = make_tasks(framework, 2 * args.fleet, 1, args.samples, args.seeds, args.device)
    fleets(warm, args.fleet)
    sequential(warm[:2])
    tasks = make_tasks(framework, args.steps, args.points, args.samples, args.seeds, args.device)
    ways = {"sequential": lambda: sequential(tasks), "fleets": lambda: fleets(tasks, args.fleet)}
    times: dict[str, list[float]] = {name: [] for name in ways}
    results: dict[str, Recorder] = {}
    for rep in range(args.repeats):
        order = ("sequential", "fleets") if rep % 2 == 0 else ("fleets", "sequential")
        for name in order:
            t0 = time.perf_counter()
            results[name] = ways[name]()
            times[name].append(time.perf_counter() - t0)
            print(f"  {framework} {name}: {times[name][-1]:.1f} s", flush=True)
    for name, rec in results.items():
        bad = {rid: s for rid, s in rec.status.items() if s != "done"}
        if bad or len(rec.status) != len(tasks):
            raise SystemExit(f"{framework} {name}: not every run finished: {bad}")
    abs_d, rel_d, metric = largest_difference(results["sequential"], results["fleets"])
    seq, fl = statistics.median(times["sequential"]), statistics.median(times["fleets"])
    ratio = seq / fl
    n_values = len(results["fleets"].values)
    print(f"{framework}: {len(tasks)} runs x {args.steps} steps, {args.points} evaluations of {args.samples} "
          f"samples each, fleets of {args.fleet}")
    print(f"  wall time: sequential {seq:.1f} s, fleets {fl:.1f} s, ratio {ratio:.2f}")
    print(f"  {n_values} stored values; largest difference {abs_d:.2e} (absolute), "
          f"{rel_d:.2e} (relative, {metric})")
    return ratio


def throughput(framework: str, args) -> float:
    """Training examples per second: one K-member fleet / one run alone."""
    k = args.throughput
    seeds = -(-k // 4)  # 4 values of n
    warm = make_tasks(framework, 5, 1, args.samples, seeds, args.device)[:k]
    fleets(warm, k)
    sequential(warm[:1])
    tasks = make_tasks(framework, args.steps, 1, args.samples, seeds, args.device)[:k]
    rates: dict[str, list[float]] = {"one run": [], "fleet": []}
    for rep in range(args.repeats):
        one = sequential(tasks[:1])
        s = next(iter(one.summaries.values()))
        rates["one run"].append(s["steps"] * tasks[0].spec.budget.examples_per_step / s["train_time"])
        many = fleets(tasks, k)
        if set(many.status.values()) != {"done"}:
            raise SystemExit(f"{framework}: fleet members did not all finish: {many.status}")
        train = max(s["train_time"] for s in many.summaries.values())
        examples = sum(s["steps"] * t.spec.budget.examples_per_step for s, t in zip(many.summaries.values(), tasks))
        rates["fleet"].append(examples / train)
    one, fleet = statistics.median(rates["one run"]), statistics.median(rates["fleet"])
    ratio = fleet / one
    print(f"{framework}: training throughput on {args.device}, {args.steps} steps of batch "
          f"{tasks[0].spec.budget.examples_per_step}: one run {one:,.0f} examples/s, a fleet of {k} "
          f"{fleet:,.0f} examples/s, ratio {ratio:.1f}")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frameworks", nargs="*", default=["torch", "jax"], help="torch and/or jax (default: both)")
    parser.add_argument("--steps", type=int, default=3000, help="training steps per run")
    parser.add_argument("--points", type=int, default=4, help="evaluations per run (log-spaced)")
    parser.add_argument("--samples", type=int, default=500, help="samples per evaluation")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per n (4 values of n)")
    parser.add_argument("--fleet", type=int, default=16, help="runs per fleet")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of both ways (ABBA order)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (the suite's: 1)")
    parser.add_argument("--throughput", type=int, default=0, metavar="K",
                        help="instead: training throughput of one K-member fleet / one run (GPU target: K=64, >= 20)")
    args = parser.parse_args()
    unknown = set(args.frameworks) - {"torch", "jax"}
    if unknown:
        parser.error(f"unknown framework(s) {sorted(unknown)}; choose from torch, jax")
    import torch

    torch.set_num_threads(args.threads)
    if args.throughput:
        ratios = {fw: throughput(fw, args) for fw in args.frameworks}
        print(f"throughput ratios (a fleet of {args.throughput} / one run, GPU target >= 20): "
              + ", ".join(f"{fw} {r:.1f}" for fw, r in ratios.items()))
        return
    ratios = {fw: bench(fw, args) for fw in args.frameworks}
    print("wall-time ratios (sequential / fleets, target >= 3): "
          + ", ".join(f"{fw} {r:.2f}" for fw, r in ratios.items()))


if __name__ == "__main__":
    main()
