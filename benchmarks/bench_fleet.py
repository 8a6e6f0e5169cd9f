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
two ways (ABBA), each round with its own results folder (its runs share feature and
chance-level caches as one ``benchbase run`` does); the ratio of median wall times is
the speed-up, printed beside the ratio of process times and the load average. Both
ways must store the same numbers up to floating-point reordering: the largest
difference between them is printed as well. Then where the time goes: each round's
wall time split into set-up, sampling, metrics, chance levels, checkpoints/logs and
the training loop (``Phases``), and the training step alone in process time
(``step_costs``). ``--write-docs docs/performance.md`` writes one block per framework.

    python benchmarks/bench_fleet.py [torch jax] [--steps 3000] [--fleet 16] [--repeats 3]

``--throughput K`` measures something else, for GPUs: the training throughput
(examples per second of training time, the runner's own ``train_time``: evaluation
excluded) of one K-member fleet against one run of the same model, both on
``--device``; the issue's target on a GPU is >= 20 for K = 64.

    python benchmarks/bench_fleet.py torch jax --throughput 64 --device cuda --steps 2000

Measured figures: docs/performance.md.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from docs_block import measured_on, write_block  # noqa: E402

SUITE = ROOT / "suites" / "memorization_transition.yaml"


def make_tasks(framework: str, steps: int, points: int, samples: int, seeds: int, device: str,
               results_dir: str | None = None):
    from benchbase.config import load_suite
    from benchbase.plugins import PluginPolicy, build_registry
    from benchbase.runner import RunTask

    policy = PluginPolicy(entry_points=False)
    registry = build_registry(policy)
    overrides = [f"models.0.framework={framework}", f"budget.steps={steps}", f"eval.points={points}",
                 f"eval.n_samples={samples}", f"seeds=[{','.join(str(s) for s in range(seeds))}]"]
    suite = load_suite(SUITE, overrides, registry=registry, device=device)
    return [RunTask(spec=s, policy=policy, registry=registry, results_dir=results_dir) for s in suite.runs]


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


#: The phases of a round, each timed exclusively (a phase nested in another is taken
#: out of it); what no phase covers is the training loop: drawing batches, the steps,
#: the loop's checks.
PHASES = ("training loop", "set-up (model, data, references)", "sampling", "metrics", "chance levels",
          "checkpoints, logs")


class Phases:
    """Wall time per phase of a round, by wrapping the core's functions that are called
    once per run or per evaluation (never per step, so the timed rounds carry no
    per-step cost). Exclusive: time in a nested phase is not counted in its caller's."""

    def __init__(self, framework: str):
        self.framework = framework
        self.totals = dict.fromkeys(PHASES, 0.0)
        self._stack = ["training loop"]
        self._since = 0.0
        self._undo: list = []

    def _switch(self, now: float) -> None:
        self.totals[self._stack[-1]] += now - self._since
        self._since = now

    def wrap(self, owner, attr: str, phase: str, sync: bool = False) -> None:
        original = getattr(owner, attr)

        def timed(*args, **kwargs):
            self._switch(time.perf_counter())
            self._stack.append(phase)
            try:
                out = original(*args, **kwargs)
                if sync:  # JAX returns before it computes: wait here, not in the next phase
                    import jax

                    jax.block_until_ready(out)
                return out
            finally:
                self._switch(time.perf_counter())
                self._stack.pop()

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, original))

    def __enter__(self) -> "Phases":
        from benchbase import fleet, runner
        from benchbase.evaluation import Evaluator, Scorer

        for module in (runner, fleet):  # the fleet imports these by name
            self.wrap(module, "prepare", "set-up (model, data, references)")
            self.wrap(module, "evaluate", "checkpoints, logs")
        self.wrap(fleet._Fleet, "evaluate", "sampling")  # the fleet's one sampling call per evaluation
        self.wrap(Evaluator, "sample", "sampling", sync=self.framework == "jax")
        self.wrap(Evaluator, "score", "metrics")
        self.wrap(Scorer, "chance_rows", "chance levels")
        self._since = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self._switch(time.perf_counter())
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)


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


ROUNDS_OF_PARTS = 5  # alternating rounds of 50 steps: the machine's load moves a single round by 20%


