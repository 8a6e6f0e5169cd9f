"""Bad suites and overrides found in a user walk: each is refused before anything runs,
in one line naming the file, the full key path and what is valid (exit 2)."""
from __future__ import annotations

import json

import pytest
from support.suites import tiny_suite

from benchbase.cli import main
from benchbase.config import load_suite
from benchbase.errors import ConfigError


def _write(tmp_path, suite: dict, name="s.yaml"):
    path = tmp_path / name
    path.write_text(json.dumps(suite))
    return path


def _error(tmp_path, registry, overrides=(), **suite) -> str:
    """The one-line error that loading ``tiny_suite(**suite)`` with ``overrides`` ends in."""
    path = _write(tmp_path, tiny_suite(**suite))
    with pytest.raises(ConfigError) as info:
        load_suite(path, list(overrides), registry=registry)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    return message.replace(f"invalid suite: {path}: ", "")


@pytest.mark.parametrize("override, key, numbers", [
    ("datasets.x.n=3", "datasets.x", "0..0"),
    ("models.first.label=x", "models.first", "0..1"),
    ("models.-1.label=x", "models.-1", "0..1"),  # OmegaConf would count from the end
])
def test_a_list_indexed_by_a_name_or_a_negative_number_is_refused(tmp_path, registry, override, key, numbers):
    list_name = key.split(".")[0]
    assert _error(tmp_path, registry, [override]) == f"{key}: {list_name} is a list; index it by number ({numbers})"


