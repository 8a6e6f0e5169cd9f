"""The results store: one SQLite file (``results/benchbase.sqlite`` by default).

Correctness lives here. Each evaluation's rows, its stored samples and the model
checkpoint are written in ONE transaction, so a run killed at any moment leaves
either the whole evaluation or none of it; resuming loads that checkpoint, and the
primary key (run, step, metric, reference) makes a repeated write replace rather
than duplicate. WAL mode and a busy timeout let several suites share a directory.
Only the driver process writes.

Several drivers may share one store (two suites with common runs, or the same
command started twice). A driver *claims* a run (a row in ``leases``) before it
trains it and keeps the claim alive with heartbeats; another driver skips a run
held by a live claim and takes it over when the holder stops heartbeating or, on
the same host, when the holder's process is gone (``kill -9``).
"""
from __future__ import annotations

import io
import json
import os
import socket
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from benchbase.specs import RunSpec
from benchbase.contracts import EvalRow

DB_NAME = "benchbase.sqlite"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    model TEXT NOT NULL, framework TEXT, family TEXT, model_label TEXT,
    dataset TEXT NOT NULL, dataset_label TEXT, n INTEGER, seed INTEGER,
    spec TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    error TEXT,
    provenance TEXT,
    summary TEXT,
    created_at REAL, updated_at REAL
);
CREATE TABLE IF NOT EXISTS suites (
    name TEXT PRIMARY KEY, source TEXT, resolved TEXT, leaderboard TEXT, updated_at REAL
);
CREATE TABLE IF NOT EXISTS suite_runs (
    suite TEXT NOT NULL, run_id TEXT NOT NULL, position INTEGER,
    PRIMARY KEY (suite, run_id)
);
CREATE TABLE IF NOT EXISTS evals (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, examples INTEGER NOT NULL,
    metric TEXT NOT NULL, ref TEXT NOT NULL DEFAULT '',
    value REAL, feature_space TEXT, params TEXT,
    PRIMARY KEY (run_id, step, metric, ref)
);
CREATE TABLE IF NOT EXISTS samples (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id TEXT PRIMARY KEY, step INTEGER NOT NULL, examples INTEGER NOT NULL,
    wall_time REAL NOT NULL DEFAULT 0, blob BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    run_id TEXT PRIMARY KEY, owner TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    acquired REAL NOT NULL, heartbeat REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS evals_by_metric ON evals (metric, run_id);
CREATE TABLE IF NOT EXISTS derived (
    suite TEXT NOT NULL, run_id TEXT NOT NULL, data TEXT NOT NULL, updated_at REAL,
    PRIMARY KEY (suite, run_id)
);
"""

FINAL_STATUSES = ("done", "diverged")  # outcomes a rerun does not repeat


@dataclass
class Checkpoint:
    step: int
    examples: int
    wall_time: float
    blob: bytes


DEFAULT_LEASE_TIMEOUT = 60.0  # seconds without a heartbeat before another driver takes a run over


@dataclass(frozen=True)
class Lease:
    """Who is claiming runs: one per ``run_suite`` call (owner), on a host, in a process."""

    owner: str
    host: str
    pid: int
    timeout: float = DEFAULT_LEASE_TIMEOUT

    @classmethod
    def new(cls, timeout: float | None = None) -> "Lease":
        if timeout is None:
            timeout = float(os.environ.get("BENCHBASE_LEASE_TIMEOUT", DEFAULT_LEASE_TIMEOUT))
        return cls(uuid.uuid4().hex, socket.gethostname(), os.getpid(), timeout)


@dataclass(frozen=True)
class Holder:
    """Another driver's live claim on a run."""

    owner: str
    host: str
    pid: int
    heartbeat: float

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def encode_array(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def decode_array(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)


class Store:
    """SQLite-backed results. Open one per process; it is cheap."""

    def __init__(self, results_dir: str | Path, create: bool = True):
        self.dir = Path(results_dir)
        self.path = self.dir / DB_NAME
        if not create and not self.path.exists():
            raise FileNotFoundError(f"no results store at {self.path}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=60000")
        self.conn.executescript(_SCHEMA)
        self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    @property
    def cache_dir(self) -> Path:
        return self.dir / "cache"

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: all or nothing, writers serialised."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    # ------------------------------------------------------------------ runs
    def register_runs(self, suite: str, specs: list[RunSpec], settings: dict | None = None) -> None:
        """Record the suite's runs as pending (existing runs keep their status)."""
        now = time.time()
        settings = settings or {}
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO suites VALUES (?,?,?,?,?)",
                      (suite, settings.get("source"), json.dumps(settings.get("resolved"), default=str),
                       json.dumps(settings.get("leaderboard") or {}), now))
            for pos, spec in enumerate(specs):
                c.execute(
                    "INSERT OR IGNORE INTO runs (run_id, model, framework, family, model_label, dataset,"
                    " dataset_label, n, seed, spec, status, created_at, updated_at)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,'pending',?,?)",
                    (spec.run_id, spec.model.name, spec.model.framework, spec.model.family,
                     spec.model.label, spec.dataset.name, spec.dataset.label, spec.subset.n,
                     spec.seed, json.dumps(spec.to_dict(), sort_keys=True), now, now))
                c.execute("INSERT OR REPLACE INTO suite_runs VALUES (?,?,?)", (suite, spec.run_id, pos))

    def reset_runs(self, run_ids: list[str]) -> None:
        """--fresh: forget everything a run produced."""
        with self.transaction() as c:
            for rid in run_ids:
                for table in ("evals", "samples", "checkpoints"):
                    c.execute(f"DELETE FROM {table} WHERE run_id=?", (rid,))
                c.execute("UPDATE runs SET status='pending', error=NULL, summary=NULL, updated_at=?"
                          " WHERE run_id=?", (time.time(), rid))

    def status(self, run_id: str) -> str | None:
        row = self.conn.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return row[0] if row else None

    def statuses(self, run_ids: list[str]) -> dict[str, str | None]:
        return {rid: self.status(rid) for rid in run_ids}

    def mark_running(self, run_id: str, provenance: dict) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET status='running', provenance=?, error=NULL, updated_at=?"
                      " WHERE run_id=?", (json.dumps(provenance, sort_keys=True, default=str),
                                          time.time(), run_id))

    def finish_run(self, run_id: str, status: str, summary: dict, error: str | None = None) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET status=?, summary=?, error=?, updated_at=? WHERE run_id=?",
                      (status, json.dumps(summary, sort_keys=True, default=str), error, time.time(), run_id))
            if status == "done":
                c.execute("DELETE FROM checkpoints WHERE run_id=?", (run_id,))

    # ---------------------------------------------------------------- leases
    def claim(self, run_id: str, lease: Lease) -> Holder | str | None:
        """Claim a run for ``lease``. Returns None when claimed, the run's status when
        it is already final (someone finished it), else the live :class:`Holder`."""
        now = time.time()
        with self.transaction() as c:
            row = c.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row and row[0] in FINAL_STATUSES:
                return row[0]
            held = c.execute("SELECT owner, host, pid, heartbeat FROM leases WHERE run_id=?",
                             (run_id,)).fetchone()
            if held is not None and held[0] != lease.owner:
                holder = Holder(*held)
                if not self._lease_expired(holder, lease, now):
                    return holder
            c.execute("INSERT OR REPLACE INTO leases VALUES (?,?,?,?,?,?)",
                      (run_id, lease.owner, lease.host, lease.pid, now, now))
        return None

    @staticmethod
    def _lease_expired(holder: Holder, lease: Lease, now: float) -> bool:
        if now - holder.heartbeat > lease.timeout:
            return True  # the holder stopped heartbeating (crashed, hung, or its machine died)
        # On this machine a dead holder process is visible at once: no need to wait.
        return holder.host == lease.host and not _process_alive(holder.pid)

    def heartbeat(self, lease: Lease) -> int:
        """Refresh every claim of ``lease``; returns how many it holds."""
        with self.transaction() as c:
            return c.execute("UPDATE leases SET heartbeat=? WHERE owner=?", (time.time(), lease.owner)).rowcount

    def release(self, lease: Lease, run_id: str | None = None) -> None:
        """Give up one claim (``run_id``) or all claims of ``lease``."""
        with self.transaction() as c:
            if run_id is None:
                c.execute("DELETE FROM leases WHERE owner=?", (lease.owner,))
            else:
                c.execute("DELETE FROM leases WHERE owner=? AND run_id=?", (lease.owner, run_id))

    def holder(self, run_id: str, lease: Lease) -> Holder | None:
        """The live claim of another driver on ``run_id``, if any."""
        row = self.conn.execute("SELECT owner, host, pid, heartbeat FROM leases WHERE run_id=?",
                                (run_id,)).fetchone()
        if row is None or row[0] == lease.owner:
            return None
        holder = Holder(*row)
        return None if self._lease_expired(holder, lease, time.time()) else holder

    # ---------------------------------------------------------------- evals
    def write_eval(self, run_id: str, step: int, examples: int, rows: list[EvalRow],
                   samples: np.ndarray | None = None, checkpoint: bytes | None = None,
                   wall_time: float = 0.0) -> None:
        """One evaluation point, atomically: rows + samples + checkpoint."""
        with self.transaction() as c:
            c.executemany(
                "INSERT OR REPLACE INTO evals VALUES (?,?,?,?,?,?,?,?)",
                [(run_id, step, examples, r.metric, r.ref or "", _finite_or_none(r.value), r.feature_space,
                  json.dumps(r.params, sort_keys=True, default=str)) for r in rows])
            if samples is not None:
                c.execute("INSERT OR REPLACE INTO samples VALUES (?,?,?)",
                          (run_id, step, encode_array(samples)))
            if checkpoint is not None:
                c.execute("INSERT OR REPLACE INTO checkpoints VALUES (?,?,?,?,?)",
                          (run_id, step, examples, wall_time, checkpoint))
            c.execute("UPDATE runs SET updated_at=? WHERE run_id=?", (time.time(), run_id))

    def checkpoint(self, run_id: str) -> Checkpoint | None:
        row = self.conn.execute("SELECT step, examples, wall_time, blob FROM checkpoints WHERE run_id=?",
                                (run_id,)).fetchone()
        return Checkpoint(*row) if row else None

    def drop_evals_after(self, run_id: str, step: int) -> None:
        """Before resuming from ``step``: nothing later can exist, but be sure."""
        with self.transaction() as c:
            c.execute("DELETE FROM evals WHERE run_id=? AND step>?", (run_id, step))
            c.execute("DELETE FROM samples WHERE run_id=? AND step>?", (run_id, step))

    # ---------------------------------------------------------------- reads
    def runs(self, suite: str | None = None, status: str | None = None) -> list[dict]:
        q = "SELECT r.* FROM runs r"
        args: list = []
        where = []
        if suite is not None:
            q += " JOIN suite_runs s ON s.run_id = r.run_id"
            where.append("s.suite=?")
            args.append(suite)
        if status is not None:
            where.append("r.status=?")
            args.append(status)
        if where:
            q += " WHERE " + " AND ".join(where)
        q += " ORDER BY " + ("s.position" if suite is not None else "r.created_at, r.run_id")
        cur = self.conn.execute(q, args)
        cols = [d[0] for d in cur.description]
        out = []
        for row in cur.fetchall():
            rec = dict(zip(cols, row))
            for key in ("spec", "provenance", "summary"):
                rec[key] = json.loads(rec[key]) if rec.get(key) else {}
            out.append(rec)
        return out

    def suite_settings(self, suite: str) -> dict:
        """The suite's leaderboard settings (primary metric, columns) as last run."""
        row = self.conn.execute("SELECT leaderboard FROM suites WHERE name=?", (suite,)).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    def suite_resolved(self, suite: str) -> dict:
        """The suite as last run, after overrides and defaults."""
        row = self.conn.execute("SELECT resolved FROM suites WHERE name=?", (suite,)).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    # -------------------------------------------------------------- derived
    def write_derived(self, suite: str, records: dict[str, dict]) -> None:
        """Replace the derived (training-dynamics) records of a suite's runs, atomically.

        Keyed by suite as well as run: the suite's thresholds and its sweep (the
        normalized-step references) enter the numbers.
        """
        now = time.time()
        with self.transaction() as c:
            c.execute("DELETE FROM derived WHERE suite=?", (suite,))
            c.executemany("INSERT INTO derived VALUES (?,?,?,?)",
                          [(suite, rid, json.dumps(rec, sort_keys=True, default=str), now)
                           for rid, rec in records.items()])

    def derived(self, suite: str) -> dict[str, dict]:
        """Derived records of a suite's runs: run_id -> record."""
        rows = self.conn.execute("SELECT run_id, data FROM derived WHERE suite=?", (suite,)).fetchall()
        return {rid: json.loads(data) for rid, data in rows}

    def suites(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT suite FROM suite_runs ORDER BY suite")]

    def evals(self, run_id: str) -> list[dict]:
        cur = self.conn.execute("SELECT step, examples, metric, ref, value, feature_space, params FROM evals"
                                " WHERE run_id=? ORDER BY step, metric, ref", (run_id,))
        return [{"step": s, "examples": e, "metric": m, "ref": r, "value": float("nan") if v is None else v,
                 "feature_space": f, "params": json.loads(p) if p else {}}
                for s, e, m, r, v, f, p in cur.fetchall()]

    def samples(self, run_id: str, step: int | None = None) -> tuple[int, np.ndarray] | None:
        if step is None:
            row = self.conn.execute("SELECT step, data FROM samples WHERE run_id=? ORDER BY step DESC LIMIT 1",
                                    (run_id,)).fetchone()
        else:
            row = self.conn.execute("SELECT step, data FROM samples WHERE run_id=? AND step=?",
                                    (run_id, step)).fetchone()
        return (row[0], decode_array(row[1])) if row else None

    def sample_steps(self, run_id: str) -> list[int]:
        """Evaluation steps at which samples of ``run_id`` were kept."""
        return [r[0] for r in self.conn.execute("SELECT step FROM samples WHERE run_id=? ORDER BY step",
                                                (run_id,))]

    def counts(self) -> dict[str, int]:
        return {t: self.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("runs", "evals", "samples", "checkpoints")}


def _finite_or_none(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def default_results_dir() -> str:
    return os.environ.get("BENCHBASE_RESULTS", "results")
