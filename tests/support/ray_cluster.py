"""A real multi-node Ray cluster on this machine, for tests: each node is one
``ray start --block`` process in a session of its own, so the node is exactly the
processes of that session (its raylet, agents and workers). Nodes are stopped, or
killed to simulate a lost machine, by those process ids, never by ``ray stop``,
which would stop every Ray on the machine (other test sessions may share it).

Ports are picked free, the temp dir is private, and token authentication is off:
the cluster is reachable only from this machine and lives for one test.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).with_name("ray"))
STARTED = "Ray runtime started"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_pids(sid: int) -> list[int]:
    """Every live process in session ``sid`` (Linux /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if fields[0] != "Z" and int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


def session_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[3])


@dataclass
class Node:
    name: str
    process: subprocess.Popen
    log: Path
    started_s: float = 0.0  # seconds until it reported being up (its last attempt)
    attempts: int = 1  # starts it took

    @property
    def sid(self) -> int:
        return self.process.pid  # start_new_session: the session id is the leader's pid

    def pids(self) -> list[int]:
        return session_pids(self.sid)

    def kill(self) -> list[int]:
        """SIGKILL every process of this node at once (a machine that vanished)."""
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)
        return pids


@dataclass
class LocalCluster:
    """Start with :meth:`start_head`, add nodes with :meth:`add_node`, always :meth:`stop`."""

    env: dict = field(default_factory=dict)  # extra environment for every node (and the driver)
    temp_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="bbray-", dir="/tmp")))
    nodes: list[Node] = field(default_factory=list)
    address: str = ""
    failed_starts: list[str] = field(default_factory=list)  # the log tails of starts that failed

    def node_env(self) -> dict:
        return {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
                # slow machines: let the node agents take their time to come up
                "RAY_agent_register_timeout_ms": "120000", "RAY_raylet_start_wait_time_s": "120",
                # notice a dead node within seconds (the defaults take about half a minute)
                "RAY_health_check_period_ms": "1000", "RAY_health_check_timeout_ms": "2000",
                "RAY_health_check_failure_threshold": "3", **self.env}

    def _start(self, name: str, args: list[str], timeout: float, attempts: int = 3) -> Node:
        """Start a node and wait until it reports being up. On a busy machine a node's
        dashboard agent may miss the raylet's fixed start-up window (the raylet then
        aborts); that node is killed and started again, up to ``attempts`` times."""
        for attempt in range(1, attempts + 1):
            ports = ["--node-manager-port", free_port(), "--object-manager-port", free_port(),
                     "--dashboard-agent-listen-port", free_port(), "--dashboard-agent-grpc-port", free_port(),
                     "--runtime-env-agent-port", free_port(), "--metrics-export-port", free_port(),
                     "--min-worker-port", 0, "--max-worker-port", 0]
            log = self.temp_dir / f"{name}.{attempt}.log"
            t0 = time.monotonic()
            with open(log, "w") as out:
                proc = subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats",
                                         "--include-log-monitor=false", *args, *map(str, ports)],
                                        stdout=out, stderr=subprocess.STDOUT, env=self.node_env(),
                                        start_new_session=True)
            node = Node(name, proc, log, attempts=attempt)
            self.nodes.append(node)
            deadline = t0 + timeout
            while STARTED not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
            else:
                node.started_s = time.monotonic() - t0
                return node
            node.kill()
            self.nodes.remove(node)
            self.failed_starts.append(f"{name} attempt {attempt}: {log.read_text(errors='replace')[-1500:]}")
        raise RuntimeError(f"ray node '{name}' did not start in {attempts} attempts:\n" + "\n".join(self.failed_starts))

    def start_head(self, num_cpus: int, num_gpus: int, resources: dict, timeout: float = 120) -> Node:
        import json

        port = free_port()
        self.address = f"127.0.0.1:{port}"
        return self._start("head", [
            "--head", f"--port={port}", f"--temp-dir={self.temp_dir}", "--node-ip-address=127.0.0.1",
            f"--num-cpus={num_cpus}", f"--num-gpus={num_gpus}", f"--resources={json.dumps(resources)}",
            "--include-dashboard=false", f"--dashboard-port={free_port()}",
            f"--ray-client-server-port={free_port()}", "--object-store-memory=100000000"], timeout)

    def add_node(self, name: str, num_cpus: int, num_gpus: int, resources: dict,
                 timeout: float = 120) -> Node:
        import json

        return self._start(name, [
            f"--address={self.address}", "--node-ip-address=127.0.0.1",
            f"--num-cpus={num_cpus}", f"--num-gpus={num_gpus}", f"--resources={json.dumps(resources)}",
            "--object-store-memory=100000000"], timeout)

    def node_of(self, pid: int) -> str | None:
        sid = session_of(pid)
        return next((n.name for n in self.nodes if n.sid == sid), None)

    def stop(self) -> None:
        """SIGTERM every process this cluster started (by session), then SIGKILL what is left."""
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            pids = [pid for node in self.nodes for pid in node.pids()]
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while any(node.pids() for node in self.nodes) and time.monotonic() < deadline:
                time.sleep(0.2)
        for node in self.nodes:
            try:
                node.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.temp_dir, ignore_errors=True)
