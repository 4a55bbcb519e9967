"""The event's API JSON: rendered in Python at insert (``Event.to_api``), by PostgreSQL at
every update (``events_render_json`` in schema.sql), stored, and joined by ``events.get``.
Both renderings must say the same for every shape of event, after every kind of write."""

from __future__ import annotations

from typing import Any

from pryvrt.app import SERVICES_KEY
from pryvrt.storage.database import apply_schema
from pryvrt.storage.events import (
    EVERYTHING,
    Event,
    EventQuery,
    event_from_row,
    json_with,
    select_events,
)
from pryvrt.storage.pool import Pool
from tests.activity import owner
from tests.conftest import Api


async def from_the_model(pool: Pool, user_id: str, channel_id: str, q: EventQuery) -> list[Any]:
    """The events of a query as the Python model renders them (read from the rows)."""
    rows = await pool.fetch(*select_events(user_id, channel_id, q))
    events: list[Event] = [event_from_row(r) for r in rows]
    return [e.to_api() for e in events]


async def test_events_get_json_built_by_postgresql_matches_the_event_model(api: Api) -> None:
    """events.get's reply joins the JSON each event got at its last write (the
    events_render_json trigger, schema.sql); it must say exactly what ``Event.to_api``
    says for every shape of event, after every kind of write."""
    me = await owner(api)
    folder = await me.folder("f")
    shapes: list[dict[str, Any]] = [
        {},
        {"time": 1700000000.123456, "tags": ["a", "b"], "description": 'd " \\ é\n'},
        {"value": {"type": "note:txt", "value": "hi"}, "folderId": folder},
        {"value": {"type": "count:n", "value": 0.1}, "clientData": {"x": [1, {"y": None}]}},
        {"value": {"type": "any:obj", "value": {"k": [1, 2.5, "s", True, None]}}},
        {"value": {"type": "null:n", "value": None}},
        {"time": 1000.5, "duration": 12.25},
        {"time": 1e9, "duration": 0},
    ]
    for shape in shapes:
        reply = await me.event(**shape)
        assert reply.status == 201, reply
    running = await me.start(folderId=folder)
    assert running.status == 201, running
    trashed = (await me.event(tags=["gone"])).body["id"]
    await api.delete(me.path(f"/events/{trashed}"), auth=me.session)
    from_sql = await me.all_events()
    services = api.client.app[SERVICES_KEY]
    user = await services.storage.users.by_username(me.username)
    query = EventQuery(
        visible=EVERYTHING, from_time=0, to_time=1e12, state="all", ascending=True, limit=1000
    )
    pool = services.storage.pool
    from_model = await from_the_model(pool, user.id, me.channel, query)
    assert len(from_sql) == len(shapes) + 2
    assert from_sql == from_model
    # The same events rendered by the SQL trigger (as on every UPDATE) say the same.
    await services.storage.pool.execute("UPDATE events SET json = NULL WHERE user_id = $1", user.id)
    assert await me.all_events() == from_model
    # Updates, a stop, a folder merged away: the stored JSON follows every write path.
    marked = (await me.event(tags=["x"], folderId=folder)).body["id"]
    reply = await api.put(
        me.path(f"/events/{marked}"),
        {"description": "now described", "tags": ["y", "z"], "clientData": {"k": 1}},
        auth=me.session,
    )
    assert reply.status == 200, reply
    assert (await me.stop(id=running.body["id"])).status == 200
    reply = await api.delete(
        me.path(f"/folders/{folder}?mergeEventsWithParent=true"), auth=me.session
    )
    assert reply.status == 200, reply
    reply = await api.delete(
        me.path(f"/folders/{folder}?mergeEventsWithParent=true"), auth=me.session
    )
    assert reply.status == 200, reply
    from_sql = await me.all_events()
    assert from_sql == await from_the_model(pool, user.id, me.channel, query)
    assert any(e["id"] == marked and e.get("description") == "now described" for e in from_sql)
    assert all(e["folderId"] is None for e in from_sql)


