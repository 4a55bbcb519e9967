"""Data safety (issue 7): every multi-step write is one transaction. A failure injected by
PostgreSQL itself between the steps (a trigger the test creates, raising on the later
step's rows; or the server's connection killed mid-transaction) must leave the database
exactly as before: the tables are compared row by row, before and after."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import Api

TABLES = ("channels", "folders", "events", "attachment_chunks")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


class Setup:
    """A user with a session and a strict channel, seen through the API and in SQL."""

    def __init__(self, api: Api, db: asyncpg.Connection) -> None:
        self.api = api
        self.db = db
        self.username = ""
        self.session = ""
        self.channel = ""
        self.user_id = ""

    async def start(self) -> Setup:
        self.username, self.session = await self.api.user()
        self.channel = await self.api.channel(self.username, self.session)
        self.user_id = await self.db.fetchval(
            "SELECT user_id FROM users WHERE username = $1", self.username
        )
        return self

    def path(self, rest: str) -> str:
        return f"/{self.username}/{self.channel}{rest}"

    async def folder(self, name: str, parent: str | None = None) -> str:
        body = {"name": name, "parentId": parent}
        reply = await self.api.post(self.path("/folders"), body, auth=self.session)
        assert reply.status == 201, reply
        return str(reply.body["id"])

    async def snapshot(self) -> dict[str, list[str]]:
        """Every row of this user's data, as text, in a stable order."""
        return {
            table: [
                row[0]
                for row in await self.db.fetch(
                    f"SELECT t::text FROM {table} t WHERE user_id = $1 ORDER BY 1", self.user_id
                )
            ]
            for table in TABLES
        }

    async def upload(self, path: str, event: dict[str, Any] | None, *files: str) -> Any:
        form = aiohttp.FormData()
        if event is not None:
            form.add_field("event", orjson_text(event), content_type="application/json")
        for name in files:
            form.add_field("file", name.encode() * 1000, filename=name, content_type="text/plain")
        return await self.api.post(path, data=form, auth=self.session)


def orjson_text(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


@pytest.fixture
async def me(api: Api, db: asyncpg.Connection) -> Setup:
    return await Setup(api, db).start()


@asynccontextmanager
async def failing(
    db: asyncpg.Connection, timing: str, table: str, when: str, body: str = ""
) -> AsyncIterator[None]:
    """A trigger on ``table`` that fails the statement touching a row matching ``when``:
    by default it raises; ``body`` replaces that (e.g. a sleep during which the test kills
    the connection)."""
    name = "inject_" + secrets.token_hex(4)
    action = body or "RAISE EXCEPTION 'injected failure';"
    await db.execute(
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$"
        f" BEGIN {action} RETURN COALESCE(NEW, OLD); END $$"
    )
    await db.execute(
        f"CREATE TRIGGER {name} {timing} ON {table} FOR EACH ROW"
        f" WHEN ({when}) EXECUTE FUNCTION {name}()"
    )
    try:
        yield
    finally:
        await db.execute(f"DROP TRIGGER {name} ON {table}; DROP FUNCTION {name}()")


def assert_unexpected_error(reply: Any) -> None:
    """The injected failure reaches the client as a 500 with an id, and no internals."""
    assert reply.status == 500, reply
    assert reply.body["id"] == "UNEXPECTED_ERROR"
    assert "injected" not in str(reply.body) and "Traceback" not in str(reply.body)


async def test_a_failed_start_leaves_the_running_period_running(me: Setup) -> None:
    folder = await me.folder("work")
    reply = await me.api.post(me.path("/events/start"), {"folderId": folder}, auth=me.session)
    assert reply.status == 201
    running = reply.body["id"]
    before = await me.snapshot()
    # Step 1 stops the running period (UPDATE), step 2 inserts the new one: fail step 2.
    async with failing(me.db, "BEFORE INSERT", "events", "NEW.is_period"):
        reply = await me.api.post(me.path("/events/start"), {"folderId": folder}, auth=me.session)
    assert_unexpected_error(reply)
    assert await me.snapshot() == before
    # Without the failure, the same call does stop that period: both steps were real.
    reply = await me.api.post(me.path("/events/start"), {"folderId": folder}, auth=me.session)
    assert reply.status == 201 and reply.body["stoppedId"] == running


async def test_a_connection_killed_between_stop_and_start_leaves_no_half_state(
    me: Setup,
) -> None:
    """The server's own connection is terminated by PostgreSQL while its transaction has
    stopped the running period and is inserting the new one: a crash, not an error."""
    folder = await me.folder("work")
    reply = await me.api.post(me.path("/events/start"), {"folderId": folder}, auth=me.session)
    assert reply.status == 201
    before = await me.snapshot()
    async with failing(me.db, "BEFORE INSERT", "events", "NEW.is_period", "PERFORM pg_sleep(10);"):
        call = asyncio.create_task(
            me.api.post(me.path("/events/start"), {"folderId": folder}, auth=me.session)
        )
        async with asyncio.timeout(5):
            while True:
                pid = await me.db.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep'"
                    " AND datname = current_database() AND pid <> pg_backend_pid()"
                )
                if pid is not None:
                    break
                await asyncio.sleep(0.02)
        # Mid-transaction: the running period is already stopped in it (not yet committed).
        assert await me.db.fetchval("SELECT pg_terminate_backend($1)", pid)
        async with asyncio.timeout(10):
            reply = await call
    assert reply.status == 503, reply
    assert reply.body["id"] == "SERVICE_UNAVAILABLE"
    assert await me.snapshot() == before
    # The pool replaced the dead connection: the next call works.
    reply = await me.api.post(me.path("/events/start"), {"folderId": folder}, auth=me.session)
    assert reply.status == 201, reply


