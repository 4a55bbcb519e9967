"""High-frequency series (API.md §15): series events, points in and out, decimation,
trash and delete, permissions, notifications, bad input, and the three transports."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from typing import Any

import numpy as np
import pytest

from pryvrt.app import SERVICES_KEY
from pryvrt.methods import series as series_methods
from pryvrt.methods.series_types import DIRECTORY
from pryvrt.notify.coalesce import Coalescer
from pryvrt.notify.messages import SERIES_CHANGED, Change
from pryvrt.storage.series_codec import BLOCK_POINTS
from tests.activity import Owner, owner, record_changes
from tests.conftest import Api, Reply
from tests.sockets import connect


async def new_series(me: Owner, kind: str, auth: str | None = None, **fields: Any) -> str:
    reply = await me.event(auth=auth, type=kind, time=1000.0, **fields)
    assert reply.status == 201, reply
    return str(reply.body["id"])


async def add(
    me: Owner, event_id: str, fields: list[str], points: list[list[Any]], auth: str | None = None
) -> Reply:
    body = {"format": "flatJSON", "fields": fields, "points": points}
    return await me.api.post(me.path(f"/events/{event_id}/series"), body, auth=auth or me.session)


async def read(me: Owner, event_id: str, query: str = "", auth: str | None = None) -> Reply:
    return await me.api.get(me.path(f"/events/{event_id}/series{query}"), auth=auth or me.session)


async def points_of(me: Owner, event_id: str, query: str = "") -> list[list[Any]]:
    reply = await read(me, event_id, query)
    assert reply.status == 200, reply
    return list(reply.body["points"])


async def one_event(me: Owner, event_id: str) -> dict[str, Any]:
    return next(e for e in await me.all_events() if e["id"] == event_id)


async def stored_chunks(api: Api, event_id: str) -> list[tuple[float, float, int]]:
    pool = api.client.app[SERVICES_KEY].storage.pool
    rows = await pool.fetch(
        "SELECT t_min, t_max, n FROM series_chunks WHERE event_id = $1 ORDER BY t_min", event_id
    )
    return [(r["t_min"], r["t_max"], r["n"]) for r in rows]


@pytest.mark.parametrize("element", sorted(DIRECTORY))
async def test_every_directory_type_round_trips(api: Api, element: str) -> None:
    me = await owner(api)
    event_id = await new_series(me, f"series:{element}")
    event = await one_event(me, event_id)
    names, required = DIRECTORY[element]
    content = {
        "elementType": element,
        "fields": ["deltaTime", *names],
        "required": ["deltaTime", *required],
    }
    assert event["type"] == f"series:{element}"
    assert event["value"] == {"type": f"series:{element}", "value": content}
    assert event["duration"] == 0.0
    rng = random.Random(element)
    points = [
        [i * 0.02]
        + [
            None if (name not in required and i % 3 == 0) else round(rng.uniform(-90, 90), 6)
            for name in names
        ]
        for i in range(300)
    ]
    assert (await add(me, event_id, content["fields"], points)).status == 200
    reply = await read(me, event_id)
    assert reply.body == {"format": "flatJSON", "fields": content["fields"], "points": points}
    assert (await one_event(me, event_id))["duration"] == pytest.approx(299 * 0.02)


async def test_client_declared_fields_round_trip_and_undeclared_types_are_refused(
    api: Api,
) -> None:
    me = await owner(api)
    declared = {"fields": ["x", "y", "z"], "required": ["x"]}
    event_id = await new_series(me, "series:acceleration/m-s2", content=declared)
    event = await one_event(me, event_id)
    assert event["value"]["value"] == {
        "elementType": "acceleration/m-s2",
        "fields": ["deltaTime", "x", "y", "z"],
        "required": ["deltaTime", "x"],
    }
    # fields in another order, optional ones left out
    assert (await add(me, event_id, ["x", "deltaTime"], [[1.5, 0.1], [2.5, 0.2]])).status == 200
    assert await points_of(me, event_id) == [[0.1, 1.5, None, None], [0.2, 2.5, None, None]]
    for bad in (
        {"type": "series:acceleration/m-s2"},
        {"type": "series:acceleration/m-s2", "content": {"fields": ["x", "x"]}},
        {"type": "series:acceleration/m-s2", "content": {"fields": ["x"], "required": ["q"]}},
        {"type": "series:Bad Type"},
        {"type": "series:mass/kg", "content": {"fields": ["deltaTime", "grams"]}},
    ):
        reply = await me.event(**bad)
        assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT"), bad


async def test_points_come_back_sorted_and_ranges_include_their_ends(api: Api) -> None:
    me = await owner(api)
    event_id = await new_series(me, "series:frequency/bpm")
    times = list(range(100))
    random.Random(1).shuffle(times)
    for start in range(0, 100, 25):
        part = [[float(t), 60.0 + t] for t in times[start : start + 25]]
        assert (await add(me, event_id, ["deltaTime", "value"], part)).status == 200
    assert await points_of(me, event_id) == [[float(t), 60.0 + t] for t in range(100)]
    assert await points_of(me, event_id, "?fromDeltaTime=10&toDeltaTime=12") == [
        [10.0, 70.0],
        [11.0, 71.0],
        [12.0, 72.0],
    ]
    assert await points_of(me, event_id, "?fromDeltaTime=97.5") == [[98.0, 158.0], [99.0, 159.0]]
    assert await points_of(me, event_id, "?toDeltaTime=0.5") == [[0.0, 60.0]]
    assert await points_of(me, event_id, "?fromDeltaTime=50&toDeltaTime=40") == []
    assert (await one_event(me, event_id))["duration"] == 99.0


async def test_overlapping_appends_merge_and_a_resent_point_replaces_the_stored_one(
    api: Api,
) -> None:
    me = await owner(api)
    event_id = await new_series(me, "series:mass/kg")
    fields = ["deltaTime", "value"]
    first = [[float(t), 1.0] for t in range(0, 10_000, 2)]  # even deltaTimes: 2 chunks
    second = [[float(t), 2.0] for t in range(1, 10_000, 2)]  # odd: inside both chunks
    assert (await add(me, event_id, fields, first)).status == 200
    assert (await add(me, event_id, fields, second)).status == 200
    assert (await add(me, event_id, fields, [[4.0, 9.0], [4.0, 7.0]])).status == 200
    points = await points_of(me, event_id)
    assert [p[0] for p in points] == [float(t) for t in range(10_000)]
    assert points[4] == [4.0, 7.0]  # the last given wins, stored points included
    assert {p[1] for p in points[5:]} == {1.0, 2.0}
    chunks = await stored_chunks(api, event_id)
    assert sum(n for _, _, n in chunks) == 10_000
    assert all(a[1] < b[0] for a, b in itertools.pairwise(chunks))  # no overlap


async def test_small_appends_top_up_the_last_chunk(api: Api) -> None:
    me = await owner(api)
    event_id = await new_series(me, "series:count/steps")
    for second in range(10):
        part = [[second + i / 50, float(i)] for i in range(50)]
        assert (await add(me, event_id, ["deltaTime", "value"], part)).status == 200
    assert [n for _, _, n in await stored_chunks(api, event_id)] == [500]


async def test_trash_hides_the_points_and_delete_removes_them(api: Api) -> None:
    me = await owner(api)
    event_id = await new_series(me, "series:temperature/c")
    assert (await add(me, event_id, ["deltaTime", "value"], [[0.0, 20.5], [1.0, 21]])).status == 200
    assert (await me.api.delete(me.path(f"/events/{event_id}"), auth=me.session)).status == 200
    assert await points_of(me, event_id) == []
    refused = await add(me, event_id, ["deltaTime", "value"], [[2.0, 22.0]])
    assert (refused.status, refused.body["id"]) == (400, "INVALID_OPERATION")
    restore = await me.api.put(me.path(f"/events/{event_id}"), {"trashed": False}, auth=me.session)
    assert restore.status == 200, restore
    assert await points_of(me, event_id) == [[0.0, 20.5], [1.0, 21.0]]
    for _ in range(2):
        assert (await me.api.delete(me.path(f"/events/{event_id}"), auth=me.session)).status == 200
    assert await stored_chunks(api, event_id) == []
    gone = await read(me, event_id)
    assert (gone.status, gone.body["id"]) == (404, "UNKNOWN_EVENT")


async def test_series_events_keep_their_type_content_and_duration(api: Api) -> None:
    me = await owner(api)
    event_id = await new_series(me, "series:mass/kg")
    path = me.path(f"/events/{event_id}")
    for change in ({"duration": 5.0}, {"type": "mass/kg"}, {"content": {"fields": ["a"]}}):
        reply = await me.api.put(path, change, auth=me.session)
        assert (reply.status, reply.body["id"]) == (400, "INVALID_OPERATION"), change
    ok = await me.api.put(path, {"tags": ["scale"], "description": "morning"}, auth=me.session)
    assert ok.status == 200, ok
    with_duration = await me.event(type="series:mass/kg", duration=3.0)
    assert (with_duration.status, with_duration.body["id"]) == (400, "INVALID_OPERATION")
    plain = (await me.event(type="mass/kg", content=80)).body["id"]
    becoming = await me.api.put(
        me.path(f"/events/{plain}"), {"type": "series:mass/kg"}, auth=me.session
    )
    assert (becoming.status, becoming.body["id"]) == (400, "INVALID_OPERATION")
    not_series = await add(me, plain, ["deltaTime", "value"], [[0.0, 1.0]])
    assert (not_series.status, not_series.body["id"]) == (400, "INVALID_OPERATION")


async def test_series_events_never_take_part_in_the_period_rules(api: Api) -> None:
    me = await owner(api)  # a strict channel
    event_id = await new_series(me, "series:frequency/bpm")
    assert (await add(me, event_id, ["deltaTime", "value"], [[0.0, 60], [500.0, 70]])).status == 200
    period = await me.event(time=1100.0, duration=100.0)  # inside the series' span
    assert period.status == 201, period
    started = await me.start(time=1200.0, folderId=await me.folder("f"))
    assert started.status == 201 and "stoppedId" not in started.body, started
    window = await me.events("?fromTime=1450&toTime=1460")
    # the series overlaps the window by its duration (the running period too)
    assert {e["id"] for e in window.body} == {event_id, started.body["id"]}


BAD_INPUT = [
    (["deltaTime", "value"], [[0.0, "1"]], {"row": 0, "field": "value"}),
    (["deltaTime", "value"], [[0.0, 1.0], [1.0, True]], {"row": 1, "field": "value"}),
    (["deltaTime", "value"], [[0.0, 1.0], [1.0, None]], {"row": 1, "field": "value"}),
    (["deltaTime", "value"], [[0.0, 1.0], [1.0, 2.0, 3.0]], {"row": 1}),
    (["deltaTime", "value"], [[0.0, 1.0], 5], {"row": 1}),
    (["deltaTime", "value"], [[0.0, 1.0], [-1.0, 2.0]], {"row": 1}),
    ("raw", b'{"fields":["deltaTime","value"],"points":[[0.0,1.0],[1.0,1e400]]}', None),
    (["value"], [[1.0]], None),
    (["deltaTime", "value", "other"], [[0.0, 1.0, 2.0]], None),
    (["deltaTime", "deltaTime"], [[0.0, 1.0]], None),
    ("deltaTime,value", [[0.0, 1.0]], None),
]


@pytest.mark.parametrize(("fields", "points", "data"), BAD_INPUT)
async def test_bad_input_is_a_400_naming_the_row_and_stores_nothing(
    api: Api, fields: Any, points: Any, data: dict[str, Any] | None
) -> None:
    me = await owner(api)
    event_id = await new_series(me, "series:mass/kg")
    assert (await add(me, event_id, ["deltaTime", "value"], [[100.0, 5.0]])).status == 200
    if fields == "raw":
        # A number beyond double range: the body is refused whole, like any such body.
        reply = await api.post(
            me.path(f"/events/{event_id}/series"),
            auth=me.session,
            data=points,
            headers={"Content-Type": "application/json"},
        )
        assert reply.status == 400, reply
    else:
        reply = await add(me, event_id, fields, points)
        assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT"), reply
        if data is not None:
            assert {k: reply.body["data"].get(k) for k in data} == data
            assert f"points[{data['row']}]" in reply.body["message"]
    assert await points_of(me, event_id) == [[100.0, 5.0]]
    assert (await one_event(me, event_id))["duration"] == 100.0


async def test_more_points_than_the_limit_is_a_400_and_stores_nothing(
    make_api: Any,
) -> None:
    api = await make_api(max_series_points=10)
    me = await owner(api)
    event_id = await new_series(me, "series:mass/kg")
    reply = await add(me, event_id, ["deltaTime", "value"], [[float(i), 1.0] for i in range(11)])
    assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT")
    assert reply.body["data"] == {"row": 10, "limit": 10}
    assert await points_of(me, event_id) == []


async def test_read_tokens_read_and_contribute_tokens_write_in_their_folders(api: Api) -> None:
    me = await owner(api)
    mine, other = await me.folder("mine"), await me.folder("other")
    inside = await new_series(me, "series:mass/kg", folderId=mine)
    outside = await new_series(me, "series:mass/kg", folderId=other)
    reader = await me.token([{"level": "read"}])
    writer = await me.token(
        [{"level": "read", "folderPermissions": [{"folderId": mine, "level": "contribute"}]}]
    )
    fields, point = ["deltaTime", "value"], [[1.0, 2.0]]
    denied = await add(me, inside, fields, point, auth=reader)
    assert (denied.status, denied.body["id"]) == (403, "FORBIDDEN")
    assert (await add(me, inside, fields, point, auth=writer)).status == 200
    denied = await add(me, outside, fields, point, auth=writer)
    assert (denied.status, denied.body["id"]) == (403, "FORBIDDEN")
    assert (await read(me, inside, auth=reader)).body["points"] == point
    assert (await read(me, inside, auth=writer)).body["points"] == point
    # a token of one folder reads nothing elsewhere
    narrow = await me.token(
        [{"level": "read", "folderPermissions": [{"folderId": mine, "level": "read"}]}]
    )
    denied = await read(me, outside, auth=narrow)
    assert (denied.status, denied.body["id"]) == (403, "FORBIDDEN")
    batch = await api.post(
        f"/{me.username}/series/batch",
        {
            "format": "seriesBatch",
            "data": [
                {
                    "channelId": me.channel,
                    "eventId": inside,
                    "data": {"fields": fields, "points": [[5.0, 1.0]]},
                },
                {
                    "channelId": me.channel,
                    "eventId": outside,
                    "data": {"fields": fields, "points": [[5.0, 1.0]]},
                },
            ],
        },
        auth=writer,
    )
    assert (batch.status, batch.body["id"]) == (403, "FORBIDDEN")
    assert batch.body["data"]["index"] == 1
    assert (await read(me, inside)).body["points"] == point  # nothing of the batch stored


async def test_series_batch_adds_to_many_series_all_or_nothing(api: Api) -> None:
    me = await owner(api)
    other_channel = await api.channel(me.username, me.session)
    a = await new_series(me, "series:mass/kg")
    b_reply = await api.post(
        f"/{me.username}/{other_channel}/events",
        {"type": "series:position/wgs84", "time": 5.0},
        auth=me.session,
    )
    b = b_reply.body["id"]
    good = {
        "format": "seriesBatch",
        "data": [
            {
                "channelId": me.channel,
                "eventId": a,
                "data": {
                    "format": "flatJSON",
                    "fields": ["deltaTime", "value"],
                    "points": [[0.0, 1.0]],
                },
            },
            {
                "channelId": other_channel,
                "eventId": b,
                "data": {
                    "format": "flatJSON",
                    "fields": ["deltaTime", "latitude", "longitude"],
                    "points": [[1.0, 46.5, 6.6]],
                },
            },
            {
                "channelId": me.channel,
                "eventId": a,
                "data": {
                    "format": "flatJSON",
                    "fields": ["deltaTime", "value"],
                    "points": [[2.0, 3.0]],
                },
            },
        ],
    }
    reply = await api.post(f"/{me.username}/series/batch", good, auth=me.session)
    assert reply.status == 200, reply
    assert await points_of(me, a) == [[0.0, 1.0], [2.0, 3.0]]
    reply = await api.get(f"/{me.username}/{other_channel}/events/{b}/series", auth=me.session)
    assert reply.body["points"] == [[1.0, 46.5, 6.6, None, None, None, None, None]]
    bad = {
        "format": "seriesBatch",
        "data": [
            {
                "channelId": me.channel,
                "eventId": a,
                "data": {"fields": ["deltaTime", "value"], "points": [[10.0, 1.0]]},
            },
            {
                "channelId": other_channel,
                "eventId": b,
                "data": {
                    "fields": ["deltaTime", "latitude", "longitude"],
                    "points": [[11.0, 1.0, 2.0], [12.0, None, 2.0]],
                },
            },
        ],
    }
    reply = await api.post(f"/{me.username}/series/batch", bad, auth=me.session)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_PARAMETERS_FORMAT")
    assert {k: reply.body["data"][k] for k in ("index", "row", "eventId")} == {
        "index": 1,
        "row": 1,
        "eventId": b,
    }
    assert await points_of(me, a) == [[0.0, 1.0], [2.0, 3.0]]
    missing = {
        "data": [
            {
                "channelId": me.channel,
                "eventId": "ghost",
                "data": {"fields": ["deltaTime", "value"], "points": [[1.0, 1.0]]},
            }
        ]
    }
    reply = await api.post(f"/{me.username}/series/batch", missing, auth=me.session)
    assert (reply.status, reply.body["id"], reply.body["data"]["index"]) == (
        404,
        "UNKNOWN_EVENT",
        0,
    )


async def test_the_same_calls_work_over_socketio_and_the_method_batch(api: Api) -> None:
    me = await owner(api)
    event_id = await new_series(me, "series:count/generic")
    base = str(api.client.make_url("/"))
    fields = ["deltaTime", "value"]
    async with connect(base, me.username, me.session) as sock:
        error, result = await sock.call(
            "events.addSeriesPoints",
            {
                "channelId": me.channel,
                "id": event_id,
                "format": "flatJSON",
                "fields": fields,
                "points": [[1.0, 10.0], [0.5, 5.0]],
            },
        )
        assert (error, result) == (None, {})
        error, result = await sock.call(
            "events.getSeries", {"channelId": me.channel, "id": event_id, "toDeltaTime": 0.7}
        )
        assert error is None and result["points"] == [[0.5, 5.0]]
        error, _ = await sock.call(
            "events.addSeriesPoints",
            {"channelId": me.channel, "id": event_id, "fields": fields, "points": [[1.0, "x"]]},
        )
        assert (error["id"], error["data"]["row"]) == ("INVALID_PARAMETERS_FORMAT", 0)
    calls = [
        {
            "method": "events.addSeriesPoints",
            "params": {
                "channelId": me.channel,
                "id": event_id,
                "fields": fields,
                "points": [[2.0, 20.0]],
            },
        },
        {
            "method": "series.batch",
            "params": {
                "data": [
                    {
                        "channelId": me.channel,
                        "eventId": event_id,
                        "data": {"fields": fields, "points": [[3.0, 30.0]]},
                    }
                ]
            },
        },
        {"method": "events.getSeries", "params": {"channelId": me.channel, "id": event_id}},
    ]
    reply = await api.post(f"/{me.username}/", calls, auth=me.session)
    assert reply.status == 200, reply
    assert reply.body[2]["result"]["points"] == [[0.5, 5.0], [1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]


async def test_decimation_answers_min_max_mean_per_bucket(api: Api) -> None:
    me = await owner(api)
    event_id = await new_series(me, "series:blood-pressure/mmhg-bpm")
    rng = np.random.default_rng(3)
    n = 5000
    t = np.arange(n) * 0.1
    sys_, dia = rng.uniform(100, 140, n).round(1), rng.uniform(60, 90, n).round(1)
    rate = np.where(np.arange(n) % 2 == 0, np.nan, rng.uniform(50, 100, n).round(1))
    rows = [
        [a, b, c, None if math.isnan(d) else d]
        for a, b, c, d in zip(t, sys_, dia, rate, strict=True)
    ]
    fields = ["deltaTime", "systolic", "diastolic", "rate"]
    assert (await add(me, event_id, fields, rows)).status == 200
    reply = await read(me, event_id, "?maxPoints=10&fromDeltaTime=0&toDeltaTime=500")
    body = reply.body
    assert body["fields"] == [
        "deltaTime",
        "count",
        "systolic:min",
        "systolic:max",
        "systolic:mean",
        "diastolic:min",
        "diastolic:max",
        "diastolic:mean",
        "rate:min",
        "rate:max",
        "rate:mean",
    ]
    assert body["resolution"] == 50.0
    assert len(body["points"]) == 10
    step = body["resolution"]
    index = np.floor(t / step)
    for k, row in enumerate(body["points"]):
        inside = index == k
        assert row[0] == pytest.approx(k * step)
        assert row[1] == inside.sum()
        assert row[2:5] == pytest.approx(
            [sys_[inside].min(), sys_[inside].max(), sys_[inside].mean()]
        )
        kept = rate[inside][~np.isnan(rate[inside])]
        assert row[8:11] == pytest.approx([kept.min(), kept.max(), kept.mean()])
    # resolution alone sets the bucket width; a range with fewer points than buckets is raw
    coarse = (await read(me, event_id, "?resolution=100")).body
    assert [row[0] for row in coarse["points"]] == [0.0, 100.0, 200.0, 300.0, 400.0]
    assert sum(row[1] for row in coarse["points"]) == n
    raw = (await read(me, event_id, "?maxPoints=100&fromDeltaTime=0&toDeltaTime=5")).body
    assert raw["fields"] == fields and len(raw["points"]) == 51


async def test_long_ranges_are_decimated_from_block_summaries(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(series_methods, "EXACT_DECIMATION_POINTS", 0)
    me = await owner(api)
    event_id = await new_series(me, "series:mass/kg")
    n = 20_000
    values = np.random.default_rng(5).normal(70, 5, n).round(2)
    rows = [[i * 0.5, v] for i, v in enumerate(values.tolist())]
    assert (await add(me, event_id, ["deltaTime", "value"], rows)).status == 200
    body = (await read(me, event_id, "?maxPoints=20&fromDeltaTime=100")).body
    buckets = body["points"]
    assert sum(row[1] for row in buckets) == n - 200
    assert min(row[2] for row in buckets) == values[200:].min()
    assert max(row[3] for row in buckets) == values[200:].max()
    total = sum(row[1] * row[4] for row in buckets)
    assert total / (n - 200) == pytest.approx(values[200:].mean())
    # a bucket holds whole blocks: its count is off by less than a block
    assert all(abs(row[1] - (n - 200) / 20) < 2 * BLOCK_POINTS for row in buckets)


async def test_series_changes_are_announced_at_most_every_quarter_second(api: Api) -> None:
    me = await owner(api)
    event_id = await new_series(me, "series:frequency/bpm")
    changes = await record_changes(me)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(20):
        assert (await add(me, event_id, ["deltaTime", "value"], [[float(i), 60.0]])).status == 200
    elapsed = loop.time() - started
    await asyncio.sleep(0.35)  # the trailing notification of the last writes
    sent = [c for c in changes.changes if c.kind == SERIES_CHANGED]
    assert set(sent) == {Change(SERIES_CHANGED, me.channel, event_id)}
    assert 2 <= len(sent) <= elapsed / 0.25 + 2


async def test_sockets_hear_series_changed_with_the_event_id(api: Api) -> None:
    me = await owner(api)
    event_id = await new_series(me, "series:frequency/bpm")
    base = str(api.client.make_url("/"))
    async with connect(base, me.username, me.session) as sock:
        assert (await add(me, event_id, ["deltaTime", "value"], [[50.0, 1.0]])).status == 200
        assert await sock.next() == (
            "seriesChanged",
            {"channelId": me.channel, "eventId": event_id},
        )


async def test_the_coalescer_sends_the_first_change_and_one_after_each_interval() -> None:
    published: list[tuple[str, list[Change]]] = []

    async def publish(user_id: str, changes: Any) -> None:
        published.append((user_id, list(changes)))

    coalescer = Coalescer(interval=0.05)
    series = Change(SERIES_CHANGED, "ch", "ev")
    other = Change("eventsChanged", "ch")
    assert coalescer.hold("u", [series, other], publish) == [series, other]
    for _ in range(10):
        assert coalescer.hold("u", [series, other], publish) == [other]
    assert coalescer.hold("v", [series], publish) == [series]  # per user and series
    await asyncio.sleep(0.1)
    assert published == [("u", [series])]
    await coalescer.close()


async def test_events_batch_creates_series_events_and_refuses_their_duration(api: Api) -> None:
    me = await owner(api)
    path = me.path("/events/batch")
    bad = [{"clientId": "s", "type": "series:mass/kg", "time": 10.0, "duration": 5.0}]
    reply = await api.post(path, {"events": bad}, auth=me.session)
    assert (reply.status, reply.body["id"]) == (400, "INVALID_OPERATION")
    assert reply.body["data"]["clientId"] == "s"
    good = [{"clientId": "s", "type": "series:mass/kg", "time": 10.0}]
    reply = await api.post(path, {"events": good}, auth=me.session)
    assert reply.status == 200, reply
    added = reply.body["addedEvents"][0]
    assert (added["duration"], added["value"]["value"]["fields"]) == (0.0, ["deltaTime", "value"])
    assert (await add(me, added["id"], ["deltaTime", "value"], [[2.0, 80.5]])).status == 200


async def test_deleting_the_channel_deletes_the_points(api: Api) -> None:
    me = await owner(api)
    event_id = await new_series(me, "series:mass/kg")
    assert (await add(me, event_id, ["deltaTime", "value"], [[0.0, 1.0]])).status == 200
    for _ in range(2):
        reply = await api.delete(f"/{me.username}/channels/{me.channel}", auth=me.session)
        assert reply.status == 200, reply
    assert await stored_chunks(api, event_id) == []
