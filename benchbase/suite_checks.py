"""Checks of a suite across its entries, made by the run planner before anything runs:
what the leaderboard and dynamics settings name is among the suite's metrics, and each
set a metric compares (the generated samples, the training subset, the test points)
holds the points the metric declares it needs (:meth:`benchbase.contracts.Metric.min_points`;
with fewer, every run of the suite would fail at its first evaluation), and how many runs a
suite may expand to."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchbase.errors import BenchbaseInputError
from benchbase.specs import SubsetPlan


def metric_name_problems(suite: Any, metrics: list) -> list[tuple[str, str]]:
    """``leaderboard.primary``/``.metrics`` and ``dynamics.min_excess``/``.copy_metric`` that
    name none of the suite's metrics (``metrics``: the planner's choices; an unknown one has
    no plugin)."""
    from benchbase.dynamics import metric_name_problems as dynamics_name_problems
    from benchbase.leaderboard_checks import spec_problems

    known = [m.entry.name for m in metrics if m.registered is not None]
    unknown = {m.entry.name for m in metrics if m.registered is None}
    judged = [name for name, m in zip(known, (m for m in metrics if m.registered is not None))
              if getattr(m.registered.cls, "memorizes", None)]
    references = {m.entry.name: tuple(getattr(m.registered.cls, "references", ("train",)))
                  for m in metrics if m.registered is not None}
    return (spec_problems(suite.leaderboard.primary, suite.leaderboard.metrics, known, unknown, references)
            + dynamics_name_problems(suite.dynamics, judged, unknown, known))


@dataclass(frozen=True)
class SetSize:
    """The points one set holds, the suite key that sets it, both in words, and the fix
    (``{need}``: the points needed)."""

    count: int
    key: str
    words: str
    fix: str


def set_sizes(evaluation: Any, subset: SubsetPlan, n_key: str, info: Any, dataset: Any) -> dict[str, SetSize]:
    """The sizes of the sets, named as a metric names them (``samples``, ``train``, ``test``),
    where known: ``info`` (the dataset's :class:`~benchbase.data.DataInfo`) and ``subset.n``
    are None when the data was not read. ``evaluation``: the suite's ``eval`` entry;
    ``dataset``: the planner's choice of dataset (its index and label)."""
    n_samples, n_test = evaluation.n_samples, evaluation.n_test
    test_size = info.test_size if info is not None else None
    sizes = {"samples": SetSize(n_samples, "eval.n_samples", f"{n_samples} generated samples per evaluation",
                                "use eval.n_samples >= {need}")}
    if subset.n is not None:
        trained, less, fix = subset.n, "", "use n >= {need}"
        if subset.holdout:
            k, total = subset.holdout
            trained -= subset.n // total + (k <= subset.n % total)  # the size of fold k (np.array_split)
            less, fix = f", less holdout fold {k} of {total}", "use an n that leaves at least {need} to train on"
        sizes["train"] = SetSize(trained, n_key, f"the runs train on {trained} example(s) (n={subset.n}{less})", fix)
    if n_test is not None and (test_size is None or n_test <= test_size):
        sizes["test"] = SetSize(n_test, "eval.n_test", f"{n_test} test point(s)",
                                "use eval.n_test >= {need}, or omit it to use every test point")
    elif test_size is not None:
        sizes["test"] = SetSize(test_size, f"datasets[{dataset.index}]",
                                f"dataset '{dataset.label}' has {test_size} test point(s)",
                                "use a dataset with at least {need} test points")
    return sizes


@dataclass(frozen=True)
class PointsNeeded:
    """The points a metric needs (its declared ``min_points``) in the generated samples and in
    each reference split it compares."""

    metric: str
    references: tuple[str, ...]
    points: int


def too_few(needs: list[PointsNeeded], sizes: dict[str, SetSize]) -> list[tuple[str, str]]:
    """One (key, message) per set that holds fewer points than a metric declares it needs."""
    out = []
    for name, size in sizes.items():
        short = [(n.metric, n.points) for n in needs
                 if name in ("samples", *n.references) and size.count < n.points]
        if short:
            need = max(need for _, need in short)
            names = ", ".join(f"'{metric}' ({need})" for metric, need in short)
            out.append((size.key, f"{size.words}, too few for metric(s) {names}, which need at least that many "
                                  f"points in each set they compare; {size.fix.format(need=need)}"))
    return out


DEFAULT_MAX_RUNS = 10_000


def max_runs() -> int:
    """The most runs a suite may expand to (BENCHBASE_MAX_RUNS raises it)."""
    import os

    raw = os.environ.get("BENCHBASE_MAX_RUNS", "")
    try:
        return int(raw) if raw.strip() else DEFAULT_MAX_RUNS
    except ValueError:
        raise BenchbaseInputError(f"BENCHBASE_MAX_RUNS must be a whole number, got '{raw}'") from None


def too_many_runs(count: int, exact: bool = True) -> str | None:
    """Why a suite of ``count`` runs (not ``exact``: at least that many) is refused, if it is: a
    typo can ask for millions."""
    limit = max_runs()
    if count <= limit:
        return None
    return (f"this suite expands to {'' if exact else 'at least '}{count:,} runs, more than the limit of "
            f"{limit:,}; check the sweep, or set BENCHBASE_MAX_RUNS={count} to allow it")


def small_chance_pools(runs: list, resolved: list, registry: Any) -> list[str]:
    """Where a suite's memorization metrics would get no chance level (benchbase.chance:
    a finite pool under ``MIN_POOL``), one line per dataset: said before anything trains,
    since those values are then stored without a verdict. ``resolved``: the planner's
    resolved datasets (``ref`` and ``info``; info None when data was not read)."""
    from benchbase.chance import finite_pool, pool_problem

    infos = {(d.ref.name, repr(d.ref.config)): d.info for d in resolved if d.info is not None}
    out: dict[str, str] = {}
    for run in runs:
        info = infos.get((run.dataset.name, repr(run.dataset.config)))
        judged = [m.name for m in run.metrics if getattr(registry.get("metric", m.name).cls, "memorizes", None)]
        if info is None or not judged or info.spec.has_true_sampler:
            continue
        seen = min(run.eval.n_test or info.test_size, info.test_size)  # the runner's split of the test points
        source, pool = finite_pool(info.test_size - seen, seen)
        where = (f"eval.n_test {seen} leaves {pool} of {info.test_size} test points unseen"
                 if source == "held_out_test" else f"half of its {seen} test points")
        problem = pool_problem(source, pool)
        if problem:
            label = run.dataset.label or run.dataset.name
            out.setdefault(label, f"dataset '{label}': chance levels of {', '.join(judged)} not measured "
                                  f"({problem}: {where}); their values get no verdict")
    return list(out.values())


def executor_key_hints(problems: list, executor: str, registry: Any) -> None:
    """Add to an unknown ``executor.config`` key which other executors take it, in place:
    ``workers`` under the default local executor is a process-executor setting, and the
    generic 'Valid keys: fleet, threads' alone does not say to switch executors."""
    prefix = "executor.config."
    for i, (path, message) in enumerate(problems):
        key = path[len(prefix):] if path.startswith(prefix) else ""
        if not key or "." in key or not message.startswith("unknown key"):
            continue
        owners = [name for name in registry.names("executor")
                  if name != executor and key in _config_keys(registry.get("executor", name).cls)]
        if len(owners) == 1:
            problems[i] = (path, f"{message} ({key} is a key of the {owners[0]} executor: "
                                 f"set executor.name: {owners[0]})")
        elif owners:
            problems[i] = (path, f"{message} ({key} is a key of the {' and '.join(owners)} executors: "
                                 f"set executor.name to one of them)")


def _config_keys(cls: Any) -> set[str]:
    """The keys a plugin class's Config dataclass takes (none without one)."""
    import dataclasses

    config = getattr(cls, "Config", None)
    return {f.name for f in dataclasses.fields(config)} if dataclasses.is_dataclass(config) else set()
