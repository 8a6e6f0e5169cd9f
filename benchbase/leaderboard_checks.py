"""What is wrong with a leaderboard request, before any table is built: a suite's
``leaderboard:`` section against its metrics (the planner's check) and a command line's
slice against the stored runs (``leaderboard``, ``report``, ``plot``). Kept apart from
the table builder so that checking a suite does not import it."""

from __future__ import annotations

from benchbase.records import RunRecord


def metric_of(key: str) -> str:
    """The metric a column or value key names: fd, mem_ratio[train], heldout_gap.train, and
    train/loss (the training loss: "train")."""
    return key.replace("[", ".").replace("/", ".").split(".")[0]


def spec_problems(primary: str | None, columns: list[str], known: list[str],
                  unknown: set[str]) -> list[tuple[str, str]]:
    """What is wrong with a suite's ``leaderboard:`` given its metric names (``known``; an
    ``unknown`` one is reported at its own entry, and while one is, the primary may name
    its fix): a primary or a column that names no metric of the suite would silently rank
    by another, or show no column at all."""
    from benchbase.errors import list_choices, suggest

    out = []
    if primary and not unknown and metric_of(primary) not in {*known, "train"}:
        out.append(("leaderboard.primary", f"'{primary}' is not among the suite's metrics.{suggest(primary, known)} "
                                           f"Valid: {list_choices([*known, 'train/loss'])}"))
    for i, name in enumerate(columns):
        if name not in known and name not in unknown:
            out.append((f"leaderboard.metrics[{i}]", f"'{name}' is not among the suite's metrics."
                                                     f"{suggest(name, known)} Valid: {list_choices(known)}"))
    return out


def check_slice(runs: list[RunRecord], dataset: str | None, metrics: list[str] | None,
                primary: str | None) -> None:
    """Refuse a slice that names no stored dataset or metric: it would print an empty
    table, or silently rank by another metric. Nothing to check when nothing is stored."""
    if not runs:
        return
    if dataset:
        stored = sorted({r.dataset_label for r in runs} | {r.spec.dataset.name for r in runs})
        if dataset not in stored:
            raise ValueError(f"dataset '{dataset}' has no stored run; stored: {', '.join(stored)}")
    names = sorted({m.name for r in runs for m in r.spec.metrics})
    for what, wanted, also in (("metric", metrics or [], set()), ("primary", [primary] if primary else [], {"train"})):
        unknown = [w for w in wanted if metric_of(w) not in {*names, *also}]
        if unknown:
            raise ValueError(f"{what} '{unknown[0]}' is not among the stored metrics: {', '.join(names)}")
