"""`benchbase new`: names are validated, nothing is overwritten, and what it writes is a
package whose plugin keeps its contract and whose suite validates (in process; the
install-and-run round trip is tests/test_scaffold_e2e.py)."""
from __future__ import annotations

import ast
import sys
import tomllib

import pytest

from benchbase.cli import main
from benchbase.config import load_suite
from benchbase.plugins import PluginPolicy, build_registry
from benchbase.scaffold import class_name, plan, scaffold
from benchbase.testing import check_dataset, check_metric, check_model, small_config


@pytest.mark.parametrize("name", ["1bad", "my-flow", "class", "with space", "", "ünïcode"])
def test_invalid_names_exit_2_with_a_clear_message(tmp_path, capsys, name):
    assert main(["new", "model", name, "--dir", str(tmp_path)]) == 2
    assert "not a Python identifier" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv, shown", [(["_"], "benchbase--"), (["flow_"], "benchbase-flow-"),
                                         (["x", "--package", "__"], "benchbase---"),
                                         (["_x"], "benchbase--x"),  # was written, as folder benchbase--x
                                         (["x", "--package", "_x"], "benchbase--x")])
def test_names_pip_would_refuse_as_a_distribution_exit_2(tmp_path, capsys, argv, shown):
    assert main(["new", "model", *argv, "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert f"'{shown}': a name must start and end with a letter or digit" in err and "\n" not in err
    assert not any(tmp_path.iterdir())


def test_an_existing_directory_is_never_overwritten(tmp_path, capsys):
    target = tmp_path / "benchbase-my-flow"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    assert main(["new", "model", "my_flow", "--dir", str(tmp_path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("argv,message", [
    (["new", "dataset", "ring", "--framework", "jax"], "applies to models only"),
    (["new", "model", "vae"], "already registered"),
    (["new", "model", "copy_train", "--framework", "torch"], "model named 'copy_train' is already registered (numpy"),
    (["new", "model", "gan", "--framework", "numpy"], "model named 'gan' is already registered (jax"),
    (["new", "metric", "plugins"], "already importable"),
])
def test_clashes_and_misplaced_options_exit_2(tmp_path, capsys, argv, message):
    assert main(argv + ["--dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("under", ["", "sub"])
def test_a_dir_that_is_a_file_exits_2_naming_it(tmp_path, capsys, under):
    (tmp_path / "q.yaml").write_text("keep")
    assert main(["new", "model", "my_flow", "--dir", str(tmp_path / "q.yaml" / under)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --dir ") and "q.yaml is a file, not a folder" in err and "\n" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.yaml"]


def test_unknown_kind_is_an_argparse_error(tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["new", "widget", "x", "--dir", str(tmp_path)])
    assert info.value.code == 2


def test_class_names():
    assert class_name("my_flow") == "MyFlow"
    assert class_name("_1x") == "Plugin1x"


@pytest.mark.parametrize("kind,framework", [("model", "torch"), ("model", "jax"), ("model", "numpy"),
                                            ("dataset", "torch"), ("metric", "torch")])
def test_the_package_is_complete_and_well_formed(kind, framework):
    files = plan(kind, "thing", framework)
    assert set(files) == {"pyproject.toml", "README.md", "benchbase_thing/__init__.py",
                          "benchbase_thing/thing.py", "tests/test_thing.py", "suites/thing.yaml"}
    for path, text in files.items():
        if path.endswith(".py"):
            ast.parse(text, filename=path)
    meta = tomllib.loads(files["pyproject.toml"])
    assert meta["project"]["entry-points"]["benchbase"] == {"thing": "benchbase_thing.thing"}
    assert meta["project"]["name"] == "benchbase-thing"
    assert ("benchbase[jax]" in meta["project"]["dependencies"]) == (framework == "jax" and kind == "model")
    plugin = files["benchbase_thing/thing.py"]
    assert "TODO" in plugin and "@hookimpl" in plugin
    assert f'framework = "{framework}"' in plugin or kind != "model"
    assert "from benchbase_thing.thing import" in files["tests/test_thing.py"]


@pytest.mark.parametrize("framework", ["torch", "jax"])
def test_a_generated_model_registers_without_importing_its_framework(tmp_path, framework):
    """`benchbase plugins`, `validate` and `leaderboard` import every installed plugin:
    a scaffolded model must not load PyTorch or JAX until it trains. A fresh interpreter
    imports the generated module and registers it through its hook."""
    import json
    import subprocess

    for path, text in plan("model", "thing", framework).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    probe = (
        "import json, sys\n"
        "import benchbase_thing.thing as plugin\n"
        "found = []\n"
        "plugin.benchbase_register_models(found.append)\n"
        "heavy = [m for m in ('torch', 'jax', 'flax', 'optax') if m in sys.modules]\n"
        "print(json.dumps({'registered': [c.name for c in found], 'framework': found[0].framework, "
        "'loaded': heavy}))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {"registered": ["thing"], "framework": framework, "loaded": []}, got


def test_a_package_named_apart_from_its_plugin():
    files = plan("model", "kde2", "numpy", package="mylab")
    assert "benchbase_mylab/kde2.py" in files
    meta = tomllib.loads(files["pyproject.toml"])
    assert meta["project"]["name"] == "benchbase-mylab"
    assert meta["project"]["entry-points"]["benchbase"] == {"kde2": "benchbase_mylab.kde2"}


def test_plugins_are_added_to_an_existing_package(tmp_path, capsys):
    assert main(["new", "model", "kit_base", "--framework", "numpy", "--package", "kitlab",
                 "--dir", str(tmp_path)]) == 0
    package = tmp_path / "benchbase-kitlab"
    assert main(["new", "metric", "kit_score", "--into", str(package)]) == 0
    assert "pip install -e ." in capsys.readouterr().out
    meta = tomllib.loads((package / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["benchbase"] == {"kit_base": "benchbase_kitlab.kit_base",
                                                           "kit_score": "benchbase_kitlab.kit_score"}
    for rel in ("benchbase_kitlab/kit_score.py", "tests/test_kit_score.py", "suites/kit_score.yaml"):
        assert (package / rel).is_file()
    assert "from benchbase_kitlab.kit_score import KitScore" in (package / "tests/test_kit_score.py").read_text()
    before = (package / "pyproject.toml").read_text()
    assert main(["new", "metric", "kit_score", "--into", str(package)]) == 2  # nothing overwritten
    assert "entry point 'kit_score' exists already" in capsys.readouterr().err
    assert (package / "pyproject.toml").read_text() == before


def test_into_needs_a_package_made_by_benchbase_new(tmp_path, capsys):
    assert main(["new", "metric", "kit_score", "--into", str(tmp_path)]) == 2
    assert "no pyproject.toml" in capsys.readouterr().err


@pytest.fixture
def generate(tmp_path, monkeypatch):
    """Scaffold, then import the plugin from its folder (as an installed package would)."""

    def make(kind, name, framework=None):
        target = scaffold(kind, name, framework, tmp_path)
        monkeypatch.syspath_prepend(str(target))
        module = f"benchbase_{name}.{name}"
        imported.extend([module, f"benchbase_{name}"])
        registry = build_registry(PluginPolicy(entry_points=False, strict=True, extra=(module,)))
        return target, registry, registry.get(kind, name, framework).cls

    imported: list[str] = []
    yield make
    for module in imported:
        sys.modules.pop(module, None)


def test_generated_torch_model_keeps_the_contract_and_its_suite_validates(generate):
    target, registry, cls = generate("model", "kit_flow", "torch")
    check_model(cls, dataset="vector", config=small_config(cls))
    suite = load_suite(target / "suites" / "kit_flow.yaml", registry=registry)
    assert {r.model.name for r in suite.runs} == {"kit_flow", "copy_train"}


def test_generated_numpy_model_keeps_the_contract_and_its_suite_validates(generate):
    target, registry, cls = generate("model", "kit_gauss", "numpy")
    for modality in ("vector", "image"):
        report = check_model(cls, dataset=modality)
        assert {"train_step.updates", "init.uses_seed", "save_load.resume", "log_prob.finite"} <= set(report.checked)
    suite = load_suite(target / "suites" / "kit_gauss.yaml", registry=registry)
    assert {r.model.framework for r in suite.runs} == {"numpy"}


def test_generated_dataset_keeps_the_contract_and_its_suite_validates(generate):
    target, registry, cls = generate("dataset", "kit_ring")
    check_dataset(cls)
    suite = load_suite(target / "suites" / "kit_ring.yaml", registry=registry)
    assert {r.dataset.name for r in suite.runs} == {"kit_ring"}


def test_generated_metric_keeps_the_contract_and_its_suite_validates(generate):
    target, registry, cls = generate("metric", "kit_nn")
    report = check_metric(cls)
    assert "direction" in report.checked and "identical" in report.checked
    suite = load_suite(target / "suites" / "kit_nn.yaml", registry=registry)
    assert all("kit_nn" in {m.name for m in r.metrics} for r in suite.runs)


def test_generated_jax_model_suite_validates(generate):
    pytest.importorskip("jax")
    target, registry, cls = generate("model", "kit_jflow", "jax")
    assert cls.framework == "jax"
    suite = load_suite(target / "suites" / "kit_jflow.yaml", registry=registry)
    assert {r.model.framework for r in suite.runs} == {"jax", "numpy"}


def test_cli_prints_the_next_steps(tmp_path, capsys):
    assert main(["new", "dataset", "kit_cli", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "pip install -e ." in out and "suites/kit_cli.yaml" in out
    assert (tmp_path / "benchbase-kit-cli" / "benchbase_kit_cli" / "kit_cli.py").exists()
    assert "benchbase_kit_cli/kit_cli.py" in out and "--into" in out
