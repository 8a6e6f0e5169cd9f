"""The results store's schema, as an ordered list of named migrations.

A results file records which migrations it has had (table ``_migrations``); opening
it applies the missing ones, in order, in one transaction. So a results file
from any earlier benchbase opens with any later one, and a file from a newer
benchbase (one that knows migrations this code does not) is refused with a clear
message instead of being misread.

To change the schema, append a function to this file and leave the ones above it
alone (they have already run on files out there)::

    @migration
    def m002_checkpoint_checksums(db):
        db.execute("ALTER TABLE checkpoints ADD COLUMN sha256 TEXT")

Its name is its identity: never rename or reorder a migration once it is committed.
A migration receives a connection inside an open transaction; use ``db.execute``
(not ``executescript``, which would commit half-way). ``SCHEMA_VERSION`` is the number of
migrations; ``meta.schema_version`` in the file says how many it has had.
"""
from __future__ import annotations

import functools
import sqlite3
import time
from typing import Callable

from benchbase.errors import BenchbaseInputError

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration."""
    MIGRATIONS.append(fn)
    return fn


class StoreVersionError(BenchbaseInputError):
    """The results file was written by a newer benchbase."""


# ---------------------------------------------------------------------- migrations


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    """The schema of every results file written before migrations were recorded."""
    for statement in (
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
        """CREATE TABLE IF NOT EXISTS runs (
            run_id TEXT PRIMARY KEY,
            model TEXT NOT NULL, framework TEXT, family TEXT, model_label TEXT,
            dataset TEXT NOT NULL, dataset_label TEXT, n INTEGER, seed INTEGER,
            spec TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'pending',
            error TEXT,
            provenance TEXT,
            summary TEXT,
            created_at REAL, updated_at REAL)""",
        """CREATE TABLE IF NOT EXISTS suites (
            name TEXT PRIMARY KEY, source TEXT, resolved TEXT, leaderboard TEXT, updated_at REAL)""",
        """CREATE TABLE IF NOT EXISTS suite_runs (
            suite TEXT NOT NULL, run_id TEXT NOT NULL, position INTEGER,
            PRIMARY KEY (suite, run_id))""",
        """CREATE TABLE IF NOT EXISTS evals (
            run_id TEXT NOT NULL, step INTEGER NOT NULL, examples INTEGER NOT NULL,
            metric TEXT NOT NULL, ref TEXT NOT NULL DEFAULT '',
            value REAL, feature_space TEXT, params TEXT,
            PRIMARY KEY (run_id, step, metric, ref))""",
        """CREATE TABLE IF NOT EXISTS samples (
            run_id TEXT NOT NULL, step INTEGER NOT NULL, data BLOB NOT NULL,
            PRIMARY KEY (run_id, step))""",
        """CREATE TABLE IF NOT EXISTS checkpoints (
            run_id TEXT PRIMARY KEY, step INTEGER NOT NULL, examples INTEGER NOT NULL,
            wall_time REAL NOT NULL DEFAULT 0, blob BLOB NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS leases (
            run_id TEXT PRIMARY KEY, owner TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
            acquired REAL NOT NULL, heartbeat REAL NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS evals_by_metric ON evals (metric, run_id)",
        """CREATE TABLE IF NOT EXISTS derived (
            suite TEXT NOT NULL, run_id TEXT NOT NULL, data TEXT NOT NULL, updated_at REAL,
            PRIMARY KEY (suite, run_id))""",
    ):
        db.execute(statement)


@migration
def m002_checkpoint_checksums(db: sqlite3.Connection) -> None:
    """A sha256 beside each checkpoint, so a damaged blob is found before a model loads it
    (NULL for checkpoints written before: those are trusted as they are)."""
    db.execute("ALTER TABLE checkpoints ADD COLUMN checksum TEXT")


# Append new migrations above this line.

SCHEMA_VERSION = len(MIGRATIONS)


# -------------------------------------------------------------------------- runner


def _table_exists(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def stored_version(db: sqlite3.Connection) -> int:
    """``meta.schema_version`` of the file (0 for a new, empty file)."""
    if not _table_exists(db, "meta"):
        return 0
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else 0


def applied(db: sqlite3.Connection) -> list[str]:
    """Names of the migrations the file has had. A file written before migrations were
    recorded has had the first ``schema_version`` of them."""
    if _table_exists(db, "_migrations"):
        return [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY rowid")]
    return [m.__name__ for m in MIGRATIONS[:stored_version(db)]]


@functools.cache
def required_tables() -> frozenset[str]:
    """The tables every results file holds: those of ``m001_initial`` (frozen, like every
    committed migration), read off a scratch database so that no list of them can drift."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    try:
        m001_initial(db)
        return frozenset(r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'"))
    finally:
        db.close()


def _check_not_newer(db: sqlite3.Connection, path: str) -> None:
    known = {m.__name__ for m in MIGRATIONS}
    unknown = [name for name in applied(db) if name not in known]
    version = stored_version(db)
    if unknown or version > len(MIGRATIONS):
        raise StoreVersionError(
            f"{path} was written by a newer benchbase (schema version {version}; this one knows up to "
            f"{len(MIGRATIONS)}{'; unknown migrations: ' + ', '.join(unknown) if unknown else ''}). "
            "Upgrade benchbase to read it.")


def migrate(db: sqlite3.Connection, path: str = "results store") -> list[str]:
    """Bring the file up to the latest schema; returns the names of the migrations run.

    Cheap when nothing is to do (one read). Otherwise serialised with ``BEGIN
    IMMEDIATE`` so that two processes opening one file migrate it once.
    """
    _check_not_newer(db, path)
    if len(applied(db)) == len(MIGRATIONS) and _table_exists(db, "_migrations"):
        return []
    ran = []
    db.execute("BEGIN IMMEDIATE")
    try:
        _check_not_newer(db, path)
        done = set(applied(db))
        db.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL)")
        for fn in MIGRATIONS:
            if fn.__name__ in done:
                db.execute("INSERT OR IGNORE INTO _migrations VALUES (?, NULL)", (fn.__name__,))
                continue
            fn(db)
            db.execute("INSERT INTO _migrations VALUES (?, ?)", (fn.__name__, time.time()))
            ran.append(fn.__name__)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(len(MIGRATIONS)),))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return ran
