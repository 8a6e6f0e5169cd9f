"""CPU cost of one evaluation of each memorization/novelty metric at the sizes of
suites/metric_calibration.yaml (250 training points, 250 test points, 500 samples), in
pixel space of 2, 64 and 256 dimensions (gmm2d, digits, 16x16 C^alpha): fls_overfit
against the seven others together, since it is most of that suite's cost.

Samples are half noisy copies, half fresh points. The metrics are timed in turns,
``--repeats`` rounds, one PyTorch thread (as the suite runs), CPU time of this process
(``time.process_time``), so load from other processes inflates every metric alike;
the median per metric and its ratio to the sum of the others are printed.

    python benchmarks/bench_calibration_cost.py [--repeats 5] [--dims 2 64 256]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

CHEAP_METRICS = ["mem_ratio", "copy_cosine", "authenticity", "dcr_overfit", "novelty_ratio", "proximity_auc",
                 "ct_test"]
COSTLY_METRIC = "fls_overfit"


def context(dim: int, seed: int = 0):
    from benchbase.contracts import DataSpec, EvalContext

    rng = np.random.default_rng(seed)
    train = rng.standard_normal((250, dim)).astype(np.float32)
    test = rng.standard_normal((250, dim)).astype(np.float32)
    gen = np.concatenate([train + 0.3 * rng.standard_normal(train.shape),
                          rng.standard_normal((250, dim))]).astype(np.float32)
    return EvalContext(gen=gen, train=train, test=test, samples=gen, train_data=train, test_data=test,
                       spec=DataSpec(shape=(dim,)), feature_space="pixels", step=1, seed=seed, device="cpu",
                       ref=train, ref_name="train")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 64, 256])
    args = ap.parse_args()

    import torch

    from benchbase.plugins import PluginPolicy, build_registry
    from benchbase.structured import plugin_config

    torch.set_num_threads(1)
    registry = build_registry(PluginPolicy(entry_points=False))
    names = CHEAP_METRICS + [COSTLY_METRIC]
    metrics = {}
    for name in names:
        reg = registry.get("metric", name)
        cfg, _ = plugin_config(reg, {}, "<benchmark>", f"metrics.{name}")
        metrics[name] = reg.cls(cfg)
    for dim in args.dims:
        ctx = context(dim)
        times: dict[str, list[float]] = {n: [] for n in names}
        for name in names:  # warm-up
            metrics[name].compute(ctx)
        for _ in range(args.repeats):
            for name in names:
                t0 = time.process_time()
                metrics[name].compute(ctx)
                times[name].append(time.process_time() - t0)
        med = {n: statistics.median(t) for n, t in times.items()}
        others = sum(med[n] for n in CHEAP_METRICS)
        print(f"dim {dim}: " + ", ".join(f"{n} {med[n] * 1e3:.1f} ms" for n in CHEAP_METRICS))
        print(f"dim {dim}: the {len(CHEAP_METRICS)} other metrics together {others:.3f} s CPU per evaluation; "
              f"{COSTLY_METRIC} {med[COSTLY_METRIC]:.3f} s = {med[COSTLY_METRIC] / others:.1f}x them "
              f"(median of {args.repeats})")


if __name__ == "__main__":
    main()
