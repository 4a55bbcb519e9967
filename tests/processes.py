"""Real server processes for tests: ``pryvrt serve`` workers, their environment, a small HTTP
client for them, and a dedicated PostgreSQL a test may stop and start again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from tests.conftest import RedisServer, free_port

PRYVRT = (sys.executable, "-m", "pryvrt")


class Worker:
    """A ``pryvrt serve`` process on a loopback port (a free one unless ``port`` is given,
    e.g. to restart a server where its clients expect it); its log goes to a file."""

    def __init__(
        self, env: dict[str, str], log_dir: Path, *args: str, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"worker-{self.port}.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [*PRYVRT, "serve", "--host=127.0.0.1", f"--port={self.port}", *args],
                env=env,
                stdout=log,
                stderr=log,
            )

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as reply:
                    if reply.status == 200 and self.listens():
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"worker not ready: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.05)

    def listens(self) -> bool:
        """Whether this process (or one of its workers) holds the port: another server
        started elsewhere on the machine may have taken it first and answer /health."""
        try:
            parent = psutil.Process(self.process.pid)
            processes = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return False
        for proc in processes:
            try:
                sockets = proc.net_connections(kind="tcp")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if any(s.status == psutil.CONN_LISTEN and s.laddr.port == self.port for s in sockets):
                return True
        return False

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def logged(self, line: str, within: float = 10.0) -> bool:
        """Whether ``line`` appears in the log within ``within`` seconds (a record can follow
        the state it reports: the server answers before the line is written)."""
        deadline = time.monotonic() + within
        while line not in self.log_text():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def running(*workers: Worker) -> Iterator[tuple[Worker, ...]]:
    """The workers, ready; stopped on exit whatever happened."""
    try:
        for worker in workers:
            worker.wait_ready()
        yield workers
    finally:
        for worker in workers:
            worker.stop()


@contextlib.contextmanager
def own_redis() -> Iterator[RedisServer]:
    """A Redis for one test module alone (its tests stop, kill or freeze it)."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def worker_env(database_url: str, redis_url: str | None, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "WEB_CONCURRENCY")}
    env.update(DATABASE_URL=database_url, PRYVRT_DATA_DIR=str(data_dir), PRYVRT_LOG_LEVEL="WARNING")
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


class Http:
    """JSON calls to one server; each answers ``(status, body)`` within 5 s."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(self, verb: str, path: str, json: Any = None, auth: str | None = None) -> Any:
        headers = {"Authorization": auth} if auth else {}
        async with asyncio.timeout(5):
            async with self.session.request(
                verb, self.base + path, json=json, headers=headers
            ) as reply:
                body = await reply.json(content_type=None)
                return reply.status, body

    async def user(self, password: str = "pw-secret") -> tuple[str, str]:
        """A new user and a session of theirs."""
        username = "w" + os.urandom(5).hex()
        status, _ = await self.call("POST", "/users", {"username": username, "password": password})
        assert status == 201
        status, body = await self.call(
            "POST", f"/{username}/login", {"userName": username, "password": password}
        )
        assert status == 200
        return username, body["sessionID"]

    async def channel(self, username: str, auth: str, **fields: Any) -> str:
        fields.setdefault("name", "ch-" + os.urandom(4).hex())
        status, body = await self.call("POST", f"/{username}/channels", fields, auth)
        assert status == 201, body
        return str(body["id"])


async def user_with_channel(base_url: str) -> tuple[str, str, str]:
    """A new user on that server, logged in, with one channel: (username, session, channel)."""
    async with aiohttp.ClientSession() as session:
        http = Http(session, base_url)
        username, auth = await http.user()
        return username, auth, await http.channel(username, auth)


class Postgres:
    """A PostgreSQL of its own (pgserver) that a test stops for real and starts again."""

    def __init__(self, data_dir: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

        self.server = pgserver.get_server(data_dir, cleanup_mode="stop")
        self.url = self.server.get_uri()

    def stop(self) -> None:
        """``pg_ctl stop -m fast``: every connection is cut, new ones are refused."""
        from pgserver._commands import pg_ctl

        pg_ctl(
            ["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        """Start the stopped server again on the same socket (the URL does not change)."""
        with self.server._lock:
            self.server.ensure_postgres_running()
        assert self.server.get_uri() == self.url

    def cleanup(self) -> None:
        self.server.cleanup()
