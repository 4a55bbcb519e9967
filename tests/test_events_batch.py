"""events.batch: offline events uploaded all or nothing (API.md §6)."""

from __future__ import annotations

import time
from typing import Any

from pryvrt.notify.messages import EVENTS_CHANGED
from tests.activity import Owner, owner, record_changes
from tests.conftest import Api, Reply


async def upload(me: Owner, events: list[dict[str, Any]]) -> Reply:
    return await me.api.post(me.path("/events/batch"), {"events": events}, auth=me.session)


async def test_batch_adds_every_event_and_echoes_the_client_ids(api: Api) -> None:
    me = await owner(api)
    work = await me.folder("work")
    changes = await record_changes(me)
    reply = await upload(
        me,
        [
            {"clientId": "m", "time": 100.0, "tags": ["x"], "type": "mass/kg", "content": 80},
            {"clientId": "p", "time": 200.0, "duration": 50.0, "folderId": work},
            {"clientId": "r", "time": 300.0, "duration": None, "folderId": work, "id": "mine"},
        ],
    )
    assert reply.status == 200, reply
    added = reply.body["addedEvents"]
    assert [a["clientId"] for a in added] == ["m", "p", "r"]
    assert added[0]["value"] == {"type": "mass/kg", "value": 80}
    assert "duration" not in added[0]
    assert (added[1]["duration"], added[2]["duration"], added[2]["id"]) == (50.0, None, "mine")
    stored = await me.all_events()
    assert [e["id"] for e in stored] == [a["id"] for a in added]
    assert [{k: v for k, v in a.items() if k != "clientId"} for a in added] == stored
    assert changes.kinds() == [(EVENTS_CHANGED, me.channel)]


async def test_one_bad_event_changes_nothing(api: Api) -> None:
    me = await owner(api)
    await me.event(id="before", time=1.0)
    good = [{"clientId": f"ok{i}", "time": 10.0 + i} for i in range(5)]
    reply = await upload(me, [*good, {"clientId": "bad", "folderId": "ghost"}])
    assert (reply.status, reply.body["id"]) == (400, "UNKNOWN_FOLDER")
    assert reply.body["data"] == {"unknownIds": ["ghost"], "clientId": "bad"}
    assert [e["id"] for e in await me.all_events()] == ["before"]


async def test_events_in_the_future_are_an_invalid_time(api: Api) -> None:
    me = await owner(api)
    now = time.time()
    for bad in (
        {"clientId": "late", "time": now + 3600},
        {"clientId": "late", "time": now - 10, "duration": 3600.0},
    ):
        reply = await upload(me, [{"clientId": "fine", "time": now - 100}, bad])
        assert (reply.status, reply.body["id"]) == (400, "INVALID_TIME")
        assert reply.body["data"]["clientId"] == "late"
    assert await me.all_events() == []


async def test_periods_of_a_batch_may_not_overlap_each_other(api: Api) -> None:
    me = await owner(api)
    reply = await upload(
        me,
        [
            {"clientId": "a", "time": 100.0, "duration": 50.0},
            {"clientId": "b", "time": 200.0, "duration": 50.0},
            {"clientId": "c", "time": 120.0, "duration": 5.0},
        ],
    )
    assert (reply.status, reply.body["id"]) == (400, "PERIODS_OVERLAP")
    assert reply.body["data"]["clientId"] == "c"
    assert reply.body["data"]["overlappedClientIds"] == ["a"]


async def test_periods_of_a_batch_may_not_overlap_stored_ones(api: Api) -> None:
    me = await owner(api)
    stored = (await me.event(time=100.0, duration=100.0)).body["id"]
    reply = await upload(
        me,
        [
            {"clientId": "fine", "time": 10.0, "duration": 90.0},
            {"clientId": "mark", "time": 150.0},
            {"clientId": "clash", "time": 190.0, "duration": 20.0},
        ],
    )
    assert (reply.status, reply.body["id"]) == (400, "PERIODS_OVERLAP")
    assert reply.body["data"] == {"clientId": "clash", "overlappedIds": [stored]}
    loose = await owner(api, enforceNoEventsOverlap=False)
    await loose.event(time=100.0, duration=100.0)
    assert (await upload(loose, [{"clientId": "x", "time": 150.0, "duration": 1.0}])).status == 200


