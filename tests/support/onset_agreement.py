"""Do the leaderboard JSON, `benchbase dynamics --json`, the dynamics table of `benchbase
plot` and the report's run pages give every run of a suite the same memorization onset?
Shared by tests/test_onset_agreement.py (small stores) and usable on a real results
directory: ``python tests/support/onset_agreement.py RESULTS SUITE [--no-figures]``."""
from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path


def onsets_by_command(results: Path, suite: str, workdir: Path, plot: str | None = "figures") -> dict[str, dict]:
    """Per run id: the leaderboard's onset record, the dynamics record, the plot's dynamics
    row and the report page's text, each as that command produced it. ``plot``:
    "figures" runs `benchbase plot` (every figure; ~13 s of CPU on a small store),
    "data" only reads the per-run records its figures and dynamics table are drawn from
    (benchbase.derived.load_suite_data), None skips it."""
    from benchbase.cli import main
    from benchbase.leaderboard import build_tables, table_to_records
    from benchbase.resultset import ResultSet

    with ResultSet([results]) as rs:
        rows = [rec for t in build_tables(rs, suite=suite) for rec in table_to_records(t)]
    out: dict[str, dict] = {}
    for rec in rows:
        for rid in rec["run_ids"]:
            if rid not in rec["onsets"]:  # a diverged run: no onset in any command
                continue
            out[rid] = {"model": rec["model"], "dataset": rec["dataset"], "leaderboard": rec["onsets"][rid]}

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["dynamics", "--results", str(results), "--suite", suite, "--json"]) == 0
    for rid, rec in json.loads(buf.getvalue()).items():
        out.setdefault(rid, {})["dynamics"] = rec

    if plot == "figures":
        plots = workdir / "plots"
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["plot", "--results", str(results), "--suite", suite, "--out", str(plots)]) == 0
        for rec in json.loads((plots / f"{suite}.dynamics.json").read_text())["runs"]:
            out.setdefault(rec["run_id"], {})["plot"] = rec
    elif plot == "data":
        from benchbase.derived import load_suite_data
        from benchbase.store import Store

        with Store(results) as store:
            for r in load_suite_data(store, suite).runs:
                out.setdefault(r.run.run_id, {})["plot"] = r.derived

    site = workdir / "site"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["report", "--results", str(results), "--suite", suite, "--out", str(site)]) == 0
    for rid in out:
        page = site / "runs" / f"{rid}.html"
        out[rid]["page"] = page.read_text() if page.exists() else None
    return out


def disagreements(found: dict[str, dict]) -> list[str]:
    """One line per run where two commands differ (empty: they all agree)."""
    from benchbase.report import onset_text

    bad = []
    for rid, got in found.items():
        lb, dyn, plot, page = got.get("leaderboard"), got.get("dynamics"), got.get("plot"), got.get("page")
        who = f"{rid} ({got.get('model')} on {got.get('dataset')})"
        if lb is None or dyn is None:
            bad.append(f"{who}: leaderboard {lb is not None}, dynamics {dyn is not None}")
            continue
        if (lb["tau_mem"], lb["censored"], lb["criterion"]) != (dyn["tau_mem"], dyn["censored"], dyn["criterion"]):
            bad.append(f"{who}: leaderboard {lb['tau_mem']}/{lb['censored']}/{lb['criterion']} vs dynamics "
                       f"{dyn['tau_mem']}/{dyn['censored']}/{dyn['criterion']}")
        if plot is not None and (plot.get("tau_mem"), plot.get("censored")) != (dyn["tau_mem"], dyn["censored"]):
            bad.append(f"{who}: plot {plot.get('tau_mem')}/{plot.get('censored')} vs dynamics "
                       f"{dyn['tau_mem']}/{dyn['censored']}")
        text = onset_text(lb).replace("'", "&#39;")
        if page is None or text not in page:
            bad.append(f"{who}: the report page does not say '{text}'")
    return bad


def summary(found: dict[str, dict]) -> list[str]:
    """One line per run: model, dataset and its onset (as all commands give it)."""
    lines = []
    for rid, got in sorted(found.items(), key=lambda kv: (kv[1].get("dataset") or "", kv[1].get("model") or "")):
        lb = got["leaderboard"]
        tau = "none" if lb["tau_mem"] is None else f"{lb['tau_mem']:.0f}"
        lines.append(f"{rid} {got['model']} on {got['dataset']}: tau_mem {tau} censored={lb['censored']} "
                     f"criterion={lb['criterion']} metric={lb.get('metric')}")
    return lines


if __name__ == "__main__":
    results_dir, suite_name = Path(sys.argv[1]), sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        runs = onsets_by_command(results_dir, suite_name, Path(tmp), "data" if "--no-figures" in sys.argv else "figures")
    print("\n".join(summary(runs)))
    problems = disagreements(runs)
    print("\n".join(problems) or f"{suite_name}: leaderboard, dynamics, plot and report agree on all {len(runs)} runs")
    sys.exit(1 if problems else 0)
