"""events.get / create / update / delete / getRunning (API.md §6), real HTTP and PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from pryvrt.app import SERVICES_KEY
from pryvrt.notify.messages import EVENTS_CHANGED
from pryvrt.storage.events import EVERYTHING, EventQuery, select_events
from pryvrt.storage.pool import Pool
from tests.activity import Owner, owner, record_changes
from tests.conftest import Api


async def explain_query(
    pool: Pool, user_id: str, channel_id: str, q: EventQuery, *, analyze: bool = False
) -> str:
    """PostgreSQL's plan for an events query as the server runs it: a prepared statement
    under the connection's ``plan_cache_mode``; ``analyze`` runs it and adds the rows each
    step returned."""
    sql, *args = select_events(user_id, channel_id, q)

    def literal(value: Any) -> str:  # EXECUTE takes no bound parameters
        if isinstance(value, list):
            return "ARRAY[" + ", ".join(map(literal, value)) + "]::text[]"
        if isinstance(value, str):
            return "'" + value.replace("'", "''") + "'"
        return repr(value)

    values = ", ".join(map(literal, args))
    async with pool.acquire() as conn:
        await conn.execute("PREPARE pryvrt_explain AS " + sql)
        try:
            options = "(ANALYZE, TIMING OFF) " if analyze else ""
            rows = await conn.fetch(f"EXPLAIN {options}EXECUTE pryvrt_explain({values})")
        finally:
            await conn.execute("DEALLOCATE pryvrt_explain")
    return "\n".join(r[0] for r in rows)


async def ids(reply: Any) -> list[str]:
    assert reply.status == 200, reply
    return [e["id"] for e in reply.body]


async def test_create_records_a_mark_at_the_current_time(api: Api) -> None:
    me = await owner(api)
    reply = await me.event()
    assert reply.status == 201
    assert list(reply.body) == ["id"]
    [event] = (await me.events()).body
    assert event == {
        "id": reply.body["id"],
        "channelId": me.channel,
        "time": event["time"],
        "folderId": None,
        "tags": [],
        "attachments": [],
        "clientData": {},
        "trashed": False,
        "created": event["modified"],
        "createdBy": event["createdBy"],
        "modified": event["modified"],
        "modifiedBy": event["createdBy"],
    }
    assert abs(event["time"] - time.time()) < 60


async def test_create_records_a_finished_period_with_all_its_fields(api: Api) -> None:
    me = await owner(api)
    folder = await me.folder("work")
    reply = await me.event(
        id="ev-1",
        time=1000.0,
        duration=60.0,
        folderId=folder,
        tags=[" a ", "b", "a"],
        description="meeting",
        clientData={"x": 1},
    )
    assert reply.body == {"id": "ev-1"}
    [event] = await me.all_events()
    assert event["duration"] == 60.0
    assert event["folderId"] == folder
    assert event["tags"] == ["a", "b"]
    assert event["description"] == "meeting"
    assert event["clientData"] == {"x": 1}


async def test_both_value_forms_are_stored_as_one(api: Api) -> None:
    me = await owner(api)
    seed = {"type": "position:WGS84", "value": "40.71, -73.99, 12"}
    await me.event(time=1.0, value=seed)
    await me.event(time=2.0, type="mass/kg", content=90)
    await me.event(time=3.0, type="note/txt")
    first, second, third = await me.all_events()
    assert (first["type"], first["value"]) == ("position:WGS84", seed)
    assert (second["type"], second["value"]) == ("mass/kg", {"type": "mass/kg", "value": 90})
    assert third["value"] == {"type": "note/txt", "value": None}


async def test_mixed_or_incomplete_value_forms_are_format_errors(api: Api) -> None:
    me = await owner(api)
    for body in (
        {"value": {"type": "a:b", "value": 1}, "type": "c/d"},
        {"content": 5},
        {"value": {"value": 1}},
        {"tags": ["ok", "  "]},
        {"time": "yesterday"},
        {"time": 1e300},
        {"duration": -1},
    ):
        reply = await me.event(**body)
        assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT"), body


async def test_create_refuses_a_running_period(api: Api) -> None:
    me = await owner(api)
    reply = await me.event(duration=None)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_OPERATION")
    assert "events.start" in reply.body["message"]


async def test_create_checks_the_folder(api: Api) -> None:
    me = await owner(api)
    reply = await me.event(folderId="ghost")
    assert (reply.status, reply.body["id"]) == (400, "UNKNOWN_FOLDER")
    assert reply.body["data"]["unknownIds"] == ["ghost"]
    other = await owner(api)
    foreign = await other.folder("theirs")
    reply = await me.event(folderId=foreign)
    assert (reply.status, reply.body["id"]) == (400, "UNKNOWN_FOLDER")


async def test_nothing_is_recorded_into_a_trashed_folder_or_channel(api: Api) -> None:
    me = await owner(api)
    top = await me.folder("top")
    sub = await me.folder("sub", parent=top)
    await api.delete(me.path(f"/folders/{top}"), auth=me.session)
    reply = await me.event(folderId=sub)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_OPERATION")
    assert reply.body["data"]["trashed"] == "folder"
    await api.delete(f"/{me.username}/channels/{me.channel}", auth=me.session)
    reply = await me.event()
    assert reply.body["data"] == {"trashed": "channel"}


async def test_client_chosen_event_ids_are_unique_and_valid(api: Api) -> None:
    me = await owner(api)
    assert (await me.event(id="e1")).status == 201
    assert (await me.event(id="e1")).body["id"] == "ITEM_ID_ALREADY_EXISTS"
    assert (await me.event(id="batch")).body["id"] == "INVALID_ITEM_ID"


async def test_get_without_a_time_window_answers_the_20_latest(api: Api) -> None:
    me = await owner(api)
    for i in range(25):
        await me.event(id=f"e{i:02d}", time=1000.0 + i)
    assert await ids(await me.events()) == [f"e{i:02d}" for i in range(24, 4, -1)]
    assert await ids(await me.events("?limit=3&skip=1")) == ["e23", "e22", "e21"]
    assert await ids(await me.events("?limit=2&sortAscending=true")) == ["e00", "e01"]


async def test_a_window_keeps_the_events_overlapping_it(api: Api) -> None:
    me = await owner(api, enforceNoEventsOverlap=False)
    folder = await me.folder("f")
    for fields in (
        {"id": "before", "time": 100.0},
        {"id": "long", "time": 50.0, "duration": 100.0},  # 50..150 overlaps 120..200
        {"id": "ending", "time": 110.0, "duration": 10.0},  # ends at 120: touches
        {"id": "inside", "time": 150.0},
        {"id": "after", "time": 250.0},
    ):
        assert (await me.event(**fields)).status == 201
    await me.start(id="running", folderId=folder, time=300.0)
    got = await ids(await me.events("?fromTime=120&toTime=200"))
    assert got == ["inside", "ending", "long"]
    got = await ids(await me.events("?fromTime=120&toTime=400&sortAscending=true"))
    assert got == ["long", "ending", "inside", "after", "running"]


async def test_window_defaults_are_24_hours_before_to_time_and_now(api: Api) -> None:
    me = await owner(api)
    now = time.time()
    await me.event(id="old", time=now - 2 * 86400)
    await me.event(id="recent", time=now - 3600)
    await me.event(id="future", time=now + 3600)
    assert await ids(await me.events(f"?toTime={now}")) == ["recent"]
    assert await ids(await me.events(f"?fromTime={now - 3 * 86400}")) == ["recent", "old"]


async def test_limit_is_capped_by_the_server_setting(make_api: Any) -> None:
    api = await make_api(max_events_limit=3)
    me = await owner(api)
    for i in range(5):
        await me.event(time=float(i + 1))
    assert len((await me.events("?limit=100")).body) == 3
    assert len((await me.events("?fromTime=0&toTime=10")).body) == 3


async def test_tags_select_events_having_any_of_them(api: Api) -> None:
    me = await owner(api)
    await me.event(id="a", time=1.0, tags=["red"])
    await me.event(id="b", time=2.0, tags=["blue", "green"])
    await me.event(id="c", time=3.0, tags=["yellow"])
    assert await ids(await me.events("?tags=red&tags=green")) == ["b", "a"]
    assert await ids(await me.events("?tags[]=yellow")) == ["c"]
    assert await ids(await me.events("?tags=blue")) == ["b"]


async def test_state_selects_trashed_events(api: Api) -> None:
    me = await owner(api)
    await me.event(id="kept", time=1.0)
    await me.event(id="gone", time=2.0)
    await api.delete(me.path("/events/gone"), auth=me.session)
    assert await ids(await me.events()) == ["kept"]
    assert await ids(await me.events("?state=trashed")) == ["gone"]
    assert await ids(await me.events("?state=all")) == ["gone", "kept"]


async def test_modified_since_keeps_recently_changed_events(api: Api) -> None:
    me = await owner(api)
    await me.event(id="a", time=1.0)
    await me.event(id="b", time=2.0)
    since = float((await me.events()).headers["Server-Time"])
    await api.put(me.path("/events/a"), {"description": "changed"}, auth=me.session)
    assert await ids(await me.events(f"?modifiedSince={since}")) == ["a"]


async def test_only_folders_includes_sub_folders(api: Api) -> None:
    me = await owner(api)
    top = await me.folder("top")
    sub = await me.folder("sub", parent=top)
    other = await me.folder("other")
    await me.event(id="in-top", time=1.0, folderId=top)
    await me.event(id="in-sub", time=2.0, folderId=sub)
    await me.event(id="in-other", time=3.0, folderId=other)
    await me.event(id="loose", time=4.0)
    assert await ids(await me.events(f"?onlyFolders={top}")) == ["in-sub", "in-top"]
    got = await ids(await me.events(f"?onlyFolders[]={sub}&onlyFolders[]={other}"))
    assert got == ["in-other", "in-sub"]
    reply = await me.events(f"?onlyFolders={top}&onlyFolders=ghost&onlyFolders=nope")
    assert (reply.status, reply.body["id"]) == (400, "UNKNOWN_FOLDER")
    assert reply.body["data"]["unknownIds"] == ["ghost", "nope"]


async def test_bad_query_values_are_format_errors(api: Api) -> None:
    me = await owner(api)
    for query in ("?limit=-1", "?skip=x", "?state=gone", "?fromTime=abc", "?sortAscending=2"):
        reply = await me.events(query)
        assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT"), query


async def test_update_changes_only_the_given_fields(api: Api) -> None:
    me = await owner(api)
    folder = await me.folder("f")
    await me.event(
        id="e", time=10.0, tags=["a"], description="d", clientData={"k": 1, "drop": 2}, type="t/x"
    )
    reply = await api.put(
        me.path("/events/e"),
        {"folderId": folder, "clientData": {"drop": None, "new": 3}, "content": 7},
        auth=me.session,
    )
    assert (reply.status, reply.body) == (200, {})
    [event] = await me.all_events()
    assert event["folderId"] == folder
    assert event["clientData"] == {"k": 1, "new": 3}
    assert event["value"] == {"type": "t/x", "value": 7}
    assert (event["time"], event["tags"], event["description"]) == (10.0, ["a"], "d")
    body = {"description": None, "tags": ["z"], "folderId": None, "value": None}
    await api.put(me.path("/events/e"), body, auth=me.session)
    [event] = await me.all_events()
    assert "description" not in event and "type" not in event and "value" not in event
    assert (event["tags"], event["folderId"]) == (["z"], None)


async def test_update_answers_404_for_an_unknown_event_and_400_for_an_unknown_folder(
    api: Api,
) -> None:
    me = await owner(api)
    reply = await api.put(me.path("/events/ghost"), {"tags": []}, auth=me.session)
    assert (reply.status, reply.body["id"]) == (404, "UNKNOWN_EVENT")
    await me.event(id="e")
    reply = await api.put(me.path("/events/e"), {"folderId": "ghost"}, auth=me.session)
    assert (reply.status, reply.body["id"]) == (400, "UNKNOWN_FOLDER")
    reply = await api.put(me.path("/events/e"), {"content": 1}, auth=me.session)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT")


async def test_events_cannot_move_into_a_trashed_folder(api: Api) -> None:
    me = await owner(api)
    old = await me.folder("old")
    await me.event(id="e")
    await api.delete(me.path(f"/folders/{old}"), auth=me.session)
    reply = await api.put(me.path("/events/e"), {"folderId": old}, auth=me.session)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_OPERATION")
    assert reply.body["data"]["trashed"] == "folder"


async def test_events_methods_work_inside_a_batch_of_calls(api: Api) -> None:
    me = await owner(api)
    calls = [
        {"method": "events.create", "params": {"channelId": me.channel, "id": "e", "time": 5.0}},
        {"method": "events.get", "params": {"channelId": me.channel}},
        {"method": "events.delete", "params": {"channelId": me.channel, "id": "ghost"}},
    ]
    reply = await api.post(f"/{me.username}/", calls, auth=me.session)
    assert reply.status == 200
    created, listed, failed = reply.body
    assert created == {"result": {"id": "e"}}
    assert [e["id"] for e in listed["result"]] == ["e"]
    assert failed["error"]["id"] == "UNKNOWN_EVENT"


async def test_update_restores_a_trashed_event(api: Api) -> None:
    me = await owner(api)
    await me.event(id="e")
    await api.delete(me.path("/events/e"), auth=me.session)
    assert (await api.put(me.path("/events/e"), {"trashed": False}, auth=me.session)).body == {}
    assert await ids(await me.events()) == ["e"]


async def test_delete_trashes_then_deletes_with_the_attachment_chunks(
    api: Api, database_url: str
) -> None:
    me = await owner(api)
    await me.event(id="e")
    assert (await api.delete(me.path("/events/e"), auth=me.session)).body == {}
    [event] = await me.all_events()
    assert event["trashed"] is True
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO attachment_chunks SELECT user_id, channel_id, id, 'file', 0, 'x'::bytea"
            " FROM events WHERE channel_id = $1 AND id = 'e'",
            me.channel,
        )
        assert (await api.delete(me.path("/events/e"), auth=me.session)).status == 200
        chunks = await conn.fetchval(
            "SELECT count(*) FROM attachment_chunks WHERE channel_id = $1", me.channel
        )
    finally:
        await conn.close()
    assert chunks == 0
    assert await me.all_events() == []
    reply = await api.delete(me.path("/events/e"), auth=me.session)
    assert (reply.status, reply.body["id"]) == (404, "UNKNOWN_EVENT")


async def test_get_running_lists_the_running_periods(api: Api) -> None:
    me = await owner(api)
    folder = await me.folder("f")
    await me.event(time=1.0, duration=1.0, folderId=folder)
    started = (await me.start(folderId=folder, time=10.0)).body["id"]
    reply = await api.get(me.path("/events/running"), auth=me.session)
    assert [(e["id"], e["duration"]) for e in reply.body] == [(started, None)]


async def test_every_event_write_notifies_events_changed(api: Api) -> None:
    me = await owner(api)
    folder = await me.folder("f")
    changes = await record_changes(me)
    await me.event(id="e")
    await api.put(me.path("/events/e"), {"tags": ["x"]}, auth=me.session)
    await me.start(folderId=folder)
    await me.stop()
    await api.delete(me.path("/events/e"), auth=me.session)
    assert changes.kinds() == [(EVENTS_CHANGED, me.channel)] * 5


async def _fill(me: Owner, count: int, folder: str) -> None:
    events = [
        {"clientId": str(i), "time": 1000.0 + i, **({"folderId": folder} if i % 3 else {})}
        for i in range(count)
    ]
    reply = await me.api.post(me.path("/events/batch"), {"events": events}, auth=me.session)
    assert reply.status == 200, reply


async def test_large_channel_queries_use_indexes(api: Api, database_url: str) -> None:
    me = await owner(api)
    folder = await me.folder("f")
    await _fill(me, 5000, folder)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ANALYZE events")
    finally:
        await conn.close()
    store = api.client.app[SERVICES_KEY].storage
    user = await store.users.by_username(me.username)
    assert user is not None
    for query in (
        EventQuery(visible=EVERYTHING, limit=20),
        EventQuery(visible=EVERYTHING, limit=20, ascending=True),
        EventQuery(visible=EVERYTHING, from_time=3000.0, to_time=3100.0, limit=10_000),
        EventQuery(
            visible=EVERYTHING, from_time=3000.0, to_time=3100.0, ascending=True, limit=10_000
        ),
        EventQuery(visible=EVERYTHING, folder_ids=[folder], no_folder=False, limit=20),
    ):
        plan = await explain_query(store.pool, user.id, me.channel, query)
        assert "Seq Scan" not in plan, plan
        assert "$1" in plan, plan  # the generic plan (plan_cache_mode), the one that runs


async def test_content_without_a_type_is_a_parameter_error(api: Api) -> None:
    me = await owner(api)
    for body in ({"content": 5}, {"type": None, "content": 5}):
        reply = await me.event(**body)
        assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT"), reply
        assert "content" in reply.body["data"]
    assert await me.all_events() == []


async def test_the_two_value_forms_cannot_be_mixed(api: Api) -> None:
    me = await owner(api)
    mixed = {"value": {"type": "note:txt", "value": "a"}, "type": "mass/kg", "content": 1}
    reply = await me.event(**mixed)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT"), reply
    assert "value" in reply.body["data"]
    created = (await me.event(type="mass/kg", content=1)).body["id"]
    reply = await api.put(me.path(f"/events/{created}"), mixed, auth=me.session)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT"), reply
    [event] = await me.all_events()
    assert event["value"] == {"type": "mass/kg", "value": 1}
