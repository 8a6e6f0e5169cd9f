"""Speed of the metric arithmetic, measured side by side in one process.

Prints three ratios:

  knn   blocked-GEMM nearest neighbours with float64 refinement, as a fraction of the
        plain float32 GEMM rate on the same blocks (target >= 0.60);
  fd    scipy.linalg.sqrtm-based Frechet distance time / ours (target >= 5), with both
        values;
  swd   POT's NumPy sliced Wasserstein time / ours (target >= 1), with both values.

Each comparison alternates the two contenders ``--repeats`` times and reports the
median of each, so load from other processes hits both alike. Sizes are printed;
the defaults are the issue's (10k x 50k x 2048 for knn: ~2 TFLOP per pass, about a
minute per repeat on 2 cores; use --knn-ref to shrink it on a busy machine).

    python benchmarks/bench_metrics.py [knn fd swd] [--repeats 3] [--device cpu|cuda]

``--device cuda`` runs knn, its GEMM baseline and swd on the GPU (the device's own
float32 GEMM rate is then the yardstick); fd is float64 LAPACK on the host by design.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def alternate(a, b, repeats: int) -> tuple[list[float], list[float], object, object]:
    ta, tb = [], []
    va = vb = None
    for _ in range(repeats):
        t, va = timed(a)
        ta.append(t)
        t, vb = timed(b)
        tb.append(t)
    return ta, tb, va, vb


def bench_knn(args) -> float:
    import torch

    from benchbase import neighbors

    rng = np.random.default_rng(0)
    n_q, n_r, d = args.knn_query, args.knn_ref, args.knn_dim
    device = neighbors.torch_device(args.device)
    print(f"knn: {n_q} queries x {n_r} reference points x {d} dims, k=2, on {device} "
          f"({torch.get_num_threads()} torch threads)")
    ref = rng.standard_normal((n_r, d), dtype=np.float32)
    query = rng.standard_normal((n_q, d), dtype=np.float32)
    qb, rb = neighbors._blocks(n_q, n_r)
    q_t, r_t = torch.from_numpy(query).to(device), torch.from_numpy(ref).to(device)

    def gemm():
        buf = torch.empty(min(qb, n_q) * rb, device=device)
        for qs in range(0, n_q, qb):
            q = q_t[qs:qs + qb]
            for rs in range(0, n_r, rb):
                r = r_t[rs:rs + rb]
                torch.mm(q, r.T, out=buf[:len(q) * len(r)].view(len(q), len(r)))
        if device.type == "cuda":
            torch.cuda.synchronize()
        return None

    def on_device():  # inputs already where the GEMM's are: the fraction of its rate
        return neighbors.knn(q_t, r_t, k=2, device=str(device))

    def from_host():  # numpy in and out, as the metrics call it: the copy to the device counts
        return neighbors.knn(query, ref, k=2, device=str(device))

    warm_ups = (gemm, on_device) if device.type == "cpu" else (gemm, on_device, from_host)  # one path on a CPU
    for warm_up in warm_ups:  # CUDA context, kernel selection, allocator
        warm_up()
    t_gemm, t_knn, _, _ = alternate(gemm, on_device, args.repeats)
    flops = 2.0 * n_q * n_r * d
    g, k = statistics.median(t_gemm), statistics.median(t_knn)
    ratio = g / k
    print(f"  float32 GEMM alone: {g:.2f} s ({flops / g / 1e9:.1f} GFLOP/s)  runs {_fmt(t_gemm)}")
    print(f"  knn + refinement:   {k:.2f} s ({flops / k / 1e9:.1f} GFLOP/s)  runs {_fmt(t_knn)}")
    if device.type != "cpu":
        t_host = [timed(from_host)[0] for _ in range(args.repeats)]
        h = statistics.median(t_host)
        print(f"  knn from host arrays (copies in and out included): {h:.2f} s "
              f"({flops / h / 1e9:.1f} GFLOP/s)  runs {_fmt(t_host)}")
    print(f"  RATIO knn rate / GEMM rate = {ratio:.2f} (target >= 0.60)")
    return ratio


def bench_fd(args) -> float:
    from scipy import linalg

    from benchbase_plugins.metrics.fidelity import frechet_distance

    rng = np.random.default_rng(1)
    d, n = args.fd_dim, args.fd_samples
    print(f"fd: two {d}x{d} covariances from {n} samples each (float64 LAPACK on the host)")
    x = rng.standard_normal((n, d)) @ (rng.standard_normal((d, d)) / np.sqrt(d))
    y = rng.standard_normal((n, d)) @ (rng.standard_normal((d, d)) / np.sqrt(d)) + 0.1
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)

    def with_sqrtm():  # pytorch-fid's calculate_frechet_distance, written out
        covmean = linalg.sqrtm(s1.dot(s2))
        if not np.isfinite(covmean).all():
            off = np.eye(d) * 1e-6
            covmean = linalg.sqrtm((s1 + off).dot(s2 + off))
        covmean = covmean.real
        diff = mu1 - mu2
        return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))

    t_ref, t_ours, v_ref, v_ours = alternate(with_sqrtm, lambda: frechet_distance(mu1, s1, mu2, s2),
                                             args.repeats)
    r, o = statistics.median(t_ref), statistics.median(t_ours)
    print(f"  scipy sqrtm:  {r:.2f} s  value {v_ref:.10g}  runs {_fmt(t_ref)}")
    print(f"  ours (eigh):  {o:.2f} s  value {v_ours:.10g}  runs {_fmt(t_ours)}")
    print(f"  relative difference {abs(v_ours - v_ref) / abs(v_ref):.2e}")
    print(f"  RATIO sqrtm time / ours = {r / o:.1f} (target >= 5)")
    return r / o


def bench_swd(args) -> float:
    import ot

    from benchbase_plugins.metrics.fidelity import sliced_wasserstein

    rng = np.random.default_rng(2)
    n, d, p = args.swd_points, args.swd_dim, args.swd_projections
    print(f"swd: {n} x {n} points x {d} dims, {p} projections, ours on {args.device}")
    x = rng.standard_normal((n, d))
    y = rng.standard_normal((n, d)) * 1.1 + 0.05
    x32, y32 = x.astype(np.float32), y.astype(np.float32)

    def pot():
        return float(ot.sliced_wasserstein_distance(x, y, n_projections=p, p=2, seed=0))

    def ours():
        return sliced_wasserstein(x32, y32, n_projections=p, p=2, seed=0, device=args.device)

    t_pot, t_ours, v_pot, v_ours = alternate(pot, ours, args.repeats)
    a, b = statistics.median(t_pot), statistics.median(t_ours)
    print(f"  POT numpy:  {a:.3f} s  value {v_pot:.8g}  runs {_fmt(t_pot)}")
    print(f"  ours:       {b:.3f} s  value {v_ours:.8g}  runs {_fmt(t_ours)}")
    print(f"  (same seed, same directions: values agree to {abs(v_pot - v_ours) / v_pot:.1e} relative)")
    print(f"  RATIO POT time / ours = {a / b:.2f} (target >= 1)")
    return a / b


def _fmt(ts: list[float]) -> str:
    return "[" + ", ".join(f"{t:.2f}" for t in ts) + "]"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", nargs="*", help="knn, fd and/or swd (default: all three)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--knn-query", type=int, default=10_000)
    ap.add_argument("--knn-ref", type=int, default=50_000)
    ap.add_argument("--knn-dim", type=int, default=2048)
    ap.add_argument("--fd-dim", type=int, default=2048)
    ap.add_argument("--fd-samples", type=int, default=4096)
    ap.add_argument("--swd-points", type=int, default=2000)
    ap.add_argument("--swd-dim", type=int, default=2048)
    ap.add_argument("--swd-projections", type=int, default=200)
    ap.add_argument("--device", default="cpu", help="cpu or cuda: where knn, its GEMM yardstick and swd run")
    args = ap.parse_args(argv)
    unknown = set(args.which) - {"knn", "fd", "swd"}
    if unknown:
        ap.error(f"unknown benchmark(s) {sorted(unknown)}; choose from knn, fd, swd")
    ratios = {}
    for name in args.which or ["knn", "fd", "swd"]:
        ratios[name] = {"knn": bench_knn, "fd": bench_fd, "swd": bench_swd}[name](args)
        print()
    print("summary: " + "  ".join(f"{k}={v:.2f}" for k, v in ratios.items()))


if __name__ == "__main__":
    main()
