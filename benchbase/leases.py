"""Claims on runs, so that several drivers can share one results store.

Two suites with common runs, or the same command started twice, may work on one
store. A driver *claims* a run (a row in ``leases``) before it trains it and keeps
the claim alive with heartbeats; another driver skips a run held by a live claim and
takes it over when the holder stops heartbeating or, on the same host, when the
holder's process is gone (``kill -9``).
"""
from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass

from benchbase.contracts import FINAL_STATUSES
from benchbase.errors import BenchbaseInputError

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


class RunsHeldError(BenchbaseInputError):
    """``--fresh`` would delete the rows of runs another live driver is writing: refused."""

    def __init__(self, held: dict[str, Holder]):
        self.held = held
        holders = ", ".join(sorted({h.describe() for h in held.values()}))
        super().__init__(
            f"--fresh would delete the results of {len(held)} run(s) that another benchbase process is "
            f"running ({holders}); nothing was changed. Wait for it to finish (or stop it), then run "
            "again with --fresh; without --fresh, this command shares the remaining runs with it")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def expired(holder: Holder, lease: Lease, now: float) -> bool:
    """Whether ``lease`` may take over the claim of ``holder``."""
    if now - holder.heartbeat > lease.timeout:
        return True  # the holder stopped heartbeating (crashed, hung, or its machine died)
    # On this machine a dead holder process is visible at once: no need to wait.
    return holder.host == lease.host and not process_alive(holder.pid)


class Leases:
    """The claims table of one store (``store.leases``)."""

    def __init__(self, store):
        self.store = store

    def claim(self, run_id: str, lease: Lease) -> Holder | str | None:
        """Claim a run for ``lease``. Returns None when claimed, the run's status when
        it is already final (someone finished it), else the live :class:`Holder`."""
        now = time.time()
        with self.store.transaction() as c:
            row = c.execute("SELECT status FROM runs WHERE run_id=?", (run_id,)).fetchone()
            if row and row[0] in FINAL_STATUSES:
                return row[0]
            held = c.execute("SELECT owner, host, pid, heartbeat FROM leases WHERE run_id=?",
                             (run_id,)).fetchone()
            if held is not None and held[0] != lease.owner:
                holder = Holder(*held)
                if not expired(holder, lease, now):
                    return holder
            c.execute("INSERT OR REPLACE INTO leases VALUES (?,?,?,?,?,?)",
                      (run_id, lease.owner, lease.host, lease.pid, now, now))
        return None

    def heartbeat(self, lease: Lease) -> int:
        """Refresh every claim of ``lease``; returns how many it holds."""
        with self.store.transaction() as c:
            return c.execute("UPDATE leases SET heartbeat=? WHERE owner=?", (time.time(), lease.owner)).rowcount

    def release(self, lease: Lease, run_id: str | None = None) -> None:
        """Give up one claim (``run_id``) or all claims of ``lease``."""
        with self.store.transaction() as c:
            if run_id is None:
                c.execute("DELETE FROM leases WHERE owner=?", (lease.owner,))
            else:
                c.execute("DELETE FROM leases WHERE owner=? AND run_id=?", (lease.owner, run_id))

    def holder(self, run_id: str, lease: Lease) -> Holder | None:
        """The live claim of another driver on ``run_id``, if any."""
        row = self.store.conn.execute("SELECT owner, host, pid, heartbeat FROM leases WHERE run_id=?",
                                      (run_id,)).fetchone()
        if row is None or row[0] == lease.owner:
            return None
        holder = Holder(*row)
        return None if expired(holder, lease, time.time()) else holder
