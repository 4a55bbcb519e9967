"""The connection pool (pryvrt.storage.pool) against a real PostgreSQL: bounded size,
bounded waits, and connections that come back clean or not at all."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from pryvrt.storage.pool import UNAVAILABLE, Pool, PoolClosed


async def backends(database_url: str, application: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", application
        )
        return count
    finally:
        await conn.close()


def pool_for(database_url: str, name: str, size: int = 3, timeout: float = 5.0) -> Pool:
    async def init(conn: asyncpg.Connection) -> None:
        await conn.execute(f"SET application_name = '{name}'")

    return Pool(database_url, size=size, timeout=timeout, init=init)


async def test_many_concurrent_queries_share_at_most_size_connections(database_url: str) -> None:
    pool = pool_for(database_url, "pool-size")
    try:
        results = await asyncpg_gather(pool, 40)
        assert results == list(range(40))
        assert pool.open_connections <= 3
        assert await backends(database_url, "pool-size") <= 3
    finally:
        await pool.close()
    assert await backends(database_url, "pool-size") == 0


async def asyncpg_gather(pool: Pool, count: int) -> list[int]:
    return list(
        await asyncio.gather(
            *(pool.fetchval("SELECT $1::int FROM pg_sleep(0.01)", i) for i in range(count))
        )
    )


async def test_a_borrower_waits_at_most_the_timeout(database_url: str) -> None:
    pool = pool_for(database_url, "pool-timeout", size=1, timeout=0.2)
    try:
        async with pool.acquire():
            with pytest.raises(TimeoutError):
                await pool.fetchval("SELECT 1")
        assert await pool.fetchval("SELECT 1") == 1  # the slot still works
    finally:
        await pool.close()


async def test_a_cancelled_query_does_not_poison_the_next_borrower(database_url: str) -> None:
    pool = pool_for(database_url, "pool-cancel", size=1)
    try:
        task = asyncio.create_task(pool.fetchval("SELECT pg_sleep(5)"))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(3):
            assert await pool.fetchval("SELECT 2") == 2
        assert pool.open_connections == 1
    finally:
        await pool.close()


async def test_a_postgresql_error_keeps_the_connection_and_rolls_back(database_url: str) -> None:
    pool = pool_for(database_url, "pool-error", size=1)
    try:
        first = await pool.fetchval("SELECT pg_backend_pid()")
        with pytest.raises(asyncpg.DivisionByZeroError):
            await pool.fetchval("SELECT 1 / 0")
        with pytest.raises(ValueError):
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT 1")
                raise ValueError("the caller's own error")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
        assert await pool.fetchval("SELECT pg_backend_pid()") == first
    finally:
        await pool.close()


async def test_connections_killed_by_the_server_are_replaced(database_url: str) -> None:
    pool = pool_for(database_url, "pool-kill", size=2)
    try:
        await asyncpg_gather(pool, 4)
        admin = await asyncpg.connect(database_url)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'pool-kill'"
            )
        finally:
            await admin.close()
        failures = 0
        for _ in range(6):
            try:
                assert await pool.fetchval("SELECT 3") == 3
            except (
                asyncpg.InterfaceError,
                asyncpg.InternalClientError,
                asyncpg.PostgresConnectionError,
                OSError,
            ):
                failures += 1  # a dead connection not yet noticed: dropped, not reused
        assert failures <= 2
        assert await pool.fetchval("SELECT 3") == 3
        assert pool.open_connections <= 2
    finally:
        await pool.close()


async def test_a_closed_pool_refuses_borrowers_and_wakes_waiters(database_url: str) -> None:
    pool = pool_for(database_url, "pool-close", size=1)
    async with pool.acquire():
        waiter = asyncio.create_task(pool.fetchval("SELECT 1"))
        await asyncio.sleep(0.05)
        closing = asyncio.create_task(pool.close(grace=0.5))
        with pytest.raises(PoolClosed):
            await waiter
    await closing
    with pytest.raises(PoolClosed):
        await pool.fetchval("SELECT 1")
    assert await backends(database_url, "pool-close") == 0


async def running_backends(database_url: str, query: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE query = $1 AND state = 'active'"
            " AND pid <> pg_backend_pid()",
            query,
        )
        return count
    finally:
        await conn.close()


async def test_a_statement_past_the_timeout_is_cancelled_in_postgresql_itself(
    database_url: str,
) -> None:
    """The old pool gave up on the client side only and terminated the connection: the
    backend ran the query to its end (a pg_sleep(30) stayed active). PostgreSQL now cancels
    it (statement_timeout); the error is a 503 cause and the connection stays usable."""
    pool = Pool(database_url, size=1, timeout=2.0)  # PostgreSQL cancels at 1.8 s
    query = "SELECT pg_sleep(30) AS past_the_timeout"
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(asyncpg.QueryCanceledError) as caught:
            await pool.fetchval(query)
        elapsed = asyncio.get_running_loop().time() - started
        assert 1.7 < elapsed < 2.0, elapsed  # before the client's own timeout
        assert isinstance(caught.value, UNAVAILABLE)
        assert await running_backends(database_url, query) == 0
        assert await pool.fetchval("SELECT 3") == 3
        assert pool.open_connections == 1  # the same connection, not a new one
    finally:
        await pool.close()


async def test_bulk_connections_allow_longer_statements_a_few_at_a_time(database_url: str) -> None:
    pool = Pool(database_url, size=2, timeout=0.5, bulk_timeout=3.0, bulk_size=1)
    try:
        async with pool.acquire_bulk() as conn:
            assert await conn.fetchval("SELECT 4 FROM pg_sleep(1)") == 4  # past 0.5 s
            with pytest.raises(TimeoutError):  # the only bulk slot is taken
                async with pool.acquire_bulk():
                    pass
            assert await pool.fetchval("SELECT 5") == 5  # the shared connections are free
        async with pool.acquire_bulk() as conn:
            with pytest.raises(asyncpg.QueryCanceledError):
                await conn.fetchval("SELECT pg_sleep(30)")  # bounded too
    finally:
        await pool.close()
