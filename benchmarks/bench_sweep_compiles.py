"""What XLA compilation costs a JAX sweep run in one process, and what sharing it saves.

A sweep of a JAX model (seeds x learning rates, one run after another in one worker,
as the local executor runs a suite) through ``runner.execute_task``, two ways side by
side in one process:

  per run   every run builds its own jitted functions (``jax_base._BUILT`` emptied
            before each run), so XLA compiles the step, sampler and held-out loss
            again for every run: what a JAX sweep cost when models jitted per instance
            and a learning rate was a constant in the step;
  shared    as benchbase runs it: one build per (model class, config less its
            ``fleet_varying`` fields, data shape) and process, the learning rate a traced
            argument of the step, so the runs of the grid share every compilation.

The two alternate ``--repeats`` times (ABBA) after a warm-up of each model (imports,
the batch drawer's one compilation, the dataset). XLA's persistent compilation cache
is switched off, so every compilation counted is a real one. Prints, per model, the
compilations and their seconds (``jax.monitoring``'s backend-compile events) and the
sweep's wall time each way, medians over repeats, and the wall-time ratio.

The ``process`` executor starts every run in a fresh process, where nothing is shared
in memory. ``--process-model`` (default: the U-Net) then times ``benchbase run`` of the
same sweep with ``executor: process`` (2 workers, 1 thread each) three ways: without
XLA's persistent compilation cache, with an empty one (``JAX_COMPILATION_CACHE_DIR``,
which the spawned workers inherit), and with that cache filled by the previous way;
wall time and the CPU time of the command and its workers, ``--repeats`` rounds.

    python benchmarks/bench_sweep_compiles.py [--models rectified_flow,rectified_flow_unet,vae,gan] [--seeds 2]
        [--lrs 1e-3,3e-3] [--steps 100] [--dataset digits] [--repeats 3] [--process-model NAME|none]
        [--write-docs FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)  # before jax loads: count real compilations

sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_block import measured_on, write_block  # noqa: E402

CONFIGS = {  # label: (model, config); the first is memorization_transition's model
    "rectified_flow": ("rectified_flow", {"backbone": "mlp", "width": 256, "depth": 3, "sample_steps": 50}),
    "rectified_flow_unet": ("rectified_flow", {"width": 16, "channel_mult": [1, 2], "attn_resolutions": [4],
                                               "sample_steps": 10}),
    "vae": ("vae", {"width": 64, "depth": 2}),
    "gan": ("gan", {"width": 64, "depth": 2}),
}


class CompileMeter:
    """Counts XLA backend compilations and their seconds through jax.monitoring."""

    def __init__(self):
        import jax

        self.count, self.seconds = 0, 0.0
        jax.monitoring.register_event_duration_secs_listener(self._event)

    def _event(self, name: str, secs: float, **_) -> None:
        if name.endswith("backend_compile_duration"):
            self.count += 1
            self.seconds += secs


def tasks(label: str, args):
    from benchbase.config import build_suite
    from benchbase.plugins import PluginPolicy, build_registry
    from benchbase.runner import RunTask

    policy = PluginPolicy(entry_points=False)
    registry = build_registry(policy)
    suite = build_suite(suite_dict(label, args), "<bench>", registry=registry)
    return [RunTask(spec=s, policy=policy, registry=registry) for s in suite.runs]


def sweep(run_tasks: list, meter: CompileMeter, per_run: bool) -> dict:
    from benchbase.runner import Finished, execute_task
    from benchbase_plugins.models import jax_base

    statuses = []

    def emit(event) -> None:
        if isinstance(event, Finished):
            statuses.append(event.status)

    jax_base._BUILT.clear()  # each sweep starts as in a fresh process
    count, seconds, t0 = meter.count, meter.seconds, time.perf_counter()
    for task in run_tasks:
        if per_run:
            jax_base._BUILT.clear()
        execute_task(task, emit)
    wall = time.perf_counter() - t0
    if statuses != ["done"] * len(run_tasks):
        raise SystemExit(f"a run did not finish: {statuses}")
    return {"compiles": meter.count - count, "compile_s": meter.seconds - seconds, "wall": wall}


def bench(model: str, args, meter: CompileMeter) -> dict:
    run_tasks = tasks(model, args)
    sweep(run_tasks[:1], meter, per_run=True)  # warm-up: imports, data, the drawer's compilation
    found = {"per run": [], "shared": []}
    for r in range(args.repeats):
        order = ("per run", "shared") if r % 2 == 0 else ("shared", "per run")
        for way in order:
            found[way].append(sweep(run_tasks, meter, per_run=way == "per run"))
            print(f"  {model} round {r + 1} {way}: {found[way][-1]}", flush=True)
    med = {way: {k: statistics.median(m[k] for m in rounds) for k in rounds[0]} for way, rounds in found.items()}
    return {"runs": len(run_tasks), "per run": med["per run"], "shared": med["shared"]}


def suite_dict(label: str, args, executor: dict | None = None) -> dict:
    name, config = CONFIGS[label]
    return {"name": "bench-sweep-compiles", "seeds": list(range(args.seeds)),
            "datasets": [{"name": args.dataset, "n": 500}],
            "models": [{"name": name, "framework": "jax", "config": {**config, "lr": args.lrs[0]}}],
            "metrics": [{"name": "fd"}, {"name": "mem_ratio"}],
            "sweep": {"model.lr": args.lrs} if len(args.lrs) > 1 else {},
            "budget": {"batch_size": 32, "steps": args.steps},
            "eval": {"points": 2, "n_samples": 100, "keep_samples": 0},
            **({"executor": executor} if executor else {})}


def process_executor(label: str, args) -> dict:
    """``benchbase run`` of the sweep with the process executor: no XLA cache, an empty
    one, the filled one; per way the median wall and CPU seconds over the rounds."""
    found: dict = {"no cache": [], "empty cache": [], "filled cache": []}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-compiles-") as tmp:
        suite = Path(tmp) / "suite.json"  # JSON is YAML
        suite.write_text(json.dumps(suite_dict(label, args, {"name": "process",
                                                              "config": {"workers": 2, "threads": 1}})))
        cache = Path(tmp) / "xla"
        for r in range(args.repeats):
            shutil.rmtree(cache, ignore_errors=True)
            for way in found:
                env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
                if way != "no cache":
                    env["JAX_COMPILATION_CACHE_DIR"] = str(cache)
                results = Path(tmp) / f"results-{r}-{way.replace(' ', '-')}"
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-c", "import sys; from benchbase.cli import main; sys.exit(main())",
                                "run", str(suite), "--results", str(results), "--quiet"], env=env, check=True)
                wall = time.perf_counter() - t0
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                found[way].append({"wall": wall, "cpu": cpu})
                print(f"  process executor round {r + 1} {way}: wall {wall:.1f} s, cpu {cpu:.1f} s", flush=True)
    return {way: {k: statistics.median(m[k] for m in rounds) for k in ("wall", "cpu")}
            for way, rounds in found.items()}


def table(args, found: dict) -> str:
    lines = [f"{measured_on()}; "
             f"each sweep {args.seeds} seed(s) x {len(args.lrs)} learning rate(s) ({', '.join(map(str, args.lrs))}) "
             f"on {args.dataset} (n = 500), {args.steps} steps and 2 evaluations a run; {args.repeats} "
             "interleaved round(s) of each way, medians.", "",
             "| model (JAX; config in the script) | runs | compilations per run / shared | compile s per run / shared "
             "| sweep wall s per run / shared | wall ratio |", "|---|---|---|---|---|---|"]
    for model, r in found.items():
        a, b = r["per run"], r["shared"]
        lines.append(f"| {model} | {r['runs']} | {a['compiles']:.0f} / {b['compiles']:.0f} "
                     f"| {a['compile_s']:.1f} / {b['compile_s']:.1f} | {a['wall']:.1f} / {b['wall']:.1f} "
                     f"| **{a['wall'] / b['wall']:.2f}** |")
    return "\n".join(lines)


def process_table(label: str, found: dict) -> str:
    base = found["no cache"]
    lines = [f"The same sweep of `{label}` through `benchbase run` with `executor: process` (2 workers, 1 thread "
             "each; every run in a fresh process), medians:", "",
             "| XLA persistent cache (`JAX_COMPILATION_CACHE_DIR`) | wall s | CPU s | wall ratio to no cache |",
             "|---|---|---|---|"]
    for way, m in found.items():
        lines.append(f"| {way} | {m['wall']:.1f} | {m['cpu']:.1f} | {base['wall'] / m['wall']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(CONFIGS))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--lrs", default="1e-3,3e-3", help="comma-separated learning rates (the sweep's axis)")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--process-model", default="rectified_flow_unet",
                        help="the model timed through the process executor (none: skip)")
    parser.add_argument("--write-docs", default="", help="replace the generated sweep-compiles block of this file")
    args = parser.parse_args()
    args.lrs = [float(v) for v in args.lrs.split(",")]
    models = args.models.split(",")
    unknown = set(models + ([args.process_model] if args.process_model != "none" else [])) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown model(s) {sorted(unknown)}; choose from {', '.join(CONFIGS)}")
    from benchbase_plugins.executors.common import cpu_threads

    with cpu_threads(1):
        meter = CompileMeter()
        found = {m: bench(m, args, meter) for m in models}
    block = table(args, found)
    if args.process_model != "none":
        block += "\n\n" + process_table(args.process_model, process_executor(args.process_model, args))
    print(block)
    if args.write_docs:
        write_block(args.write_docs, "sweep-compiles", "benchmarks/bench_sweep_compiles.py", sys.argv[1:], block)


if __name__ == "__main__":
    main()
