"""Commands that do not train start without loading a framework: every plugin is
described and a suite validated without importing PyTorch or JAX (or matplotlib,
scipy, scikit-learn). Each command runs in a fresh interpreter, which reports what
it imported. (How long they take is measured by benchmarks/bench_startup.py.)"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# `benchbase plugins` lists every installed entry point: this module, test_scaffold_e2e and
# test_plugins' installed distribution (which pip-install plugins into the environment for a
# while) share one xdist group, so under `pytest -n 2 --dist loadgroup` they never overlap.
pytestmark = pytest.mark.xdist_group("installs_plugins")


REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "jax", "flax", "optax", "matplotlib", "scipy", "sklearn")

PROBE = """
import json, os, site, sys, traceback
from pathlib import Path
HEAVY = %r
importers = {}

class RecordImporter:
    \"\"\"Notes the call stack that first imports each heavy module, so a failure says who did.\"\"\"

    def find_spec(self, name, path=None, target=None):
        if name in HEAVY and name not in importers:
            frames = [f for f in traceback.extract_stack()[:-1] if "importlib" not in f.filename]
            importers[name] = [f"{f.filename}:{f.lineno} {f.name}" for f in frames[-8:]]
        return None

sys.meta_path.insert(0, RecordImporter())
preloaded = [m for m in HEAVY if m in sys.modules]  # imported at interpreter start (a .pth, sitecustomize)
from benchbase.cli import main
status = None
try:
    status = main(sys.argv[1:])
except SystemExit as exc:  # --help
    status = exc.code
loaded = [m for m in HEAVY if m in sys.modules]
print(json.dumps({"status": status, "loaded": loaded, "preloaded": preloaded,
                  "importers": {m: importers.get(m) for m in loaded}, "sys_path": sys.path,
                  "pth": sorted(str(f) for d in site.getsitepackages() for f in Path(d).glob("*.pth")),
                  "python_env": {k: v for k, v in os.environ.items() if k.startswith("PYTHON")}}), file=sys.stderr)
""" % (HEAVY,)


def _imports(*argv: str, cwd=REPO) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=cwd,
                          timeout=600)
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [
    ("plugins",),
    ("plugins", "--json"),
    ("validate", str(REPO / "suites" / "quickstart.yaml")),
    ("validate", str(REPO / "suites" / "zoo.yaml")),
    ("--help",),
])
def test_commands_that_do_not_train_import_no_framework(argv):
    got = _imports(*argv)
    assert got["status"] in (0, None) and got["loaded"] == [], got


def test_plugins_are_described_without_their_framework():
    done = subprocess.run([sys.executable, "-m", "benchbase.cli", "plugins", "--kind", "model", "--json"],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    models = {(m["name"], m["framework"]): m for m in json.loads(done.stdout)}
    flow = models[("rectified_flow", "torch")]
    assert flow["family"] == "flow" and flow["summary"] and flow["available"] is True
    assert {"heldout_loss", "denoise"} <= set(flow["capabilities"])
    assert models[("kde", "numpy")]["trains"] is False


def test_leaderboard_of_a_store_imports_no_framework(registry, tmp_path):
    from benchbase.testing import run_suite_quietly

    suite = {"name": "light", "seeds": [0], "device": "cpu",
             "datasets": [{"name": "gmm2d", "n": 64, "config": {"train_size": 300, "test_size": 100}}],
             "models": ["kde", "copy_train"], "metrics": ["fd"], "budget": {"steps": 2, "batch_size": 8},
             "eval": {"n_samples": 50}}
    assert run_suite_quietly(suite, tmp_path / "results", registry=registry).result.ok
    for fmt in ("markdown", "json", "html"):
        got = _imports("leaderboard", "--results", str(tmp_path / "results"), "--format", fmt)
        assert got["status"] == 0 and got["loaded"] == [], (fmt, got)
