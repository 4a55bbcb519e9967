"""Period rules (API.md §6.3): start, stop, create and update sequences, batch, concurrency."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from tests.activity import Owner, owner
from tests.conftest import Api


async def strict(api: Api) -> tuple[Owner, str]:
    me = await owner(api)
    return me, await me.folder("work")


def spans(events: list[dict[str, Any]]) -> list[tuple[str, float, float | None]]:
    """(id, time, duration) of the periods, oldest first."""
    return [(e["id"], e["time"], e["duration"]) for e in events if "duration" in e]


def assert_no_overlap(events: list[dict[str, Any]]) -> None:
    periods = sorted(
        (e["time"], e["time"] + e["duration"] if e["duration"] is not None else float("inf"))
        for e in events
        if "duration" in e and not e["trashed"]
    )
    for (_, end), (start, _) in itertools.pairwise(periods):
        assert start >= end, periods


async def test_start_creates_a_running_period(api: Api) -> None:
    me, work = await strict(api)
    reply = await me.start(folderId=work, time=100.0)
    assert reply.status == 201
    assert list(reply.body) == ["id"]
    assert spans(await me.all_events()) == [(reply.body["id"], 100.0, None)]


async def test_start_needs_a_folder(api: Api) -> None:
    me, _ = await strict(api)
    for body in ({}, {"folderId": None}):
        reply = await me.start(**body)
        assert (reply.status, reply.body["id"]) == (400, "MISSING_FOLDER")
    loose = await owner(api, enforceNoEventsOverlap=False)
    assert (await loose.start()).body["id"] == "MISSING_FOLDER"


async def test_start_stops_the_running_period(api: Api) -> None:
    me, work = await strict(api)
    first = (await me.start(folderId=work, time=100.0)).body["id"]
    reply = await me.start(folderId=work, time=160.0)
    assert reply.body == {"id": reply.body["id"], "stoppedId": first}
    assert spans(await me.all_events()) == [(first, 100.0, 60.0), (reply.body["id"], 160.0, None)]


async def test_start_at_the_default_time_stops_the_previous_one_now(api: Api) -> None:
    me, work = await strict(api)
    first = (await me.start(folderId=work)).body["id"]
    second = await me.start(folderId=work)
    assert second.body["stoppedId"] == first
    [stopped, running] = await me.all_events()
    assert stopped["duration"] >= 0 and running["duration"] is None
    assert abs(stopped["time"] + stopped["duration"] - running["time"]) < 1e-6


async def test_start_before_a_later_period_is_an_invalid_operation(api: Api) -> None:
    me, work = await strict(api)
    later = (await me.event(folderId=work, time=500.0, duration=10.0)).body["id"]
    reply = await me.start(folderId=work, time=100.0)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_OPERATION")
    assert reply.body["data"]["laterIds"] == [later]


async def test_start_inside_a_finished_period_overlaps(api: Api) -> None:
    me, work = await strict(api)
    done = (await me.event(folderId=work, time=100.0, duration=100.0)).body["id"]
    reply = await me.start(folderId=work, time=150.0)
    assert (reply.status, reply.body["id"]) == (400, "PERIODS_OVERLAP")
    assert reply.body["data"]["overlappedIds"] == [done]
    assert (await me.start(folderId=work, time=200.0)).status == 201  # touching is fine


async def test_create_overlapping_a_finished_period_is_refused(api: Api) -> None:
    me, work = await strict(api)
    a = (await me.event(folderId=work, time=100.0, duration=100.0)).body["id"]
    b = (await me.event(time=300.0, duration=100.0)).body["id"]
    for start, duration, overlapped in (
        (150.0, 10.0, [a]),
        (50.0, 60.0, [a]),
        (150.0, 200.0, [a, b]),
        (0.0, 1000.0, [a, b]),
    ):
        reply = await me.event(time=start, duration=duration)
        assert (reply.status, reply.body["id"]) == (400, "PERIODS_OVERLAP"), start
        assert reply.body["data"]["overlappedIds"] == overlapped
    assert (await me.event(time=200.0, duration=100.0)).status == 201  # fills the gap exactly
    assert len(spans(await me.all_events())) == 3


async def test_creating_a_period_after_the_running_one_stops_it(api: Api) -> None:
    me, work = await strict(api)
    running = (await me.start(folderId=work, time=100.0)).body["id"]
    reply = await me.event(time=130.0, duration=10.0)
    assert reply.body["stoppedId"] == running
    assert spans(await me.all_events())[0] == (running, 100.0, 30.0)


async def test_a_period_before_the_running_one_leaves_it_running_unless_they_overlap(
    api: Api,
) -> None:
    me, work = await strict(api)
    running = (await me.start(folderId=work, time=100.0)).body["id"]
    reply = await me.event(time=50.0, duration=50.0)
    assert reply.status == 201 and "stoppedId" not in reply.body
    before = reply.body["id"]
    reply = await me.event(time=60.0, duration=50.0)
    assert (reply.status, reply.body["id"]) == (400, "PERIODS_OVERLAP")
    assert reply.body["data"]["overlappedIds"] == [before, running]
    assert spans(await me.all_events())[-1] == (running, 100.0, None)


async def test_marks_never_take_part_in_the_rules(api: Api) -> None:
    me, work = await strict(api)
    await me.event(folderId=work, time=100.0, duration=100.0)
    running = (await me.start(folderId=work, time=300.0)).body["id"]
    for at in (150.0, 300.0, 400.0):
        reply = await me.event(folderId=work, time=at)
        assert reply.status == 201 and "stoppedId" not in reply.body
    assert spans(await me.all_events())[-1] == (running, 300.0, None)


async def test_stop_ends_the_running_period(api: Api) -> None:
    me, work = await strict(api)
    running = (await me.start(folderId=work, time=100.0)).body["id"]
    reply = await me.stop(time=175.0)
    assert (reply.status, reply.body) == (200, {"stoppedId": running})
    assert spans(await me.all_events()) == [(running, 100.0, 75.0)]
    assert (await me.stop()).body == {"stoppedId": None}


async def test_stop_defaults_to_now_and_accepts_an_id(api: Api) -> None:
    me, work = await strict(api)
    started = time.time() - 10
    running = (await me.start(folderId=work, time=started)).body["id"]
    assert (await me.stop(id=running)).body == {"stoppedId": running}
    [event] = await me.all_events()
    assert 10 <= event["duration"] < 70
    assert (await me.stop(id=running)).body == {"stoppedId": None}


async def test_stop_refuses_a_time_before_the_start_and_unknown_ids(api: Api) -> None:
    me, work = await strict(api)
    await me.start(folderId=work, time=100.0)
    reply = await me.stop(time=99.0)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_TIME")
    reply = await me.stop(id="ghost")
    assert (reply.status, reply.body["id"]) == (404, "UNKNOWN_EVENT")


async def test_update_making_a_period_overlap_the_next_one_is_refused(api: Api) -> None:
    me, work = await strict(api)
    a = (await me.event(folderId=work, time=100.0, duration=10.0)).body["id"]
    b = (await me.event(folderId=work, time=200.0, duration=10.0)).body["id"]
    reply = await me.api.put(me.path(f"/events/{a}"), {"duration": 150.0}, auth=me.session)
    assert (reply.status, reply.body["id"]) == (400, "PERIODS_OVERLAP")
    assert reply.body["data"]["overlappedIds"] == [b]
    reply = await me.api.put(me.path(f"/events/{a}"), {"time": 195.0}, auth=me.session)
    assert reply.body["id"] == "PERIODS_OVERLAP"
    reply = await me.api.put(me.path(f"/events/{a}"), {"duration": 100.0}, auth=me.session)
    assert (reply.status, reply.body) == (200, {})


async def test_making_a_period_running_again_needs_it_to_be_the_latest(api: Api) -> None:
    me, work = await strict(api)
    a = (await me.event(folderId=work, time=100.0, duration=10.0)).body["id"]
    b = (await me.event(folderId=work, time=200.0, duration=10.0)).body["id"]
    reply = await me.api.put(me.path(f"/events/{a}"), {"duration": None}, auth=me.session)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_OPERATION")
    reply = await me.api.put(me.path(f"/events/{b}"), {"duration": None}, auth=me.session)
    assert reply.status == 200
    assert spans(await me.all_events())[-1] == (b, 200.0, None)


async def test_update_of_a_period_after_the_running_one_stops_it(api: Api) -> None:
    me, work = await strict(api)
    running = (await me.start(folderId=work, time=100.0)).body["id"]
    await me.event(id="mark", folderId=work, time=150.0)
    reply = await me.api.put(me.path("/events/mark"), {"duration": 5.0}, auth=me.session)
    assert reply.body == {"stoppedId": running}
    assert spans(await me.all_events()) == [(running, 100.0, 50.0), ("mark", 150.0, 5.0)]


async def test_trashed_periods_do_not_count_until_restored(api: Api) -> None:
    me, work = await strict(api)
    a = (await me.event(folderId=work, time=100.0, duration=100.0)).body["id"]
    await me.api.delete(me.path(f"/events/{a}"), auth=me.session)
    assert (await me.event(folderId=work, time=150.0, duration=10.0)).status == 201
    reply = await me.api.put(me.path(f"/events/{a}"), {"trashed": False}, auth=me.session)
    assert (reply.status, reply.body["id"]) == (400, "PERIODS_OVERLAP")


async def test_non_strict_channels_allow_overlaps_and_several_running(api: Api) -> None:
    me = await owner(api, enforceNoEventsOverlap=False)
    work = await me.folder("work")
    first = (await me.start(folderId=work, time=100.0)).body
    second = (await me.start(folderId=work, time=50.0)).body
    assert "stoppedId" not in first and "stoppedId" not in second
    assert (await me.event(time=60.0, duration=100.0)).status == 201
    running = (await me.api.get(me.path("/events/running"), auth=me.session)).body
    assert len(running) == 2
    reply = await me.stop()
    assert (reply.status, reply.body["id"]) == (400, "MISSING_PARAMETER")
    assert (await me.stop(id=first["id"], time=120.0)).body == {"stoppedId": first["id"]}


async def test_starting_in_a_trashed_folder_is_an_invalid_operation(api: Api) -> None:
    me, work = await strict(api)
    await me.api.delete(me.path(f"/folders/{work}"), auth=me.session)
    reply = await me.start(folderId=work)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_OPERATION")
    assert reply.body["data"]["trashed"] == "folder"


async def test_concurrent_starts_leave_one_running_period_and_no_overlap(api: Api) -> None:
    me, work = await strict(api)
    replies = await asyncio.gather(*(me.start(folderId=work) for _ in range(20)))
    assert all(r.status == 201 for r in replies), replies
    events = await me.all_events()
    assert len(events) == 20
    assert [e["duration"] for e in events].count(None) == 1
    assert_no_overlap(events)
    stopped = sorted(r.body["stoppedId"] for r in replies if "stoppedId" in r.body)
    assert stopped == sorted(e["id"] for e in events if e["duration"] is not None)


async def test_concurrent_writes_on_two_servers_keep_the_rules(api: Api, make_api: Any) -> None:
    """Two servers on one database stand for two workers: the rules still hold."""
    me, work = await strict(api)
    second = await make_api()
    other = Owner(second, me.username, me.session, me.channel)
    calls = []
    for i in range(20):
        who = me if i % 2 else other
        at = 1000.0 + (i * 7919) % 20  # shuffled start times, some equal
        if i % 3:
            calls.append(who.start(folderId=work, time=at))
        else:
            calls.append(who.event(folderId=work, time=at, duration=3.0))
    replies = await asyncio.gather(*calls)
    assert {r.status for r in replies} <= {201, 400}
    refused = {r.body["id"] for r in replies if r.status == 400}
    assert refused <= {"INVALID_OPERATION", "PERIODS_OVERLAP"}
    events = await me.all_events()
    assert len(events) == sum(r.status == 201 for r in replies)
    assert [e["duration"] for e in events].count(None) <= 1
    assert_no_overlap(events)


async def make_loose_with(api: Api, periods: list[tuple[float, float | None]]) -> tuple[Owner, str]:
    """A non-strict channel holding these (time, duration) periods in folder "work"."""
    me = await owner(api, enforceNoEventsOverlap=False)
    work = await me.folder("work")
    for index, (at, duration) in enumerate(periods):
        if duration is None:
            reply = await me.start(folderId=work, time=at, id=f"p{index}")
        else:
            reply = await me.event(folderId=work, time=at, duration=duration, id=f"p{index}")
        assert reply.status == 201, reply
    return me, work


async def set_strict(me: Owner) -> Any:
    return await me.api.put(
        f"/{me.username}/channels/{me.channel}", {"enforceNoEventsOverlap": True}, me.session
    )


async def strictness(me: Owner) -> bool:
    reply = await me.api.get(f"/{me.username}/channels", auth=me.session)
    [channel] = [c for c in reply.body if c["id"] == me.channel]
    return bool(channel["enforceNoEventsOverlap"])


async def test_making_a_channel_with_two_running_periods_strict_is_refused(api: Api) -> None:
    me, _ = await make_loose_with(api, [(100.0, None), (200.0, None)])
    reply = await set_strict(me)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_OPERATION"), reply
    assert sorted(reply.body["data"]["overlappingIds"]) == ["p0", "p1"]
    assert reply.body["data"]["enforceNoEventsOverlap"] is True
    assert await strictness(me) is False


async def test_making_a_channel_with_overlapping_periods_strict_is_refused(api: Api) -> None:
    me, _ = await make_loose_with(api, [(100.0, 50.0), (120.0, 10.0), (300.0, 10.0)])
    reply = await set_strict(me)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_OPERATION"), reply
    assert sorted(reply.body["data"]["overlappingIds"]) == ["p0", "p1"]
    assert await strictness(me) is False
    # A name change in the same call is not applied either.
    reply = await me.api.put(
        f"/{me.username}/channels/{me.channel}",
        {"enforceNoEventsOverlap": True, "name": "renamed"},
        me.session,
    )
    assert reply.status == 400
    names = [
        c["name"] for c in (await me.api.get(f"/{me.username}/channels", auth=me.session)).body
    ]
    assert "renamed" not in names


async def test_making_a_channel_strict_once_its_periods_are_sorted_out_is_accepted(
    api: Api,
) -> None:
    me, _ = await make_loose_with(api, [(100.0, None), (200.0, None), (150.0, 10.0)])
    assert (await set_strict(me)).status == 400
    # Stop the first running period before the second, trash the period inside it.
    assert (await me.stop(id="p0", time=120.0)).status == 200
    assert (await me.api.delete(me.path("/events/p2"), auth=me.session)).status == 200
    reply = await set_strict(me)
    assert reply.status == 200, reply
    assert await strictness(me) is True
    assert_no_overlap(await me.all_events())
    # Touching periods and zero-length periods at a boundary do not overlap.
    loose, _ = await make_loose_with(api, [(100.0, 50.0), (150.0, 0.0), (150.0, 10.0)])
    assert (await set_strict(loose)).status == 200


async def test_a_channel_made_strict_keeps_one_running_period_under_concurrent_starts(
    api: Api,
) -> None:
    """The check and the switch hold the channel lock: a start racing the switch either
    lands before (and the switch is refused) or after (and follows the strict rules)."""
    for _ in range(5):
        me, work = await make_loose_with(api, [(100.0, None)])
        results = await asyncio.gather(set_strict(me), me.start(folderId=work, time=200.0))
        assert results[1].status == 201, results
        running = [e for e in await me.all_events() if e.get("duration", 0) is None]
        if await strictness(me):
            assert len(running) == 1, running
        else:
            assert results[0].status == 400
