"""A real Redis Cluster on loopback for tests and benchmarks: 3 masters and 3 replicas of
Debian's ``redis-server`` (7.x: sharded pub/sub), made with ``redis-cli --cluster create``.
No import from the test suite: scripts/bench uses it too."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def unavailable() -> str | None:
    """Why no cluster can be started here (None: it can)."""
    if not (Path(REDIS_SERVER).exists() and Path(REDIS_CLI).exists()):
        return "redis-server 7 is not installed: apt-get install -y redis-server (.ci/run does it)"
    out = subprocess.run([REDIS_SERVER, "--version"], capture_output=True, text=True).stdout
    found = re.search(r"v=(\d+)\.", out)
    if found is None or int(found.group(1)) < 7:
        return f"sharded pub/sub needs redis-server >= 7, found {out.strip()!r}"
    return None


class RedisClusterNodes:
    """``masters`` masters, each with ``replicas`` replicas, on free loopback ports; the
    failover delay is short (``cluster-node-timeout`` ``node_timeout_ms``)."""

    def __init__(self, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1000) -> None:
        self.count = masters * (1 + replicas)
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.ports = [free_port() for _ in range(self.count)]
        # The cluster bus port defaults to port + 10000, past 65535 for ephemeral ports.
        self.bus_ports = {port: free_port() for port in self.ports}
        self.dir = Path(tempfile.mkdtemp(prefix="pryvrt-rc-"))
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """What REDIS_URL names (any node: the client discovers the others)."""
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        for port in self.ports:
            self._start_node(port)
        for port in self.ports:
            wait_for_port(port, timeout=5)
        addresses = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [
                *(REDIS_CLI, "--cluster", "create", *addresses),
                *("--cluster-replicas", str(self.replicas), "--cluster-yes"),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self.wait_ok()

    def _start_node(self, port: int) -> None:
        node_dir = self.dir / str(port)
        node_dir.mkdir(exist_ok=True)
        self.processes[port] = subprocess.Popen(
            [
                *(REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1"),
                *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
                *("--cluster-port", str(self.bus_ports[port])),
                *("--cluster-node-timeout", str(self.node_timeout_ms)),
                # A replica fails over however long its link was down (a test kills early).
                *("--cluster-replica-validity-factor", "0"),
                *("--save", "", "--appendonly", "no", "--dir", str(node_dir)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def cli(self, port: int, *args: str) -> str:
        return subprocess.run(
            [REDIS_CLI, "-p", str(port), *args], capture_output=True, text=True, timeout=10
        ).stdout

    def alive_ports(self) -> list[int]:
        return [p for p, proc in self.processes.items() if proc.poll() is None]

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says ``cluster_state:ok`` and agrees on the masters."""
        deadline = time.monotonic() + timeout
        while True:
            views = [self.cli(p, "cluster", "info") for p in self.alive_ports()]
            if all("cluster_state:ok" in v for v in views):
                masters = {frozenset(self.masters(p)) for p in self.alive_ports()}
                replicas = [self.cli(p, "info", "replication") for p in self.alive_ports()]
                synced = all("role:master" in r or "master_link_status:up" in r for r in replicas)
                if len(masters) == 1 and synced:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"cluster not ok: {views}")
            time.sleep(0.1)

    def masters(self, asking: int | None = None) -> dict[int, str]:
        """Port of each live master → its slot ranges, as node ``asking`` sees them."""
        out: dict[int, str] = {}
        for line in self.cli(asking or self.alive_ports()[0], "cluster", "nodes").splitlines():
            fields = line.split()
            if len(fields) >= 8 and "master" in fields[2] and "fail" not in fields[2]:
                port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
                out[port] = " ".join(fields[8:])
        return out

    def owner(self, channel: str) -> int:
        """The port of the master owning the channel's hash slot."""
        slot = int(self.cli(self.alive_ports()[0], "cluster", "keyslot", channel).strip())
        for port, ranges in self.masters().items():
            for part in ranges.split():
                if part.startswith("["):
                    continue
                low, _, high = part.partition("-")
                if int(low) <= slot <= int(high or low):
                    return port
        raise AssertionError(f"no master owns slot {slot}")

    def kill(self, port: int) -> None:
        """SIGKILL one node."""
        proc = self.processes[port]
        proc.kill()
        proc.wait(5)

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)