async def test_a_failed_events_batch_adds_nothing_and_stops_nothing(me: Setup) -> None:
    folder = await me.folder("work")
    now = time.time()
    body = {"folderId": folder, "time": now - 100}
    reply = await me.api.post(me.path("/events/start"), body, auth=me.session)
    assert reply.status == 201
    await me.api.post(me.path("/events"), {"id": "kept", "time": now - 200}, auth=me.session)
    before = await me.snapshot()
    batch = {
        "events": [
            {"clientId": "a", "id": "first", "time": now - 60},
            {"clientId": "b", "id": "second", "time": now - 50, "duration": 5},
            {"clientId": "c", "id": "poisoned", "time": now - 30, "duration": 1},
        ]
    }
    # The batch stops the running period (at now - 50), then bulk-inserts its events: the
    # third row fails.
    async with failing(me.db, "BEFORE INSERT", "events", "NEW.id = 'poisoned'"):
        reply = await me.api.post(me.path("/events/batch"), batch, auth=me.session)
    assert_unexpected_error(reply)
    assert await me.snapshot() == before
    reply = await me.api.post(me.path("/events/batch"), batch, auth=me.session)
    assert reply.status == 200 and reply.body["stoppedId"], reply


@pytest.mark.parametrize("merge", [True, False])
async def test_a_failed_folder_delete_keeps_folders_events_and_files(
    me: Setup, merge: bool
) -> None:
    top = await me.folder("top")
    middle = await me.folder("middle", top)
    bottom = await me.folder("bottom", middle)
    for folder in (middle, bottom):
        reply = await me.api.post(
            me.path("/events"),
            {"folderId": folder, "value": {"type": "note:txt", "value": "in"}},
            auth=me.session,
        )
        assert reply.status == 201
    reply = await me.upload(me.path("/events"), {"folderId": bottom}, "note.txt")
    assert reply.status == 201, reply
    reply = await me.api.delete(me.path(f"/folders/{middle}"), auth=me.session)  # trash
    assert reply.status == 200
    before = await me.snapshot()
    assert len(before["attachment_chunks"]) == 1
    # Step 1 merges (or deletes) the events, step 2 deletes the folders: fail on a row of
    # step 2 (the deepest folder of the subtree).
    query = f"?mergeEventsWithParent={'true' if merge else 'false'}"
    async with failing(me.db, "BEFORE DELETE", "folders", f"OLD.id = '{bottom}'"):
        reply = await me.api.delete(me.path(f"/folders/{middle}{query}"), auth=me.session)
    assert_unexpected_error(reply)
    assert await me.snapshot() == before
    reply = await me.api.delete(me.path(f"/folders/{middle}{query}"), auth=me.session)
    assert reply.status == 200, reply
    after = await me.snapshot()
    assert len(after["folders"]) == 1  # the failure above was all that kept them
    assert len(after["events"]) == (3 if merge else 0)


async def test_a_failed_attachment_add_stores_no_chunk(me: Setup) -> None:
    reply = await me.upload(me.path("/events"), {"id": "doc"}, "one.txt")
    assert reply.status == 201, reply
    before = await me.snapshot()
    # Step 1 streams the files into chunks, step 2 lists them on the event: fail step 2.
    changed = "OLD.attachments IS DISTINCT FROM NEW.attachments"
    async with failing(me.db, "BEFORE UPDATE", "events", changed):
        reply = await me.upload(me.path("/events/doc"), None, "two.txt", "three.txt")
    assert_unexpected_error(reply)
    assert await me.snapshot() == before
    # A multipart create fails the same way: neither the event nor its file remain.
    async with failing(me.db, "BEFORE UPDATE", "events", changed):
        reply = await me.upload(me.path("/events"), {"id": "photo"}, "p.txt")
    assert_unexpected_error(reply)
    assert await me.snapshot() == before


async def test_each_call_of_a_batch_request_is_its_own_transaction(me: Setup) -> None:
    """``POST /{username}/``: calls are independent (README); a failing call leaves no
    trace, the others are kept."""
    before = await me.snapshot()
    calls = [
        {"method": "events.create", "params": {"channelId": me.channel, "id": "one"}},
        {"method": "events.create", "params": {"channelId": me.channel, "id": "poisoned"}},
        {"method": "events.create", "params": {"channelId": me.channel, "id": "three"}},
    ]
    async with failing(me.db, "BEFORE INSERT", "events", "NEW.id = 'poisoned'"):
        reply = await me.api.post(f"/{me.username}/", calls, auth=me.session)
    assert reply.status == 200, reply
    assert [list(r) for r in reply.body] == [["result"], ["error"], ["result"]]
    assert reply.body[1]["error"]["id"] == "UNEXPECTED_ERROR"
    ids = await me.db.fetch("SELECT id FROM events WHERE user_id = $1", me.user_id)
    assert {row["id"] for row in ids} == {"one", "three"}
    assert len((await me.snapshot())["events"]) == len(before["events"]) + 2
