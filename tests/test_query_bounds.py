"""Expensive queries are bounded: PostgreSQL cancels a statement past PRYVRT_DB_TIMEOUT
(no backend keeps running after the 503), tags are bounded per event and per query, and
large events.batch calls still fit (bulk connections)."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from pryvrt.methods.params import MAX_TAGS
from tests.activity import owner
from tests.conftest import Api, AppFactory


async def waiting_backends(conn: asyncpg.Connection) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    )
    return count


async def test_a_statement_past_the_timeout_is_cancelled_in_the_database(
    make_api: AppFactory, database_url: str
) -> None:
    """folders.get waits behind a lock on the folders table (a migration, say): after
    PRYVRT_DB_TIMEOUT the call answers 503 and PostgreSQL has cancelled the statement.
    The old code only dropped its connection: the backend stayed, waiting to run it."""
    api = await make_api(db_timeout=1.0)
    me = await owner(api)
    holder = await asyncpg.connect(database_url)
    watcher = await asyncpg.connect(database_url)
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE folders IN ACCESS EXCLUSIVE MODE")
            started = time.monotonic()
            reply = await me.folders()
            elapsed = time.monotonic() - started
            assert reply.status == 503, reply
            assert reply.body["id"] == "SERVICE_UNAVAILABLE"
            assert 0.9 < elapsed < 3.0, elapsed
            assert await waiting_backends(watcher) == 0  # nothing left in PostgreSQL
            await asyncio.sleep(0.5)
            assert await waiting_backends(watcher) == 0
        assert (await me.folders()).status == 200  # the server goes on
    finally:
        await holder.close()
        await watcher.close()


def assert_format_error(reply: object, field: str) -> None:
    assert reply.status == 400, reply  # type: ignore[attr-defined]
    body = reply.body  # type: ignore[attr-defined]
    assert body["id"] == "INVALID_PARAMETERS_FORMAT", body
    assert field in body["data"], body


async def test_tags_are_bounded_per_event_per_query_and_in_length(api: Api) -> None:
    me = await owner(api)
    allowed = [f"t{i}" for i in range(MAX_TAGS)]
    too_many = [*allowed, "one-more"]
    created = await me.event(type="note/txt", content="x", tags=allowed)
    assert created.status == 201, created
    event_id = created.body["id"]

    assert_format_error(await me.event(type="note/txt", content="x", tags=too_many), "tags")
    assert_format_error(await me.start(folderId=None, tags=too_many), "tags")
    reply = await api.put(me.path(f"/events/{event_id}"), {"tags": too_many}, auth=me.session)
    assert_format_error(reply, "tags")
    reply = await api.put(me.path(f"/events/{event_id}"), {"tags": ["x" * 501]}, auth=me.session)
    assert_format_error(reply, "tags.0")
    batch = {"events": [{"clientId": "a", "time": 1.0, "tags": too_many}]}
    reply = await api.post(me.path("/events/batch"), batch, auth=me.session)
    assert_format_error(reply, "events.0.tags")

    query = "&".join(f"tags={t}" for t in too_many)
    assert_format_error(await me.events("?" + query), "tags")
    query = "&".join(f"tags={t}" for t in allowed)
    reply = await me.events("?" + query)
    assert reply.status == 200, reply
    assert [e["id"] for e in reply.body] == [event_id]


async def test_a_large_batch_fits_even_with_a_short_statement_timeout(
    make_api: AppFactory,
) -> None:
    """events.batch statements write up to PRYVRT_MAX_BATCH_EVENTS rows: they run on a bulk
    connection whose timeout grows with the rows, not under PRYVRT_DB_TIMEOUT."""
    api = await make_api(db_timeout=0.3, max_body_size=50 * 1024 * 1024)
    me = await owner(api)
    start = time.time() - 1_000_000
    events = [
        {"clientId": str(i), "time": start + i * 10, "duration": 5, "type": "activity/plain"}
        for i in range(20_000)
    ]
    started = time.monotonic()
    reply = await api.post(me.path("/events/batch"), {"events": events}, auth=me.session)
    print(
        f"\n20 000-period batch with a 0.3 s statement timeout: {time.monotonic() - started:.1f} s"
    )
    assert reply.status == 200, reply
    assert len(reply.body["addedEvents"]) == 20_000
    stored = await me.events("?fromTime=0&limit=1&state=all")
    assert stored.status == 200, stored
