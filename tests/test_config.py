"""Suite validation: one clear error naming the file, key path and valid choices, before
anything runs, and nothing written."""
from __future__ import annotations

import json

import pytest
from support.suites import tiny_suite

from benchbase.cli import main
from benchbase.config import build_suite, eval_schedule, load_suite
from benchbase.errors import ConfigError
from benchbase.specs import Budget


def _write(tmp_path, suite: dict, name="suite.yaml"):
    path = tmp_path / name
    path.write_text(json.dumps(suite))
    return path


def _problems(suite: dict, registry) -> str:
    with pytest.raises(ConfigError) as info:
        build_suite(suite, "suite.yaml", registry=registry)
    return str(info.value)


def test_valid_suite_expands_to_runs(registry):
    suite = build_suite(tiny_suite(seeds=[0, 1]), "x.yaml", registry=registry)
    assert len(suite.runs) == 4
    assert len({r.run_id for r in suite.runs}) == 4
    flow = next(r for r in suite.runs if r.model.name == "rectified_flow")
    assert flow.budget == Budget(examples=60 * 32, batch_size=32, batches_per_step=1, steps=60)
    assert flow.budget.examples_per_step == 32
    assert flow.eval.steps[-1] == 60 and flow.model.config["width"] == 32
    assert flow.model.config["lr"] == 1e-3  # defaults are resolved into the spec
    oracle = next(r for r in suite.runs if r.model.name == "copy_train")
    assert oracle.eval.steps == (0,)


def test_misspelled_top_level_key(registry):
    msg = _problems(tiny_suite(budjet={"steps": 5}), registry)
    assert "suite.yaml: budjet: unknown key 'budjet'. Did you mean 'budget'?" in msg
    assert "Valid keys:" in msg


def test_misspelled_nested_key(registry):
    msg = _problems(tiny_suite(budget={"batch_sise": 32, "steps": 60}), registry)
    assert "budget.batch_sise" in msg and "Did you mean 'batch_size'?" in msg


def test_misspelled_plugin_config_key(registry):
    suite = tiny_suite(models=[{"name": "rectified_flow", "framework": "torch", "config": {"widht": 64}}])
    msg = _problems(suite, registry)
    assert "models[0].config.widht: unknown key 'widht'. Did you mean 'width'?" in msg


def test_wrong_type(registry):
    msg = _problems(tiny_suite(models=[{"name": "vae", "framework": "torch", "config": {"width": "wide"}}]), registry)
    assert "models[0].config.width" in msg and "wide" in msg


def test_unknown_plugins_name_choices(registry):
    msg = _problems(tiny_suite(models=["rectifed_flow"], metrics=["memratio"]), registry)
    assert "models[0].name: unknown model 'rectifed_flow'. Did you mean 'rectified_flow'?" in msg
    assert "metrics[0].name: unknown metric 'memratio'. Did you mean 'mem_ratio'?" in msg
    assert "Valid models:" in msg


def test_n_larger_than_dataset_names_its_size(registry):
    suite = tiny_suite(datasets=[{"name": "digits", "n": 5000}])
    msg = _problems(suite, registry)
    assert "datasets[0].n: n=5000 is larger than dataset 'digits', whose train split has 1300 examples" in msg


def test_budget_needs_exactly_one_of_examples_or_steps(registry):
    msg = _problems(tiny_suite(budget={"batch_size": 8, "steps": 10, "examples": 80}), registry)
    assert "exactly one of budget.examples or budget.steps" in msg


def test_metric_requirements_are_checked_before_training(registry):
    from benchbase import Metric

    class NeedsLoss(Metric):
        name = "needs_loss"
        direction = "lower"
        requires = frozenset({"capability:heldout_loss"})

        def compute(self, ctx):
            return {"needs_loss": 0.0}

    registry._register("metric", NeedsLoss, "test", "test", "")
    msg = _problems(tiny_suite(metrics=["needs_loss"]), registry)
    assert "needs model capability 'heldout_loss', which model 'copy_train'" in msg
    assert "optional: true" in msg
    ok = build_suite(tiny_suite(metrics=[{"name": "needs_loss", "optional": True}]), "x", registry=registry)
    by_model = {r.model.name: [m.name for m in r.metrics] for r in ok.runs}
    assert by_model == {"rectified_flow": ["needs_loss"], "copy_train": []}


