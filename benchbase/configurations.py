"""What makes runs comparable: a run's *configuration* is everything its id hashes but
the seed, as flat dotted keys (``budget.steps``, ``model.config.lr``). Runs of one
configuration differ only by chance (their seeds), so only they may be averaged; the
keys in which configurations differ name them to a reader."""
from __future__ import annotations

import json
from typing import Any

from benchbase.specs import RunSpec, json_default


def configuration(spec: RunSpec) -> dict[str, Any]:
    """A run's configuration as flat dotted keys: everything its id hashes but the seed
    (benchbase.specs: labels, the device and where data lives are left out already), and
    the budget of a model that does not train (evaluated once at step 0, it ignores it)."""
    identity = spec.identity()
    identity.pop("seed", None)
    if not spec.trains:
        identity.pop("budget", None)
    return _flatten(identity)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if (isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value)
            and len({v["name"] for v in value}) == len(value)):  # the metrics, by name
        return _flatten({v["name"]: {k: x for k, x in v.items() if k != "name"} for v in value}, prefix)
    return {prefix: value}


def short(value: Any) -> str:
    """A config value for a row label: long lists elided in the middle."""
    if isinstance(value, (list, tuple)) and len(value) > 4:
        return f"[{value[0]}, {value[1]}, …, {value[-1]}]"
    return str(value)


def differing(configs: list[dict[str, Any]]) -> list[str]:
    """The keys whose values are not the same in all ``configs`` (a missing key counts)."""
    keys = sorted({k for c in configs for k in c})
    text = [{k: json.dumps(c.get(k, "<absent>"), sort_keys=True, default=json_default) for k in keys}
            for c in configs]
    return [k for k in keys if len({t[k] for t in text}) > 1]


def fingerprint(config: dict[str, Any]) -> str:
    """One string per configuration (equal configurations, equal strings)."""
    return json.dumps(config, sort_keys=True, default=json_default)


def telling_apart(config: str, among) -> list[str]:
    """``key=value`` for each key in which the configuration of fingerprint ``config``
    differs from the others of ``among`` (fingerprints; none when it is alone): what a
    label adds so that groups of one model under several configurations read apart."""
    siblings = set(among) | {config}
    if len(siblings) == 1:
        return []
    mine = json.loads(config)
    return [f"{k}={short(mine.get(k, '<absent>'))}" for k in differing([json.loads(c) for c in sorted(siblings)])]
