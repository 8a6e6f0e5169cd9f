"""Training-dynamics records of a suite's runs: read the evaluations from the store,
compute (benchbase.dynamics), write the records back (``derived`` table).

The driver derives after every suite invocation; ``benchbase dynamics`` recomputes
with other settings; ``benchbase plot`` and the leaderboard read the stored records.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field

from omegaconf import OmegaConf

from benchbase.distance_gap import DISTANCES, DistanceGap, distance_gap
from benchbase.dynamics import Trajectory, collapse, derive_run, group_key, normalization, tau_fits
from benchbase.exponents import (AxisFit, CollapseComparison, LocalExponent, axis_fits, collapse_comparison,
                                 local_exponents)
from benchbase.memscore import memscore_records
from benchbase.errors import ConfigError
from benchbase.records import RunRecord
from benchbase.specs import RunSpec
from benchbase.structured import typed
from benchbase.suite_schema import DynamicsEntry, schema_problems
from benchbase.twins import twin_records
from benchbase.verdicts import threshold_onset

# ---------------------------------------------------------------------- settings


def suite_dynamics(store, suite: str) -> DynamicsEntry:
    """The suite's ``dynamics:`` settings as last run (defaults for older stores)."""
    resolved = store.suite_resolved(suite)
    return stored_settings((resolved or {}).get("dynamics") or {})


#: settings older suites stored that the calibrated rule replaced (copy_threshold: a raw
#: threshold on the copy metric, now an excess over its chance level, min_excess)
LEGACY_DYNAMICS_KEYS = ("copy_threshold",)


def stored_settings(data: dict) -> DynamicsEntry:
    """Dynamics settings as a store holds them; settings that the calibrated rule
    replaced are dropped, and the old default copy metric (mem_ratio alone) becomes the
    new one (every memorization metric), so older stores read under today's rule."""
    stored = {k: v for k, v in dict(data).items() if k not in LEGACY_DYNAMICS_KEYS}
    if "copy_threshold" in data and stored.get("copy_metric") == "mem_ratio":
        stored.pop("copy_metric")
    return dynamics_settings(stored)


def derived_settings(results, suite: str, derived: dict[str, dict] | None = None) -> tuple[DynamicsEntry, str | None]:
    """The settings the suite's stored dynamics records were derived with (the suite's own
    when none are stored), and, when ``benchbase dynamics`` overrides made them differ from
    the suite's, a sentence that says so and how to restore them. Verdicts that sit beside
    those records (a leaderboard's judged columns) follow the same settings, so the two agree."""
    own = suite_dynamics(results, suite)
    derived = results.derived(suite) if derived is None else derived
    stored = next((rec["settings"] for rec in derived.values() if rec.get("settings")), None)
    if stored is None:
        return own, None
    used = stored_settings(stored)
    changed = override_text(used, own)
    if not changed:
        return used, None
    return used, (f"verdicts and onsets follow the stored training dynamics, derived with {changed} by "
                  f"benchbase dynamics overrides, not the suite's settings; 'benchbase dynamics --suite "
                  f"{suite}' without overrides restores them")


def override_text(used: DynamicsEntry, own: DynamicsEntry) -> str:
    """'alpha=0.9, min_excess.mem_ratio=0': the settings of ``used`` that differ from ``own``."""
    a, b = dataclasses.asdict(used), dataclasses.asdict(own)
    parts = []
    for key in a:
        if a[key] == b.get(key):
            continue
        if isinstance(a[key], dict) and isinstance(b.get(key), dict):
            parts += [f"{key}.{k}={v:g}" if isinstance(v, float) else f"{key}.{k}={v}"
                      for k, v in a[key].items() if b[key].get(k) != v]
        else:
            parts.append(f"{key}={a[key]:g}" if isinstance(a[key], float) else f"{key}={a[key]}")
    return ", ".join(parts)