def test_a_list_indexed_by_a_name_exits_2_in_one_line(tmp_path, capsys):
    path = _write(tmp_path, tiny_suite())
    assert main(["validate", str(path), "datasets.x.n=3"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: invalid suite: {path}: datasets.x: datasets is a list; index it by number (0..0)"]


@pytest.mark.parametrize("override, read", [
    ("budget.steps=1e4", lambda s: s.runs[0].budget.steps == 10_000),
    ("budget.steps=10.0", lambda s: s.runs[0].budget.steps == 10),
    ("datasets.0.n=64.0", lambda s: s.runs[0].subset.n == 64),
    ("budget.batch_size=16.0", lambda s: s.runs[0].budget.batch_size == 16),
    ("seeds=[1.0]", lambda s: s.runs[0].seed == 1),
    ("models.0.config.width=16.0", lambda s: s.runs[0].model.config["width"] == 16),
])
def test_whole_valued_floats_are_accepted_for_integer_fields(tmp_path, registry, override, read):
    suite = load_suite(_write(tmp_path, tiny_suite()), [override], registry=registry)
    assert read(suite)


@pytest.mark.parametrize("override, key", [
    ("budget.steps=10.5", "budget.steps"),
    ("datasets.0.n=64.5", "datasets[0].n"),
    ("seeds=[0.5]", "seeds[0]"),
    ("models.0.config.sample_steps=2.5", "models[0].config.sample_steps"),
])
def test_a_fraction_for_an_integer_field_is_refused_under_its_full_key(tmp_path, registry, override, key):
    value = override.split("=")[1].strip("[]")
    assert _error(tmp_path, registry, [override]) == f"{key}: expected a whole number, got {value}"


def test_a_whole_valued_float_in_a_dataset_entry_is_read_in_the_file_too(tmp_path, registry):
    path = tmp_path / "y.yaml"
    path.write_text("name: t\ndatasets: [{name: gmm2d, n: 1e3}]\nmodels: [copy_train]\nmetrics: [fd]\n"
                    "budget: {steps: 1e1}\n")
    suite = load_suite(path, registry=registry)
    assert suite.runs[0].subset.n == 1000 and suite.runs[0].budget.steps == 10


@pytest.mark.parametrize("override, key, says", [
    ("eval.features=[pixels]", "eval.features",
     "expected a feature-space name or a mapping {name: ..., config: ...}, got a list ['pixels']"),
    ("budget=[16, 10]", "budget", "expected a mapping of keys (examples, steps, batch_size), got a list [16, 10]"),
    ("models=[5]", "models[0]", "expected a model name or a mapping {name: ..., framework: ..., config: ...}, got 5"),
    ("sweep={n: 32}", "sweep.n", "expected a list, e.g. [0, 1], got int 32"),
    ("name=null", "name", "expected a string, got null"),
    ("device=null", "device", "expected a string, got null"),
    ("description=[1, 2]", "description", "expected a string, got a list [1, 2]"),
    ("datasets.0.label=[1]", "datasets[0].label", "expected a string, got a list [1]"),
    ("datasets.0.subset=5", "datasets[0].subset", "expected a mapping of keys (mode, seed, split, holdout, dedup)"),
    ("eval.points=[1]", "eval.points", "expected a whole number, got a list [1]"),
    ("eval.at_init=maybe", "eval.at_init", "expected true or false, got 'maybe'"),
    ("time_limit=abc", "time_limit", "expected a number, got 'abc'"),
    ("dynamics.min_excess={mem_ratio: x}", "dynamics.min_excess.mem_ratio", "expected a number, got 'x'"),
    ("sweep={bad: [1]}", "sweep.bad", "sweep keys are n, budget.<key>"),  # no leading dot
])
def test_type_errors_are_said_in_plain_words_under_the_full_key(tmp_path, registry, override, key, says):
    message = _error(tmp_path, registry, [override])
    assert message.startswith(f"{key}: {says}"), message


def test_a_missing_dataset_leads_with_the_suite_file_and_key(tmp_path, monkeypatch):
    from benchbase.errors import MissingDataError

    monkeypatch.setenv("BENCHBASE_DATA", str(tmp_path / "data"))
    path = _write(tmp_path, tiny_suite(datasets=[{"name": "mnist"}]))
    with pytest.raises(MissingDataError) as info:
        load_suite(path)
    first, *rest = str(info.value).splitlines()
    assert first.startswith(f"{path}: datasets[0].name: dataset 'mnist' not found")
    assert any("Put the files in" in line for line in rest)  # still says where the files go


@pytest.mark.parametrize("overrides, key", [
    (["budget.steps=99999999999999999999"], "budget.steps: must be at most 1e+12 steps"),
    (["budget.steps=null", "budget.examples=1.0e30"], "budget.examples: must be at most 1e+15 examples"),
    (["sweep.budget.steps=[99999999999999999999]"], "sweep.budget.steps: must be at most 1e+12 steps"),
    (["budget.steps=1e12", "budget.batch_size=100000"], "budget: budget of 1e+17 examples is more than the most"),
])
def test_a_budget_no_run_could_finish_is_refused_for_every_model(tmp_path, registry, overrides, key):
    for models in (None, ["copy_train"]):  # a model that does not train is no exception
        message = _error(tmp_path, registry, overrides, **({"models": models} if models else {}))
        assert message.startswith(key), message


def _gp_suite(examples: int) -> dict:
    return tiny_suite(models=[{"name": "wgan_gp", "framework": "torch", "config": {"n_critic": 5, "width": 8}},
                              {"name": "rectified_flow", "framework": "torch", "config": {"width": 8}}, "copy_train"],
                      budget={"batch_size": 128, "examples": examples})


def test_models_drawing_examples_more_than_1_percent_apart_are_warned_about(registry):
    from benchbase.config import UnequalBudgetWarning, build_suite

    with pytest.warns(UnequalBudgetWarning) as caught:
        build_suite(_gp_suite(1000), "gp.yaml", registry=registry)
    assert [str(w.message) for w in caught] == [
        "gp.yaml: budget: the models draw unequal numbers of examples, 40% apart (wgan_gp: 640, rectified_flow: "
        "896): a step draws batch_size x batches_per_step examples; for identical budgets give budget.examples "
        "as a multiple of 640"]


@pytest.mark.parametrize("examples", [6400, 200_000])  # a multiple of 640; 0.13% apart
def test_budgets_equal_within_1_percent_say_nothing(registry, recwarn, examples):
    from benchbase.config import build_suite

    build_suite(_gp_suite(examples), "gp.yaml", registry=registry)
    assert not [w for w in recwarn if "unequal" in str(w.message)]


def test_a_first_log_step_past_the_budget_is_refused_as_a_listed_one_is(tmp_path, registry):
    message = _error(tmp_path, registry, ["budget.steps=20", "eval.first=1000"])
    assert message == "eval.first: step 1000 is beyond the budget of 20 steps"
    message = _error(tmp_path, registry, ["budget.steps=20", "eval.schedule=list", "eval.steps=[30]"])
    assert message == "eval.steps: step 30 is beyond the budget of 20 steps"
    load_suite(_write(tmp_path, tiny_suite()), ["budget.steps=20", "eval.first=20"], registry=registry)


def test_a_subset_seed_with_mode_first_is_refused_not_ignored(tmp_path, registry):
    message = _error(tmp_path, registry, ["datasets.0.subset={seed: 5}"])
    assert message.startswith("datasets[0].subset.seed: a seed only applies to mode: random")
    suite = load_suite(_write(tmp_path, tiny_suite()), ["datasets.0.subset={seed: 5, mode: random}"],
                       registry=registry)
    assert suite.runs[0].subset.seed == 5


def test_a_swept_subset_seed_with_mode_first_is_refused_not_collapsed(tmp_path, registry):
    message = _error(tmp_path, registry, ["sweep.subset.seed=[0,1,2]"])
    assert message.startswith("sweep.subset.seed: a seed only applies to mode: random, and datasets[0] takes")
    suite = load_suite(_write(tmp_path, tiny_suite()),
                       ["sweep.subset.seed=[0,1,2]", "datasets.0.subset={mode: random}"], registry=registry)
    assert sorted({run.subset.seed for run in suite.runs}) == [0, 1, 2] and len(suite.runs) == 6  # two models


@pytest.mark.parametrize("text, read", [("yes", "the boolean True"), ("1e3", "the number 1000.0"),
                                        ("2024", "the number 2024")])
def test_a_name_yaml_reads_as_no_string_is_refused_with_a_hint_to_quote_it(tmp_path, registry, text, read):
    """It became suite 'True' or '1000.0', which `--suite yes` then did not find."""
    path = tmp_path / "s.yaml"
    path.write_text(f"name: {text}\n" + "\n".join(f"{k}: {json.dumps(v)}" for k, v in tiny_suite().items()
                                                   if k != "name"))
    with pytest.raises(ConfigError) as info:
        load_suite(path, registry=registry)
    assert str(info.value) == (f"invalid suite: {path}: name: must be a string, but YAML read it as {read}: "
                               'quote it (name: "yes", name: "1e3")')
    path.write_text(path.read_text().replace(f"name: {text}", f'name: "{text}"'))
    assert load_suite(path, registry=registry).name == text


@pytest.mark.parametrize("suite, says", [
    ({"models": ["copy_train", "copy_train"]}, "models[1]: repeats models[0] ('copy_train')"),
    ({"datasets": [{"name": "gmm2d", "n": 32}, {"name": "gmm2d", "n": 32}]},
     "datasets[1]: repeats datasets[0] ('gmm2d')"),
    ({"seeds": [0, 1, 0]}, "seeds: seed 0 is listed twice"),
    ({"metrics": ["mem_ratio", "fd", "fd"]}, "metrics[2]: repeats metrics[1] ('fd'): it is computed once; remove one"),
    # stored under one name, the second config's values replaced the first's
    ({"metrics": ["fd", {"name": "swd", "config": {"n_projections": 20}},
                  {"name": "swd", "config": {"n_projections": 30}}]},
     "metrics[2]: repeats metrics[1] ('swd') with other settings: a metric's values are stored under its name"),
])
def test_a_repeated_entry_or_seed_is_refused_not_merged(tmp_path, registry, suite, says):
    assert _error(tmp_path, registry, **suite).startswith(says)


def test_the_same_plugin_under_two_labels_is_still_the_planners_to_refuse(tmp_path, registry):
    message = _error(tmp_path, registry, models=["copy_train", {"name": "copy_train", "label": "other"}])
    assert message.startswith("models[1]: 'other' plans the same runs as 'copy_train' (models[0])")
    load_suite(_write(tmp_path, tiny_suite(models=[{"name": "rectified_flow", "config": {"width": 32}},
                                                   {"name": "rectified_flow", "label": "wide",
                                                    "config": {"width": 64}}])), registry=registry)


def test_a_yaml_syntax_error_names_the_suite_file(tmp_path, registry):
    path = tmp_path / "tabs.yaml"
    path.write_text("name: tabs\nmodels:\n\t- copy_train\n")
    with pytest.raises(ConfigError) as info:
        load_suite(path, registry=registry)
    assert f'in "{path}", line 3' in str(info.value) and "<unicode string>" not in str(info.value)
