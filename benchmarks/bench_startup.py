"""Start-up time of the commands that do not train, against `python -c "import torch"`.

    python benchmarks/bench_startup.py [--repeats 7]

Each command and the baseline run as fresh processes, interleaved (baseline, then
every command, repeated), so load on a shared machine hits all of them alike; the
median wall time of each is divided by the baseline's median. Target: every ratio
at or below 0.5. `leaderboard` reads a small results store made once beforehand
(numpy models only), so it has tables to render. Also prints which heavy frameworks
each command imported (python -X importtime), the reason when a ratio is high.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET = 0.5
HEAVY = ("torch", "jax", "flax", "optax", "scipy", "sklearn", "matplotlib", "ray", "omegaconf", "jinja2", "PIL")


def commands(results: Path) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "benchbase.cli"]
    return {
        "benchbase plugins": cli + ["plugins"],
        "benchbase validate quickstart": cli + ["validate", str(REPO / "suites" / "quickstart.yaml")],
        "benchbase leaderboard": cli + ["leaderboard", "--results", str(results)],
        "benchbase --help": cli + ["--help"],
    }


def make_results(folder: Path) -> None:
    """A store with a finished two-dataset suite of numpy models (the leaderboard's input)."""
    suite = folder / "bench.yaml"
    suite.write_text(
        "name: bench_startup\nseeds: [0, 1]\ndevice: cpu\n"
        "datasets: [{name: gmm2d, n: 128, config: {train_size: 500, test_size: 200}}, {name: digits, n: 128}]\n"
        "models: [kde, copy_train, true_sampler]\nmetrics: [mem_ratio, fd]\n"
        "budget: {steps: 10, batch_size: 32}\neval: {n_samples: 100}\n")
    done = subprocess.run([sys.executable, "-m", "benchbase.cli", "run", str(suite), "--results",
                           str(folder / "results"), "--quiet"], capture_output=True, text=True, cwd=folder)
    if done.returncode != 0:
        sys.exit(f"could not make the results store:\n{done.stderr}")


def wall(argv: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=ENV)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def heavy_imports(argv: list[str]) -> list[str]:
    done = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], capture_output=True, text=True, cwd=REPO,
                          env=ENV)
    loaded = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    return [name for name in HEAVY if name in loaded]


ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    baseline = [sys.executable, "-c", "import torch"]
    with tempfile.TemporaryDirectory() as tmp:
        make_results(Path(tmp))
        cmds = commands(Path(tmp) / "results")
        for argv in [baseline, *cmds.values()]:  # warm the page cache and .pyc files
            wall(argv)
        times: dict[str, list[float]] = {name: [] for name in ["import torch", *cmds]}
        for _ in range(args.repeats):
            times["import torch"].append(wall(baseline))
            for name, argv in cmds.items():
                times[name].append(wall(argv))
        base = statistics.median(times["import torch"])
        print(f"baseline `python -c \"import torch\"`: median {base:.3f} s over {args.repeats} interleaved repeats")
        print(f"{'command':34} {'median s':>9} {'ratio':>7}  target <= {TARGET}   heavy imports")
        worst = 0.0
        for name, argv in cmds.items():
            med = statistics.median(times[name])
            ratio = med / base
            worst = max(worst, ratio)
            heavy = ", ".join(heavy_imports(argv)) or "none"
            print(f"{name:34} {med:9.3f} {ratio:7.2f}  {'ok' if ratio <= TARGET else 'OVER':9}   {heavy}")
    return 0 if worst <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
