"""The broken-input corpus: every case in tests/corpus/*.yaml is one `benchbase`
command line against a broken suite, override, argument, store, checkpoint or
plugin, with the outcome a user must get (tests/corpus/README.md has the format).

Checked for every case, whatever it expects:
- the command returns an exit status (nothing escapes ``main``) and prints no traceback;
- bad input (exit 2): ONE line on stderr saying what is wrong, and nothing written
  (no results directory, no output folder, the store's bytes unchanged);
- a store that existed before keeps every row it had (no lost row) unless the case
  says the command rebuilds it; a store that passed ``PRAGMA quick_check`` still does;
- the runs the case lists end with the expected status and reason.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import yaml
from support.suites import tiny_suite

from benchbase.plugins import PluginPolicy

CORPUS = Path(__file__).parent / "corpus"
DELETE = "__delete__"


def _load_cases() -> list:
    params = []
    for path in sorted(CORPUS.glob("*.yaml")):
        for case in yaml.safe_load(path.read_text()) or []:
            marks = []
            if case.get("slow"):
                marks.append(pytest.mark.slow)
            if case.get("xfail"):
                marks.append(pytest.mark.xfail(reason=case["xfail"], strict=True))
            params.append(pytest.param(case, id=f"{path.stem}/{case['id']}", marks=marks))
    return params


CASES = _load_cases()


def base_suite(kind: str = "tiny") -> dict:
    """The valid suite a case breaks. ``faulty``: a healthy oracle beside a tiny
    faulty_flow (no fault unless the case configures one)."""
    suite = tiny_suite(name="corpus", eval={"points": 3, "n_samples": 100})
    if kind == "faulty":
        suite["models"] = [{"name": "faulty_flow", "label": "faulty",
                            "config": {"width": 16, "depth": 1, "sample_steps": 5}}, "copy_train"]
        suite["metrics"] = ["mem_ratio", "fd"]
        suite["eval"] = {"schedule": "list", "steps": [10, 30, 60], "n_samples": 100}
    if kind == "oracles":
        suite["models"] = ["copy_train", "true_sampler"]
    return suite


def _expand_ranges(node):
    """"__rangeN__" stands for the list 1..N (huge sweeps without huge files)."""
    if isinstance(node, str) and node.startswith("__range") and node.endswith("__"):
        return list(range(1, int(node[7:-2]) + 1))
    if isinstance(node, dict):
        return {k: _expand_ranges(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_ranges(v) for v in node]
    return node


def merge(base: dict, patch: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if value == DELETE:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# ------------------------------------------------------------------ store set-ups


def _run_cli(argv: list[str]) -> int:
    from benchbase.cli import main

    return main(argv)


@pytest.fixture(scope="session")
def done_store(tmp_path_factory) -> Path:
    """A results directory in which the oracle suite ran to the end (no training)."""
    where = tmp_path_factory.mktemp("corpus-done")
    suite = where / "suite.yaml"
    suite.write_text(json.dumps(base_suite("oracles")))
    assert _run_cli(["run", str(suite), "--results", str(where / "results"), "--quiet"]) == 0
    return where / "results"


def _corrupt_store(results: Path, how: str) -> None:
    db = results / "benchbase.sqlite"
    for side in ("-wal", "-shm"):
        Path(str(db) + side).unlink(missing_ok=True)
    data = db.read_bytes()
    if how == "truncate":
        db.write_bytes(data[: len(data) * 6 // 10])
    elif how == "header_only":
        db.write_bytes(data[:100])
    elif how == "garbage":
        db.write_bytes(bytes(range(256)) * 32)
    elif how == "zero_length":
        db.write_bytes(b"")
    elif how == "smashed_pages":  # a valid header, the tables' pages overwritten
        page = int.from_bytes(data[16:18], "big") or 65536
        db.write_bytes(data[:page] + bytes([0xA5]) * (len(data) - page))
    elif how == "directory":
        db.unlink()
        db.mkdir()
    elif how == "newer_schema":
        conn = sqlite3.connect(db)
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
        conn.commit()
        conn.close()
    elif how == "foreign":
        db.unlink()
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO customers VALUES (1, 'someone else''s data')")
        conn.commit()
        conn.close()
    elif how == "missing_table":
        conn = sqlite3.connect(db)
        conn.execute("DROP TABLE evals")
        conn.commit()
        conn.close()
    elif how == "garbage_wal":  # SQLite ignores WAL frames whose checksums fail: no harm
        Path(str(db) + "-wal").write_bytes(b"\x37\x7f\x06\x82" + bytes(4096))
    else:
        raise ValueError(f"unknown store corruption '{how}'")


def _corrupt_checkpoint(results: Path, how: str) -> None:
    conn = sqlite3.connect(results / "benchbase.sqlite")
    (run_id, blob), = conn.execute("SELECT run_id, blob FROM checkpoints").fetchall()
    cols = {r[1] for r in conn.execute("PRAGMA table_info(checkpoints)")}
    new_blob, keep_checksum = blob, False
    if how == "flip_byte":
        mid = len(blob) // 2
        new_blob = blob[:mid] + bytes([blob[mid] ^ 0xFF]) + blob[mid + 1:]
    elif how == "truncate":
        new_blob = blob[: len(blob) // 2]
    elif how == "empty":
        new_blob = b""
    elif how == "garbage":
        new_blob = bytes(range(256)) * 8
    elif how == "step_beyond_budget":
        conn.execute("UPDATE checkpoints SET step=999999, examples=999999 WHERE run_id=?", (run_id,))
    elif how == "unverified_good":  # an old store: no checksum beside a good blob
        keep_checksum = None
    elif how == "unverified_bad":  # an old store: no checksum beside a bad blob
        new_blob, keep_checksum = blob[: len(blob) // 3], None
    elif how == "plugin_cannot_read":  # checksum matches, but load() rejects it
        new_blob, keep_checksum = b"PK\x03\x04 a blob the plugin did not write", True
    else:
        raise ValueError(f"unknown checkpoint corruption '{how}'")
    conn.execute("UPDATE checkpoints SET blob=? WHERE run_id=?", (new_blob, run_id))
    if "checksum" in cols and keep_checksum is None:
        conn.execute("UPDATE checkpoints SET checksum=NULL WHERE run_id=?", (run_id,))
    elif "checksum" in cols and keep_checksum:
        conn.execute("UPDATE checkpoints SET checksum=? WHERE run_id=?",
                     (hashlib.sha256(new_blob).hexdigest(), run_id))
    conn.commit()
    conn.close()


def _write_entry_point(where: Path, name: str, module_text: str) -> None:
    """A distribution on sys.path whose ``benchbase`` entry point imports ``module``."""
    module = f"corpus_ep_{name}"
    (where / f"{module}.py").write_text(textwrap.dedent(module_text))
    info = where / f"corpus_{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: corpus-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[benchbase]\n{name} = {module}\n")


# ------------------------------------------------------------------- checks


def _snapshot(path: Path) -> dict:
    """Every file under ``path`` with its sha256 (None if ``path`` does not exist).

    SQLite's shared-memory index (-shm) and an empty write-ahead log (-wal) are left
    out: any reader creates them and the last one to close removes them, and neither
    holds data."""
    if not path.exists():
        return {}
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(path.rglob("*"))
            if not (p.name.endswith("-shm") or (p.name.endswith("-wal") and p.is_file() and not p.stat().st_size))}


def _rows(results: Path) -> set | None:
    """Every stored evaluation key and sample step, or None when unreadable."""
    db = results / "benchbase.sqlite"
    if not db.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            return None
        rows = {("eval", *r) for r in conn.execute("SELECT run_id, step, metric, ref, value FROM evals")}
        rows |= {("sample", *r) for r in conn.execute("SELECT run_id, step FROM samples")}
        conn.close()
        return rows
    except sqlite3.DatabaseError:
        return None


def _runs(results: Path) -> dict:
    conn = sqlite3.connect(results / "benchbase.sqlite")
    out = {}
    for label, status, summary, error in conn.execute("SELECT model_label, status, summary, error FROM runs"):
        out.setdefault(label, []).append({"status": status, "summary": json.loads(summary or "{}"),
                                          "error": error or ""})
    conn.close()
    return out


@pytest.mark.parametrize("case", CASES)
def test_corpus_case(case, tmp_path, monkeypatch, capsys, done_store):
    expect = case.get("expect", {})
    results, out = tmp_path / "results", tmp_path / "out"
    placeholders = {"tmp": str(tmp_path), "results": str(results), "out": str(out),
                    "suite": str(tmp_path / "suite.yaml"), "file": str(tmp_path / "a_file.txt")}
    (tmp_path / "a_file.txt").write_text("not a directory\n")
    for rel, text in (case.get("files") or {}).items():
        target = tmp_path / rel.format(**placeholders)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    suite = merge(base_suite(case.get("base", "tiny")), _expand_ranges(case.get("suite") or {}))
    if "suite_text" in case:
        (tmp_path / "suite.yaml").write_text(case["suite_text"])
    else:
        (tmp_path / "suite.yaml").write_text(json.dumps(suite))

    # ------------------------------------------------------------- set-ups
    monkeypatch.syspath_prepend(str(tmp_path))
    extra = ("support.faulty_plugins", *(f"support.{p}" for p in case.get("plugins", ())))
    entry_points = bool(case.get("entry_point"))
    if entry_points:
        _write_entry_point(tmp_path, case["entry_point"]["name"], case["entry_point"]["module"])
    real_from_env = PluginPolicy.from_env.__func__
    monkeypatch.setattr(PluginPolicy, "from_env", classmethod(
        lambda cls, **kw: real_from_env(cls, **{"entry_points": entry_points, "extra": extra, **kw})))
    if entry_points:  # only the corpus's distribution, not whatever else is installed
        monkeypatch.setenv("BENCHBASE_LOAD_PLUGINS", f"corpus-{case['entry_point']['name']}")
    for key, value in (case.get("env") or {}).items():
        monkeypatch.setenv(key, str(value).format(**placeholders))

    if case.get("store"):
        shutil.copytree(done_store, results)
        if case["store"] != "done":
            _corrupt_store(results, case["store"])
    if case.get("checkpoint"):
        marker = tmp_path / "fault-fired"
        suite["models"][0]["config"].update({"fault": "raise", "at_step": 35, "once": str(marker)})
        (tmp_path / "suite.yaml").write_text(json.dumps(suite))
        code = _run_cli(["run", str(tmp_path / "suite.yaml"), "--results", str(results), "--quiet"])
        assert code == 1 and marker.exists(), "set-up: the first attempt fails at step 35"
        reference = tmp_path / "reference"
        assert _run_cli(["run", str(tmp_path / "suite.yaml"), "--results", str(reference), "--quiet"]) == 0
        _corrupt_checkpoint(results, case["checkpoint"])
        capsys.readouterr()

    argv = [_range_text(a).format(**placeholders) for a in case.get(
        "argv", ["run", "{suite}", *case.get("overrides", []), "--results", "{results}", "--quiet"])]
    before_rows = _rows(results)  # (reading first: a reader may leave SQLite's -wal/-shm files)
    before_files = {"results": _snapshot(results), "out": _snapshot(out)}

    # -------------------------------------------------------------- the command
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: \
            sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
        try:
            code = _run_cli(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
    captured = capsys.readouterr()
    output = captured.out + captured.err
    err_lines = [line for line in captured.err.splitlines() if line.strip()]

    # ------------------------------------------------------------ the outcome
    assert "Traceback" not in output, output
    assert code == expect.get("exit", 2), output
    for text in expect.get("says", []):
        assert text in captured.err, f"stderr lacks {text!r}:\n{captured.err}"
    for text in expect.get("output_says", []):
        assert text in output, f"output lacks {text!r}:\n{output}"
    for text in expect.get("never_says", []):
        assert text not in output, f"output says {text!r}:\n{output}"
    if code == 2:
        assert len(err_lines) == 1, f"bad input gets one line, not {len(err_lines)}:\n{captured.err}"
    if code == 2 or expect.get("written") is False:
        assert _snapshot(results) == before_files["results"], "bad input wrote to the results directory"
        assert _snapshot(out) == before_files["out"], "bad input wrote to the output folder"
    for path in expect.get("not_created", []):
        assert not Path(path.format(**placeholders)).exists(), f"{path} was written"

    after_rows = _rows(results)
    if before_rows is not None and not expect.get("rewrites_rows"):
        assert after_rows is not None, "a healthy store was damaged"
        lost = {r[:-1] if r[0] == "eval" else r for r in before_rows} - \
               {r[:-1] if r[0] == "eval" else r for r in after_rows}
        assert not lost, f"{len(lost)} stored row(s) lost, e.g. {sorted(lost)[:3]}"

    for label, want in (expect.get("runs") or {}).items():
        records = _runs(results).get(label)
        assert records, f"no run labelled {label!r} in the store"
        for rec in records:
            assert rec["status"] == want["status"], (label, rec)
            reason = rec["summary"].get("reason", "")
            for text in want.get("says", []):
                assert text in reason, f"{label}: reason {reason!r} lacks {text!r}"
            if want["status"] == "done" and case.get("checkpoint"):
                from support.executor_runs import same_numbers

                assert same_numbers(_values(results), _values(tmp_path / "reference")), \
                    "the resumed or restarted run differs from an uninterrupted one"


def _range_text(arg: str) -> str:
    """An override "key=__rangeN__" becomes "key=[1,...,N]"."""
    key, sep, value = arg.partition("=")
    if sep and value.startswith("__range"):
        return f"{key}={json.dumps(_expand_ranges(value))}"
    return arg


def _values(results: Path) -> dict:
    conn = sqlite3.connect(results / "benchbase.sqlite")
    rows = conn.execute("SELECT r.model_label, r.seed, e.step, e.metric, e.ref, e.value FROM evals e "
                        "JOIN runs r ON r.run_id = e.run_id").fetchall()
    conn.close()
    return {tuple(r[:-1]): r[-1] for r in rows}


def test_the_corpus_is_large_and_every_case_says_what_it_expects():
    ids = [p.id for p in CASES]
    assert len(ids) > 90, len(ids)
    assert len(set(ids)) == len(ids), "case ids are unique within their file"
    for p in CASES:
        assert "exit" in p.values[0].get("expect", {}), p.values[0]["id"]