def test_all_problems_are_reported_at_once(registry):
    msg = _problems(tiny_suite(models=["nope"], metrics=["nada"], seeds=[]), registry)
    assert "3 problems" in msg


def test_overrides_use_dotlist_syntax(tmp_path, registry):
    path = _write(tmp_path, tiny_suite())
    suite = load_suite(path, ["budget.steps=20", "models.0.config.width=8", "seeds=[3,4]"], registry=registry)
    flow = [r for r in suite.runs if r.model.name == "rectified_flow"]
    assert {r.seed for r in flow} == {3, 4} and flow[0].budget.steps == 20
    assert flow[0].model.config["width"] == 8
    suite = load_suite(path, ["budget.steps=null", "budget.examples=2e3"], registry=registry)
    assert suite.runs[0].budget.examples == 2000


def test_run_ids_ignore_labels_suite_and_device_but_not_configs(registry):
    a = build_suite(tiny_suite(), "a", registry=registry).runs[0]
    b = build_suite(tiny_suite(name="other", device="auto"), "b", registry=registry).runs[0]
    assert a.run_id == b.run_id
    c = build_suite(tiny_suite(budget={"batch_size": 32, "steps": 61}), "c", registry=registry).runs[0]
    assert a.run_id != c.run_id


def test_sweep_expands_grid(registry):
    suite = build_suite(tiny_suite(models=[{"name": "rectified_flow", "framework": "torch"}], seeds=[0, 1],
                                   sweep={"n": [16, 32], "model.width": [8, 16]}), "s", registry=registry)
    combos = {(r.subset.n, r.model.config["width"], r.seed) for r in suite.runs}
    assert len(combos) == len(suite.runs) == 8


def test_eval_schedule_is_log_spaced_and_ends_at_total():
    steps = eval_schedule(20000, "log", 12, first=100)
    assert steps[0] == 100 and steps[-1] == 20000 and len(steps) == 12
    ratios = [b / a for a, b in zip(steps, steps[1:])]
    assert max(ratios) / min(ratios) < 1.05
    assert eval_schedule(100, "linear", 4) == [25, 50, 75, 100]
    assert eval_schedule(100, "list", steps=[10, 500], at_init=True) == [0, 10, 100]


# ------------------------------------------------------------------------- CLI


