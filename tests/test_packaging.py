"""Packaging: every package folder ships, built-ins import as benchbase_plugins (never as a
bare `plugins`), and every committed suite validates."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _declared_packages() -> set[str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(data["tool"]["setuptools"]["packages"])


def test_every_package_folder_is_declared():
    found = set()
    for top, name in (("benchbase", "benchbase"), ("plugins", "benchbase_plugins")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top)
            parts = [p for p in rel.parts if p != "."]
            if any(p.startswith((".", "_")) or p in ("templates",) for p in parts):
                continue
            found.add(".".join([name, *parts]))
    assert found <= _declared_packages(), f"add to pyproject packages: {sorted(found - _declared_packages())}"


def test_builtins_install_under_a_namespaced_name(tmp_path):
    """Outside the checkout (pytest puts its root on sys.path), the installed
    distribution offers the built-ins as ``benchbase_plugins`` and not as ``plugins``."""
    probe = ("import importlib.util as u; s = u.find_spec('plugins'); b = u.find_spec('benchbase_plugins'); "
             "print(s.origin if s else '-'); print(b.origin if b else '-')")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                         check=True).stdout.split("\n")
    bare, namespaced = out[0], out[1]
    assert namespaced != "-", "benchbase_plugins is not installed"
    assert bare == "-" or not Path(bare).resolve().is_relative_to(ROOT), f"built-ins leak as `plugins`: {bare}"


def test_every_builtin_plugin_module_is_listed():
    from benchbase_plugins import BUILTIN_PLUGINS

    for module in BUILTIN_PLUGINS:
        assert importlib.util.find_spec(module) is not None, module


@pytest.mark.parametrize("suite", sorted((ROOT / "suites").glob("*.yaml")), ids=lambda p: p.name)
def test_committed_suites_validate(suite, registry):
    from benchbase.config import load_suite
    from benchbase.errors import MissingDataError

    try:
        loaded = load_suite(suite, registry=registry)
    except MissingDataError:  # real datasets are not on CI machines: validate the rest
        loaded = load_suite(suite, registry=registry, check_data=False)
    assert loaded.runs
