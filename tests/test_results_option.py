"""An empty results directory: `--results ''` and an empty $BENCHBASE_RESULTS put
benchbase.sqlite and cache/ in the current directory and printed `Results: /`."""
from __future__ import annotations

import argparse

import pytest
import yaml
from support.suites import tiny_suite

from benchbase.cli import build_parser, main
from benchbase.paths import default_results_dir


def commands_with_results() -> list[str]:
    """Every command that takes --results, read from the parser (a new one is covered too)."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(name for name, p in sub.choices.items()
                  if any("--results" in a.option_strings for a in p._actions))


REQUIRED = {"run": ["tiny.yaml"], "score": ["s.npy", "--dataset", "gmm2d"], "plot": ["--suite", "tiny", "--out", "o"],
            "report": ["--out", "o"], "sensitivity": ["--suite", "tiny", "--out", "o"],
            "dynamics": ["--suite", "tiny"], "chance": ["--suite", "tiny"]}


def test_the_commands_with_results_are_all_checked():
    assert set(commands_with_results()) <= set(REQUIRED) | {"leaderboard"}


@pytest.mark.parametrize("command", commands_with_results())
@pytest.mark.parametrize("empty", ["", " "])
def test_an_empty_results_option_exits_2_with_one_line(command, empty, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        code = main([command, *REQUIRED.get(command, []), "--results", empty])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: benchbase {command}: argument --results: is empty") and err.count("\n") == 1, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_results_variable_counts_as_unset(value, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCHBASE_RESULTS", value)
    assert default_results_dir() == "results"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny_suite(models=["true_sampler"], metrics=["fd"], seeds=[0],
                                                                  eval={"points": 1, "n_samples": 100})))
    assert main(["run", "tiny.yaml"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "tiny.yaml"]
    assert "Results: results/" in capsys.readouterr().out


def test_a_set_results_variable_is_the_default(monkeypatch):
    monkeypatch.setenv("BENCHBASE_RESULTS", "elsewhere")
    assert default_results_dir() == "elsewhere"