def step_costs(framework: str, args, tasks) -> dict[str, float]:
    """Time per training step of the parts of the loop, one run and one fleet of
    ``--fleet``, measured alone (JAX waited for after every call): the batch draw and the
    model's step, in process time and wall time (ms per step; a fleet's step advances all
    its members). A fleet stepped in parts (a JAX fleet on a CPU: plugins/models/jax_fleet.py)
    is timed beside the same fleet in one part, in alternating rounds: what the parts buy."""
    from benchbase.fleet import _Fleet
    from benchbase.runner import prepare, start

    runs = [start(t) for t in tasks[:args.fleet]]
    try:
        for run in runs:
            prepare(run, lambda event: None)
        sync = _sync(framework)
        lead = runs[0]
        draw_one = lead.fw.drawer(lead.data.x, lead.data.y, lead.spec.budget.examples_per_step, lead.spec.seed,
                                  lead.device)

        def fleet_of(parts: int | None) -> _Fleet:
            program = lead.model.fleet([r.model for r in runs])
            if parts is not None:
                program.parts = parts
            built = _Fleet(runs, program, program.stack([r.state for r in runs]), lambda event: None)
            built.restart()
            return built

        fleet = fleet_of(None)
        sizes = getattr(fleet.program, "part_sizes", [len(runs)])
        one_part = fleet_of(1) if len(sizes) > 1 else None
        single = {"state": lead.state}

        def one_step(i):
            batch, key = draw_one(i)
            single["state"], logs = lead.model.train_step(single["state"], batch, key)
            sync(logs)

        def stepper(f: _Fleet):
            def fleet_step(i):
                batch, keys = f.draw(i)
                f.state, logs = f.program.step(f.state, batch, keys)
                sync(logs)
            return fleet_step

        def timed(fn, n: int) -> tuple[float, float]:
            """(process ms, wall ms) per call, after 5 untimed calls."""
            for i in range(5):
                fn(i)
            t0, w0 = time.process_time(), time.perf_counter()
            for i in range(n):
                fn(i)
            return (time.process_time() - t0) / n * 1e3, (time.perf_counter() - w0) / n * 1e3

        n = 100
        costs = {"one run: draw": timed(lambda i: sync(draw_one(i)), 4 * n)[0]}
        costs["one run: draw + step"], costs["wall: one run: draw + step"] = timed(one_step, n)
        costs["fleet: draw"] = timed(lambda i: sync(fleet.draw(i)), n)[0]
        costs["fleet: draw + step"], costs["wall: fleet: draw + step"] = timed(stepper(fleet), n // 4)
        if one_part is not None:
            walls: dict[str, list[float]] = {"parts": [], "one part": []}
            for _ in range(ROUNDS_OF_PARTS):
                walls["one part"].append(timed(stepper(one_part), n // 2)[1])
                walls["parts"].append(timed(stepper(fleet), n // 2)[1])
            costs["parts"] = float(len(sizes))
            costs["wall: fleet in parts: draw + step"] = statistics.median(walls["parts"])
            costs["wall: fleet in one part: draw + step"] = statistics.median(walls["one part"])
        return costs
    finally:
        for run in reversed(runs):
            run.close()


def _sync(framework: str):
    if framework == "jax":
        import jax

        return jax.block_until_ready
    return lambda out: out


def bench(framework: str, args) -> dict:
    import tempfile

    warm = make_tasks(framework, 2 * args.fleet, 1, args.samples, args.seeds, args.device)
    fleets(warm, args.fleet)
    sequential(list({t.spec.subset.n: t for t in reversed(warm)}.values()))  # one run per n: JAX compiles per shape
    ways = {"sequential": lambda tasks: sequential(tasks), "fleets": lambda tasks: fleets(tasks, args.fleet)}
    times: dict[str, list[float]] = {name: [] for name in ways}
    cpu: dict[str, list[float]] = {name: [] for name in ways}  # all of this process' threads: load barely enters
    phases: dict[str, list[dict]] = {name: [] for name in ways}
    loads: list[float] = []
    results: dict[str, Recorder] = {}
    for rep in range(args.repeats):
        order = ("sequential", "fleets") if rep % 2 == 0 else ("fleets", "sequential")
        for name in order:
            # a fresh results folder per round: the runs of a round share their feature and
            # chance-level caches as the runs of one `benchbase run` do, and nothing between rounds
            with tempfile.TemporaryDirectory(prefix="bench_fleet_") as results_dir:
                tasks = make_tasks(framework, args.steps, args.points, args.samples, args.seeds, args.device,
                                   results_dir)
                loads.append(os.getloadavg()[0])
                with Phases(framework) as timer:
                    t0, c0 = time.perf_counter(), time.process_time()
                    results[name] = ways[name](tasks)
                    times[name].append(time.perf_counter() - t0)
                    cpu[name].append(time.process_time() - c0)
            phases[name].append(timer.totals)
            print(f"  {framework} {name}: {times[name][-1]:.1f} s wall, {cpu[name][-1]:.1f} s process time "
                  f"(load average {loads[-1]:.1f})", flush=True)
    for name, rec in results.items():
        bad = {rid: s for rid, s in rec.status.items() if s != "done"}
        if bad or len(rec.status) != len(tasks):
            raise SystemExit(f"{framework} {name}: not every run finished: {bad}")
    abs_d, rel_d, metric = largest_difference(results["sequential"], results["fleets"])
    seq, fl = statistics.median(times["sequential"]), statistics.median(times["fleets"])
    ratio = seq / fl
    n_values = len(results["fleets"].values)
    print(f"{framework}: {len(tasks)} runs x {args.steps} steps, {args.points} evaluations of {args.samples} "
          f"samples each, fleets of {args.fleet}; {args.repeats} round(s) each, load average "
          f"{min(loads):.1f} .. {max(loads):.1f}")
    print(f"  wall time (median): sequential {seq:.1f} s, fleets {fl:.1f} s, ratio {ratio:.2f}; per round: "
          + ", ".join(f"{name} " + " ".join(f"{t:.0f}" for t in ts) for name, ts in times.items()))
    cpu_ratio = statistics.median(cpu["sequential"]) / statistics.median(cpu["fleets"])
    print(f"  process time (median): sequential {statistics.median(cpu['sequential']):.1f} s, fleets "
          f"{statistics.median(cpu['fleets']):.1f} s, ratio {cpu_ratio:.2f}")
    print(f"  {n_values} stored values; largest difference {abs_d:.2e} (absolute), "
          f"{rel_d:.2e} (relative, {metric})")
    breakdown = {name: {p: statistics.median(r[p] for r in rounds) for p in PHASES} for name, rounds in phases.items()}
    print("  where the time goes (median over rounds, seconds; ratio = sequential / fleets):")
    for p in PHASES:
        a, b = breakdown["sequential"][p], breakdown["fleets"][p]
        print(f"    {p:34s} sequential {a:7.1f}  fleets {b:7.1f}  ratio {a / max(b, 1e-9):5.2f}")
    costs = step_costs(framework, args, make_tasks(framework, args.steps, args.points, args.samples, args.seeds,
                                                   args.device))  # the rounds' results folders are gone
    one, many = costs["one run: draw + step"], costs["fleet: draw + step"]
    loop_seq = breakdown["sequential"]["training loop"] / (len(tasks) * args.steps) * 1e3
    loop_fl = breakdown["fleets"]["training loop"] / (math.ceil(len(tasks) / args.fleet) * args.steps) * 1e3
    print(f"  training step alone (process time, ms per step): one run {one:.2f} (draw {costs['one run: draw']:.2f}); "
          f"a fleet of {args.fleet} {many:.2f} (draw {costs['fleet: draw']:.2f}): {args.fleet * one / many:.2f}x; "
          f"the timed loops took {loop_seq:.2f} and {loop_fl:.2f} ms of wall time per step")
    if "parts" in costs:
        print(f"  the fleet in {costs['parts']:.0f} parts: {costs['wall: fleet in parts: draw + step']:.2f} ms of wall "
              f"time per step, in one part {costs['wall: fleet in one part: draw + step']:.2f}")
    return {"ratio": ratio, "cpu_ratio": cpu_ratio, "times": times, "loads": loads, "breakdown": breakdown, "costs": costs,
            "difference": (abs_d, rel_d, metric), "runs": len(tasks)}


class RunsFailed(RuntimeError):
    """A timed run or fleet member ended other than done: no rate to report for its framework."""


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
        if set(one.status.values()) != {"done"}:
            raise RunsFailed(f"{framework}: the run alone did not finish: {one.status}")
        s = next(iter(one.summaries.values()))
        rates["one run"].append(s["steps"] * tasks[0].spec.budget.examples_per_step / s["train_time"])
        many = fleets(tasks, k)
        if set(many.status.values()) != {"done"}:
            raise RunsFailed(f"{framework}: fleet members did not all finish: {many.status}")
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
    parser.add_argument("--threads", type=int, default=1,
                        help="PyTorch and BLAS threads, as the local executor sets them (the suite's: 1)")
    parser.add_argument("--throughput", type=int, default=0, metavar="K",
                        help="instead: training throughput of one K-member fleet / one run (GPU target: K=64, >= 20)")
    parser.add_argument("--write-docs", default="", help="replace the generated fleet block of this markdown file")
    args = parser.parse_args()
    unknown = set(args.frameworks) - {"torch", "jax"}
    if unknown:
        parser.error(f"unknown framework(s) {sorted(unknown)}; choose from torch, jax")
    from benchbase_plugins.executors.common import cpu_threads

    with cpu_threads(args.threads):
        if args.throughput:
            ratios: dict[str, float | None] = {}
            for fw in args.frameworks:  # one framework's failure leaves the other's figure
                try:
                    ratios[fw] = throughput(fw, args)
                except RunsFailed as e:
                    print(e, file=sys.stderr)
                    ratios[fw] = None
            print(f"throughput ratios (a fleet of {args.throughput} / one run, GPU target >= 20): "
                  + ", ".join(f"{fw} {'FAILED' if r is None else f'{r:.1f}'}" for fw, r in ratios.items()))
            if None in ratios.values():
                raise SystemExit(1)
            return
        found = {fw: bench(fw, args) for fw in args.frameworks}
    print("wall-time ratios (sequential / fleets, target >= 3): "
          + ", ".join(f"{fw} {r['ratio']:.2f}" for fw, r in found.items()))
    if args.write_docs:  # one block per framework and thread count, so each is measured on its own
        for fw, r in found.items():
            write_block(args.write_docs, block_name(fw, args.threads), "benchmarks/bench_fleet.py", sys.argv[1:],
                        tables(args, {fw: r}))


def block_name(framework: str, threads: int) -> str:
    """The generated block of docs/performance.md that a measurement replaces."""
    return f"fleet-{framework}" if threads == 1 else f"fleet-{framework}-{threads}-threads"


NAMES = {"torch": "PyTorch", "jax": "JAX"}


def tables(args, found: dict) -> str:
    """The markdown tables of a measurement (docs/performance.md's generated fleet block)."""
    lines = [f"{measured_on()}, "
             f"{args.threads} thread(s); 16 runs = 4 n x {args.seeds} seeds, {args.steps} steps each, "
             f"{args.points} evaluations of {args.samples} samples; fleets of {args.fleet}; {args.repeats} "
             "interleaved round(s) of each way, medians.", "",
             "| framework | 16 runs one after another | as fleets | ratio (target >= 3) | process-time ratio "
             "| rounds (s) | load average | largest stored difference |", "|---|---|---|---|---|---|---|---|"]
    for fw, r in found.items():
        seq, fl = (statistics.median(r["times"][k]) for k in ("sequential", "fleets"))
        rounds = "; ".join(f"{k} " + ", ".join(f"{t:.0f}" for t in v) for k, v in r["times"].items())
        abs_d, rel_d, metric = r["difference"]
        lines.append(f"| {NAMES[fw]} | {seq:.1f} s | {fl:.1f} s | **{r['ratio']:.2f}** | {r['cpu_ratio']:.2f} | {rounds} | "
                     f"{min(r['loads']):.1f} .. {max(r['loads']):.1f} | {abs_d:.1e} absolute, {rel_d:.1e} relative "
                     f"({metric}) |")
    lines += ["", "Where the time goes (wall seconds, median over rounds; each phase exclusive of those inside it; "
              "the training loop is what no other phase covers: drawing batches, steps, the loop's checks):", "",
              "| phase | " + " | ".join(f"{NAMES[fw]} sequential | {NAMES[fw]} fleets | ratio" for fw in found) + " |",
              "|---|" + "---|---|---|" * len(found)]
    for p in PHASES:
        cells = []
        for r in found.values():
            a, b = r["breakdown"]["sequential"][p], r["breakdown"]["fleets"][p]
            cells.append(f"{a:.1f} | {b:.1f} | {a / max(b, 1e-9):.2f}")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    lines += ["", f"The training step alone (ms per step, measured apart: 100 steps; JAX waited for after each "
              f"call), in process time and, in brackets, wall time:", "", "| framework | one run: draw | one run: "
              f"draw + step | fleet of {args.fleet}: draw | fleet of {args.fleet}: draw + step | {args.fleet} x one / "
              "fleet (process) | (wall) |", "|---|---|---|---|---|---|---|"]
    for fw, r in found.items():
        c = r["costs"]
        lines.append(f"| {NAMES[fw]} | {c['one run: draw']:.2f} | {c['one run: draw + step']:.2f} "
                     f"({c['wall: one run: draw + step']:.2f}) | {c['fleet: draw']:.2f} | "
                     f"{c['fleet: draw + step']:.2f} ({c['wall: fleet: draw + step']:.2f}) | "
                     f"{args.fleet * c['one run: draw + step'] / c['fleet: draw + step']:.2f} | "
                     f"{args.fleet * c['wall: one run: draw + step'] / c['wall: fleet: draw + step']:.2f} |")
    split = {fw: r["costs"] for fw, r in found.items() if "parts" in r["costs"]}
    if split:
        lines += ["", "The fleet stepped in parts (one call per part, each from its own thread) against the same "
                  f"fleet in one call, wall ms per step, medians of {ROUNDS_OF_PARTS} alternating rounds of 50 steps:", "",
                  "| framework | parts | in parts | in one part | gain |", "|---|---|---|---|---|"]
        for fw, c in split.items():
            a, b = c["wall: fleet in parts: draw + step"], c["wall: fleet in one part: draw + step"]
            lines.append(f"| {NAMES[fw]} | {c['parts']:.0f} | {a:.2f} | {b:.2f} | {b / a:.2f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
