"""`benchbase run` on the command line: what it prints when a suite finishes."""
from __future__ import annotations

import json
import shlex

from support.suites import tiny_suite

from benchbase.cli import main


def test_the_next_command_can_be_pasted_into_a_shell_whatever_the_results_path(tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text(json.dumps(tiny_suite(name="next_hint", models=["copy_train"], metrics=["fd"])))
    results = tmp_path / "my results (été)"
    assert main(["run", str(suite), "--results", str(results), "--quiet"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("next: "))
    words = shlex.split(line.removeprefix("next: "))
    assert words[:3] == ["benchbase", "leaderboard", "--results"] and words[3] == str(results)
    assert words[4:] == ["--suite", "next_hint"]
