"""What is wrong with a leaderboard request, before any table is built: a suite's
``leaderboard:`` section against its metrics (the planner's check) and a command line's
slice against the stored runs (``leaderboard``, ``report``, ``plot``). Both accept the
same names (:func:`column_choices`), so what ``validate`` passes a table can show. Kept
apart from the table builder so that checking a suite does not import it."""

from __future__ import annotations

from typing import Any, Collection, Mapping, Sequence

from benchbase.records import RunRecord

#: the training loss, stored (reference "train") at every evaluation of a model that trains
TRAIN_LOSS = "train/loss"


def metric_of(key: str) -> str:
    """The metric a column or value key names: fd, mem_ratio[train], heldout_gap.train, and
    train/loss (the training loss: "train")."""
    return key.replace("[", ".").replace("/", ".").split(".")[0]


def parse_key(key: str) -> tuple[str, str | None]:
    """A column name as (metric, reference): 'fd' -> ('fd', None: the table's choice),
    'fd[test]' -> ('fd', 'test'), 'train/loss' -> ('train/loss', 'train')."""
    if key == TRAIN_LOSS:
        return TRAIN_LOSS, "train"
    if key.endswith("]") and "[" in key:
        name, ref = key[:-1].split("[", 1)
        return name, ref
    return key, None


def canonical(key: str, references: Mapping[str, Sequence[str]]) -> str | None:
    """``key`` as one of :func:`column_choices` (``fd.test`` is ``fd[test]``), or None when
    it names no column."""
    choices = column_choices(references)
    if key in choices:
        return key
    name, _, ref = key.rpartition(".")
    return f"{name}[{ref}]" if f"{name}[{ref}]" in choices else None


def column_choices(references: Mapping[str, Sequence[str]]) -> list[str]:
    """Every name a column or the primary may take, given each metric's reference splits:
    the metric, the metric with one of its references (the key CSV and JSON headers use),
    and the training loss."""
    out = [TRAIN_LOSS]
    for name, refs in references.items():
        out += [name] + [f"{name}[{ref}]" for ref in refs if ref]
    return sorted(set(out))


def spec_problems(primary: str | None, columns: list[str], known: list[str], unknown: set[str],
                  references: Mapping[str, Sequence[str]] | None = None) -> list[tuple[str, str]]:
    """What is wrong with a suite's ``leaderboard:`` given its metric names (``known``, with
    their ``references``; an ``unknown`` one is reported at its own entry, and while one
    is, the primary may name its fix): a primary or a column that names no metric of the
    suite would silently rank by another, or show no column at all."""
    from benchbase.errors import list_choices, suggest

    refs = references if references is not None else {k: () for k in known}
    choices = column_choices(refs)
    out = []
    if primary and not unknown and canonical(primary, refs) is None:
        out.append(("leaderboard.primary", f"'{primary}' is not among the suite's metrics.{suggest(primary, known)} "
                                           f"Valid: {list_choices(choices)}"))
    for i, name in enumerate(columns):
        if canonical(name, refs) is None and metric_of(name) not in unknown:
            out.append((f"leaderboard.metrics[{i}]", f"'{name}' is not among the suite's metrics."
                                                     f"{suggest(name, known)} Valid: {list_choices(choices)}"))
    return out


def stored_references(runs: list[RunRecord]) -> dict[str, tuple[str, ...]]:
    """Metric name -> its reference splits, over the stored runs' specs."""
    refs: dict[str, tuple[str, ...]] = {}
    for r in runs:
        for m in r.spec.metrics:
            refs[m.name] = tuple(dict.fromkeys([*refs.get(m.name, ()), *m.references]))
    return refs


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
    refs = stored_references(runs)
    for what, wanted in (("metric", metrics or []), ("primary", [primary] if primary else [])):
        unknown = [w for w in wanted if canonical(w, refs) is None]
        if unknown:
            raise ValueError(f"{what} '{unknown[0]}' is not among the stored metrics: "
                             f"{', '.join(column_choices(refs))}")


def memorization_metrics(registry: Any = None) -> frozenset[str]:
    """The metrics of ``registry`` that declare ``memorizes`` (judged against chance);
    without one, the installed metrics, read once per process. Stores written before
    chance levels have no ``.chance`` rows to tell them."""
    global _MEMORIZATION
    if registry is not None:
        return frozenset(name for name in registry.names("metric")
                         if getattr(registry.get("metric", name).cls, "memorizes", None))
    if _MEMORIZATION is None:
        from benchbase.plugins import build_registry

        registry = build_registry()
        _MEMORIZATION = frozenset(name for name in registry.names("metric")
                                  if getattr(registry.get("metric", name).cls, "memorizes", None))
    return _MEMORIZATION


_MEMORIZATION: frozenset[str] | None = None


def primary_column(columns: list, primary: str | None, memorization: Collection[str] = ()) -> Any:
    """The column ``primary`` (a canonical name) names; with none given, the first column
    whose metric is not a ``memorization`` metric (those are judged against chance, not
    ranked by lower is better), else the first (ranked by its verdicts). A primary that
    names no column ranks nothing, never another."""
    if not primary:
        return next((c for c in columns if c.metric not in memorization), columns[0] if columns else None)
    return next((c for c in columns if c.key == primary or c.metric == primary), None)


def mixed_rows(rows: list) -> list[tuple[str, int, list[str]]]:
    """(label, how many configurations, the keys that differ) for each label with rows of
    several configurations (benchbase.leaderboard.Row)."""
    by_label: dict[str, list] = {}
    for row in rows:
        if row.config:
            by_label.setdefault(row.sweep_label, []).append(row)
    return [(label, len(group), list(group[0].config)) for label, group in by_label.items()]
