"""``benchbase new``: create a plugin package to edit (benchbase.scaffold)."""
from __future__ import annotations

NAME = "new"
HELP = "create a plugin package (model, dataset or metric) to edit"
DESCRIPTION = ("Write an installable plugin package: pyproject with the benchbase entry point, the plugin with "
               "working code and TODOs where the science goes, tests using the conformance kit, a tiny suite "
               "and a README.")
EPILOG = "example:\n  benchbase new model my_flow --framework jax --dir ~/src"


def add_arguments(p) -> None:
    from benchbase.scaffold import FRAMEWORKS, KINDS

    p.add_argument("kind", choices=KINDS, help="what the plugin provides")
    p.add_argument("name", help="the plugin's name, a Python identifier (e.g. my_flow)")
    p.add_argument("--framework", choices=FRAMEWORKS, default=None, help="models only: torch (default) or jax")
    p.add_argument("--dir", default=".", metavar="PATH",
                   help="where to create benchbase-NAME/ (default: the current directory)")


def run(args) -> int:
    from benchbase.scaffold import scaffold

    target = scaffold(args.kind, args.name, args.framework, args.dir)
    print(f"created {target}/ ({args.kind} '{args.name}'). Next:\n"
          f"  cd {target}\n"
          f"  pip install -e .\n"
          f"  pytest\n"
          f"  benchbase run suites/{args.name}.yaml\n"
          f"then edit benchbase_{args.name}/plugin.py where it says TODO.")
    return 0
