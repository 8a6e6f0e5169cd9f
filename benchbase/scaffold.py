"""``benchbase new model|dataset|metric NAME``: write an installable plugin package
that works out of the box (it installs, passes its conformance tests and runs in its
suite), so a researcher starts from working code and edits only the science. A
package holds one module per plugin, each with its own entry point; ``--into`` adds
another plugin to a package made this way.

Templates live in ``benchbase/templates/scaffold/`` (``string.Template``, ``${name}``
placeholders) and are shipped as package data.
"""
from __future__ import annotations

import importlib.util
import keyword
import re
import string
import tomllib
import warnings
from importlib import resources
from pathlib import Path

from benchbase.errors import BenchbaseInputError

KINDS = ("model", "dataset", "metric")
FRAMEWORKS = ("torch", "jax", "numpy")
SUMMARIES = {
    ("model", "torch"): "A small denoising diffusion model (variance-exploding, EDM preconditioning) with an MLP.",
    ("model", "jax"): "A small denoising diffusion model (variance-exploding, EDM preconditioning) with an MLP.",
    ("model", "numpy"): "A diagonal Gaussian fitted by gradient steps on the negative log-likelihood.",
    ("dataset", None): "A synthetic 2-D distribution (a noisy circle) with an exact sampler.",
    ("metric", None): "Mean distance from each generated sample to its nearest reference points.",
}
REQUIREMENTS = {"jax": "benchbase[jax]"}
ENTRY_POINTS = "[project.entry-points.benchbase]"
_DISTRIBUTION = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")  # PEP 508 names


def class_name(name: str) -> str:
    """my_flow -> MyFlow (prefixed when that would not be an identifier)."""
    camel = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)
    return camel if camel.isidentifier() else f"Plugin{camel}"


def validate_name(name: str, what: str = "plugin name") -> None:
    """ASCII only: the name becomes a distribution name, which pip refuses otherwise."""
    if not name.isascii() or not name.isidentifier() or keyword.iskeyword(name):
        raise BenchbaseInputError(
            f"{what} '{name}' is not a Python identifier in ASCII: use ASCII letters, digits and '_', not "
            "starting with a digit (e.g. my_flow); it names the plugin, its module and its entry point")


def distribution_name(package: str, what: str = "plugin name") -> str:
    """benchbase-PACKAGE with '-' for '_', refused unless PACKAGE itself is a name pip accepts
    (PEP 508: it must start and end with a letter or digit, so 'flow_' and '_' cannot name a
    package, and '_x' would have made the folder 'benchbase--x')."""
    dist = f"benchbase-{package.replace('_', '-')}"
    if not _DISTRIBUTION.fullmatch(package.replace("_", "-")):
        raise BenchbaseInputError(f"{what} '{package}' would name the package '{dist}': a name must start "
                                  "and end with a letter or digit, not '_' or '-' (e.g. my_flow)")
    return dist


def _template(filename: str) -> string.Template:
    text = resources.files("benchbase").joinpath("templates", "scaffold", filename).read_text(encoding="utf-8")
    return string.Template(text)


def _values(kind: str, name: str, framework: str | None, module: str, dist: str) -> dict[str, str]:
    return {
        "name": name, "cls": class_name(name), "kind": kind, "module": module, "dist": dist,
        "plugin_module": f"{module}.{name}", "summary": SUMMARIES[(kind, framework)],
        "framework": framework or "numpy",
        "framework_flag": f" --framework {framework}" if framework not in (None, "torch") else "",
        "requirement": REQUIREMENTS.get(framework or "", "benchbase"),
    }


def plugin_files(kind: str, name: str, framework: str | None, module: str, dist: str) -> dict[str, str]:
    """The files of one plugin inside a package: its module, its test and its suite."""
    values = _values(kind, name, framework, module, dist)
    source = f"model_{framework}.py.tmpl" if kind == "model" else f"{kind}.py.tmpl"
    files = {f"{module}/{name}.py": source, f"tests/test_{name}.py": f"test_{kind}.py.tmpl",
             f"suites/{name}.yaml": f"suite_{kind}.yaml.tmpl"}
    return {path: _template(tmpl).substitute(values) for path, tmpl in files.items()}


def plan(kind: str, name: str, framework: str | None = "torch", package: str | None = None) -> dict[str, str]:
    """The files of a new package (named ``package``, by default after the plugin) that
    holds one plugin, relative path -> text. More plugins join it with ``add_plugin``."""
    framework = framework if kind == "model" else None
    package = package or name
    module, dist = f"benchbase_{package}", distribution_name(package)
    values = _values(kind, name, framework, module, dist)
    files = {path: _template(tmpl).substitute(values) for path, tmpl in
             (("pyproject.toml", "pyproject.toml.tmpl"), ("README.md", "README.md.tmpl"),
              (f"{module}/__init__.py", "init.py.tmpl"))}
    return {**files, **plugin_files(kind, name, framework, module, dist)}


