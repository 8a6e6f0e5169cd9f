"""The results store: one SQLite file (``results/benchbase.sqlite`` by default).

Correctness lives here. Each evaluation's rows, its stored samples and the model
checkpoint are written in ONE transaction, so a run killed at any moment leaves
either the whole evaluation or none of it; resuming loads that checkpoint, and the
primary key (run, step, metric, reference) makes a repeated write replace rather
than duplicate. WAL mode and a busy timeout let several suites share a directory.
Only the driver process writes.

The schema is built and upgraded by benchbase.migrations when a file is opened;
claims of runs by concurrent drivers live in benchbase.leases (``store.leases``).
Reads hand out :class:`~benchbase.records.RunRecord` objects with a typed spec.
"""
from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from benchbase.contracts import EvalRow
from benchbase.errors import BenchbaseInputError
from benchbase.leases import Lease, Leases, RunsHeldError
from benchbase.migrations import SCHEMA_VERSION, migrate  # noqa: F401 (SCHEMA_VERSION: read from here too)
from benchbase.migrations import required_tables
from benchbase.paths import DB_NAME, default_results_dir  # noqa: F401 (read from here too)
from benchbase.records import RunRecord
from benchbase.specs import RunSpec


class StoreFileError(BenchbaseInputError):
    """The results file cannot be used: damaged, some other program's, or not a file."""


@dataclass
class Checkpoint:
    step: int
    examples: int
    wall_time: float
    blob: bytes
    checksum: str | None = None  # sha256 of blob as written (None: written before checksums)

    def problem(self, steps: int) -> str | None:
        """Why this checkpoint of a run of ``steps`` steps must not be resumed from, if it must not."""
        if self.checksum is not None and checksum(self.blob) != self.checksum:
            return f"the checkpoint at step {self.step} is damaged (its checksum does not match)"
        if not self.blob:
            return f"the checkpoint at step {self.step} is empty"
        if not 0 <= self.step < steps:
            return f"the checkpoint says step {self.step}, outside the run's {steps} steps"
        return None


