"""Same command, same numbers? Runs one suite several times under different thread
counts, machine loads and numerics settings, each in a fresh ``benchbase run``
process and results directory, and compares every stored value bit for bit.

A condition is ``THREADS:LOAD[:KEY=VALUE,...]``: the local executor's thread count,
the load (``idle``: nothing of ours besides the run; ``busy``: one busy-looping
process per core next to it) and extra environment for the run, e.g.
``1:idle:ATEN_CPU_CAPABILITY=default`` (PyTorch's kernels for a CPU without AVX2, as
on another machine). Each condition runs ``--repeats`` times, interleaved. For every
run of the suite (model, dataset, seed) it prints a fingerprint of all its stored
values (every metric at every evaluation step, and the stored samples) per condition,
which conditions agree bit for bit, and where two first differ.

``--ops`` instead checks single PyTorch operations at the sizes these models use, in
fresh processes, under each thread count and numerics setting: which of them give
other bits when the threads or the CPU's instruction set change.

    python benchmarks/check_reproducibility.py [--suite suites/quickstart.yaml]
        [--datasets gmm2d] [--models rectified_flow vae] [--framework jax] [--steps 1000] [--repeats 2]
        [--conditions 1:idle 1:busy 2:idle 2:busy] [--out DIR] [--json FILE]
    python benchmarks/check_reproducibility.py --ops

Defaults reproduce issue 19's report: the quickstart's vae and rectified_flow on gmm2d
(PyTorch; ``--framework jax`` runs their JAX twins).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import yaml

BENCHBASE = shutil.which("benchbase", path=os.path.dirname(sys.executable)) or "benchbase"


def _spin() -> None:
    while True:
        pass


class Load:
    """One busy-looping process per core while the block runs."""

    def __init__(self, processes: int):
        self.n, self.procs = processes, []

    def __enter__(self):
        ctx = multiprocessing.get_context("spawn")
        self.procs = [ctx.Process(target=_spin, daemon=True) for _ in range(self.n)]
        for p in self.procs:
            p.start()
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.join()


def derived_suite(path: Path, datasets: list[str], models: list[str], steps: int | None, out: Path,
                  framework: str | None = None) -> Path:
    suite = yaml.safe_load(path.read_text())
    suite["datasets"] = [d for d in suite["datasets"] if (d if isinstance(d, str) else d["name"]) in datasets]
    suite["models"] = [m for m in suite["models"] if (m if isinstance(m, str) else m["name"]) in models]
    if framework:
        suite["models"] = [{**({"name": m} if isinstance(m, str) else m), "framework": framework}
                           for m in suite["models"]]
    if steps:
        suite["budget"] = {"batch_size": suite["budget"].get("batch_size", 128), "steps": steps}
    target = out / "suite.yaml"
    target.write_text(yaml.safe_dump(suite, sort_keys=False))
    return target


def run_once(suite: Path, results: Path, threads: int, extra_env: dict) -> float:
    env = {**os.environ, **extra_env}
    t0 = time.monotonic()
    proc = subprocess.run([BENCHBASE, "run", str(suite), f"executor.config.threads={threads}",
                           "--executor", "local", "--results", str(results), "--quiet"],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"benchbase run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return time.monotonic() - t0


def fingerprints(results: Path) -> dict[str, dict]:
    """run title -> {digest, values: {(step, metric, ref): value}, samples digest}."""
    conn = sqlite3.connect(results / "benchbase.sqlite")
    out = {}
    for run_id, label, dataset, seed, summary in conn.execute(
            "SELECT run_id, model_label, dataset_label, seed, summary FROM runs"):
        values = {(s, m, r): v for s, m, r, v in conn.execute(
            "SELECT step, metric, ref, value FROM evals WHERE run_id=? ORDER BY step, metric, ref", (run_id,))}
        h = hashlib.sha256()
        for key, v in sorted(values.items()):
            h.update(repr((key, v)).encode())
        for step, blob in conn.execute("SELECT step, data FROM samples WHERE run_id=? ORDER BY step", (run_id,)):
            h.update(str(step).encode())
            h.update(blob)
        out[f"{label} · {dataset} · seed {seed}"] = {
            "digest": h.hexdigest()[:12], "values": values,
            "examples_per_s": json.loads(summary or "{}").get("examples_per_s")}
    conn.close()
    return out


def first_difference(a: dict, b: dict) -> str:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            step, metric, ref = key
            return f"step {step} {metric}[{ref}]: {a.get(key)!r} vs {b.get(key)!r}"
    return "values equal (samples differ)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default="suites/quickstart.yaml")
    ap.add_argument("--datasets", nargs="+", default=["gmm2d"])
    ap.add_argument("--models", nargs="+", default=["rectified_flow", "vae"])
    ap.add_argument("--framework", default=None, help="run the models in this framework (torch, jax)")
    ap.add_argument("--conditions", nargs="+", default=["1:idle", "1:busy", "2:idle", "2:busy"],
                    metavar="THREADS:LOAD[:ENV]")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--ops", action="store_true", help="check single operations instead of a suite")
    ap.add_argument("--steps", type=int, default=None, help="train steps per run (default: the suite's budget)")
    ap.add_argument("--out", default=None, help="keep the results directories here")
    ap.add_argument("--json", default=None, help="write the fingerprints and timings here")
    args = ap.parse_args()
    if args.ops:
        check_ops()
        return

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="benchbase-repro-"))
    out.mkdir(parents=True, exist_ok=True)
    suite = derived_suite(Path(args.suite), args.datasets, args.models, args.steps, out, args.framework)
    cores = os.cpu_count() or 1
    conditions = []
    prints: dict[str, dict[str, dict]] = {}
    for repeat in range(args.repeats):
        for i, text in enumerate(args.conditions):
            threads, load, *env = text.split(":", 2)
            extra_env = dict(e.split("=", 1) for e in env[0].split(",")) if env else {}
            name = f"{text} #{repeat + 1}"
            results = out / f"c{i}-{repeat}"
            shutil.rmtree(results, ignore_errors=True)
            if load == "busy":
                with Load(cores):
                    wall = run_once(suite, results, int(threads), extra_env)
            else:
                wall = run_once(suite, results, int(threads), extra_env)
            prints[name] = fingerprints(results)
            conditions.append(name)
            print(f"{name}: {wall:.1f} s", flush=True)

    titles = sorted({t for p in prints.values() for t in p})
    print(f"\nfingerprints of every stored value ({', '.join(args.models)} on {', '.join(args.datasets)}; "
          f"{cores} cores; load = {cores} busy processes):")
    head = "| condition | " + " | ".join(titles) + " |"
    print(head)
    print("|" + "---|" * (len(titles) + 1))
    for name in conditions:
        print(f"| {name} | " + " | ".join(prints[name].get(t, {}).get("digest", "-") for t in titles) + " |")

    print("\ngroups of conditions that agree bit for bit, per run:")
    summary = {}
    for t in titles:
        groups = defaultdict(list)
        for name in conditions:
            groups[prints[name][t]["digest"]].append(name)
        summary[t] = list(groups.values())
        print(f"  {t}: {len(groups)} distinct result(s)")
        for digest, names in groups.items():
            print(f"    {digest}: {', '.join(names)}")
        reps = list(groups.values())
        for other in reps[1:]:
            print(f"    first difference {reps[0][0]} / {other[0]}: "
                  f"{first_difference(prints[reps[0][0]][t]['values'], prints[other[0]][t]['values'])}")
    by_setting = defaultdict(set)
    for name in conditions:
        threads, _, *env = name.split()[0].split(":", 2)
        by_setting[":".join([threads, *env])].add(tuple(prints[name][t]["digest"] for t in titles))
    print("\nper thread count (and numerics setting), every load and repeat identical: "
          + ", ".join(f"{k}: {'yes' if len(v) == 1 else 'NO'}" for k, v in sorted(by_setting.items())))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "cores": cores, "conditions": conditions, "groups": summary,
            "digests": {n: {t: p[t]["digest"] for t in p} for n, p in prints.items()},
            "examples_per_s": {n: {t: p[t]["examples_per_s"] for t in p} for n, p in prints.items()},
        }, indent=1))


# ------------------------------------------------------------------------ ops

_OPS = r"""
import hashlib, os, numpy as np, torch
torch.set_num_threads(int(os.environ["THREADS"]))
rng = np.random.default_rng(0)
def t(*shape):
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
x, w, b = t(1000, 256), t(256, 256), t(256)
ops = {
    "linear 128x256 (train step)": lambda: torch.nn.functional.linear(t(128, 256), w, b),
    "linear 1000x256 (sampling)": lambda: torch.nn.functional.linear(x, w, b),
    "weight grad 256x128 @ 128x256": lambda: t(256, 128) @ t(128, 256),
    "silu": lambda: torch.nn.functional.silu(x),
    "log_softmax": lambda: x.log_softmax(1),
    "randn (seeded generator)": lambda: torch.randn(4096, generator=torch.Generator().manual_seed(1)),
    "mean of 128x2 (a loss)": lambda: t(128, 2).pow(2).mean(),
    "sum of 10^6 (a big reduction)": lambda: t(1000, 1000).sum(),
    "cdist 1000x2 to 512x2 (mem_ratio)": lambda: torch.cdist(t(1000, 2), t(512, 2)),
    "column sums 4096x256": lambda: t(4096, 256).sum(0),
}
for name, op in ops.items():
    print(name + "\t" + hashlib.sha256(op().detach().numpy().tobytes()).hexdigest()[:8])