def _check_free(kind: str, name: str, module: str | None = None) -> None:
    """A clash with an installed plugin or module would shadow one of them silently."""
    if module is not None and importlib.util.find_spec(module) is not None:
        raise BenchbaseInputError(f"a module named '{module}' is already importable here; choose another name")
    from benchbase.plugins import build_registry

    registry = build_registry()
    taken = [r for r in registry.all(kind) if r.name == name]
    if taken:  # in any framework: a suite naming a model without `framework:` gets the torch one first
        where = f"{'/'.join(sorted({r.framework for r in taken}))}, " if kind == "model" else ""
        raise BenchbaseInputError(f"a {kind} named '{name}' is already registered ({where}by {taken[0].source}: "
                                  f"{taken[0].plugin}); choose another name")


def _framework(kind: str, framework: str | None) -> str | None:
    if framework is not None and kind != "model":
        raise BenchbaseInputError(f"--framework applies to models only ({kind}s are framework-neutral numpy)")
    if kind != "model":
        return None
    framework = framework or "torch"
    if framework not in FRAMEWORKS:
        raise BenchbaseInputError(f"unknown framework '{framework}'; choose one of {', '.join(FRAMEWORKS)}")
    return framework


def _write(target: Path, files: dict[str, str]) -> None:
    existing = [rel for rel in files if (target / rel).exists()]
    if existing:
        raise BenchbaseInputError(f"{target / existing[0]} already exists; not overwriting it")
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def scaffold(kind: str, name: str, framework: str | None = None, parent: str | Path = ".",
             package: str | None = None) -> Path:
    """Write a new package holding a new plugin under ``parent``; returns its directory."""
    if kind not in KINDS:
        raise BenchbaseInputError(f"unknown kind '{kind}'; choose one of {', '.join(KINDS)}")
    validate_name(name)
    if package is not None:
        validate_name(package, "package name")
    framework = _framework(kind, framework)
    target = Path(parent) / distribution_name(package or name, "package name" if package else "plugin name")
    if target.exists():
        raise BenchbaseInputError(f"{target} already exists; not overwriting it (remove it, pick --dir, or add "
                                  f"the plugin to it with --into {target})")
    _check_free(kind, name, f"benchbase_{package or name}")
    _write(target, plan(kind, name, framework, package))
    return target


def add_plugin(kind: str, name: str, framework: str | None, package_dir: str | Path) -> list[Path]:
    """Add a plugin (module, test, suite and entry point) to a package made by
    ``benchbase new``; returns the files written or changed."""
    if kind not in KINDS:
        raise BenchbaseInputError(f"unknown kind '{kind}'; choose one of {', '.join(KINDS)}")
    validate_name(name)
    framework = _framework(kind, framework)
    root = Path(package_dir)
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        raise BenchbaseInputError(f"{root}: no pyproject.toml here; --into takes a package made by `benchbase new`")
    text = pyproject.read_text(encoding="utf-8")
    try:
        meta = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BenchbaseInputError(f"{pyproject}: cannot parse it ({exc})") from None
    packages = meta.get("tool", {}).get("setuptools", {}).get("packages") or []
    entry_points = meta.get("project", {}).get("entry-points", {}).get("benchbase")
    if len(packages) != 1 or entry_points is None or ENTRY_POINTS not in text:
        raise BenchbaseInputError(f"{pyproject}: expected one package under [tool.setuptools] packages and a "
                                  f"{ENTRY_POINTS} table, as `benchbase new` writes them")
    if name in entry_points:
        raise BenchbaseInputError(f"{pyproject}: an entry point '{name}' exists already; choose another name")
    _check_free(kind, name)
    module = packages[0]
    dist = meta.get("project", {}).get("name", f"benchbase-{name}")
    files = plugin_files(kind, name, framework, module, dist)
    _write(root, files)
    line = f'{name} = "{module}.{name}"\n'
    head = text.index(ENTRY_POINTS) + len(ENTRY_POINTS) + 1
    pyproject.write_text(text[:head] + line + text[head:], encoding="utf-8")
    requirement = REQUIREMENTS.get(framework or "")
    if requirement and requirement not in text:
        warnings.warn(f"{pyproject}: add \"{requirement}\" to the dependencies: {name} is a {framework} model",
                      stacklevel=2)
    return [root / rel for rel in files] + [pyproject]

