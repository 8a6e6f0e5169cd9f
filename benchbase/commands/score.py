"""``benchbase score``: generated samples from files, scored against a dataset of the
registry with the metrics a run uses (through :mod:`benchbase.scoring`).

    benchbase score samples.npz --dataset digits --n 512
    benchbase score my_images/ --dataset cifar10 --n 5000 --metric fd --metric mem_ratio --json
    benchbase score run_samples/ --dataset gmm2d --n 512     # step_<N> files: one row per step
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchbase.commands.options import results_directory, seed_number, whole_number
from benchbase.errors import BenchbaseInputError


NAME = "score"
HELP = "score generated samples from files against a dataset"
DESCRIPTION = ("Score generated samples (an .npy/.npz array, a folder of images, or a folder of step_<N> sample "
               "files) against a registered dataset's training subset and test split, with the code a run uses. "
               "Prints a table, or --json.")
EPILOG = ("examples:\n"
          "  benchbase score samples.npz --dataset digits --n 512\n"
          "  benchbase score images/ --dataset cifar10 --n 5000 --metric fd --json\n"
          "  benchbase score samples/ --dataset gmm2d --n 512 --metric-config mem_ratio.threshold=0.2")


def device_name(text: str) -> str:
    """An argparse type: a metric device the scorer can place arrays on."""
    from benchbase.devices import metric_device_problem

    problem = metric_device_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return text


def add_arguments(p) -> None:
    p.add_argument("samples", help="an .npy or .npz file (array (N, *shape); an .npz under 'samples' or --key), "
                                   "a folder of images, or a folder of step_<N>.npz|.npy files or step_<N>/ folders")
    p.add_argument("--dataset", required=True, help="a registered dataset (see `benchbase plugins --kind dataset`)")
    p.add_argument("--n", type=whole_number(1), default=None,
                   help="training subset size (default: the whole train split)")
    p.add_argument("--dataset-config", action="append", default=[], metavar="KEY=VALUE",
                   help="the dataset's config, as in a suite (repeatable)")
    p.add_argument("--subset", action="append", default=[], metavar="KEY=VALUE",
                   help="how the subset is chosen: mode=first|random, seed=N, split='k of K', dedup=0.95")
    p.add_argument("--n-test", type=whole_number(1), default=None,
                   help="use the first N test points (default: all)")
    p.add_argument("--metric", action="append", default=[], metavar="NAME",
                   help="a metric (repeatable; default: mem_ratio, fd, swd)")
    p.add_argument("--metric-config", action="append", default=[], metavar="METRIC.KEY=VALUE",
                   help="a metric parameter, e.g. mem_ratio.threshold=0.2 (repeatable)")
    p.add_argument("--features", default="pixels", help="feature space (default: pixels)")
    p.add_argument("--feature-config", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--n-samples", type=whole_number(2), default=None,
                   help="score the first N samples of each file (default: all)")
    p.add_argument("--key", default=None, help="the .npz array holding the samples (default: 'samples' or the only one)")
    p.add_argument("--seed", type=seed_number, default=0,
                   help="a run's seed, for what metrics draw at random: kid's subsets, mem_ratio's bootstrap "
                        "interval, the subsample of a set over max_points (swd, w2_exact, vendi). swd's directions "
                        "are not drawn from it: they are fixed by swd.seed (--metric-config swd.seed=N), the same "
                        "at every run and step so that swd values compare across runs")
    p.add_argument("--step", type=whole_number(0), default=None,
                   help="evaluation step those draws mix in with --seed (default: the file's step, else 0)")
    p.add_argument("--device", type=device_name, default="cpu", help="metric device: cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--results", type=results_directory, default=None, metavar="DIR",
                   help="share this results directory's feature cache (reference features embedded once)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    from benchbase.devices import check_devices
    from benchbase.sample_files import open_source, read_samples, step_sources
    from benchbase.scoring import DEFAULT_METRICS, SampleScorer, check_results_dir, check_samples, dataset_references

    path = Path(args.samples)
    if not path.exists():
        raise BenchbaseInputError(f"{path}: no such file or folder")
    check_results_dir(args.results, "--results")
    check_devices("benchbase score --device", args.device, {"name": "local"})
    sources = (step_sources(path, args.key) if path.is_dir() else {}) or {None: open_source(path, args.key)}
    metric_config = _metric_configs(args.metric_config)
    names = args.metric or list(DEFAULT_METRICS)
    unknown = sorted(set(metric_config) - set(names))
    if unknown:
        raise BenchbaseInputError(f"--metric-config names {', '.join(unknown)}, which is not among the metrics "
                                  f"scored ({', '.join(names)})")
    references = dataset_references(args.dataset, n=args.n, config=_pairs(args.dataset_config, "--dataset-config"),
                                    subset=_pairs(args.subset, "--subset"), n_test=args.n_test)

    def samples_of(source):
        samples = read_samples(source, references.spec, args.n_samples, asked_by="--n-samples")  # its errors name the file
        try:
            return check_samples(samples, references.spec)
        except BenchbaseInputError as exc:
            raise BenchbaseInputError(f"{source.path}: {exc}") from None

    # every file is checked before the scorer is built, where a learned space fits (minutes);
    # of several step files none is kept in memory meanwhile
    kept = {}
    for step, source in sources.items():
        samples = samples_of(source)
        if len(sources) == 1:
            kept[step] = samples
    scorer = SampleScorer.for_references(
        references, metrics=[{"name": m, "config": metric_config.get(m, {})} for m in names],
        features={"name": args.features, "config": _pairs(args.feature_config, "--feature-config")},
        device=args.device, results_dir=args.results)
    results = []
    for step, source in sources.items():
        samples = kept.pop(step) if step in kept else samples_of(source)
        at = args.step if args.step is not None else (step or 0)
        results.append((step, source, scorer.score(samples, step=at, seed=args.seed)))
    if args.json:
        print(json.dumps([{"step": step, "source": source.describe(), **scores.to_json()}
                          for step, source, scores in results], indent=2))
    else:
        _print_table(args, scorer, results)
    return 0


def _print_table(args, scorer, results) -> None:
    """One row per sample set; a memorization metric's cell holds its value with the chance
    level it is judged against, † where it is above it (as a leaderboard's cells)."""
    from tabulate import tabulate

    from benchbase.leaderboard import ARROWS, CHANCE_ARROW
    from benchbase.scores import VERDICT_NOTE

    first = results[0][2]
    directions = {m.name: m.direction for m in scorer.metrics}
    columns = [(r.metric, r.ref) for r in first.headline()]
    judged = {c for c in columns if first.chance_text(*c) is not None}
    headers = (["step"] if results[0][0] is not None else []) + ["samples", "sha256"] + [
        f"{m} ({ref}) {CHANCE_ARROW if (m, ref) in judged else ARROWS.get(directions.get(m), '')}".strip()
        if ref else m for m, ref in columns]
    rows = []
    for step, source, scores in results:
        verdicts = scores.judged()

        def cell(metric: str, ref: str):
            value = scores.value(metric, ref)
            if (metric, ref) not in judged:
                return value
            dagger = " †" if getattr(verdicts.get((metric, ref)), "memorizing", False) else ""
            return f"{value:.4g} (chance {scores.chance_text(metric, ref)}){dagger}"
        rows.append(([step] if step is not None else []) + [scores.n_samples, source.sha256[:12]]
                    + [cell(*c) for c in columns])
    where = args.samples if results[0][0] is None else f"{args.samples} ({len(results)} steps)"
    print(f"{where} against {args.dataset}: train n={first.n_train} (content {first.train_hash}), "
          f"test {first.n_test}, feature space {first.feature_space}")
    print(tabulate(rows, headers=headers, floatfmt=".4g"))
    if judged:
        print(f"{VERDICT_NOTE}; † = memorizing")


def _value(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _pairs(items: list[str], option: str) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BenchbaseInputError(f"{option} takes KEY=VALUE, got '{item}'")
        out[key.strip()] = _value(value)
    return out


def _metric_configs(items: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for key, value in _pairs(items, "--metric-config").items():
        metric, dot, field = key.partition(".")
        if not dot or not field:
            raise BenchbaseInputError(f"--metric-config takes METRIC.KEY=VALUE (e.g. mem_ratio.threshold=0.2), "
                                      f"got '{key}'")
        out.setdefault(metric, {})[field] = value
    return out