def checksum(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()


def encode_array(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def decode_array(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)


class Store:
    """SQLite-backed results. Open one per process; it is cheap."""

    def __init__(self, results_dir: str | Path, create: bool = True):
        """Open (``create``: or start) the store in ``results_dir``.

        A file that is damaged, not a benchbase store, or from a newer benchbase is
        refused with a :class:`StoreFileError` before anything is written to it.
        Opened with ``create=False`` (to read), a store is never written, except to
        bring an older file's schema up to date, and an empty (0-byte) file is refused
        like a missing one: no benchbase wrote it.
        """
        self.dir = Path(results_dir)
        self.path = self.dir / DB_NAME
        if self.dir.exists() and not self.dir.is_dir():
            raise StoreFileError(f"--results {self.dir} is a file, not a directory: name a directory "
                                 "(it is created if missing)")
        if self.path.is_dir():
            raise StoreFileError(f"{self.path} is a directory, not a results file: move it away, "
                                 "or pass another --results directory")
        if not create and not self.path.exists():
            raise FileNotFoundError(f"no results store at {self.path}")
        if not create and _empty_file(self.path):
            raise StoreFileError(f"no results in {self.dir}/ ({DB_NAME} is an empty file, 0 bytes: not a results "
                                 "store; run a suite first, or pass the right --results)")
        existing = self.path.exists() and self.path.stat().st_size > 0
        if create:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:
                raise StoreFileError(f"cannot create the results directory {self.dir}: part of its path "
                                     f"is a file ({exc.strerror})") from None
        self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            if existing:
                check_store_file(self.conn, self.path)
            if not create and not _tables(self.conn):
                # an empty file reads as an empty store; reading must not write a schema into it
                self.conn.close()
                self.conn = sqlite3.connect(":memory:", isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=60000")
            migrate(self.conn, str(self.path))
        except BaseException:
            self.conn.close()
            raise
        self.leases = Leases(self)

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
    def register_runs(self, suite: str, specs: list[RunSpec], settings: dict | None = None,
                      only: bool = False) -> list[str]:
        """Record the suite's runs as pending (existing runs keep their status and results).
        With ``only`` (``run --fresh``), runs an earlier version of the suite planned and this
        one does not leave the suite (their rows stay in the store, for any other suite); their
        titles are returned so the caller can say what left the suite's leaderboard.

        Labels are display data, not identity (``RunSpec.identity`` leaves them out): a run
        registered again under a new model or dataset label takes the new one, so renaming
        a label and rerunning renames it on every leaderboard and report.
        """
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
                _relabel(c, spec)
            if only:
                keep = {spec.run_id for spec in specs}
                stale = [(run_id, spec) for run_id, spec in c.execute(
                    "SELECT s.run_id, r.spec FROM suite_runs s LEFT JOIN runs r ON r.run_id = s.run_id"
                    " WHERE s.suite=? ORDER BY s.position", (suite,)) if run_id not in keep]
                c.executemany("DELETE FROM suite_runs WHERE suite=? AND run_id=?", [(suite, r) for r, _ in stale])
                return [RunSpec.from_dict(json.loads(spec)).title for _, spec in stale if spec is not None]
        return []

    def reset_runs(self, run_ids: list[str], lease: Lease | None = None) -> None:
        """--fresh: forget everything a run produced. With ``lease`` (the caller's), nothing
        is changed while another live driver holds any of the runs: :class:`RunsHeldError`
        (checked in the same transaction as the deletion, so no claim slips in between)."""
        with self.transaction() as c:
            if lease is not None:
                held = {rid: h for rid in run_ids if (h := self.leases.holder(rid, lease)) is not None}
                if held:
                    raise RunsHeldError(held)
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

    def mark_interrupted(self, run_ids: list[str]) -> None:
        """Runs this driver was running when it was interrupted (Ctrl-C): not ``running``
        forever, and resumed (from their last checkpoint) by the next run."""
        with self.transaction() as c:
            c.executemany("UPDATE runs SET status='interrupted', updated_at=? WHERE run_id=? AND status='running'",
                          [(time.time(), rid) for rid in run_ids])

    def mark_running(self, run_id: str, provenance: dict) -> None:
        with self.transaction() as c:
            c.execute("UPDATE runs SET status='running', provenance=?, error=NULL, updated_at=?"
                      " WHERE run_id=?", (json.dumps(provenance, sort_keys=True, default=str),
                                          time.time(), run_id))

    def finish_run(self, run_id: str, status: str, summary: dict, error: str | None = None,
                   require_all_evaluations: bool = False) -> tuple[str, dict]:
        """Record how a run ended; returns the status and summary recorded.

        With ``require_all_evaluations`` (the driver, for runs it trained) a run is recorded
        ``done`` only if every scheduled evaluation is stored, checked in the same
        transaction: otherwise it is ``failed``, saying which are missing (rows that
        something else deleted must never hide behind a ``done``). Writers of stores
        without training (tests, imports) leave it off.
        """
        with self.transaction() as c:
            if status == "done" and require_all_evaluations:
                missing = _missing_evaluations(c, run_id)
                if missing:
                    shown = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
                    error = (f"evaluations at step {shown} are missing from the store (deleted while the "
                             "run went on?); rerun to redo this run")
                    status, summary = "failed", {**summary, "reason": error}
            c.execute("UPDATE runs SET status=?, summary=?, error=?, updated_at=? WHERE run_id=?",
                      (status, json.dumps(summary, sort_keys=True, default=str), error, time.time(), run_id))
            if status == "done":
                c.execute("DELETE FROM checkpoints WHERE run_id=?", (run_id,))
        return status, summary

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
                c.execute("INSERT OR REPLACE INTO checkpoints (run_id, step, examples, wall_time, blob, checksum)"
                          " VALUES (?,?,?,?,?,?)", (run_id, step, examples, wall_time, checkpoint,
                                                   checksum(checkpoint)))
            c.execute("UPDATE runs SET updated_at=? WHERE run_id=?", (time.time(), run_id))

    def checkpoint(self, run_id: str) -> Checkpoint | None:
        row = self.conn.execute("SELECT step, examples, wall_time, blob, checksum FROM checkpoints"
                                " WHERE run_id=?", (run_id,)).fetchone()
        return Checkpoint(*row) if row else None

    def drop_evals_after(self, run_id: str, step: int) -> None:
        """Before resuming from ``step``: nothing later can exist, but be sure."""
        with self.transaction() as c:
            c.execute("DELETE FROM evals WHERE run_id=? AND step>?", (run_id, step))
            c.execute("DELETE FROM samples WHERE run_id=? AND step>?", (run_id, step))

    # ---------------------------------------------------------------- reads
    def runs(self, suite: str | None = None, status: str | None = None) -> list[RunRecord]:
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
        return [_record(dict(zip(cols, row)), self.path) for row in cur.fetchall()]

    def suite_settings(self, suite: str) -> dict:
        """The suite's leaderboard settings (primary metric, columns) as last run."""
        row = self.conn.execute("SELECT leaderboard FROM suites WHERE name=?", (suite,)).fetchone()
        return _loads(row[0], self.path, "suites", f"name='{suite}'", "leaderboard") if row and row[0] else {}

    def suite_resolved(self, suite: str) -> dict:
        """The suite as last run, after overrides and defaults."""
        row = self.conn.execute("SELECT resolved FROM suites WHERE name=?", (suite,)).fetchone()
        return _loads(row[0], self.path, "suites", f"name='{suite}'", "resolved") if row and row[0] else {}

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
        return {rid: _loads(data, self.path, "derived", f"run_id='{rid}'", "data") for rid, data in rows}

    def suites(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT suite FROM suite_runs ORDER BY suite")]

    def evals(self, run_id: str) -> list[dict]:
        cur = self.conn.execute("SELECT step, examples, metric, ref, value, feature_space, params FROM evals"
                                " WHERE run_id=? ORDER BY step, metric, ref", (run_id,))
        return [{"step": s, "examples": e, "metric": m, "ref": r, "value": float("nan") if v is None else v,
                 "feature_space": f,
                 "params": _loads(p, self.path, "evals", lambda s=s, m=m, r=r: f"run_id='{run_id}' AND step={s} AND "
                                  f"metric='{m}' AND ref='{r}'", "params") if p else {}}
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


class DamagedRowError(StoreFileError):
    """A row of a healthy results file holds what benchbase never writes (edited by hand)."""


def _loads(text: str, path: Path, table: str, where: str | Callable[[], str], column: str):
    """JSON that benchbase wrote into ``table``; a damaged value is a clear input error
    naming the row (like a damaged file: nothing is read from it, nothing written).
    ``where`` may be a function, so that reading many rows formats nothing until one fails."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _damaged(path, table, where() if callable(where) else where, column,
                       f"not valid JSON: {exc}") from None


def _damaged(path: Path, table: str, where: str, column: str, what: str) -> DamagedRowError:
    return DamagedRowError(f"{path}: table {table}, row {where}: {column} is damaged ({what}); benchbase will not "
                           f"read it. Restore the file from a copy, or delete that row (sqlite3 {path} \"DELETE FROM "
                           f"{table} WHERE {where}\") and run its suite again")


def _record(row: dict, path: Path) -> RunRecord:
    """A ``runs`` row as a typed record (the model/dataset columns repeat the spec)."""
    where = f"run_id='{row['run_id']}'"

    def plain(key: str) -> dict:
        return _loads(row[key], path, "runs", where, key) if row.get(key) else {}

    try:
        spec = RunSpec.from_dict(plain("spec"))
    except (KeyError, TypeError, ValueError) as exc:  # valid JSON, but not a spec benchbase wrote
        raise _damaged(path, "runs", where, "spec", f"not a run spec: {type(exc).__name__}: {exc}") from None
    return RunRecord(run_id=row["run_id"], spec=spec, status=row["status"],
                     error=row.get("error"), provenance=plain("provenance"), summary=plain("summary"),
                     created_at=row.get("created_at"), updated_at=row.get("updated_at"))


def _finite_or_none(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if np.isfinite(f) else None


def _relabel(c: sqlite3.Connection, spec: RunSpec) -> None:
    """Give a stored run the labels of ``spec`` (in its columns and its stored spec)."""
    row = c.execute("SELECT model_label, dataset_label, spec FROM runs WHERE run_id=?", (spec.run_id,)).fetchone()
    if row is None or (row[0], row[1]) == (spec.model.label, spec.dataset.label):
        return
    stored = json.loads(row[2])
    stored["model"]["label"], stored["dataset"]["label"] = spec.model.label, spec.dataset.label
    c.execute("UPDATE runs SET model_label=?, dataset_label=?, spec=? WHERE run_id=?",
              (spec.model.label, spec.dataset.label, json.dumps(stored, sort_keys=True), spec.run_id))


def _missing_evaluations(c: sqlite3.Connection, run_id: str) -> list[int]:
    """Scheduled evaluation steps of ``run_id`` of which nothing is stored (an evaluation
    stores its metric rows and its kept samples)."""
    row = c.execute("SELECT spec FROM runs WHERE run_id=?", (run_id,)).fetchone()
    spec = json.loads(row[0]) if row and row[0] else {}
    stored = {r[0] for r in c.execute("SELECT step FROM evals WHERE run_id=? UNION SELECT step FROM samples"
                                      " WHERE run_id=?", (run_id, run_id))}
    return [s for s in spec.get("eval", {}).get("steps", []) if s not in stored]


def _empty_file(path: Path) -> bool:
    """0 bytes, and no write-ahead log holding its first pages: nothing benchbase wrote."""
    wal = Path(str(path) + "-wal")
    return path.stat().st_size == 0 and not (wal.exists() and wal.stat().st_size > 0)


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def check_store_file(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a results file that SQLite finds damaged (``PRAGMA quick_check``), that is
    some other program's database, or that lacks tables of the schema (every read or
    write would fail half-way): benchbase never writes into any of these."""
    remedy = (f"benchbase will not read or write it. Move it aside (`sqlite3 {path} .recover` may save "
              "its rows) and run again, or restore a copy")
    try:
        tables = _tables(conn)
        problems = [r[0] for r in conn.execute("PRAGMA quick_check(3)")]
    except sqlite3.DatabaseError as exc:
        raise StoreFileError(f"{path} is damaged ({exc}); {remedy}") from None
    if problems != ["ok"]:
        detail = " ".join(" ".join(problems).split())[:300]
        raise StoreFileError(f"{path} is damaged ({detail}); {remedy}")
    if tables and not {"meta", "runs"} <= tables:
        shown = ", ".join(sorted(tables)[:5])
        raise StoreFileError(f"{path} is not a benchbase results store (its tables: {shown}); "
                             "pass another --results directory")
    missing = required_tables() - tables if tables else set()
    if missing:
        raise StoreFileError(f"{path} lacks the table(s) {', '.join(sorted(missing))} of a benchbase results "
                             f"store (damaged, or edited by hand); {remedy}")
