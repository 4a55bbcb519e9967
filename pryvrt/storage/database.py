"""The PostgreSQL connection: an external server (DATABASE_URL) or an embedded one (pgserver)."""

from __future__ import annotations

import asyncio
import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import orjson

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema.sql"
# Serialises schema application when several workers start at once.
_SCHEMA_LOCK_KEY = 0x70727976
# Seconds a release may spend rolling back a connection before it is closed instead: a
# healthy server rolls back in milliseconds; a frozen one never answers the cancellation
# that a timed-out command leaves pending.
RELEASE_TIMEOUT = 0.25


class EmbeddedPostgres:
    """A PostgreSQL server from the ``pgserver`` package, kept in ``data_dir``.

    pgserver listens on a unix socket only. Run as root, it creates a ``pgserver`` system
    user and makes the ancestors of the data dir world-traversable (see README).
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None
        self.uri = ""

    def start(self) -> str:
        """Start (or reuse) the server; return its connection URI. Blocking: run in a thread."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        self.uri = self._server.get_uri()
        return self.uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("jsonb", "json"):
        await conn.set_type_codec(
            kind,
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
            schema="pg_catalog",
        )


async def _reset_connection(conn: asyncpg.Connection) -> None:
    """Cheap reset on release: roll back a transaction left open (a cancelled request).

    asyncpg's default reset runs ``RESET ALL; UNLISTEN *; ...``, one more round trip per
    query. pryvrt never changes session state outside transactions (no SET, LISTEN,
    session advisory locks or cursors), so only an open transaction needs undoing.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class BoundedPool(asyncpg.Pool):
    """asyncpg's pool with no unbounded wait, so a frozen or vanished database answers
    503 within about ``wait_timeout`` instead of holding requests in a growing queue.

    asyncpg bounds connects (``timeout``) and commands (``command_timeout``), but
    ``acquire()`` waits for a free connection without limit, and ``release()`` of a
    connection whose command timed out waits for the cancellation and the reset (round
    trips a frozen server never answers) with the acquire's timeout as budget. Here
    acquire defaults to ``wait_timeout`` and release to ``release_timeout``; a connection
    that cannot be reset in time is terminated (the pool opens a new one when needed).
    """

    def __init__(
        self, *args: Any, wait_timeout: float, release_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.wait_timeout = wait_timeout
        self.release_timeout = release_timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self.wait_timeout if timeout is None else timeout)

    async def release(
        self,
        connection: Any,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 (asyncpg's signature)
    ) -> None:
        await super().release(
            connection, timeout=self.release_timeout if timeout is None else timeout
        )


async def create_pool(dsn: str, *, size: int = 10, query_timeout: float = 10.0) -> asyncpg.Pool:
    """A pool whose jsonb columns map to Python objects through orjson, and whose every
    wait (connect, acquire, command, release) is bounded by ``query_timeout``."""
    pool = BoundedPool(
        dsn,
        wait_timeout=query_timeout,
        release_timeout=min(query_timeout, RELEASE_TIMEOUT),
        min_size=1,
        max_size=size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        init=_init_connection,
        reset=_reset_connection,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        command_timeout=query_timeout,
        timeout=query_timeout,
    )
    await pool
    return pool


async def apply_schema(pool: asyncpg.Pool) -> None:
    """Apply schema.sql (idempotent) under an advisory lock so concurrent workers agree."""
    sql = SCHEMA_PATH.read_text()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK_KEY)
        await conn.execute(sql)


async def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    server = EmbeddedPostgres(data_dir)
    await asyncio.to_thread(server.start)
    return server


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside a transaction: committed on exit, rolled back on any error."""
    async with pool.acquire() as conn, conn.transaction():
        yield conn
