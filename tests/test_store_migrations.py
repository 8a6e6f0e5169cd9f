"""The results store's schema migrations (benchbase.migrations): a results file written
before migrations existed (tests/fixtures/store_v1, see make.py there) opens and reads
back exactly what was stored; a later migration upgrades it in place; a file from a
newer benchbase is refused instead of misread."""
from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from benchbase import migrations
from benchbase.migrations import MIGRATIONS, StoreVersionError, migration
from benchbase.store import DB_NAME, Store, StoreFileError

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "store_v1"


@pytest.fixture
def v1_dir(tmp_path):
    """A copy of the old results file (opening it upgrades it in place)."""
    shutil.copy(FIXTURE / "store_v1.db", tmp_path / DB_NAME)
    return tmp_path


@pytest.fixture(scope="module")
def want() -> dict:
    return json.loads((FIXTURE / "expected.json").read_text())


def _migrations_of(path: Path) -> list[str]:
    with sqlite3.connect(path / DB_NAME) as db:
        return [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY rowid")]


def test_old_results_file_reads_the_same_runs_and_evaluations(v1_dir, want):
    with Store(v1_dir, create=False) as store:
        runs = {r.run_id: r for r in store.runs()}
        assert sorted(runs) == sorted(want["runs"])
        for rid, old in want["runs"].items():
            r = runs[rid]
            assert (r.status, r.summary, r.error) == (old["status"], old["summary"], old["error"])
            assert r.spec.to_dict() == old["spec"] and r.spec.run_id == rid
            assert sorted(r.provenance) == old["provenance_keys"]
            assert json.loads(json.dumps(store.evals(rid))) == old["evals"]
            assert {str(s): store.samples(rid, s)[1].tolist() for s in store.sample_steps(rid)} == old["samples"]
            ckpt = store.checkpoint(rid)
            assert (None if ckpt is None else {"step": ckpt.step, "examples": ckpt.examples,
                                               "bytes": len(ckpt.blob)}) == old["checkpoint"]
        assert store.suites() == sorted(want["suites"])
        for suite, old in want["suites"].items():
            assert [r.run_id for r in store.runs(suite=suite)] == old["runs"]
            assert store.suite_settings(suite) == old["settings"]
            assert store.suite_resolved(suite) == old["resolved"]
            assert json.loads(json.dumps(store.derived(suite), default=str)) == old["derived"]
        leases = [list(row) for row in store.conn.execute("SELECT run_id, owner, host, pid FROM leases")]
        assert leases == want["leases"]


def test_opening_records_the_migrations_a_file_has_had(v1_dir, tmp_path):
    with sqlite3.connect(v1_dir / DB_NAME) as db:
        assert migrations.stored_version(db) == 1 and migrations.applied(db) == ["m001_initial"]
    Store(v1_dir, create=False).close()
    assert _migrations_of(v1_dir) == [m.__name__ for m in MIGRATIONS]
    new = tmp_path / "new"
    Store(new).close()
    assert _migrations_of(new) == [m.__name__ for m in MIGRATIONS]
    with sqlite3.connect(new / DB_NAME) as db:
        assert migrations.stored_version(db) == migrations.SCHEMA_VERSION == len(MIGRATIONS)


def test_a_later_migration_upgrades_an_old_file_once(v1_dir, monkeypatch, want):
    calls = []

    def m999_checkpoint_checksums(db):
        calls.append(1)
        db.execute("ALTER TABLE checkpoints ADD COLUMN sha256 TEXT")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*MIGRATIONS])
    migration(m999_checkpoint_checksums)
    for _ in range(2):
        with Store(v1_dir, create=False) as store:
            columns = [r[1] for r in store.conn.execute("PRAGMA table_info(checkpoints)")]
            assert "sha256" in columns and len(store.runs()) == len(want["runs"])
    assert calls == [1], "a migration runs once per file"
    assert _migrations_of(v1_dir)[-1] == "m999_checkpoint_checksums"


def test_a_file_from_a_newer_benchbase_is_refused(v1_dir):
    Store(v1_dir, create=False).close()
    with sqlite3.connect(v1_dir / DB_NAME) as db:
        db.execute("INSERT INTO _migrations VALUES ('m999_from_the_future', 0)")
        db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(StoreVersionError, match="newer benchbase.*m999_from_the_future"):
        Store(v1_dir, create=False)


def test_a_failing_migration_leaves_the_file_as_it_was(v1_dir, monkeypatch):
    def m999_broken(db):
        db.execute("ALTER TABLE runs ADD COLUMN half_done TEXT")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(migrations, "MIGRATIONS", [*MIGRATIONS, m999_broken])
    with pytest.raises(RuntimeError, match="migration bug"):
        Store(v1_dir, create=False)
    with sqlite3.connect(v1_dir / DB_NAME) as db:
        assert "half_done" not in [r[1] for r in db.execute("PRAGMA table_info(runs)")]
        assert migrations.stored_version(db) == 1


def test_a_file_missing_a_table_is_refused_untouched(v1_dir):
    with sqlite3.connect(v1_dir / DB_NAME) as db:
        db.execute("DROP TABLE evals")
    before = (v1_dir / DB_NAME).read_bytes()
    with pytest.raises(StoreFileError, match=r"benchbase\.sqlite lacks the table\(s\) evals "):
        Store(v1_dir, create=False)
    with pytest.raises(StoreFileError, match="evals"):
        Store(v1_dir)
    assert (v1_dir / DB_NAME).read_bytes() == before

