"""``benchbase new``: create a plugin package to edit, or add a plugin to one (benchbase.scaffold)."""
from __future__ import annotations

from benchbase.commands.options import output_folder

NAME = "new"
HELP = "create a plugin package (model, dataset or metric) to edit"
DESCRIPTION = ("Write an installable plugin package: pyproject with the benchbase entry point, the plugin with "
               "working code and TODOs where the science goes, tests using the conformance kit, a tiny suite "
               "and a README. With --into, add the plugin to such a package instead (one module per plugin).")
EPILOG = ("examples:\n  benchbase new model my_flow --framework jax --dir ~/src\n"
          "  benchbase new model my_kde --framework numpy --package mylab\n"
          "  benchbase new metric my_score --into ~/src/benchbase-mylab")


def add_arguments(p) -> None:
    from benchbase.scaffold import FRAMEWORKS, KINDS

    p.add_argument("kind", choices=KINDS, help="what the plugin provides")
    p.add_argument("name", help="the plugin's name, a Python identifier (e.g. my_flow)")
    p.add_argument("--framework", choices=FRAMEWORKS, default=None,
                   help="models only: torch (default), jax or numpy")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--dir", default=".", metavar="PATH",
                       help="where to create the package folder (default: the current directory)")
    where.add_argument("--into", metavar="PACKAGE_DIR",
                       help="add the plugin to a package made by `benchbase new` instead of creating one")
    p.add_argument("--package", metavar="NAME",
                   help="name the new package benchbase-NAME (default: after the plugin), for a package that "
                        "will hold several plugins")


def run(args) -> int:
    from benchbase.errors import BenchbaseInputError
    from benchbase.scaffold import add_plugin, scaffold

    if args.into:
        if args.package:
            raise BenchbaseInputError("--package names a new package; --into adds to an existing one")
        written = add_plugin(args.kind, args.name, args.framework, args.into)
        module_file = next(p for p in written if p.suffix == ".py" and p.parent.name != "tests")
        print(f"added {args.kind} '{args.name}' to {args.into}/: {module_file}, its test, its suite and its "
              f"entry point. Next:\n"
              f"  cd {args.into}\n"
              f"  pip install -e .     # again: registers the new entry point\n"
              f"  pytest tests/test_{args.name}.py\n"
              f"  benchbase run suites/{args.name}.yaml\n"
              f"then edit {module_file.relative_to(args.into)} where it says TODO.")
        return 0
    target = scaffold(args.kind, args.name, args.framework, output_folder(args.dir, "--dir"), args.package)
    module = f"benchbase_{args.package or args.name}"
    print(f"created {target}/ ({args.kind} '{args.name}'). Next:\n"
          f"  cd {target}\n"
          f"  pip install -e .\n"
          f"  pytest\n"
          f"  benchbase run suites/{args.name}.yaml\n"
          f"then edit {module}/{args.name}.py where it says TODO; add more plugins with\n"
          f"  benchbase new KIND NAME --into {target}")
    return 0
