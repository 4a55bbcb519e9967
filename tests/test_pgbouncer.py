"""pryvrt behind PgBouncer in transaction mode (Debian's pgbouncer, 1.18 on bookworm).

Transaction pooling lends a server connection per transaction, so a client's named
prepared statements (asyncpg caches every statement under a name) meet server connections
that never saw them, and PgBouncer refuses startup parameters it does not know
(``plan_cache_mode``, ``statement_timeout``). ``PRYVRT_DB_TRANSACTION_POOLER=true`` turns
both off; the two settings then come from the database (``ALTER DATABASE``)."""

from __future__ import annotations

import asyncio
import os
import pwd
import random
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from pryvrt.storage.database import create_pool
from tests.conftest import AppFactory, free_port, wait_for_port

PGBOUNCER = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
pytestmark = pytest.mark.skipif(
    PGBOUNCER is None,
    reason="pgbouncer is not installed: apt-get install -y pgbouncer (.ci/run does it)",
)


class PgBouncer:
    """PgBouncer in transaction mode on a loopback port, in front of ``server_url``, with at
    most ``pool_size`` server connections per database (fewer than pryvrt's pool)."""

    def __init__(self, server_url: str, pool_size: int = 3) -> None:
        parts = urlsplit(server_url)
        host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
        target = f"host={host} port={parts.port or 5432} user={parts.username or 'postgres'}"
        if parts.password:
            target += f" password={parts.password}"
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="pryvrt-pgbouncer-"))
        self.dir.chmod(0o755)  # read by the unprivileged user it runs as
        (self.dir / "users.txt").write_text(f'"{parts.username or "postgres"}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = {target}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.dir}/users.txt\n"
            f"pool_mode = transaction\ndefault_pool_size = {pool_size}\n"
            "max_client_conn = 500\n"
        )
        for name in ("users.txt", "pgbouncer.ini"):
            (self.dir / name).chmod(0o644)
        self.user = parts.username or "postgres"
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        assert PGBOUNCER is not None
        command = [PGBOUNCER, "-q", str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:  # it refuses to run as root: as the embedded server's user
            user = "pgserver" if _user_exists("pgserver") else "nobody"
            command[1:1] = ["-u", user]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=(self.dir / "log").open("wb")
        )
        wait_for_port(self.port, timeout=10)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="module")
def bouncer(pg_server_url: str) -> Iterator[PgBouncer]:
    pooler = PgBouncer(pg_server_url)
    pooler.start()
    try:
        yield pooler
    finally:
        pooler.stop()


@pytest.fixture(scope="module")
def pooled_url(bouncer: PgBouncer, database_url: str) -> str:
    """The test database through PgBouncer, with pryvrt's connection settings set on it."""
    name = urlsplit(database_url).path.lstrip("/")

    async def configure() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f'ALTER DATABASE "{name}" SET plan_cache_mode = force_generic_plan')
            await conn.execute(f"ALTER DATABASE \"{name}\" SET statement_timeout = '9s'")
        finally:
            await conn.close()

    asyncio.run(configure())
    return bouncer.url(name)


async def test_the_default_connection_settings_are_refused_by_pgbouncer(pooled_url: str) -> None:
    with pytest.raises(asyncpg.ProtocolViolationError, match="unsupported startup parameter"):
        await create_pool(pooled_url, size=2, query_timeout=5)


async def test_named_prepared_statements_break_under_transaction_pooling(
    pooled_url: str,
) -> None:
    """Why the pooler mode turns asyncpg's statement cache off: with it, clients name their
    statements in different orders and find another client's (or none) on the server."""

    async def client(order: list[int], cache: int) -> str:
        conn = await asyncpg.connect(pooled_url, statement_cache_size=cache)
        try:
            for _ in range(30):
                for k in order:
                    if await conn.fetchval(f"SELECT $1::int + {k}", 1) != 1 + k:
                        return "another client's statement"
            return "ok"
        except asyncpg.InvalidSQLStatementNameError:
            return "missing"
        finally:
            await conn.close()

    orders = [random.Random(i).sample(range(10), 10) for i in range(20)]
    cached = await asyncio.gather(*(client(o, 100) for o in orders))
    assert set(cached) - {"ok"}, cached
    uncached = await asyncio.gather(*(client(o, 0) for o in orders))
    assert uncached == ["ok"] * len(orders)


async def test_pryvrt_works_through_pgbouncer_in_transaction_mode(
    make_api: AppFactory, pooled_url: str
) -> None:
    # 10 connections of pryvrt's pool over 3 server connections
    api = await make_api(database_url=pooled_url, db_transaction_pooler=True, db_pool_size=10)

    async def user_story(n: int) -> None:
        username, session = await api.user()
        channel = await api.channel(username, session)
        token = await api.shared_token(username, session, [{"channelId": channel, "level": "read"}])
        writes = [
            api.post(
                f"/{username}/{channel}/events",
                {"value": {"type": "count:n", "value": i}},
                auth=session,
            )
            for i in range(10)
        ]
        assert {r.status for r in await asyncio.gather(*writes)} == {201}
        events = [
            {"clientId": str(i), "time": i, "value": {"type": "count:n", "value": i}}
            for i in range(6000 if n == 0 else 10)
        ]
        reply = await api.post(
            f"/{username}/{channel}/events/batch", {"events": events}, auth=session
        )
        assert reply.status == 200, reply
        reply = await api.get(f"/{username}/{channel}/events?limit=5", auth=token)
        assert reply.status == 200 and len(reply.body) == 5

    # one batch of 6000 events runs on a bulk connection (its own statement timeout)
    await asyncio.gather(*(user_story(n) for n in range(8)))
    health = await api.get("/health")
    assert health.status == 200


async def test_pooled_connections_take_their_settings_from_the_database(pooled_url: str) -> None:
    pool = await create_pool(pooled_url, size=4, query_timeout=2, transaction_pooler=True)
    try:
        assert await pool.fetchval("SHOW plan_cache_mode") == "force_generic_plan"
        # the database's statement_timeout (9 s) is there, and the client's bound still holds
        assert await pool.fetchval("SHOW statement_timeout") == "9s"
        with pytest.raises((TimeoutError, asyncpg.QueryCanceledError)):
            await pool.fetchval("SELECT pg_sleep(5)")
        assert await pool.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