async def test_events_stored_before_version_3_get_their_json_at_start(api: Api) -> None:
    """Schema version 3 added the stored JSON: applying the schema to a version-2 database
    renders every existing event once."""
    me = await owner(api)
    for i in range(3):
        assert (await me.event(time=100.0 + i, tags=[str(i)])).status == 201
    pool = api.client.app[SERVICES_KEY].storage.pool
    async with pool.acquire() as conn:
        await conn.execute("ALTER TABLE events DISABLE TRIGGER events_json")
        await conn.execute("UPDATE events SET json = NULL")
        await conn.execute("ALTER TABLE events ENABLE TRIGGER events_json")
        await conn.execute("UPDATE schema_version SET version = 2")
    await apply_schema(pool)
    assert await pool.fetchval("SELECT count(*) FROM events WHERE json IS NULL") == 0
    assert await pool.fetchval("SELECT version FROM schema_version") >= 3
    assert [e["tags"] for e in await me.all_events()] == [["0"], ["1"], ["2"]]


def test_stored_json_takes_more_fields_without_being_decoded() -> None:
    import orjson

    event = Event(
        "e", "c", 1.5, False, None, None, None, None, [], None, {}, [], False, 2.0, 1.5, "a", "b"
    )
    rendered = orjson.dumps(event.to_api())
    answer = orjson.dumps([json_with(rendered, {"clientId": 'a "b"'})])
    assert orjson.loads(answer) == [{**event.to_api(), "clientId": 'a "b"'}]
    assert orjson.loads(orjson.dumps(json_with(rendered, {}))) == event.to_api()


async def test_json_rendered_by_postgresql_is_compact_like_the_rest_of_the_api(api: Api) -> None:
    """jsonb's text form spaces its separators (``{"a": 1}``); every event, however it was
    last written, is answered as compact as orjson writes (attachments included)."""
    import aiohttp
    import orjson

    me = await owner(api)
    form = aiohttp.FormData()
    event = {"id": "e1", "value": {"type": "any:obj", "value": {"k": [1, {"n": None}]}}}
    form.add_field("event", orjson.dumps(event).decode(), content_type="application/json")
    form.add_field("file", b"bytes", filename="a.txt", content_type="text/plain")
    assert (await api.post(me.path("/events"), data=form, auth=me.session)).status == 201
    await me.event(id="e2", clientData={"x": [1, 2], "y": {"z": "a b"}})
    for event_id in ("e1", "e2"):  # an update: the trigger renders the stored JSON
        reply = await api.put(me.path(f"/events/{event_id}"), {"tags": ["t"]}, auth=me.session)
        assert reply.status == 200, reply
    # the delete of e1's file rewrites its attachments in SQL too; then e1 gets a file again
    form = aiohttp.FormData()
    form.add_field("file", b"more", filename="b.txt", content_type="text/plain")
    assert (await api.post(me.path("/events/e1"), data=form, auth=me.session)).status == 200

    async with api.client.get(
        me.path("/events?state=all"), headers={"Authorization": me.session}
    ) as resp:
        raw = await resp.read()
    services = api.client.app[SERVICES_KEY]
    stored = await services.storage.pool.fetch(
        "SELECT json FROM events WHERE channel_id = $1", me.channel
    )

    assert b'": ' not in raw and b', "' not in raw, raw
    for row in stored:
        assert '": ' not in row["json"] and ', "' not in row["json"], row["json"]
    by_id = {e["id"]: e for e in orjson.loads(raw)}
    assert [a["fileName"] for a in by_id["e1"]["attachments"]] == ["a.txt", "b.txt"]


