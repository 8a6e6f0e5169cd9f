"""Suites: loading a YAML file with overrides, validating it, and planning its runs.

A suite is validated completely before anything trains: every problem is collected
with its file and key path (and close matches for misspelled names) and raised as
one :class:`~benchbase.errors.ConfigError`. The schema lives in
benchbase.suite_schema, the expansion into runs in benchbase.planner, the run specs
in benchbase.specs; this module ties them together and re-exports the names plugin
authors and older code import from here.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib.util
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from benchbase.chance import ChanceNotMeasuredWarning
from benchbase.devices import check_devices
from benchbase.errors import BenchbaseInputError, ConfigError
from benchbase.planner import RunPlanner
from benchbase.schedules import eval_schedule
from benchbase.specs import RunSpec
from benchbase.structured import check_keys, plugin_config, typed
from benchbase.suite_checks import executor_key_hints, small_chance_pools, too_many_runs
from benchbase.suite_schema import DYNAMICS_CRITERIA, DynamicsEntry, SuiteSchema

__all__ = ["Suite", "load_suite", "build_suite", "RunSpec", "plugin_config", "typed", "check_keys",
           "eval_schedule", "DynamicsEntry", "DYNAMICS_CRITERIA", "SuiteSchema"]


class UnequalBudgetWarning(UserWarning):
    """The models of a suite draw examples more than 1% apart (a budget that is no multiple
    of each model's examples per step); validate and run say so, and the suite runs."""


@dataclass
class Suite:
    name: str
    source: str
    description: str
    runs: list[RunSpec]
    executor: dict  # {name, config}
    leaderboard: dict
    resolved: dict  # the suite after overrides and defaults, for provenance
    device: str = "auto"
    trackers: list[dict] = field(default_factory=list)  # each {name, config}, validated; not in run ids


def load_suite(path: str | Path, overrides: list[str] = (), registry=None,
               device: str | None = None, check_data: bool = True, executor: str | None = None,
               trackers: list[str] = ()) -> Suite:
    """Load, validate and expand a suite file. Raises ConfigError naming every problem.

    ``executor`` (``--executor``) replaces the suite's executor; the suite's executor
    config is kept only if it names the same one, and ``executor.config.*`` overrides
    then apply to the chosen executor. ``trackers`` (``--tracker``) are added to the
    suite's ``trackers`` with their default config unless the suite lists them."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise BenchbaseInputError(f"{source}: no such suite file")
    if not path.is_file():
        raise BenchbaseInputError(f"{source}: not a file (a directory?); name a suite YAML file")
    try:
        with path.open(encoding="utf-8") as stream:  # a stream: YAML's errors name the file
            top = yaml.safe_load(stream)
        raw = OmegaConf.load(path)
    except Exception as exc:  # YAML syntax
        raise ConfigError(source, [("", f"cannot parse YAML: {exc}")]) from None
    if not isinstance(top, dict) or not isinstance(raw, DictConfig):
        found = "an empty file" if top is None else f"a {type(top).__name__}"
        raise ConfigError(source, [("", f"a suite must be a mapping of keys (name:, datasets:, models:, ...), "
                                        f"not {found}")])
    if executor is not None:
        current = raw.get("executor")
        current = current if isinstance(current, str) else (current or {}).get("name", "local")
        if current != executor:
            raw["executor"] = {"name": executor, "config": {}}
    if trackers:
        listed = raw.get("trackers")
        listed = list(listed) if isinstance(listed, ListConfig) else [listed] if listed else []
        have = {t if isinstance(t, str) else (t or {}).get("name") for t in listed}
        raw["trackers"] = listed + [name for name in trackers if name not in have]
    for item in overrides:
        apply_override(raw, item, source)
    try:
        data = OmegaConf.to_container(raw, resolve=True)
    except OmegaConfBaseException as exc:
        raise ConfigError(source, [(getattr(exc, "full_key", "") or "", str(exc).splitlines()[0])]) from None
    if device is not None:
        data["device"] = device
    return build_suite(data, source, registry=registry, check_data=check_data)


def apply_override(cfg: DictConfig, item: str, source: str) -> None:
    """Apply one ``key.path=value`` override (OmegaConf dotlist syntax) to ``cfg``."""
    if "=" not in item:
        raise ConfigError(source, [(item, "an override must look like key.path=value "
                                          "(e.g. budget.examples=2e5)")])
    key, value = item.split("=", 1)
    try:
        parsed = OmegaConf.from_dotlist([f"v={value}"])["v"] if value != "" else ""
    except Exception as exc:
        raise ConfigError(source, [(key, f"cannot parse override value '{value}': "
                                         f"{str(exc).splitlines()[0]}")]) from None
    if isinstance(parsed, (DictConfig, ListConfig)):
        parsed = OmegaConf.to_container(parsed)
    key = key.strip()
    if key.startswith("sweep.") and "." in key[len("sweep."):]:
        # sweep axes are dotted names themselves (model.width): the rest of the key is one axis
        if not isinstance(cfg.get("sweep"), DictConfig):
            cfg["sweep"] = {}
        cfg.sweep[key[len("sweep."):]] = parsed
        return
    _check_list_indices(cfg, key, source)
    try:
        _spell_out_bare_name(cfg, key)
        OmegaConf.update(cfg, key, parsed, merge=False, force_add=True)
    except Exception as exc:
        raise ConfigError(source, [(key, f"cannot apply override: {exc}")]) from None


def _check_list_indices(cfg: DictConfig, key: str, source: str) -> None:
    """An index past the end of a list (``models.5.label`` with two models), a negative one
    or a name (``datasets.x.n``) is refused in words: an override changes entries, it does
    not append them, and OmegaConf would fail with its internals or count from the end."""
    parts = key.split(".")
    for end, part in enumerate(parts[1:], start=1):
        node = OmegaConf.select(cfg, ".".join(parts[:end]), default=None)
        if not isinstance(node, ListConfig):
            continue
        where = ".".join(parts[:end])
        if not part.isdigit():
            numbers = f"0..{len(node) - 1}" if len(node) else f"it is empty: set the whole list, {where}=[...]"
            raise ConfigError(source, [(f"{where}.{part}", f"{where} is a list; index it by number ({numbers})")])
        if int(part) >= len(node):
            entries = f"{where}.0 .. {where}.{len(node) - 1}" if len(node) else "none"
            raise ConfigError(source, [(key, f"{where} has {len(node)} entries ({entries}); an override changes "
                                             f"an entry, it does not add one: set the whole list ({where}=[...])")])


def _spell_out_bare_name(cfg: DictConfig, key: str) -> None:
    """An override of one key of an entry written as a bare name (``- copy_train``, ``features:
    pixels``) sets it in ``{name: copy_train}``, as :func:`_normalize` reads the entry, instead
    of replacing the entry with a mapping that has no name."""
    parts = key.split(".")
    for end in range(1, len(parts)):
        where = parts[:end]
        if not _names_an_entry(where):
            continue
        node = OmegaConf.select(cfg, ".".join(where), default=None)
        if isinstance(node, str):
            OmegaConf.update(cfg, ".".join(where), {"name": node}, merge=False)
        return


def _names_an_entry(parts: list[str]) -> bool:
    """Whether ``parts`` is the key of an entry that a bare plugin name may stand for."""
    return (parts in (["executor"], ["eval", "features"])
            or (len(parts) == 2 and parts[0] in _NAMED_LISTS and parts[1].isdigit()))


_NAMED_LISTS = ("datasets", "models", "metrics", "trackers")  # lists whose entries may be bare names


def _normalize(data: dict) -> dict:
    """Shorthands users write: `- mem_ratio` for `- {name: mem_ratio}`, `features: pixels`,
    `executor: local`, `seeds: 3` for `[0, 1, 2]`, `trackers: tensorboard` for a list of one."""
    data = copy.deepcopy(data)
    if isinstance(data.get("trackers"), (str, dict)):
        data["trackers"] = [data["trackers"]]
    for key in _NAMED_LISTS:
        items = data.get(key)
        if isinstance(items, list):
            data[key] = [{"name": it} if isinstance(it, str) else it for it in items]
    ev = data.get("eval")
    if isinstance(ev, dict) and isinstance(ev.get("features"), str):
        ev["features"] = {"name": ev["features"]}
    if isinstance(data.get("executor"), str):
        data["executor"] = {"name": data["executor"]}
    if isinstance(data.get("seeds"), int) and not isinstance(data.get("seeds"), bool):
        data["seeds"] = list(range(data["seeds"]))
    return data


def _check_name(data: dict, source: str) -> None:
    """YAML reads an unquoted ``name: yes`` as True and ``name: 1e3`` as 1000.0; typed into
    a string they became suites 'True' and '1000.0', which ``--suite yes`` then missed."""
    name = data.get("name")
    if name is not None and not isinstance(name, str):
        kind = ("the boolean" if isinstance(name, bool) else "the number" if isinstance(name, (int, float))
                else f"a {type(name).__name__}")
        raise ConfigError(source, [("name", f"must be a string, but YAML read it as {kind} {name!r}: "
                                            "quote it (name: \"yes\", name: \"1e3\")")])


def _check_run_count(data: dict, source: str) -> None:
    """Refuse a suite with too many runs before its seeds are expanded and its lists typed
    (minutes for a million seeds). Counted from the plain data as models x datasets x seeds
    x the sweep axes every run takes; an axis of one plugin's config only makes it a lower
    bound, and the planner counts those runs exactly."""
    def length(value) -> int:
        return len(value) if isinstance(value, list) else 1

    seeds = data.get("seeds")
    n_seeds = max(seeds, 1) if isinstance(seeds, int) and not isinstance(seeds, bool) else max(length(seeds), 1)
    sweep = data.get("sweep") if isinstance(data.get("sweep"), dict) else {}
    scoped = [k for k in sweep if str(k).startswith(("model.", "dataset."))]
    count = length(data.get("models")) * length(data.get("datasets")) * n_seeds * math.prod(
        length(v) for k, v in sweep.items() if k not in scoped)
    problem = too_many_runs(count, exact=not scoped)
    if problem:
        raise ConfigError(source, [("sweep" if sweep else "seeds", problem)])


def build_suite(data: dict, source: str = "<suite>", registry=None, check_data: bool = True) -> Suite:
    """Validate a suite given as plain data and plan its runs."""
    from benchbase.plugins import build_registry

    registry = registry or build_registry()
    _check_name(data, source)
    _check_run_count(data, source)
    schema = typed(_normalize(data), SuiteSchema, source)
    planner = RunPlanner(schema, source, registry, check_data)
    runs = planner.plan()
    executor_key_hints(planner.problems, schema.executor.name, registry)
    trackers = _trackers(schema, planner)
    if planner.problems:
        raise ConfigError(source, list(planner.problems))
    check_devices(source, schema.device, planner.executor)
    for message in planner.unequal_budgets():
        warnings.warn(f"{source}: {message}", UnequalBudgetWarning, stacklevel=2)
    for message in small_chance_pools(runs, planner.resolved_datasets(), registry):
        warnings.warn(f"{source}: {message}", ChanceNotMeasuredWarning, stacklevel=2)
    return Suite(
        name=schema.name, source=source, description=schema.description, runs=runs,
        executor=planner.executor, leaderboard=dataclasses.asdict(schema.leaderboard),
        resolved=OmegaConf.to_container(OmegaConf.structured(schema)), device=schema.device,
        trackers=trackers,
    )


def _trackers(schema: SuiteSchema, planner: RunPlanner) -> list[dict]:
    """The suite's trackers as ``{name, config}``: known names, valid configs, each
    listed once, their libraries installed (looked up, not imported: a tracker imports
    its library only when it opens). Problems go to the planner's, so they are reported
    with the rest; trackers are no part of any run."""
    chosen: list[dict] = []
    seen: set[str] = set()
    for i, entry in enumerate(schema.trackers):
        path = f"trackers[{i}]"
        if entry.name in seen:
            planner.fail(f"{path}.name", f"tracker '{entry.name}' is listed twice")
            continue
        seen.add(entry.name)
        reg = planner.lookup("tracker", entry.name, f"{path}.name")
        if reg is None:
            continue
        obj, plain = planner.config(reg, entry.config, f"{path}.config")
        if plain is None:
            continue
        try:
            tracker = reg.cls(obj)  # a constructor may refuse a config with ValueError
        except ValueError as exc:
            planner.fail(f"{path}.config", str(exc))
            continue
        missing = [m for m in tracker.requirements() if importlib.util.find_spec(m) is None]
        if missing:
            how = reg.cls.install or " ".join(missing)
            planner.fail(f"{path}.name", f"tracker '{entry.name}' needs {', '.join(missing)}, which is "
                                         f"not installed: pip install {how}")
            continue
        chosen.append({"name": entry.name, "config": plain})
    return chosen