async def test_batch_periods_stop_the_running_period_at_the_first_later_start(api: Api) -> None:
    me = await owner(api)
    work = await me.folder("work")
    running = (await me.start(folderId=work, time=100.0)).body["id"]
    reply = await upload(
        me,
        [
            {"clientId": "b", "time": 300.0, "duration": 10.0},
            {"clientId": "a", "time": 200.0, "duration": 10.0},
        ],
    )
    assert reply.body["stoppedId"] == running
    assert (await me.all_events())[0]["duration"] == 100.0


async def test_client_ids_are_required_and_unique_and_ids_new(api: Api) -> None:
    me = await owner(api)
    await me.event(id="taken")
    for events, error in (
        ([{"time": 1.0}], "INVALID_PARAMETERS_FORMAT"),
        ([{"clientId": "a"}, {"clientId": "a"}], "INVALID_PARAMETERS_FORMAT"),
        ([{"clientId": "a", "id": "x"}, {"clientId": "b", "id": "x"}], "ITEM_ID_ALREADY_EXISTS"),
        ([{"clientId": "a"}, {"clientId": "b", "id": "taken"}], "ITEM_ID_ALREADY_EXISTS"),
    ):
        reply = await upload(me, events)
        assert (reply.status, reply.body["id"]) == (400, error), events
    assert len(await me.all_events()) == 1


async def test_batch_in_a_trashed_channel_is_an_invalid_operation(api: Api) -> None:
    me = await owner(api)
    await api.delete(f"/{me.username}/channels/{me.channel}", auth=me.session)
    reply = await upload(me, [{"clientId": "a"}])
    assert (reply.status, reply.body["data"]) == (400, {"trashed": "channel"})


async def test_batch_size_is_capped_by_the_server_setting(make_api: Any) -> None:
    api = await make_api(max_batch_events=3)
    me = await owner(api)
    reply = await upload(me, [{"clientId": str(i)} for i in range(4)])
    assert (reply.status, reply.body["id"]) == (413, "PAYLOAD_TOO_LARGE")


async def test_ten_thousand_events_are_ingested_in_one_call(api: Api) -> None:
    """Behaviour only: the speed of this path is measured by scripts/bench, not here."""
    me = await owner(api)
    work = await me.folder("work")
    await me.event(time=0.5, duration=0.5)
    events: list[dict[str, Any]] = [
        {"clientId": str(i), "time": 1.0 + i, "folderId": work, "tags": ["t"]}
        | ({"duration": 0.5} if i % 2 else {"type": "count/n", "content": i})
        for i in range(10_000)
    ]
    reply = await upload(me, events)
    assert reply.status == 200, reply
    assert len(reply.body["addedEvents"]) == 10_000
    reply = await me.events("?limit=1&fromTime=0&toTime=1e9")
    assert reply.body[0]["time"] == 10_000.0


async def test_content_without_a_type_is_refused_naming_the_event_and_stores_nothing(
    api: Api,
) -> None:
    me = await owner(api)
    events = [{"clientId": "fine", "time": 10.0}, {"clientId": "bad", "time": 11.0, "content": 5}]
    reply = await upload(me, events)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT")
    assert reply.body["data"]["clientId"] == "bad"
    assert "content" in reply.body["data"]
    assert await me.all_events() == []


async def test_mixed_value_forms_in_a_batch_are_refused_naming_the_event(api: Api) -> None:
    me = await owner(api)
    events = [
        {"clientId": "ok", "time": 10.0},
        {"clientId": "mixed", "time": 11.0, "value": {"type": "a:b", "value": 1}, "type": "c/d"},
    ]
    reply = await upload(me, events)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT")
    assert reply.body["data"]["clientId"] == "mixed"
    assert await me.all_events() == []