async def test_stored_json_is_rendered_compact_once_after_the_upgrade(api: Api) -> None:
    """The schema re-renders the JSON older versions stored (spaced) once, then never again."""
    services = api.client.app[SERVICES_KEY]
    pool = services.storage.pool
    me = await owner(api)
    await me.event(id="old", clientData={"a": 1})
    spaced = '{"id":"old","clientData":{"a": 1}}'
    await pool.execute("ALTER TABLE events DISABLE TRIGGER events_json")
    await pool.execute("UPDATE events SET json = $1 WHERE id = 'old'", spaced)
    await pool.execute("ALTER TABLE events ENABLE TRIGGER events_json")
    await pool.execute("COMMENT ON FUNCTION json_compact(jsonb) IS NULL")  # as before the upgrade

    await apply_schema(pool)
    after = await pool.fetchval("SELECT json FROM events WHERE id = 'old'")
    assert '"clientData":{"a":1}' in after
    marker = await pool.fetchval("SELECT obj_description('json_compact(jsonb)'::regprocedure)")
    await apply_schema(pool)  # a restart: the comment survives CREATE OR REPLACE
    assert (
        marker
        == await pool.fetchval("SELECT obj_description('json_compact(jsonb)'::regprocedure)")
        == "events rendered compact"
    )


async def test_whole_seconds_are_written_without_a_fraction_on_every_path(api: Api) -> None:
    """``1500``, never ``1500.0``: as inserted (Python), as updated (PostgreSQL), one event
    or a list, and in a folder's timeCount."""
    me = await owner(api)
    folder = await me.folder("f")
    await me.event(id="p", folderId=folder, time=1_700_000_000, duration=1500)
    await me.event(id="q", folderId=folder, time=1_700_003_000, duration=10)
    await api.put(me.path("/events/q"), {"duration": 1500}, auth=me.session)  # SQL renders it

    async def raw(path: str) -> bytes:
        async with api.client.get(me.path(path), headers={"Authorization": me.session}) as r:
            return await r.read()

    listed = await raw("/events?fromTime=0&toTime=2e9")
    one = await raw("/events/p")
    counted = await raw("/folders?timeCountBase=0")

    assert b'"time":1700000000,"duration":1500,' in one
    assert b'"time":1700000000,"duration":1500,' in listed
    assert b'"time":1700003000,"duration":1500,' in listed
    assert b'"timeCount":3000' in counted and b"3000.0" not in counted


async def test_events_copied_by_a_batch_read_the_same_through_every_path(api: Api) -> None:
    """events.batch COPYs its rows straight into ``events`` (binary jsonb, version byte +
    JSON): values, client data and tags of every shape come back as sent, from the stored
    JSON, from the jsonb columns (the model), and after the SQL trigger renders them."""
    me = await owner(api)
    folder = await me.folder("f")
    shapes: list[dict[str, Any]] = [
        {"time": 1000.0},
        {"time": 1001.5, "tags": ["a", "é"], "description": 'd " \\ é\n'},
        {"time": 1002.0, "value": {"type": "note:txt", "value": "hi ☃"}, "folderId": folder},
        {"time": 1003.0, "value": {"type": "count:n", "value": 0.1}, "clientData": {"x": [1]}},
        {"time": 1004.0, "value": {"type": "any:obj", "value": {"k": [1, 2.5, "s", None]}}},
        {"time": 1005.0, "value": {"type": "null:n", "value": None}},
        {"time": 1006.0, "duration": 12.25, "clientData": {"nested": {"a": {"b": [{}]}}}},
    ]
    items = [{"clientId": str(i), **shape} for i, shape in enumerate(shapes)]
    reply = await api.post(me.path("/events/batch"), {"events": items}, auth=me.session)
    assert reply.status == 200, reply
    from_sql = await me.all_events()
    assert len(from_sql) == len(shapes)
    for event, shape in zip(from_sql, shapes, strict=True):
        for field in ("value", "clientData", "tags", "description", "folderId"):
            if field in shape:
                assert event[field] == shape[field], (field, event)
    services = api.client.app[SERVICES_KEY]
    user = await services.storage.users.by_username(me.username)
    query = EventQuery(
        visible=EVERYTHING, from_time=0, to_time=1e12, state="all", ascending=True, limit=1000
    )
    pool = services.storage.pool
    assert from_sql == await from_the_model(pool, user.id, me.channel, query)
    await pool.execute("UPDATE events SET json = NULL WHERE user_id = $1", user.id)
    assert await me.all_events() == from_sql