def test_cli_exit_code_2_and_nothing_written(tmp_path, capsys):
    path = _write(tmp_path, tiny_suite(models=["rectified_flw"]))
    results = tmp_path / "results"
    assert main(["run", str(path), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'rectified_flw'" in err and str(path) in err
    assert not results.exists()
    path2 = _write(tmp_path, tiny_suite(evaluation={"points": 3}), "s2.yaml")
    assert main(["validate", str(path2)]) == 2
    assert "unknown key 'evaluation'" in capsys.readouterr().err


def test_cli_validate_ok(tmp_path, capsys):
    path = _write(tmp_path, tiny_suite())
    assert main(["validate", str(path)]) == 0
    assert "valid" in capsys.readouterr().out


def test_cli_missing_file_and_bad_override(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    path = _write(tmp_path, tiny_suite())
    assert main(["validate", str(path), "budget.steps"]) == 2
    assert "key.path=value" in capsys.readouterr().err
    assert main(["validate", str(path), "seeds=[0,"]) == 2
    assert "cannot parse override value" in capsys.readouterr().err
    assert main(["validate", str(path), "--device", "cpu", "budget.steps=7"]) == 0  # after options


def test_yaml_syntax_error_is_a_config_error(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nmodels: [a, b\n")
    assert main(["validate", str(path)]) == 2
    assert "cannot parse YAML" in capsys.readouterr().err


def test_run_id_follows_the_data_not_the_folder(registry, tmp_path, monkeypatch):
    """`location` fields (root, download, cache) stay out of run ids; the subset's content
    hash is in them, so the same data in another folder resumes and changed data does not."""
    def run_id(root):
        suite = tiny_suite(datasets=[{"name": "mnist", "n": 8, "config": {"root": str(root)}}],
                           models=["copy_train"])
        return build_suite(suite, "x", registry=registry).runs[0]

    a = run_id(_mnist_dir(tmp_path / "a", seed=0))
    b = run_id(_mnist_dir(tmp_path / "b", seed=0))
    c = run_id(_mnist_dir(tmp_path / "c", seed=1))
    assert a.dataset.config["root"] != b.dataset.config["root"]
    assert a.run_id == b.run_id != c.run_id
    assert a.subset.content_hash != c.subset.content_hash


def _mnist_dir(root, seed):
    import gzip
    import struct

    import numpy as np

    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 40), ("t10k", 10)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        with gzip.open(raw / f"{prefix}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        with gzip.open(raw / f"{prefix}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">II", 2049, n) + labels.tobytes())
    return root


def test_per_dataset_model_config_overrides_the_model_entry(registry):
    suite = tiny_suite(
        datasets=[{"name": "gmm2d", "n": 32, "config": {"train_size": 200, "test_size": 100},
                   "model_config": {"flow": {"width": 8}}},
                  {"name": "digits", "n": 32}],
        models=[{"name": "rectified_flow", "label": "flow", "config": {"width": 16, "backbone": "mlp"}}])
    runs = build_suite(suite, "x", registry=registry).runs
    widths = {r.dataset.name: r.model.config["width"] for r in runs}
    assert widths == {"gmm2d": 8, "digits": 16}
    bad = tiny_suite(datasets=[{"name": "gmm2d", "n": 32, "model_config": {"flw": {"width": 8}}}],
                     models=[{"name": "rectified_flow", "label": "flow"}])
    assert "datasets[0].model_config.flw" in _problems(bad, registry)
    typo = tiny_suite(datasets=[{"name": "gmm2d", "n": 32, "model_config": {"rectified_flow": {"widht": 8}}}])
    assert "datasets[0].model_config.rectified_flow.widht" in _problems(typo, registry)


@pytest.mark.parametrize("override, where", [("datasets.0.n=100000", "datasets[0].n"),
                                             ("models.0.config.widht=3", "models[0].config.widht")])
def test_one_mistake_is_reported_once_however_many_runs_share_it(registry, override, where):
    """quickstart plans 16 runs over 2 datasets and 4 models: the mistake is one line."""
    from pathlib import Path

    quickstart = Path(__file__).resolve().parents[1] / "suites" / "quickstart.yaml"
    with pytest.raises(ConfigError) as err:
        load_suite(quickstart, [override], registry=registry)
    assert [path for path, _ in err.value.problems] == [where]


@pytest.mark.parametrize("overrides, key, metric", [
    ({"datasets": [{"name": "gmm2d", "n": 1}]}, "datasets[0].n", "'mem_ratio' (2)"),
    ({"eval": {"n_test": 1}}, "eval.n_test", "'fd' (2)"),
    ({"datasets": [{"name": "gmm2d", "n": 3}], "metrics": ["precision"]}, "datasets[0].n", "'precision' (4)"),
    ({"eval": {"n_samples": 3}, "metrics": [{"name": "recall", "config": {"k": 3}}]}, "eval.n_samples",
     "'recall' (4)"),
    ({"datasets": [{"name": "gmm2d", "n": 6, "subset": {"holdout": "1 of 2"}}], "metrics": ["precision"]},
     "datasets[0].n", "'precision' (4)"),
    ({"datasets": [{"name": "gmm2d", "config": {"test_size": 1}}], "metrics": ["fd"]}, "datasets[0]", "'fd' (2)"),
])
def test_sets_smaller_than_a_metric_needs_are_refused_before_training(registry, overrides, key, metric):
    """Metric.min_points against eval.n_samples, the trained examples and the test points:
    one line at the key to change, instead of every run failing at its first evaluation."""
    with pytest.raises(ConfigError) as err:
        build_suite(tiny_suite(models=["copy_train"], **overrides), "suite.yaml", registry=registry)
    assert [path for path, _ in err.value.problems] == [key]
    assert f"too few for metric(s) {metric}" in str(err.value)


def test_sets_just_large_enough_are_accepted(registry):
    suite = tiny_suite(models=["copy_train"], datasets=[{"name": "gmm2d", "n": 4}], metrics=["precision", "fd"],
                       eval={"n_samples": 4, "n_test": 4})
    assert len(build_suite(suite, "suite.yaml", registry=registry).runs) == 1
