"""The plugin host: builds a pluggy manager and wraps it in a typed ``Registry``.

The rest of the core talks to the registry, never to ``pm.hook`` directly, so that
error isolation (one broken plugin is a warning, not a crash), attribution (which
distribution registered what) and name lookups with suggestions live in one place.

Loading order: built-in plugins (``benchbase_plugins.BUILTIN_PLUGINS``), then
third-party plugins from the entry-point group ``benchbase``. Environment:

- ``BENCHBASE_LOAD_PLUGINS``: comma-separated allow-list of third-party plugins
  (entry-point or distribution names); unset loads all, the empty string loads none.
- ``BENCHBASE_BLOCK_PLUGINS``: comma-separated plugins never to load (third-party
  names, or built-in module names such as ``benchbase_plugins.models.oracles``).
- ``BENCHBASE_STRICT_PLUGINS=1``: a plugin that fails to load is an error, not a warning.

Every call of :func:`build_registry` makes a fresh manager: no global state.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import pluggy

from benchbase import hookspecs
from benchbase.hookspecs import KINDS
from benchbase.contracts import (CAPABILITIES, DIRECTIONS, FAMILIES, FAMILY_PATTERN, FRAMEWORKS, MEMORIZES, MODALITIES,
                                 OPT_OUTS)
from benchbase.errors import PluginError, PluginLoadError, UnknownPluginError, list_choices, suggest
from benchbase.frameworks import framework_available

if TYPE_CHECKING:
    import numpy as np

    from benchbase.specs import RunSpec

ENTRY_POINT_GROUP = "benchbase"
_REGISTRAR = {kind: f"benchbase_register_{kind}s" for kind in KINDS}
BUILTIN_SOURCE = "built-in"


class PluginLoadWarning(UserWarning):
    """A third-party plugin could not be loaded; the rest keep working."""


@dataclass(frozen=True)
class Registered:
    """One component a plugin registered, with where it came from."""

    kind: str
    name: str
    cls: type
    plugin: str  # pluggy plugin name (module or entry-point name)
    source: str  # "built-in" or the distribution that registered it
    source_version: str = ""

    @property
    def framework(self) -> str | None:
        return getattr(self.cls, "framework", None)

    @property
    def family(self) -> str | None:
        return getattr(self.cls, "family", None)

    @property
    def key(self) -> tuple:
        return (self.name, self.framework) if self.kind == "model" else (self.name,)

    @property
    def version(self) -> str:
        """Goes into run ids: the plugin's own version, plus its distribution's."""
        own = str(getattr(self.cls, "version", "1"))
        if self.source == BUILTIN_SOURCE:
            return own
        return f"{own}+{self.source}=={self.source_version}"

    def describe(self) -> dict:
        doc = inspect.getdoc(self.cls) or ""
        out = {
            "name": self.name,
            "kind": self.kind,
            "family": self.family,
            "framework": self.framework,
            "source": self.source,
            "plugin": self.plugin,
            "version": self.version,
            "summary": doc.splitlines()[0] if doc else "",
        }
        if self.kind == "metric":
            out["direction"] = self.cls.direction
            out["target"] = getattr(self.cls, "target", None)
            out["requires"] = sorted(getattr(self.cls, "requires", ()))
            out["references"] = list(getattr(self.cls, "references", ("train",)))
            out["memorizes"] = getattr(self.cls, "memorizes", None)
            if out["memorizes"]:
                out["min_excess"] = float(getattr(self.cls, "min_excess", 0.0))
        if self.kind == "model":
            out["capabilities"] = sorted(getattr(self.cls, "capabilities", ()))
            out["trains"] = bool(getattr(self.cls, "trains", True))
            out["opt_outs"] = dict(getattr(self.cls, "opt_outs", {}))
            out["available"] = framework_available(self.framework)
        if self.kind == "feature":
            out["modalities"] = list(getattr(self.cls, "modalities", MODALITIES))
        if self.kind == "tracker":
            out["requires"] = list(getattr(self.cls, "requires", ()))
            out["available"] = all(importlib.util.find_spec(m) is not None for m in out["requires"])
        return out


def _env_list(name: str) -> set[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


@dataclass
class PluginPolicy:
    """Which plugins to load. Picklable, so worker processes rebuild the same registry."""

    builtins: bool = True
    entry_points: bool = True
    allow: frozenset | None = None  # None: all third-party plugins
    block: frozenset = frozenset()
    strict: bool = False
    extra: tuple = ()  # importable module names registered after the built-ins

    @classmethod
    def from_env(cls, **overrides) -> "PluginPolicy":
        allow = _env_list("BENCHBASE_LOAD_PLUGINS")
        policy = cls(
            allow=frozenset(allow) if allow is not None else None,
            block=frozenset(_env_list("BENCHBASE_BLOCK_PLUGINS") or ()),
            strict=os.environ.get("BENCHBASE_STRICT_PLUGINS", "") not in ("", "0", "false", "no"),
        )
        return dataclasses.replace(policy, **overrides)


@dataclass
class Registry:
    """Typed facade over the plugin manager."""

    pm: pluggy.PluginManager
    policy: PluginPolicy
    components: dict[str, dict[tuple, Registered]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # load warnings, for `benchbase plugins`
    _sources: dict[str, tuple[str, str]] = field(default_factory=dict)

    # ------------------------------------------------------------------ loading
    def _fail(self, message: str, exc: BaseException | None = None, remedy: str = "",
              skipped: str = "it is skipped") -> None:
        """A third-party plugin could not be loaded: stop in strict mode, else skip it
        (``skipped`` says what is skipped, in the warning only)."""
        if self.policy.strict:
            raise PluginLoadError(f"{message}; stopping because BENCHBASE_STRICT_PLUGINS is set "
                                  "(unset it to skip the plugin with a warning)") from exc
        message += f"; {skipped}.{' ' + remedy if remedy else ''}"
        self.problems.append(message)
        warnings.warn(message, PluginLoadWarning, stacklevel=3)

    def add_plugin(self, plugin: Any, name: str, source: str = BUILTIN_SOURCE,
                   source_version: str = "", builtin: bool = False) -> bool:
        """Register one plugin object (a module or an instance with hook methods)."""
        try:
            _reject_misspelled_hooks(plugin, name)
            self.pm.register(plugin, name=name)
            self.pm.check_pending()
        except Exception as exc:  # pluggy validation errors, our own checks
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            if builtin:
                raise
            self._fail(f"plugin '{name}' ({source}) was rejected: {exc}", exc)
            return False
        self._sources[name] = (source, source_version)
        return True

    def remove_plugin(self, plugin: Any) -> None:
        """Unregister a plugin object added with :meth:`add_plugin` (a suite's trackers)."""
        if self.pm.is_registered(plugin):
            self.pm.unregister(plugin)

    def collect(self) -> None:
        """Call every registrar hook implementation, one plugin at a time."""
        self.components = {kind: {} for kind in KINDS}
        for kind in KINDS:
            caller = getattr(self.pm.hook, _REGISTRAR[kind])
            # get_hookimpls() is in registration order (pluggy *calls* them in reverse);
            # registration order decides name clashes, so built-ins win.
            for impl in caller.get_hookimpls():
                source, version = self._sources.get(impl.plugin_name, (BUILTIN_SOURCE, ""))

                def register(cls, *, _kind=kind, _impl=impl, _source=source, _version=version):
                    self._register(_kind, cls, _impl.plugin_name, _source, _version)

                try:
                    impl.function(*[{"register": register}[a] for a in impl.argnames])
                except PluginLoadError:
                    raise  # strict mode stopped at a problem of this plugin: said once, already
                except PluginError as exc:
                    if source == BUILTIN_SOURCE:
                        raise
                    self._fail(str(exc), exc)
                except Exception as exc:
                    if source == BUILTIN_SOURCE:
                        raise
                    self._fail(f"plugin '{impl.plugin_name}' ({source}) failed in "
                               f"{_REGISTRAR[kind]}: {type(exc).__name__}: {exc}", exc)

    def _register(self, kind: str, cls: Any, plugin: str, source: str, version: str) -> None:
        _validate_component(kind, cls, plugin)
        entry = Registered(kind, cls.name, cls, plugin, source, version)
        table = self.components[kind]
        if entry.key in table:
            first = table[entry.key]
            message = (f"{kind} '{cls.name}'" + (f" ({entry.framework})" if kind == "model" else "")
                       + f" is registered by both '{first.plugin}' and '{plugin}'")
            if source == BUILTIN_SOURCE and first.source == BUILTIN_SOURCE:
                raise PluginError(message)
            self._fail(message, skipped=f"the one of '{plugin}' is skipped, the first kept")
            return
        table[entry.key] = entry

    # ------------------------------------------------------------------ lookups
    def all(self, kind: str) -> list[Registered]:
        return sorted(self.components[kind].values(), key=lambda r: (r.name, r.framework or ""))

    def names(self, kind: str) -> list[str]:
        return sorted({r.name for r in self.components[kind].values()})

    def get(self, kind: str, name: str, framework: str | None = None) -> Registered:
        """Find a component. A model name that exists in several frameworks resolves to
        the first of torch, jax, numpy unless ``framework`` is given."""
        if kind == "model":
            matches = [r for r in self.components[kind].values() if r.name == name]
            if framework is not None:
                chosen = [r for r in matches if r.framework == framework]
                if not chosen:
                    if matches:
                        have = ", ".join(sorted(r.framework for r in matches))
                        raise UnknownPluginError(kind, name, message=(
                            f"model '{name}' has no '{framework}' version; it exists for: {have}"))
                    raise UnknownPluginError(kind, name, self.names(kind))
                return chosen[0]
            if matches:
                # One name in several frameworks: PyTorch, then JAX, then NumPy, unless
                # the suite says `framework:`. Fixed order, independent of what is installed.
                return min(matches, key=lambda r: FRAMEWORKS.index(r.framework))
            raise UnknownPluginError(kind, name, self.names(kind))
        entry = self.components[kind].get((name,))
        if entry is None:
            raise UnknownPluginError(kind, name, self.names(kind))
        return entry

    # ---------------------------------------------------------------- observers
    @property
    def observers(self) -> "Observers":
        return Observers(self.pm)


class Observers:
    """The observer hooks, one typed method each. A failing observer only warns; the
    arguments are bound before the plugin is called, so a mistake of the core (a
    missing argument) raises instead of being reported as the plugin's fault. ``suite``
    is a :class:`benchbase.config.Suite` (typed loosely: config imports this module)."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm

    def suite_started(self, suite: Any, results_dir: Path) -> None:
        self._call("benchbase_suite_started", {"suite": suite, "results_dir": results_dir})

    def run_started(self, spec: "RunSpec", run_id: str, provenance: dict, resumed_from: int = 0) -> None:
        self._call("benchbase_run_started", {"spec": spec, "run_id": run_id, "provenance": provenance,
                                             "resumed_from": resumed_from})

    def evaluated(self, spec: "RunSpec", run_id: str, step: int, examples: int, results: list,
                  samples: "np.ndarray | None" = None) -> None:
        self._call("benchbase_evaluated", {"spec": spec, "run_id": run_id, "step": step, "examples": examples,
                                           "results": results, "samples": samples})

    def run_finished(self, spec: "RunSpec", run_id: str, status: str, summary: dict) -> None:
        self._call("benchbase_run_finished", {"spec": spec, "run_id": run_id, "status": status, "summary": summary})

    def suite_finished(self, suite: Any, results_dir: Path, statuses: dict[str, str]) -> None:
        self._call("benchbase_suite_finished", {"suite": suite, "results_dir": results_dir, "statuses": statuses})

    def _call(self, hook: str, arguments: dict) -> None:
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            args = [arguments[a] for a in impl.argnames]
            try:
                impl.function(*args)
            except Exception as exc:
                warnings.warn(f"plugin '{impl.plugin_name}' raised in {hook}: "
                              f"{type(exc).__name__}: {exc}", PluginLoadWarning, stacklevel=3)


def _reject_misspelled_hooks(plugin: Any, name: str) -> None:
    """A ``benchbase_*`` attribute that is no hook is a typo pluggy would ignore."""
    known = {n for n in dir(hookspecs) if n.startswith("benchbase_")}
    for attr in dir(plugin):
        if attr.startswith("benchbase_") and attr not in known and callable(getattr(plugin, attr)):
            raise PluginError(f"'{attr}' is not a benchbase hook.{suggest(attr, known)} "
                              f"Hooks: {', '.join(sorted(known))}")


_REQUIRED_METHODS = {
    "model": ("init", "train_step", "sample", "save", "load"),
    "dataset": ("load",),
    "metric": ("compute",),
    "feature": ("embed",),
    "executor": ("execute",),
    "publisher": ("render",),
    "tracker": ("open", "run_started", "evaluated", "run_finished", "close"),
}


def _validate_component(kind: str, cls: Any, plugin: str) -> None:
    where = f"{kind} registered by '{plugin}'"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
        raise PluginError(f"{where} needs a `name` made of letters, digits, '_' or '-' (got {name!r})")
    where = f"{kind} '{name}' (from '{plugin}')"
    if not inspect.isclass(cls):
        raise PluginError(f"{where}: register the class, not an instance")
    missing = [m for m in _REQUIRED_METHODS[kind] if not callable(getattr(cls, m, None))]
    if missing:
        raise PluginError(f"{where} lacks required method(s): {', '.join(missing)}")
    config = getattr(cls, "Config", None)
    if config is None or not dataclasses.is_dataclass(config):
        raise PluginError(f"{where}: `Config` must be a dataclass (use contracts.EmptyConfig)")
    if kind == "model":
        family = getattr(cls, "family", None)
        if not isinstance(family, str) or not re.fullmatch(FAMILY_PATTERN, family):
            raise PluginError(f"{where}: family must be a lowercase name such as {', '.join(FAMILIES)} "
                              f"(got {family!r})")
        if getattr(cls, "framework", None) not in FRAMEWORKS:
            raise PluginError(f"{where}: framework must be one of {', '.join(FRAMEWORKS)}")
        opt_outs = getattr(cls, "opt_outs", {})
        if not isinstance(opt_outs, Mapping):
            raise PluginError(f"{where}: opt_outs must map a clause to the reason (got {type(opt_outs).__name__})")
        for clause, reason in opt_outs.items():
            if clause not in OPT_OUTS:
                raise PluginError(f"{where}: cannot opt out of '{clause}'.{suggest(clause, OPT_OUTS)} "
                                  f"Clauses a model may opt out of: {', '.join(OPT_OUTS)}")
            if not isinstance(reason, str) or not reason.strip():
                raise PluginError(f"{where}: opt-out '{clause}' needs the reason, as a sentence")
        for cap in getattr(cls, "capabilities", ()):
            if cap not in CAPABILITIES:
                raise PluginError(f"{where}: unknown capability '{cap}' ({', '.join(CAPABILITIES)})")
            if not callable(getattr(cls, cap, None)):
                raise PluginError(f"{where} declares capability '{cap}' but has no method '{cap}'")
    if kind == "metric":
        direction = getattr(cls, "direction", None)
        if direction not in DIRECTIONS:
            raise PluginError(f"{where}: direction must be one of {', '.join(DIRECTIONS)}")
        if direction == "target" and getattr(cls, "target", None) is None:
            raise PluginError(f"{where}: direction 'target' needs a `target` value")
        refs = getattr(cls, "references", ("train",))
        if not refs or any(r not in ("train", "test") for r in refs):
            raise PluginError(f"{where}: references must be a non-empty tuple of 'train'/'test'")
        memorizes = getattr(cls, "memorizes", None)
        if memorizes is not None:
            if memorizes not in MEMORIZES:
                raise PluginError(f"{where}: memorizes must be None or one of {', '.join(MEMORIZES)}")
            if any(r.startswith("capability:") for r in getattr(cls, "requires", ())):
                raise PluginError(f"{where}: a memorization metric (memorizes set) cannot require a model "
                                  "capability: its chance level scores held-out points in place of samples")
            min_excess = getattr(cls, "min_excess", 0.0)
            if not isinstance(min_excess, (int, float)) or not min_excess >= 0:
                raise PluginError(f"{where}: min_excess must be a number >= 0")
    if kind == "feature":
        bad = [m for m in getattr(cls, "modalities", MODALITIES) if m not in MODALITIES]
        if bad:
            raise PluginError(f"{where}: unknown modalities {bad}")
    if kind == "tracker":
        requires = getattr(cls, "requires", ())
        if not isinstance(requires, tuple) or not all(isinstance(m, str) and m for m in requires):
            raise PluginError(f"{where}: `requires` must be a tuple of module names, e.g. ('mlflow',)")


# ------------------------------------------------------------------------ building


def _builtin_modules() -> Iterable[str]:
    from benchbase_plugins import BUILTIN_PLUGINS

    return BUILTIN_PLUGINS


def build_registry(policy: PluginPolicy | None = None, **overrides) -> Registry:
    """A fresh plugin manager with built-ins, entry points and any extras loaded."""
    policy = policy or PluginPolicy.from_env()
    if overrides:
        policy = dataclasses.replace(policy, **overrides)
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    registry = Registry(pm=pm, policy=policy)

    if policy.builtins:
        for module_name in _builtin_modules():
            if module_name in policy.block:
                continue
            registry.add_plugin(importlib.import_module(module_name), module_name, builtin=True)

    for module_name in policy.extra:
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            registry._fail(f"plugin module '{module_name}' failed to import: {exc}", exc)
            continue
        registry.add_plugin(module, module_name, source="extra")

    if policy.entry_points:
        _load_entry_points(registry, policy)

    registry.collect()
    return registry


def _load_entry_points(registry: Registry, policy: PluginPolicy) -> None:
    installed: set[str] = set()
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else ep.name
        dist_version = dist.version if dist is not None else ""
        names = {ep.name, dist_name}
        installed |= names
        if policy.allow is not None and not (names & policy.allow):
            continue
        if names & policy.block:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            registry._fail(f"plugin '{ep.name}' from distribution '{dist_name}' failed to import "
                           f"({type(exc).__name__}: {exc})", exc,
                           remedy=f"Set BENCHBASE_BLOCK_PLUGINS={ep.name} to silence this.")
            continue
        if isinstance(plugin, ModuleType) or not inspect.isclass(plugin):
            registry.add_plugin(plugin, ep.name, source=dist_name, source_version=dist_version)
        else:  # a class with hook methods: register an instance
            registry.add_plugin(plugin(), ep.name, source=dist_name, source_version=dist_version)
    for name in sorted((policy.allow or set()) - installed):  # a typo would load nothing, silently
        registry._fail(f"BENCHBASE_LOAD_PLUGINS names '{name}', which is no installed plugin (entry-point or "
                       f"distribution name).{suggest(name, installed)} Installed: {list_choices(installed)}",
                       skipped="nothing is loaded for it")