"""

OPS_SETTINGS = {
    "1 thread": {"THREADS": "1"},
    "1 thread, again": {"THREADS": "1"},
    "2 threads": {"THREADS": "2"},
    "4 threads": {"THREADS": "4"},
    "8 threads": {"THREADS": "8"},
    "1 thread, 2 busy cores": {"THREADS": "1", "_busy": "1"},
    "1 thread, ATEN_CPU_CAPABILITY=default": {"THREADS": "1", "ATEN_CPU_CAPABILITY": "default"},
    "1 thread, MKL_CBWR=COMPATIBLE": {"THREADS": "1", "MKL_CBWR": "COMPATIBLE"},
}


def check_ops() -> None:
    """Fingerprint single operations under each setting (fresh process each)."""
    table: dict[str, dict[str, str]] = {}
    for label, env in OPS_SETTINGS.items():
        run_env = {**os.environ, **{k: v for k, v in env.items() if not k.startswith("_")}}
        if env.get("_busy"):
            with Load(os.cpu_count() or 1):
                text = subprocess.run([sys.executable, "-c", _OPS], env=run_env, capture_output=True,
                                      text=True, check=True).stdout
        else:
            text = subprocess.run([sys.executable, "-c", _OPS], env=run_env, capture_output=True,
                                  text=True, check=True).stdout
        table[label] = dict(line.split("\t") for line in text.strip().splitlines())
    import torch

    print(f"PyTorch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{os.cpu_count()} cores. Same bits as '1 thread'? (x: other bits)")
    settings = list(table)
    print("| operation | " + " | ".join(settings[1:]) + " |")
    print("|---|" + "---|" * (len(settings) - 1))
    for op in table[settings[0]]:
        base = table[settings[0]][op]
        print(f"| {op} | " + " | ".join("same" if table[s][op] == base else "x" for s in settings[1:]) + " |")


if __name__ == "__main__":
    main()
