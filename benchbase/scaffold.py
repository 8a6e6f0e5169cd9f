"""``benchbase new model|dataset|metric NAME``: write an installable plugin package
that works out of the box (it installs, passes its conformance tests and runs in its
suite), so a researcher starts from working code and edits only the science.

Templates live in ``benchbase/templates/scaffold/`` (``string.Template``, ``${name}``
placeholders) and are shipped as package data.
"""
from __future__ import annotations

import importlib.util
import keyword
import string
from importlib import resources
from pathlib import Path

from benchbase.errors import BenchbaseInputError

KINDS = ("model", "dataset", "metric")
FRAMEWORKS = ("torch", "jax")
SUMMARIES = {
    "model": "A small denoising diffusion model (variance-exploding, EDM preconditioning) with an MLP.",
    "dataset": "A synthetic 2-D distribution (a noisy circle) with an exact sampler.",
    "metric": "Mean distance from each generated sample to its nearest reference points.",
}


def class_name(name: str) -> str:
    """my_flow -> MyFlow (prefixed when that would not be an identifier)."""
    camel = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)
    return camel if camel.isidentifier() else f"Plugin{camel}"


def validate_name(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise BenchbaseInputError(
            f"plugin name '{name}' is not a Python identifier: use letters, digits and '_', not starting "
            "with a digit (e.g. my_flow); it names the plugin, its module and its entry point")


def _template(filename: str) -> string.Template:
    text = resources.files("benchbase").joinpath("templates", "scaffold", filename).read_text(encoding="utf-8")
    return string.Template(text)


def plan(kind: str, name: str, framework: str = "torch") -> dict[str, str]:
    """The files of the package, relative path -> text."""
    module = f"benchbase_{name}"
    values = {
        "name": name, "cls": class_name(name), "kind": kind, "module": module,
        "dist": f"benchbase-{name.replace('_', '-')}", "summary": SUMMARIES[kind],
        "framework": framework, "framework_flag": " --framework jax" if framework == "jax" else "",
        "requirement": "benchbase[jax]" if framework == "jax" else "benchbase",
    }
    source = f"model_{framework}.py.tmpl" if kind == "model" else f"{kind}.py.tmpl"
    files = {
        "pyproject.toml": "pyproject.toml.tmpl",
        "README.md": "README.md.tmpl",
        f"{module}/__init__.py": "init.py.tmpl",
        f"{module}/plugin.py": source,
        f"tests/test_{name}.py": f"test_{kind}.py.tmpl",
        f"suites/{name}.yaml": f"suite_{kind}.yaml.tmpl",
    }
    return {path: _template(tmpl).substitute(values) for path, tmpl in files.items()}


def _check_free(kind: str, name: str, framework: str) -> None:
    """A clash with an installed plugin or module would shadow one of them silently."""
    module = f"benchbase_{name}"
    if importlib.util.find_spec(module) is not None:
        raise BenchbaseInputError(f"a module named '{module}' is already importable here; choose another name")
    from benchbase.plugins import build_registry

    registry = build_registry()
    taken = [r for r in registry.all(kind) if r.name == name and (kind != "model" or r.framework == framework)]
    if taken:
        raise BenchbaseInputError(f"a {kind} named '{name}' is already registered (by {taken[0].source}: "
                                  f"{taken[0].plugin}); choose another name")


def scaffold(kind: str, name: str, framework: str | None = None, parent: str | Path = ".") -> Path:
    """Write the package for a new plugin under ``parent``; returns its directory."""
    if kind not in KINDS:
        raise BenchbaseInputError(f"unknown kind '{kind}'; choose one of {', '.join(KINDS)}")
    validate_name(name)
    if framework is not None and kind != "model":
        raise BenchbaseInputError(f"--framework applies to models only ({kind}s are framework-neutral numpy)")
    framework = framework or "torch"
    if framework not in FRAMEWORKS:
        raise BenchbaseInputError(f"unknown framework '{framework}'; choose one of {', '.join(FRAMEWORKS)}")
    target = Path(parent) / f"benchbase-{name.replace('_', '-')}"
    if target.exists():
        raise BenchbaseInputError(f"{target} already exists; not overwriting it (remove it or pick --dir)")
    _check_free(kind, name, framework)
    files = plan(kind, name, framework)
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target
