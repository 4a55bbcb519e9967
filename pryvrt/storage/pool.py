"""A small connection pool for asyncpg, built for one query per borrow.

Why not ``asyncpg.Pool``: its bookkeeping per borrow (a task for ``asyncio.shield`` on
release, a timeout scope, an inactivity timer, a proxy object) costs about 20 µs of CPU,
as much as a one-row query itself, and pryvrt's hot calls are one query each
(BENCHMARKS.md, "connection pool"). This pool does only what pryvrt needs:

- at most ``size`` connections, opened on demand (each set up by ``init``);
- a borrower waits at most ``timeout`` seconds for a free one (``TimeoutError``);
- a connection comes back either clean (no transaction open, no command in flight) or it is
  terminated and replaced later: after a cancellation, a timeout or a connection-level
  error, nobody can tell what state it is in, and a fresh one costs ~1 ms;
- a connection PostgreSQL closed (a restart) is dropped; the next borrow opens a new one,
  so the server recovers from a database restart by itself;
- every statement is bounded *in PostgreSQL* by ``statement_timeout`` (a session setting of
  each connection, ``SERVER_SHARE`` of ``timeout``): a query that runs too long is cancelled
  by the server itself, which answers an error and keeps the connection usable. The client
  gives up at ``timeout`` (a frozen or unreachable server). Giving up on the client side
  alone left the backend running the query to its end (measured: 30-75 s after the 503);
- ``acquire_bulk`` lends a dedicated connection with a longer ``bulk_timeout`` for the
  few calls that write many rows at once (events.batch), at most ``bulk_size`` at a time,
  so that large batches neither hit the normal timeout nor hold the shared connections.

pryvrt never changes session state (no ``SET``, ``LISTEN``, session advisory locks or
cursors), so a clean connection needs no reset.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

Init = Callable[[asyncpg.Connection], Awaitable[None]]


class PoolClosed(asyncpg.InterfaceError):
    """The pool was closed (the server is shutting down)."""


# PostgreSQL cancels a statement at this share of the client's timeout, so that its error
# (and a connection still usable) normally arrives before the client gives up.
SERVER_SHARE = 0.9

# The database is unreachable, frozen, restarting, or cancelled a statement that ran past
# its timeout: the caller answers 503 and may retry.
UNAVAILABLE = (
    asyncpg.QueryCanceledError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    ConnectionError,
    OSError,
    TimeoutError,
)

# After these, a command may still be in flight on the connection, or the link is broken.
_STATE_UNKNOWN = (
    asyncio.CancelledError,
    TimeoutError,
    OSError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # e.g. a protocol state broken by a killed backend
    asyncpg.PostgresConnectionError,
)


class Pool:
    """Connections lent one borrow at a time; see the module docstring."""

    def __init__(
        self,
        dsn: str,
        *,
        size: int,
        timeout: float,
        init: Init | None = None,
        server_settings: dict[str, str] | None = None,
        bulk_timeout: float | None = None,
        bulk_size: int = 2,
        transaction_pooler: bool = False,
    ) -> None:
        self._dsn = dsn
        # ``dsn`` is a pooler in transaction mode (PgBouncer ``pool_mode = transaction``):
        # each transaction may run on another server connection, so no named prepared
        # statements (asyncpg's cache would name statements another connection never saw)
        # and no startup parameters (PgBouncer refuses them); ``statement_timeout`` and
        # ``plan_cache_mode`` then come from the database's or role's own settings.
        self.transaction_pooler = transaction_pooler
        self._server_settings = dict(server_settings or {})
        self._size = size
        self._timeout = timeout
        self._bulk_timeout = max(bulk_timeout or 0.0, timeout)
        self._bulk_slots = asyncio.Semaphore(bulk_size)
        self._bulk: set[asyncpg.Connection] = set()
        self._init = init
        self._idle: list[asyncpg.Connection] = []
        # Borrowers waiting for a connection; None tells one to open a connection itself.
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._all: set[asyncpg.Connection] = set()
        self._opening = 0
        self._closed = False
        self._drained = asyncio.Event()  # set once closed with no connection left

    @property
    def size(self) -> int:
        return self._size

    @property
    def bulk_statement_timeout(self) -> str:
        """``statement_timeout`` of a bulk connection's statements (PostgreSQL's syntax)."""
        return f"{max(1, round(self._bulk_timeout * SERVER_SHARE * 1000))}ms"

    @property
    def open_connections(self) -> int:
        return len(self._all)

    # -- borrowing --------------------------------------------------------------------------

    async def _take(self) -> asyncpg.Connection:
        """A free connection; waiting and opening share one ``timeout`` budget."""
        if self._closed:
            raise PoolClosed("the connection pool is closed")
        while self._idle:  # the hot path: no timer, no future
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._all.discard(conn)
        async with asyncio.timeout(self._timeout):
            return await self._wait_or_open()

    async def _wait_or_open(self) -> asyncpg.Connection:
        while True:
            if self._closed:
                raise PoolClosed("the connection pool is closed")
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():
                    return conn
                self._all.discard(conn)
            if len(self._all) + self._opening < self._size:
                return await self._open()
            waiter: asyncio.Future[asyncpg.Connection | None] = (
                asyncio.get_running_loop().create_future()
            )
            self._waiters.append(waiter)
            try:
                conn = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    # Handed a connection (or a free slot) just as we gave up: pass it on.
                    handed = waiter.result()
                    if handed is None:
                        self._hand(None)
                    else:
                        self._give_back(handed)
                else:
                    waiter.cancel()  # _hand skips it
                raise
            if conn is not None:
                return conn
            # A slot was freed without a connection: loop to open one.

    async def _connect(self, command_timeout: float) -> asyncpg.Connection:
        """A new connection whose statements take at most ``command_timeout`` seconds
        (PostgreSQL cancels them a little before: ``SERVER_SHARE``)."""
        statement_ms = max(1, round(command_timeout * SERVER_SHARE * 1000))
        settings = {**self._server_settings, "statement_timeout": f"{statement_ms}ms"}
        conn = await asyncpg.connect(
            self._dsn,
            timeout=self._timeout,
            command_timeout=command_timeout,
            server_settings=None if self.transaction_pooler else settings,
            statement_cache_size=0 if self.transaction_pooler else 100,
        )
        try:
            if self._init is not None:
                await self._init(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def _open(self) -> asyncpg.Connection:
        self._opening += 1
        try:
            conn = await self._connect(self._timeout)
        except BaseException:
            self._hand(None)  # the slot this borrower meant to fill is free for another
            raise
        finally:
            self._opening -= 1
        self._all.add(conn)
        return conn

    def _give_back(self, conn: asyncpg.Connection) -> None:
        """Return a connection that is clean (the caller knows it is)."""
        if self._closed or conn.is_closed() or conn.is_in_transaction():
            self._discard(conn)
        else:
            self._hand(conn)

    def _after_error(self, conn: asyncpg.Connection, exc: BaseException) -> None:
        if isinstance(exc, _STATE_UNKNOWN) or not isinstance(exc, Exception):
            self._discard(conn)
        else:  # a PostgreSQL error, or the caller's own (a transaction block rolled back)
            self._give_back(conn)

    def _discard(self, conn: asyncpg.Connection) -> None:
        self._all.discard(conn)
        if not conn.is_closed():
            conn.terminate()
        if self._closed and not self._all:
            self._drained.set()
        self._hand(None)

    def _hand(self, conn: asyncpg.Connection | None) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            self._idle.append(conn)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        """Borrow a connection for the block."""
        conn = await self._take()
        try:
            yield conn
        except BaseException as exc:
            self._after_error(conn, exc)
            raise
        self._give_back(conn)

    @asynccontextmanager
    async def acquire_bulk(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection of its own for one large write, with ``bulk_timeout`` per statement;
        waiting for one of the ``bulk_size`` slots shares the normal ``timeout``."""
        if self._closed:
            raise PoolClosed("the connection pool is closed")
        async with asyncio.timeout(self._timeout):
            await self._bulk_slots.acquire()
        try:
            async with asyncio.timeout(self._timeout):
                conn = await self._connect(self._bulk_timeout)
            self._bulk.add(conn)
            try:
                yield conn
            except BaseException:
                conn.terminate()  # a command may still be in flight
                raise
            else:
                try:
                    await conn.close(timeout=self._timeout)
                except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    conn.terminate()
            finally:
                self._bulk.discard(conn)
        finally:
            self._bulk_slots.release()

    # -- one query per borrow: what stores call ---------------------------------------------

    async def _run(self, method: str, query: str, args: tuple[Any, ...]) -> Any:
        conn = await self._take()
        try:
            result = await getattr(conn, method)(query, *args)
        except BaseException as exc:
            self._after_error(conn, exc)
            raise
        self._give_back(conn)
        return result

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        result: list[asyncpg.Record] = await self._run("fetch", query, args)
        return result

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        result: asyncpg.Record | None = await self._run("fetchrow", query, args)
        return result

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self._run("fetchval", query, args)

    async def execute(self, query: str, *args: Any) -> str:
        result: str = await self._run("execute", query, args)
        return result

    # -- shutdown ---------------------------------------------------------------------------

    async def close(self, grace: float = 2.0) -> None:
        """Refuse new borrows, close idle connections, then terminate the rest after
        ``grace`` seconds (a borrower still running by then loses its connection)."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(PoolClosed("the connection pool is closed"))
        idle, self._idle = self._idle, []
        for conn in idle:
            self._all.discard(conn)
            try:
                await asyncio.wait_for(conn.close(), grace)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()
        if self._all:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), grace)
        for conn in [*self._all, *self._bulk]:
            conn.terminate()
        self._all.clear()
        self._bulk.clear()
