"""What benchbase's training loop costs over a bare hand-written loop.

Trains the rectified-flow MLP on gmm2d, in PyTorch and in JAX, two ways in one process:

  benchbase  ``runner.execute_task`` on a one-run suite with a no-op emit; evaluation
             only after the last step, and excluded (the runner's own ``train_time``,
             measured up to the last step's host sync, before the evaluation);
  bare       the loop one writes by hand: one generator/key, draw indices, index the
             data, call the same model's ``train_step``; timed to the last step's
             result (``block_until_ready`` / a host read of the loss).

Same model config, batch size, steps and data subset. The two alternate ``--repeats``
times (ABBA order, so drift from other processes hits both alike) after one warm-up run
each (imports, JAX compilation: the JAX model compiles once per config and process).
Prints the median steps/s of each and their ratio benchbase / bare (target >= 0.95),
and the same for the best repeat (the least disturbed by other processes).

    python benchmarks/bench_loop_overhead.py [torch jax] [--steps 500] [--repeats 25] [--torch-threads 1]

Many short repeats give stable medians on a shared machine; on a busy small CPU pass
--torch-threads 1 (PyTorch's intra-op threads then stop competing with other processes).

Measured on the 2-core development box under load from other jobs (500 steps x 25):
torch 0.992 (best repeats 1.021), jax 0.972 (0.987). Before benchbase/frameworks.py
compiled the JAX batch draw once per process (it was a jit made inside every run's
drawer, recompiled for every run: about 0.7 s), jax read 0.470.
"""
from __future__ import annotations

import argparse
import statistics
import time

MODEL = {"width": 256, "depth": 3, "sample_steps": 2}
DATASET = {"name": "gmm2d", "n": 1000, "config": {"train_size": 2000, "test_size": 200}}


def make_task(framework: str, steps: int, batch_size: int):
    from benchbase.config import build_suite
    from benchbase.plugins import PluginPolicy, build_registry
    from benchbase.runner import RunTask

    policy = PluginPolicy(entry_points=False)
    registry = build_registry(policy)
    suite = build_suite({
        "name": "bench", "seeds": [0], "device": "cpu", "datasets": [DATASET],
        "models": [{"name": "rectified_flow", "framework": framework, "config": MODEL}],
        "metrics": [{"name": "fd"}],
        "budget": {"batch_size": batch_size, "steps": steps},
        "eval": {"points": 1, "n_samples": 16, "keep_samples": 0},
    }, "<bench>", registry=registry)
    return RunTask(spec=suite.runs[0], policy=policy, registry=registry), registry


def run_benchbase(task) -> float:
    """Seconds of training (the runner's own train_time: evaluation excluded)."""
    from benchbase.runner import Finished, execute_task

    out = {}

    def emit(event) -> None:
        if isinstance(event, Finished):
            out.update(event.summary, status=event.status, error=event.error)

    execute_task(task, emit)
    if out.get("status") != "done":
        raise RuntimeError(out.get("error"))
    return float(out["train_time"])


def bare_torch(registry, steps: int, batch_size: int):
    import torch

    from benchbase.contracts import Batch, TrainData
    from benchbase.data import DataCatalog, select_subset

    x, spec = _data(registry, DataCatalog, select_subset)
    reg = registry.get("model", "rectified_flow", "torch")
    model = reg.cls(reg.cls.Config(**MODEL))
    xt = torch.from_numpy(x)
    data = TrainData(x=xt, y=None, spec=spec, device=torch.device("cpu"), x_numpy=x, sample_fresh=None)

    def run() -> float:
        state = model.init(data, 0)
        gen = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        for _ in range(steps):
            idx = torch.randint(len(xt), (batch_size,), generator=gen)
            state, logs = model.train_step(state, Batch(xt[idx]), gen)
        float(logs["loss"])  # the last step's result on the host, as the runner's final check
        return time.perf_counter() - t0

    return run


def bare_jax(registry, steps: int, batch_size: int):
    import jax

    from benchbase.contracts import Batch, TrainData
    from benchbase.data import DataCatalog, select_subset

    x_np, spec = _data(registry, DataCatalog, select_subset)
    reg = registry.get("model", "rectified_flow", "jax")
    model = reg.cls(reg.cls.Config(**MODEL))
    device = jax.devices("cpu")[0]
    x = jax.device_put(x_np, device)
    data = TrainData(x=x, y=None, spec=spec, device=device, x_numpy=x_np, sample_fresh=None)

    @jax.jit
    def draw(key):
        key, k_idx, k_step = jax.random.split(key, 3)
        return key, Batch(x[jax.random.randint(k_idx, (batch_size,), 0, len(x_np))]), k_step

    def run() -> float:
        state = model.init(data, 0)
        key = jax.random.PRNGKey(0)
        t0 = time.perf_counter()
        for _ in range(steps):
            key, batch, k_step = draw(key)
            state, logs = model.train_step(state, batch, k_step)
        jax.block_until_ready((state, logs))
        return time.perf_counter() - t0

    return run


def _data(registry, DataCatalog, select_subset):
    from benchbase.config import plugin_config

    reg = registry.get("dataset", DATASET["name"])
    cfg, plain = plugin_config(reg, DATASET["config"], "<bench>", "dataset.config")
    _, splits = DataCatalog.shared().load(reg, cfg, plain)
    subset = select_subset(splits, {"n": DATASET["n"], "mode": "first", "seed": 0, "split": None, "dedup": None})
    return subset.x, splits.spec


def bench(framework: str, args) -> float:
    task, registry = make_task(framework, args.steps, args.batch_size)
    bare = (bare_torch if framework == "torch" else bare_jax)(registry, args.steps, args.batch_size)
    contenders = {"benchbase": lambda: run_benchbase(task), "bare": bare}
    for fn in contenders.values():  # warm-up: imports, compilation, caches
        fn()
    times: dict[str, list[float]] = {"benchbase": [], "bare": []}
    for rep in range(args.repeats):
        order = ("benchbase", "bare") if rep % 2 == 0 else ("bare", "benchbase")
        for name in order:
            times[name].append(contenders[name]())
    rate = {name: args.steps / statistics.median(ts) for name, ts in times.items()}
    best = {name: args.steps / min(ts) for name, ts in times.items()}
    ratio = rate["benchbase"] / rate["bare"]
    per_rep = [b / a for a, b in zip(times["benchbase"], times["bare"])]
    print(f"{framework}: rectified_flow MLP {MODEL['width']}x{MODEL['depth']} on gmm2d, batch {args.batch_size}, "
          f"{args.steps} steps x {args.repeats} repeats")
    print(f"  median: benchbase {rate['benchbase']:8.1f} steps/s   bare {rate['bare']:8.1f} steps/s   "
          f"ratio {ratio:.3f}")
    print(f"  best:   benchbase {best['benchbase']:8.1f} steps/s   bare {best['bare']:8.1f} steps/s   "
          f"ratio {best['benchbase'] / best['bare']:.3f}")
    print(f"  ratio per repeat: {', '.join(f'{r:.3f}' for r in per_rep)}")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frameworks", nargs="*", default=["torch", "jax"], help="torch and/or jax (default: both)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    unknown = set(args.frameworks) - {"torch", "jax"}
    if unknown:
        parser.error(f"unknown framework(s) {sorted(unknown)}; choose from torch, jax")
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    ratios = {fw: bench(fw, args) for fw in args.frameworks}
    print("ratios of medians (benchbase / bare, target >= 0.95): "
          + ", ".join(f"{fw} {r:.3f}" for fw, r in ratios.items()))


if __name__ == "__main__":
    main()
