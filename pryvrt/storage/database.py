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

from pryvrt.storage.pool import Pool

log = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema.sql"
# Serialises schema application when several workers start at once.
_SCHEMA_LOCK_KEY = 0x70727976


# Per connection. asyncpg prepares every statement; for a prepared statement PostgreSQL
# plans again at each execution ("custom plan") unless it trusts its generic plan, and it
# did not trust it for events.get: 0.13 ms of planning for 0.06 ms of execution, half the
# database's time per read (BENCHMARKS.md). pryvrt's statements are shaped so that the
# parameters never change the best plan (equality on the key, index ranges, LIMIT), and
# tests/test_events.py checks the plans of the events queries stay on their indexes.
SERVER_SETTINGS = {"plan_cache_mode": "force_generic_plan"}


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


async def create_pool(dsn: str, *, size: int = 10, query_timeout: float = 10.0) -> Pool:
    """Connections whose jsonb columns map to Python objects through orjson. Every wait is
    bounded by ``query_timeout``: connecting, waiting for a free connection, each command."""
    pool = Pool(
        dsn,
        size=size,
        timeout=query_timeout,
        init=_init_connection,
        server_settings=SERVER_SETTINGS,
    )
    async with pool.acquire():  # fail now, not at the first request, if unreachable
        pass
    return pool


async def apply_schema(pool: Pool) -> None:
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
async def transaction(pool: Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside a transaction: committed on exit, rolled back on any error."""
    async with pool.acquire() as conn, conn.transaction():
        yield conn