def dynamics_settings(data: dict, overrides: list[str] = (), source: str = "<dynamics>") -> DynamicsEntry:
    """A DynamicsEntry from plain data plus ``key=value`` overrides, validated; ``source``
    names where they came from in an error (the command line that gave them)."""
    from benchbase.config import apply_override  # parses a value as a suite override's ('alpha=[' is refused)

    cfg = OmegaConf.create(dict(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(source, [(item, "an override must look like key=value (e.g. alpha=0.05)")])
        key, value = item.split("=", 1)
        apply_override(cfg, f"{key.strip().removeprefix('dynamics.')}={value}", source)
    entry = typed(OmegaConf.to_container(cfg, resolve=True), DynamicsEntry, source, "dynamics")
    problems = schema_problems(entry, "dynamics")
    if problems:
        raise ConfigError(source, problems)
    return entry


# ---------------------------------------------------------------------- deriving


def derive_suite(store, suite: str, cfg: DynamicsEntry | None = None, registry=None,
                 write: bool = True) -> dict[str, dict]:
    """Derive and store the quantities of every finished run of ``suite``; returns them.

    Includes twin similarity for runs that have a twin (same spec but another
    ``subset.split`` part; see benchbase.twins) and the leave-fold-out memorization
    score for runs trained on S whose fold runs (``subset.holdout``) finished too
    (benchbase.memscore).
    """
    cfg = cfg or suite_dynamics(store, suite)
    runs = store.runs(suite=suite)
    factors, refs = normalization(runs)
    records: dict[str, dict] = {}
    for r in runs:
        if r.status != "done":
            continue
        rec = derive_run(store.evals(r.run_id), cfg, factors.get(r.run_id, 1.0))
        rec["norm_refs"] = refs
        records[r.run_id] = rec
    finished = [r for r in runs if r.run_id in records]
    for run_id, twin in twin_records(store, finished, registry).items():
        records[run_id]["twin"] = twin
    for run_id, scores in memscore_records(store, finished).items():
        records[run_id]["memorization_score"] = scores
    if write:
        store.write_derived(suite, records)
    return records


def derive_after_run(store, suite, registry=None) -> None:
    """Called by the driver when a suite invocation ends; a failure here only warns."""
    try:
        cfg = dynamics_settings(suite.resolved["dynamics"]) if suite.resolved.get("dynamics") else None
        derive_suite(store, suite.name, cfg, registry)
    except Exception as exc:  # derived numbers never fail the runs they describe
        warnings.warn(f"could not derive training-dynamics quantities for suite '{suite.name}': "
                      f"{type(exc).__name__}: {exc} (rerun with `benchbase dynamics`)")


# ------------------------------------------------------------------- reading back


@dataclass
class RunData:
    """A finished run with its trajectory and derived record."""

    run: RunRecord
    traj: Trajectory
    derived: dict

    @property
    def n(self) -> int:
        return int(self.run.n)

    @property
    def spec(self) -> RunSpec:
        return self.run.spec


@dataclass
class SuiteData:
    """What the plots and the dynamics tables of one suite are drawn from."""

    name: str
    runs: list[RunData]
    settings: DynamicsEntry
    fits: list[dict] = field(default_factory=list)
    collapse: list[dict] = field(default_factory=list)  # curve spread against step vs normalized step
    axis_fits: list[AxisFit] = field(default_factory=list)  # exponents of every swept axis at once
    normalizations: list[CollapseComparison] = field(default_factory=list)  # paper's vs measured collapse
    distance_gaps: list[DistanceGap] = field(default_factory=list)  # do swd/fd tell train from test?
    local_exponents: list[LocalExponent] = field(default_factory=list)  # exponents between adjacent values

    def groups(self) -> dict[tuple, list[RunData]]:
        out: dict[tuple, list[RunData]] = {}
        for r in self.runs:
            out.setdefault(group_key(r.spec), []).append(r)
        return {k: sorted(v, key=lambda r: (r.n, r.run.seed)) for k, v in out.items()}


def load_suite_data(store, suite: str, registry=None) -> SuiteData:
    """Finished runs with their trajectories and derived records (derived now if absent)."""
    runs = [r for r in store.runs(suite=suite) if r.status == "done"]
    derived = store.derived(suite)
    if runs and any(r.run_id not in derived for r in runs):
        derived = derive_suite(store, suite, registry=registry)
    data = [RunData(r, Trajectory.from_evals(store.evals(r.run_id)), derived.get(r.run_id, {})) for r in runs]
    fits = []
    records = {r.run.run_id: r.derived for r in data}
    for key in ("tau_mem", "tau_mem_copy", "tau_mem_loss"):
        if any(rec.get(key) is not None for rec in records.values()):
            fits += tau_fits([r.run for r in data], records, key)
    stored = next((r.derived["settings"] for r in data if r.derived.get("settings")), None)
    settings = stored_settings(stored) if stored else suite_dynamics(store, suite)  # what derived used
    trajs = {r.run.run_id: r.traj for r in data}
    spread = [c for metric in (settings.rate_metric, "relative_gap")
              for c in collapse([r.run for r in data], trajs, records, metric, confirm=settings.confirm,
                                loss_metric=settings.loss_metric)]
    multi = axis_fits([r.run for r in data], records, ("tau_mem", "tau_mem_copy", "tau_mem_loss"))
    compared = [c for metric in (settings.copy_metric, "relative_gap")
                for c in collapse_comparison([r.run for r in data], trajs, records, metric, settings.confirm,
                                             settings.loss_metric)]
    gaps = [g for r in data for metric in DISTANCES
            for g in [distance_gap(r.run.run_id, r.n, r.run.seed, r.traj, r.derived, metric,
                                   settings.loss_threshold, settings.confirm, threshold_onset)] if g is not None]
    local = local_exponents([r.run for r in data], records)
    return SuiteData(suite, data, settings, fits, spread, multi, compared, gaps, local)
