"""Leaderboard, `benchbase dynamics` and the report agree on every run's memorization
onset (they all ask benchbase.verdicts), on a small run of the quickstart suite: the
perfect generalizer never memorizes, the perfect memorizer does from its only
evaluation."""
from __future__ import annotations

import json

import pytest
from support.published_results import INJECTED, quickstart_results

from benchbase.cli import main
from benchbase.leaderboard import build_tables, table_to_records
from benchbase.report import onset_text
from benchbase.resultset import ResultSet


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return quickstart_results(tmp_path_factory)


def test_leaderboard_dynamics_and_report_agree_on_every_onset(results, tmp_path, capsys, registry):
    with ResultSet([results]) as rs:
        rows = [rec for t in build_tables(rs) for rec in table_to_records(t)]
    onsets = {rid: o for rec in rows for rid, o in rec["onsets"].items()}
    model = {rid: (rec["model"], rec["dataset"]) for rec in rows for rid in rec["run_ids"]}
    assert onsets and set(onsets) == set(model)

    assert main(["dynamics", "--results", str(results), "--suite", "quickstart", "--json"]) == 0
    derived = json.loads(capsys.readouterr().out)
    for rid, o in onsets.items():
        assert o["source"] == "dynamics"
        assert o["tau_mem"] == derived[rid]["tau_mem"] and o["censored"] == derived[rid]["censored"]
        if model[rid][0] == "true_sampler":
            assert o["tau_mem"] is None and o["censored"] == "right", model[rid]
        if model[rid][0] == INJECTED:  # copy_train
            assert o["tau_mem"] == 0 and o["censored"] == "left", model[rid]

    site = tmp_path / "site"
    assert main(["report", "--results", str(results), "--out", str(site)]) == 0
    for rid, o in onsets.items():
        page = (site / "runs" / f"{rid}.html").read_text()
        assert onset_text(o).replace("'", "&#39;") in page, (model[rid], onset_text(o))
