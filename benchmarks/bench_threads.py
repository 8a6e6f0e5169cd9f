"""PyTorch threads per run: one, or one per core? Measured for the built-in models on
an idle and on a busy machine, to choose the local executor's default.

For each model it trains the same run (``runner.execute_task``, the runner's own
``train_time``: evaluation excluded) with ``torch.set_num_threads(1)`` and with one
thread per core, alternating (ABBA) ``--repeats`` times, first with nothing of ours
running beside it (``idle``), then next to one busy-looping process per core
(``busy``: another suite, a notebook, a build). Prints the median examples/s of each
and the ratio all-cores / one-thread per load (> 1: more threads are faster).

    python benchmarks/bench_threads.py [--models flow vae ...] [--repeats 5] [--loads idle busy]

The default models are the torch models of the quickstart and zoo on gmm2d (MLPs, as
the quickstart configures them) and the rectified flow's U-Net on 8x8 digits (the
largest per-step work among the quick suites). JAX models are left out: XLA sizes its
CPU thread pool once per process, before the executor could change it.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_loop_overhead import run_benchbase  # noqa: E402
from check_reproducibility import Load  # noqa: E402

GMM = {"name": "gmm2d", "n": 512}
DIGITS = {"name": "digits", "n": 512}
MLP = {"backbone": "mlp", "width": 256, "depth": 3}
STEPS = 100  # train steps per measurement (a tenth of it for the U-Net)
MODELS = {
    "flow": ({"name": "rectified_flow", "framework": "torch", "config": {**MLP, "sample_steps": 2}}, GMM, STEPS),
    "vae": ({"name": "vae", "framework": "torch", "config": {"backbone": "mlp", "width": 256, "latent_dim": 8}},
            GMM, STEPS),
    "ddpm": ({"name": "ddpm", "framework": "torch", "config": {**MLP, "sample_steps": 2}}, GMM, STEPS),
    "gan": ({"name": "gan", "framework": "torch", "config": {"backbone": "mlp", "width": 256}}, GMM, STEPS),
    "wae_mmd": ({"name": "wae_mmd", "framework": "torch", "config": {"backbone": "mlp", "width": 256}}, GMM, STEPS),
    "flow_unet_digits": ({"name": "rectified_flow", "framework": "torch",
                          "config": {"backbone": "unet", "sample_steps": 2}}, DIGITS, STEPS // 10),
}


def make_task(model: dict, dataset: dict, steps: int):
    from benchbase.config import build_suite
    from benchbase.plugins import PluginPolicy, build_registry
    from benchbase.runner import RunTask

    policy = PluginPolicy(entry_points=False)
    registry = build_registry(policy)
    suite = build_suite({
        "name": "bench_threads", "seeds": [0], "device": "cpu", "datasets": [dataset], "models": [model],
        "metrics": [{"name": "fd"}], "budget": {"batch_size": 128, "steps": steps},
        "eval": {"schedule": "list", "steps": [steps], "n_samples": 16, "keep_samples": 0},
    }, "<bench>", registry=registry)
    return RunTask(spec=suite.runs[0], policy=policy, registry=registry)


def examples_per_s(task, threads: int) -> float:
    import torch

    torch.set_num_threads(threads)
    b = task.spec.budget
    return b["steps"] * b["batch_size"] * b["batches_per_step"] / run_benchbase(task)


def measure(task, cores: int, repeats: int) -> dict[int, float]:
    rates: dict[int, list[float]] = {1: [], cores: []}
    examples_per_s(task, 1)  # warm-up: data, feature cache, first-call costs
    for r in range(repeats):
        order = (1, cores) if r % 2 == 0 else (cores, 1)
        for threads in order:
            rates[threads].append(examples_per_s(task, threads))
    return {t: statistics.median(v) for t, v in rates.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--loads", nargs="+", choices=("idle", "busy"), default=["idle", "busy"])
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1, help="threads for 'all cores'")
    args = ap.parse_args()
    cores = args.cores
    tasks = {name: make_task(*MODELS[name]) for name in args.models}
    results: dict[str, dict[str, dict[int, float]]] = {name: {} for name in tasks}
    for load in args.loads:
        for name, task in tasks.items():
            t0 = time.monotonic()
            if load == "busy":
                with Load(cores):
                    results[name][load] = measure(task, cores, args.repeats)
            else:
                results[name][load] = measure(task, cores, args.repeats)
            r = results[name][load]
            print(f"{name} {load}: 1 thread {r[1]:,.0f} ex/s, {cores} threads {r[cores]:,.0f} ex/s "
                  f"({time.monotonic() - t0:.0f} s; load average {os.getloadavg()[0]:.1f})", flush=True)

    print(f"\nexamples/s, median of {args.repeats} alternating repeats; ratio = {cores} threads / 1 thread "
          f"(> 1: more threads faster); busy = {cores} busy-looping processes beside the run")
    head = "| model |" + "".join(f" {load}: 1 thread | {load}: {cores} threads | {load}: ratio |"
                                 for load in args.loads)
    print(head)
    print("|---|" + "---|---|---|" * len(args.loads))
    for name, by_load in results.items():
        cells = "".join(f" {r[1]:,.0f} | {r[cores]:,.0f} | {r[cores] / r[1]:.2f} |"
                        for r in (by_load[load] for load in args.loads))
        print(f"| {name} |{cells}")


if __name__ == "__main__":
    multiprocessing.freeze_support()
    main()
