"""Group commit of concurrent marks (pryvrt.storage.group_commit): shared statements and
commits, yet every request gets its own answer, stored exactly as a lone one would be."""

from __future__ import annotations

import asyncio
from typing import Any

from pryvrt.app import SERVICES_KEY
from tests.activity import owner
from tests.conftest import Api


def grouping(api: Api) -> Any:
    return api.client.app[SERVICES_KEY].storage.events._live_inserts


async def test_concurrent_marks_share_commits_and_are_all_stored(api: Api) -> None:
    me = await owner(api)
    other = await api.channel(me.username, me.session)
    group = grouping(api)
    groups, items = group.groups, group.items
    bodies = [
        {
            "value": {"type": "count:n", "value": i},
            "tags": ["t", f"n{i}"],
            "description": f"mark {i}",
            "clientData": {"i": i, "nested": {"ok": True}},
            "time": 1000.0 + i,
        }
        for i in range(60)
    ]
    replies = await asyncio.gather(
        *(
            api.post(me.path("/events", other if i % 2 else None), body, auth=me.session)
            for i, body in enumerate(bodies)
        )
    )
    assert [r.status for r in replies] == [201] * 60
    assert group.items - items == 60
    assert group.groups - groups < 60  # some requests shared a statement
    stored: dict[str, dict[str, Any]] = {}
    for channel in (me.channel, other):
        reply = await api.get(
            me.path("/events?fromTime=0&toTime=1e6&limit=100", channel), auth=me.session
        )
        stored |= {e["id"]: e for e in reply.body}
    for i, reply in enumerate(replies):
        event = stored[reply.body["id"]]
        assert event["channelId"] == (other if i % 2 else me.channel)
        assert event["value"] == {"type": "count:n", "value": i}
        assert event["tags"] == ["t", f"n{i}"]
        assert event["description"] == f"mark {i}"
        assert event["clientData"] == {"i": i, "nested": {"ok": True}}
        assert event["time"] == 1000.0 + i
        assert "duration" not in event and event["folderId"] is None


async def test_a_taken_id_fails_only_its_own_request(api: Api) -> None:
    me = await owner(api)
    bodies: list[dict[str, Any]] = [{"id": "same-id"} for _ in range(5)]
    bodies += [{"tags": [str(i)]} for i in range(20)]
    replies = await asyncio.gather(
        *(api.post(me.path("/events"), body, auth=me.session) for body in bodies)
    )
    same = [r for r, body in zip(replies, bodies, strict=True) if body.get("id") == "same-id"]
    assert sorted(r.status for r in same) == [201, 400, 400, 400, 400]
    assert {r.body["id"] for r in same if r.status == 400} == {"ITEM_ID_ALREADY_EXISTS"}
    others = [r for r, body in zip(replies, bodies, strict=True) if "tags" in body]
    assert [r.status for r in others] == [201] * 20


async def test_marks_racing_a_trashed_channel_fail_alone(api: Api) -> None:
    me = await owner(api)
    trashed = await api.channel(me.username, me.session)
    assert (await api.delete(f"/{me.username}/channels/{trashed}", auth=me.session)).status == 200
    replies = await asyncio.gather(
        *(
            api.post(me.path("/events", trashed if i % 3 == 0 else None), {}, auth=me.session)
            for i in range(30)
        )
    )
    for i, reply in enumerate(replies):
        if i % 3 == 0:
            assert (reply.status, reply.body["id"]) == (400, "INVALID_OPERATION")
            assert reply.body["data"] == {"trashed": "channel"}
        else:
            assert reply.status == 201, reply
