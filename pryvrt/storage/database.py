"""The PostgreSQL connection: an external server (DATABASE_URL) or an embedded one (pgserver)."""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import psutil

from pryvrt.backoff import Backoff
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

    ``alive()`` and ``restart()`` let the server that started it keep it running
    (``keep_running`` for one process, ``pryvrt.workers.Supervisor`` for ``--workers``): a
    postmaster killed (SIGKILL, the OOM killer) is started again on the same data
    directory and socket, so the connection URI does not change and the connection pools
    reconnect by themselves (``pryvrt.storage.pool``).
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self._server: Any = None
        self.uri = ""

    def start(self) -> str:
        """Start (or reuse) the server; return its connection URI. Blocking: run in a thread."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                import pgserver
            except ImportError:
                from pryvrt.config import ConfigError

                raise ConfigError(
                    "no DATABASE_URL, and the embedded PostgreSQL needs the pgserver package,"
                    " which is not installed (it has no wheel for this Python yet): set"
                    " DATABASE_URL=postgresql://user:password@host:5432/dbname"
                ) from None

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.data_dir, cleanup_mode="stop")
        self.uri = self._server.get_uri()
        return self.uri

    def pid(self) -> int | None:
        """The postmaster's process id, as last started (None before ``start``)."""
        if self._server is None:
            return None
        pid: int | None = self._server.get_pid()
        return pid

    def alive(self) -> bool:
        """Whether the postmaster started last is still running (cheap: reads /proc)."""
        if self._server is None:
            return False
        return _running(self._server.get_postmaster_info().process)

    def restart(self) -> None:
        """Start the postmaster again if it is gone. Blocking (``pg_ctl start -w``, up to
        ~10 s): run in a thread. Raises when PostgreSQL refuses to start yet (e.g. backends
        of the killed postmaster still hold its shared memory): the caller retries."""
        assert self._server is not None, "restart() before start()"
        # ensure_postgres_running() (pgserver is pinned below 0.2) reads postmaster.pid and
        # runs pg_ctl. Not under pgserver's inter-process lock: that lock is one for the
        # whole machine (every pgserver user's), and waiting for it took seconds on a busy
        # host; PostgreSQL's own lock files already forbid two postmasters on one directory.
        self._remove_stale_lock_files()
        self._server.ensure_postgres_running()
        uri = self._server.get_uri()
        if uri != self.uri:  # the socket directory is derived from data_dir: never seen
            log.error("the embedded PostgreSQL came back at another address: %s", uri)
            self.uri = uri

    def _remove_stale_lock_files(self) -> None:
        """Remove postmaster.pid and the socket's lock file when the postmaster they name is
        dead but not yet reaped (a zombie): its pid still exists, so pgserver would take it
        for a running server and PostgreSQL would refuse to start ("lock file already
        exists") until the zombie's parent reaps it (PID 1, which in a container may never
        do it). PostgreSQL's other interlock, on its shared memory, still refuses to start
        while backends of the dead postmaster linger."""
        socket_dir = self._server.get_postmaster_info().socket_dir
        candidates = [self.data_dir / "postmaster.pid"]
        if socket_dir is not None:
            candidates += Path(socket_dir).glob(".s.PGSQL.*.lock")
        for path in candidates:
            try:
                pid = int(path.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            try:
                dead = not _running(psutil.Process(pid))
            except psutil.NoSuchProcess:
                dead = True
            if dead:
                log.warning("removing %s, left by dead PostgreSQL pid %d", path.name, pid)
                path.unlink(missing_ok=True)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def _running(process: psutil.Process | None) -> bool:
    """A process that exists and is not a zombie (``is_running`` counts zombies)."""
    try:
        return bool(
            process is not None
            and process.is_running()
            and process.status() != psutil.STATUS_ZOMBIE
        )
    except psutil.Error:
        return False


async def keep_running(server: EmbeddedPostgres, interval: float = 0.5) -> None:
    """Restart the embedded PostgreSQL whenever its postmaster is gone, with backoff, until
    cancelled. For a server of one process; ``--workers`` supervises it in the parent."""
    backoff = Backoff()
    while True:
        await asyncio.sleep(interval)
        if server.alive():
            continue
        log.error("the embedded PostgreSQL is gone (pid %s): restarting it", server.pid())
        started = time.monotonic()
        try:
            await asyncio.to_thread(server.restart)
        except Exception as exc:  # refused for now (see restart): try again later
            delay = backoff.failed()
            log.error(
                "the embedded PostgreSQL did not restart (%r): next try in %.1f s", exc, delay
            )
            await asyncio.sleep(delay)
            continue
        backoff.reset()
        log.warning(
            "the embedded PostgreSQL restarted",
            extra={"pid": server.pid(), "restart_ms": round((time.monotonic() - started) * 1000)},
        )


# jsonb's binary form (PostgreSQL's jsonb_send / jsonb_recv): this version byte, then the
# JSON text. In binary, jsonb values can be COPYed (events.batch writes straight into
# ``events``, storage/events.py ``insert_many``), and they skip a str between orjson and
# the socket.
JSONB_VERSION = b"\x01"


def _jsonb_encode(value: Any) -> bytes:
    return JSONB_VERSION + orjson.dumps(value)


def _jsonb_decode(data: bytes) -> Any:
    if data[:1] != JSONB_VERSION:
        raise ValueError(f"unknown jsonb binary format version {data[:1]!r}")
    return orjson.loads(memoryview(data)[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=_jsonb_encode,
        decoder=_jsonb_decode,
        schema="pg_catalog",
        format="binary",
    )
    await conn.set_type_codec(
        "json",
        encoder=lambda v: orjson.dumps(v).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


# Time allowed per row to the statements of a bulk write (events.batch), on top of the
# normal timeout. Measured: 100 000 finished periods inserted in 10 s (INSERT ... SELECT
# with the events indexes and JSON trigger) on 2 cores shared at load 6, ~3 s unloaded;
# 0.5 ms a row leaves five times that.
BULK_SECONDS_PER_ROW = 0.0005
# Statements that write more rows than this run on a bulk connection (Storage.bulk_transaction).
BULK_ROWS = 5_000


def bulk_timeout(query_timeout: float, rows: int) -> float:
    """Seconds a statement writing ``rows`` rows may take."""
    return query_timeout + rows * BULK_SECONDS_PER_ROW


async def create_pool(
    dsn: str,
    *,
    size: int = 10,
    query_timeout: float = 10.0,
    bulk_rows: int = 100_000,
    transaction_pooler: bool = False,
) -> Pool:
    """Connections whose jsonb columns map to Python objects through orjson. Every wait is
    bounded by ``query_timeout``: connecting, waiting for a free connection, and each
    statement, which PostgreSQL itself cancels past it (``statement_timeout``). Bulk
    connections (``Pool.acquire_bulk``) allow statements of up to ``bulk_rows`` rows.
    ``transaction_pooler``: ``dsn`` is PgBouncer in transaction mode (see ``Pool``)."""
    pool = Pool(
        dsn,
        size=size,
        timeout=query_timeout,
        init=_init_connection,
        server_settings=SERVER_SETTINGS,
        bulk_timeout=bulk_timeout(query_timeout, bulk_rows),
        transaction_pooler=transaction_pooler,
    )
    async with pool.acquire() as conn:  # fail now, not at the first request, if unreachable
        if transaction_pooler:
            await _check_pooled_settings(conn)
    return pool


async def _check_pooled_settings(conn: asyncpg.Connection) -> None:
    """Behind a transaction pooler the connection settings cannot be sent: say so if the
    database or role does not carry them (docs/scaling.md shows the ALTER DATABASE)."""
    for name, wanted in (*SERVER_SETTINGS.items(), ("statement_timeout", None)):
        value = await conn.fetchval("SELECT current_setting($1)", name)
        if (wanted is not None and value != wanted) or (wanted is None and value == "0"):
            log.warning(
                "PostgreSQL setting %s is %r behind the transaction pooler: set it on the"
                " database (ALTER DATABASE ... SET %s = ...), see docs/scaling.md",
                name,
                value,
                name,
            )


async def apply_schema(pool: Pool) -> None:
    """Apply schema.sql (idempotent) under an advisory lock so concurrent workers agree."""
    sql = SCHEMA_PATH.read_text()
    async with pool.acquire() as conn, conn.transaction():
        # A migration may build an index over a large table: no statement timeout here.
        await conn.execute("SET LOCAL statement_timeout = 0")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK_KEY, timeout=3600)
        await conn.execute(sql, timeout=3600)


async def start_embedded(data_dir: Path) -> EmbeddedPostgres:
    server = EmbeddedPostgres(data_dir)
    await asyncio.to_thread(server.start)
    return server


@asynccontextmanager
async def transaction(pool: Pool, *, bulk: bool = False) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside a transaction: committed on exit, rolled back on any error.
    ``bulk``: a bulk connection (statements of up to the pool's bulk rows; few at a time)."""
    async with pool.acquire_bulk() if bulk else pool.acquire() as conn, conn.transaction():
        if bulk and pool.transaction_pooler:
            # the bulk statement timeout could not be a connection setting: this transaction's
            await conn.execute(
                "SELECT set_config('statement_timeout', $1, true)", pool.bulk_statement_timeout
            )
        yield conn


@dataclass(frozen=True)
class DatabaseProbe:
    """What ``pryvrt doctor`` reports of a database it reached."""

    server_version: str
    schema_version: int | None  # None: pryvrt's schema was never applied there
    users: int | None


PROBE_TIMEOUT = 5.0


async def probe(dsn: str) -> DatabaseProbe:
    """Connect once (no pool, no schema applied) and read the versions and the user count."""
    timeout = PROBE_TIMEOUT
    conn = await asyncpg.connect(dsn, timeout=timeout)
    try:
        version = await conn.fetchval("SHOW server_version", timeout=timeout)
        if await conn.fetchval("SELECT to_regclass('schema_version') IS NULL", timeout=timeout):
            return DatabaseProbe(str(version), None, None)
        schema = await conn.fetchval("SELECT version FROM schema_version", timeout=timeout)
        users = await conn.fetchval("SELECT count(*) FROM users", timeout=timeout)
        return DatabaseProbe(str(version), schema, users)
    finally:
        await conn.close()


def holds_database(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds an embedded PostgreSQL's data (``<data_dir>/pg``)."""
    return (data_dir / "pg" / "PG_VERSION").is_file()
