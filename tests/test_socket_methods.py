"""Which methods Socket.IO and batches reach, and that every socket call gets its ack."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import asyncpg
import engineio
import pytest
import socketio

from pryvrt.app import SOCKETIO_KEY
from pryvrt.methods.registry import REGISTRY
from pryvrt.transports.http import ROUTES
from tests.conftest import Api
from tests.sockets import connect


def url(api: Api) -> str:
    return str(api.client.make_url("/"))


def with_files() -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field(
        "event",
        json.dumps({"value": {"type": "note/txt", "value": "with files"}}),
        content_type="application/json",
        filename="event.json",
    )
    for name in ("a.txt", "b.txt"):
        form.add_field(
            "file", b"bytes of " + name.encode(), filename=name, content_type="text/plain"
        )
    return form


def test_exactly_the_methods_whose_every_route_carries_a_file_are_flagged_files() -> None:
    """The flag is checked against the HTTP routes: a method is HTTP-only when it cannot be
    called without a file (an upload without a params part, or a download)."""
    routes: dict[str, list[bool]] = {}
    for route in ROUTES:
        carries = (route.uploads and not route.params_part) or route.download
        routes.setdefault(route.method_id, []).append(carries)
    for method in REGISTRY.values():
        carries_file = bool(routes.get(method.id)) and all(routes[method.id])
        assert method.files is carries_file, method.id
        assert method.socket is not method.files
    assert {m.id for m in REGISTRY.values() if m.files} == {
        "events.addAttachments",
        "events.getAttachment",
    }


async def test_every_method_without_a_file_is_callable_over_socketio_and_in_a_batch(
    api: Api,
) -> None:
    """Each method is called with empty params (a personal token: nothing is changed): any
    answer but UNKNOWN_METHOD shows it was dispatched."""
    username, session = await api.user()
    token = await api.personal_token(username, session)
    callable_ids = sorted(m.id for m in REGISTRY.values() if m.socket)
    async with connect(url(api), username, token) as sock:
        for method_id in callable_ids:
            error, _ = await sock.call(method_id, {})
            assert error is None or error["id"] != "UNKNOWN_METHOD", (method_id, error)
        for method in REGISTRY.values():
            if method.files:
                error, _ = await sock.call(method.id, {})
                assert error["id"] == "UNKNOWN_METHOD", method.id
    # a batch runs every such method but batch itself (no batch in a batch)
    in_batch = [m for m in callable_ids if m != "batch"]
    reply = await api.post(
        f"/{username}/", [{"method": m, "params": {}} for m in in_batch], auth=token
    )
    assert reply.status == 200, reply
    for method_id, item in zip(in_batch, reply.body, strict=True):
        assert "result" in item or item["error"]["id"] != "UNKNOWN_METHOD", (method_id, item)


async def test_deleting_an_attachment_works_over_socketio_and_in_a_batch(api: Api) -> None:
    username, session = await api.user()
    channel = await api.channel(username, session)
    created = await api.post(
        f"/{username}/{channel}/events",
        data=with_files(),
        auth=session,
    )
    assert created.status == 201, created
    event_id = created.body["id"]
    async with connect(url(api), username, session) as sock:
        error, result = await sock.call(
            "events.deleteAttachment", {"channelId": channel, "id": event_id, "fileName": "a.txt"}
        )
        assert (error, result) == (None, {})
        assert ("eventsChanged", {"channelId": channel}) in await sock.drain(0.3)
    batch = await api.post(
        f"/{username}/",
        [
            {
                "method": "events.deleteAttachment",
                "params": {"channelId": channel, "id": event_id, "fileName": "b.txt"},
            }
        ],
        auth=session,
    )
    assert batch.body == [{"result": {}}]
    events = await api.get(f"/{username}/{channel}/events", auth=session)
    [event] = [e for e in events.body if e["id"] == event_id]
    assert event.get("attachments", []) == []
    gone = await api.get(f"/{username}/{channel}/events/{event_id}/a.txt", auth=session)
    assert (gone.status, gone.body["id"]) == (404, "UNKNOWN_ATTACHMENT")


def test_engineio_keeps_a_json_hook_that_refuses_non_json_text(api: Api) -> None:
    """Engine.IO decodes its own packets through its JSON hook and needs the ValueError
    for ``probe`` (the polling → websocket upgrade): the server's lenient hook is only for
    Socket.IO packets."""
    with pytest.raises(ValueError):
        engineio.packet.Packet.json.loads("probe")
    assert engineio.packet.Packet(encoded_packet="2probe").data == "probe"


async def test_a_client_left_at_its_default_transports_ends_on_websocket(api: Api) -> None:
    username, session = await api.user()
    client = socketio.AsyncClient(reconnection=False)
    heard: asyncio.Queue[str] = asyncio.Queue()
    client.on(
        "channelsChanged", lambda: heard.put_nowait("channelsChanged"), namespace=f"/{username}"
    )
    await client.connect(
        url(api).rstrip("/"), namespaces=[f"/{username}"], auth={"token": session}, wait_timeout=5
    )
    try:
        async with asyncio.timeout(5):
            while client.transport() != "websocket":  # noqa: ASYNC110 - no upgrade event
                await asyncio.sleep(0.02)
        reply = await client.call("channels.get", {}, namespace=f"/{username}", timeout=5)
        assert list(reply) == [None, []]
        # once upgraded, its notifications and acks take the direct write (transports.fanout)
        server = api.client.server.app[SOCKETIO_KEY].sio
        assert server.direct(client.eio.sid) is not None
        await api.post(f"/{username}/channels", {"name": "after-upgrade"}, auth=session)
        assert await asyncio.wait_for(heard.get(), 5) == "channelsChanged"
    finally:
        await client.disconnect()


async def test_a_result_that_cannot_be_encoded_gets_an_error_ack_not_silence(
    api: Api, database_url: str
) -> None:
    """A channel whose clientData is nested 300 deep (written before the 64-level check
    existed, or by another tool) cannot be encoded by orjson (255 levels at most): the call
    answers UNEXPECTED_ERROR, as HTTP answers 500, and the socket keeps working."""
    username, session = await api.user()
    channel = await api.channel(username, session)
    conn = await asyncpg.connect(database_url)
    try:
        deep = '{"a":' * 300 + "1" + "}" * 300
        await conn.execute(
            "UPDATE channels SET client_data = $1::jsonb WHERE id = $2", deep, channel
        )
    finally:
        await conn.close()
    http = await api.get(f"/{username}/channels", auth=session)
    assert (http.status, http.body["id"]) == (500, "UNEXPECTED_ERROR")
    async with connect(url(api), username, session) as sock:
        error, result = await sock.call("channels.get", {}, within=5)
        assert result is None
        assert error["id"] == "UNEXPECTED_ERROR" and "encoded" in error["message"]
        [error, result] = await sock.call("batch", [{"method": "channels.get"}], within=5)
        assert error["id"] == "UNEXPECTED_ERROR"
        error, result = await sock.call("tokens.get", {}, within=5)
        assert error is None and isinstance(result, list)
