"""``benchbase plugins``: list registered plugins."""
from __future__ import annotations

import json

from benchbase.hookspecs import KINDS

NAME = "plugins"
HELP = "list registered plugins"
DESCRIPTION = "List every registered plugin: name, kind, family, framework and where it came from."


def add_arguments(p) -> None:
    p.add_argument("--kind", choices=KINDS)
    p.add_argument("--json", action="store_true", help="machine-readable output")


def run(args) -> int:
    from tabulate import tabulate

    from benchbase.plugins import build_registry

    registry = build_registry()
    kinds = [args.kind] if args.kind else list(KINDS)
    items = [r.describe() for kind in kinds for r in registry.all(kind)]
    if args.json:
        print(json.dumps(items, indent=2))
        return 0
    rows = [[i["kind"], i["name"], i.get("family") or "", i.get("framework") or "",
             i.get("direction") or "", i["source"], i["summary"][:60]] for i in items]
    print(tabulate(rows, headers=["kind", "name", "family", "framework", "direction", "source", "summary"]))
    return 0
